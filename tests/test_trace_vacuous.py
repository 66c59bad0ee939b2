"""No vacuous verdicts from `maildircheck trace` (issue 13, item 3).

Before: a program that made no call on the Maildir was blamed for P2 (as if it had lied
about a delivery), one stopped at the time limit for P5 (a bounce it never sent), and a
program that touched the Maildir, exited 0 and delivered nothing got the same P2 as a lost
message. Now each has its own verdict, in the text, the JSON and `matrix --trace`: "not
checked: why" (exit 3) where nothing can be judged, "delivered nothing" (exit 1) for a
success report with nothing delivered.

Spec IDs exercised: T5 (the exit status is the report), T6 (what one run cannot show).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from maildircheck.harness.cli import main
from maildircheck.harness.matrix import trace_rows


@pytest.fixture(autouse=True)
def _strace() -> None:
    if shutil.which("strace") is None:
        pytest.fail("strace is not installed (.ci/run installs it)")


@pytest.mark.parametrize(
    ("command", "code", "verdict"),
    [
        (["true"], 3, "not checked: the program made no call on the Maildir"),
        (
            ["sh", "-c", "sleep 30", "sh", "{maildir}"],
            3,
            "not checked: the run was stopped at the time limit and never finished",
        ),
        (["sh", "-c", 'ls "$1"/new > /dev/null', "sh", "{maildir}"], 1, "delivered nothing"),
    ],
)
def test_each_vacuous_run_has_its_own_verdict(
    command: list[str], code: int, verdict: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["trace", "--no-message-set", "--timeout", "2", "--env", "sync", "--", *command]
    assert main(argv) == code
    out = capsys.readouterr().out
    assert f"verdict: {verdict}" in out, out
    assert main([*argv[:1], "--json", *argv[1:]]) == code
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"].startswith(verdict)
    assert (report["not_checked"] is None) == (code != 3)


def test_a_matrix_row_says_not_checked() -> None:
    (row,) = trace_rows(["idle=true"], ["sync"])
    assert row.text("sync") == "not checked: the program made no call on the Maildir"


def test_a_program_strace_cannot_trace_is_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where ptrace is refused (a seccomp filter, no CAP_SYS_PTRACE) strace says so and
    records nothing: that is "not checked", exit 3 - not "command not found"."""
    fake = tmp_path / "bin" / "strace"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        'while [ "$1" != "-o" ]; do shift; done; : > "$2"\n'
        "echo 'strace: test_ptrace_get_syscall_info: PTRACE_TRACEME: Operation not permitted' >&2\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    assert main(["trace", "--no-message-set", "--", "true"]) == 3
    err = capsys.readouterr().err
    assert "not checked: strace cannot trace here (strace: test_ptrace_get_syscall_info" in err


def test_a_run_that_is_not_checked_runs_no_message_set(capsys: pytest.CaptureFixture[str]) -> None:
    """A program that hangs would hang once more per message of the set: a run that
    cannot be judged is the only run."""
    assert main(["trace", "--json", "--env", "sync", "--timeout", "1", "--", "true"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["not_checked"] and report["messages"] == []
