"""`maildircheck trace` reports keep what the agent said and reproduce exactly (issue 13,
item 4).

Before: the agent's standard error was captured and never shown, and the printed replay
command dropped --message, --temporary-exits and --timeout (and --no-message-set), so it
could give another verdict than the run that printed it.

Spec IDs exercised: T5 (the exit status is the report), T6 (what one run shows).
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from maildircheck.harness.cli import main


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in ("strace", "safecat"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (.ci/run installs it)")


def test_the_agents_standard_error_is_in_the_text_and_the_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    agent = ["sh", "-c", 'ls "$1"/new; echo "quota exceeded for bob" >&2; exit 75', "sh"]
    argv = ["trace", "--no-message-set", "--env", "sync", "--", *agent, "{maildir}"]
    assert main(argv) == 0  # a temporary failure, nothing left behind: it holds
    out = capsys.readouterr().out
    assert "what it said on standard error:\n  | quota exceeded for bob" in out
    assert main([argv[0], "--json", *argv[1:]]) == 0
    assert json.loads(capsys.readouterr().out)["stderr"] == "quota exceeded for bob"


def test_the_replay_command_carries_every_option_and_gives_the_same_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --temporary-exits 75, safecat's exit 111 after a failed fsync is a bounce (P5);
    a replay without that option would say it holds."""
    message = tmp_path / "m.eml"
    message.write_bytes(b"Subject: replayed\n\nbody\n")
    argv = [
        "trace", "--json", "--env", "sync", "--inject", "fsync:EIO", "--message", str(message),
        "--temporary-exits", "75", "--timeout", "30", "--no-message-set",
        "--", "safecat", "{maildir}/tmp", "{maildir}/new",
    ]  # fmt: skip
    assert main(argv) == 1
    first = json.loads(capsys.readouterr().out)
    assert first["results"][0]["property"] == "P5"
    replay = shlex.split(first["replay"])
    assert replay[:2] == ["maildircheck", "trace"]
    for option in ("--inject", "--message", "--temporary-exits", "--timeout", "--no-message-set"):
        assert option in replay, first["replay"]
    assert main(["trace", "--json", *replay[2:]]) == 1
    again = json.loads(capsys.readouterr().out)

    def verdicts(report: dict[str, Any]) -> list[tuple[str, str, str | None]]:
        return [(r["env"], r["verdict"], r["property"]) for r in report["results"]]

    assert verdicts(again) == verdicts(first) and again["replay"] == first["replay"]
    assert (again["verdict"], again["exit_status"]) == (first["verdict"], first["exit_status"])


def test_one_fsync_is_said_once(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["trace", "--no-message-set", "--env", "sync", "--", "safecat", "{maildir}/tmp"]
    assert main([*argv, "{maildir}/new"]) == 0
    assert "  - calls fsync/fdatasync once" in capsys.readouterr().out  # was "1 times"


def test_a_program_given_by_a_relative_path_is_found_from_where_the_user_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`trace -- ./my-agent` ran `./my-agent` in the scratch directory: "not runnable"."""
    agent = tmp_path / "my-agent"
    agent.write_text('#!/bin/sh\nexec safecat "$1/tmp" "$1/new"\n')
    agent.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    assert main(["trace", "--no-message-set", "--env", "sync", "--", "./my-agent"]) == 0
    assert f"traced: {agent} " in capsys.readouterr().out


def test_matrix_trace_rows_take_the_options_trace_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A `matrix --trace` row could not take --user, --message or --inject: its text was
    only a command. Now `NAME=[TRACE OPTIONS --] COMMAND` runs as `trace` would."""
    message = tmp_path / "m.eml"
    message.write_bytes(b"Subject: row\n\nbody\n")
    row = (
        f"sc=--inject fsync:EIO --temporary-exits 75 --message {message} --no-message-set -- "
        "safecat {maildir}/tmp {maildir}/new"
    )
    argv = ["matrix", "--strategies", "correct", "--envs", "sync", "--max-examples", "10"]
    assert main([*argv, "--no-progress", "--format", "json", "--trace", row]) == 0
    (traced,) = json.loads(capsys.readouterr().out)["traced"]
    assert traced["cells"][0]["result"] == "P5 violated"  # exit 111 is a bounce with 75 only
    for option in ("--inject fsync:EIO", "--temporary-exits 75", "--message", "--no-message-set"):
        assert option in traced["replay"]
    bad = [*argv, "--no-progress", "--trace", "x=--nonesuch -- safecat"]
    assert main(bad) == 2
    assert "--trace: unrecognized arguments: --nonesuch" in capsys.readouterr().err
