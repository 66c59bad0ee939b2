"""A strategy the user wrote that goes wrong says how (issue 13, item 6).

Before: a strategy that yielded something not a syscall ended in "the check did not
complete: KeyError: <class 'str'>" (exit 3, as if the checker broke); one that raised was
reported as P5 with the exception's message only. Now the first is a usage-style error
naming what was yielded (exit 2), and the second's timeline shows the strategy's own
traceback (its last lines).

Spec IDs exercised: E1 (the checker runs the strategy), P5.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maildircheck.harness.cli import main

STRATEGIES = '''\
def yields_junk(request):
    yield "open tmp/x"


def raises(request):
    yield from ()
    raise RuntimeError("my agent broke\\non two lines")
'''


@pytest.fixture
def strategies(tmp_path: Path) -> Path:
    path = tmp_path / "mine.py"
    path.write_text(STRATEGIES)
    return path


def test_yielding_what_is_not_a_syscall_is_a_usage_error(
    strategies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["verify", "--strategy", f"{strategies}:yields_junk", "--env", "sync"]
    assert main([*argv, "--max-examples", "10"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "maildircheck: error: the strategy yielded 'open tmp/x' (str), not a syscall request "
        "from maildircheck.model.syscalls\n"
    )


def test_a_strategy_that_raises_shows_its_traceback(
    strategies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["verify", "--strategy", f"{strategies}:raises", "--env", "sync", "--json"]
    assert main([*argv, "--max-examples", "10"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["violation"]["property"] == "P5"
    steps = report["counterexample"]["steps"]
    raised = next(s for s in steps if s["text"].startswith("raises RuntimeError"))
    assert f'File "{strategies}", line 7, in raises' in "\n".join(raised["detail"])
    assert raised["detail"][-2:] == ["RuntimeError: my agent broke", "on two lines"]
    assert any("uncaught RuntimeError: my agent broke\\non two lines" in s["text"] for s in steps)
