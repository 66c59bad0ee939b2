"""The `maildircheck` command line (harness/cli.py) and its human report (harness/report.py).

Owns: exit codes (0 holds, 1 violated, 2 usage error with one stderr line), that --json
prints exactly `Verdict.as_json()`, user strategy files, `list`, the human report's
violation, replay command and figures, and one real subprocess of the installed command.
Budgets are small: vpopmail-4.10.14 is found within 30 examples with seed 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from maildircheck.harness.cli import main
from maildircheck.impl.strategies import CATALOGUE
from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.faults import FAULTS
from maildircheck.model.properties import PROPERTIES

VPOPMAIL = ["verify", "--strategy", "vpopmail-4.10.14", "--env", "ext4-ordered", "--seed", "1"]
CORRECT = ["verify", "--strategy", "correct", "--env", "sync", "--max-examples", "30"]

USER_STRATEGY = '''"""A user's strategy: the correct delivery, reached through `yield from`."""
from maildircheck.impl.deliver import deliver as correct


def deliver(request):
    return (yield from correct(request))
'''


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def command() -> list[str]:
    """The installed console script, else the module run as a script."""
    script = Path(sys.executable).with_name("maildircheck")
    return [str(script)] if script.exists() else [sys.executable, "-m", "maildircheck.harness.cli"]


def check_violation(data: dict[str, Any]) -> None:
    assert data["verdict"] == "violated"
    assert data["properties"]["P1"]["status"] == "violated"
    assert data["violation"]["property"] == "P1"
    assert data["violation"]["why"]
    steps = data["counterexample"]["syscalls"]
    assert 0 < steps < 20
    assert len([s for s in data["counterexample"]["steps"] if s["kind"] == "syscall"]) == steps
    assert data["examples"] > 0
    assert data["seconds"] >= 0
    assert data["replay"].startswith("maildircheck verify --strategy vpopmail-4.10.14")


def test_violation_as_json_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *VPOPMAIL, "--max-examples", "30", "--json")
    assert code == 1
    assert err == ""
    data = json.loads(out)  # nothing but the JSON on stdout
    check_violation(data)
    assert data["seed"] == 1
    assert set(data["properties"]) == set(PROPERTIES)
    assert data["properties"]["P6"]["status"] == "not checked"


def test_violation_as_json_subprocess() -> None:
    done = subprocess.run(
        [*command(), *VPOPMAIL, "--max-examples", "30", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    check_violation(json.loads(done.stdout))


def test_correct_holds(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *CORRECT, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["verdict"] == "holds"
    assert data["violation"] is None
    assert data["counterexample"] is None
    assert all(data["properties"][p]["status"] == "holds" for p in ("P1", "P2", "P3", "P4", "P5"))


def test_user_strategy_file_checks_like_correct(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "mine.py"
    path.write_text(USER_STRATEGY)
    code, out, _ = run(
        capsys,
        "verify",
        "--strategy",
        f"{path}:deliver",
        "--env",
        "sync",
        "--max-examples",
        "30",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["verdict"] == "holds"
    assert data["strategy"] == f"{path}:deliver"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--strategy", "no-such-strategy", "--env", "sync"], "no-such-strategy"),
        (["--strategy", "correct", "--env", "no-such-profile"], "no-such-profile"),
        (["--strategy", "correct", "--env", "sync", "--faults", "kill,bogus"], "bogus"),
        (["--strategy", "correct", "--env", "sync", "--max-examples", "abc"], "abc"),
        (["--strategy", "correct", "--env", "sync", "--seed", "x"], "'x'"),
        (["--strategy", "missing.py:deliver", "--env", "sync"], "missing.py"),
        (["--env", "sync"], "--strategy"),
        (["--strategy", "correct", "--env", "sync", "--faults", "server-crash"], "NFS"),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    code, out, err = run(capsys, "verify", *argv)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("maildircheck: error: ")
    assert needle in lines[0]


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert len(err.splitlines()) == 1


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", "--help")
    assert code == 0
    assert "--max-examples" in out


def test_faults_none_and_all(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *CORRECT, "--faults", "none", "--json")
    assert code == 0
    assert json.loads(out)["faults"] == []
    code, out, _ = run(capsys, *CORRECT, "--max-examples", "5", "--faults", "all", "--json")
    local = [name for name, f in FAULTS.items() if not f.nfs_only]
    assert json.loads(out)["faults"] == local  # a local environment keeps what applies there


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    data = json.loads(out)
    assert [s["name"] for s in data["strategies"]] == list(CATALOGUE)
    assert [p["name"] for p in data["profiles"]] == list(ENVIRONMENTS)
    assert [f["name"] for f in data["faults"]] == list(FAULTS)
    assert [p["id"] for p in data["properties"]] == list(PROPERTIES)
    vpop = next(s for s in data["strategies"] if s["name"] == "vpopmail-4.10.14")
    assert vpop["bug_class"] == "B1"
    assert vpop["expected"] == ["P1", "P2"]
    assert next(p for p in data["properties"] if p["id"] == "P6")["safety"] is False


def test_list_human(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0
    for name in [*CATALOGUE, *ENVIRONMENTS, *FAULTS]:
        assert name in out


def test_human_report_on_violation(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *VPOPMAIL, "--max-examples", "30")
    assert code == 1
    assert err == ""
    assert "VIOLATED P1 no-partial" in out
    assert "ext4-ordered" in out
    assert "violated" in out
    # the replay command on one line, exactly as Verdict.replay_command() gives it
    replay = (
        "maildircheck verify --strategy vpopmail-4.10.14 --env ext4-ordered "
        "--faults kill,power-loss,sigterm,enospc,edquot,eio --max-examples 30 --seed 1"
    )
    assert replay in out.splitlines()[-1]
    assert "\x1b[" not in out  # no colour codes when not a terminal
    assert "examples" in out
    assert "syscalls" in out
    assert "seconds" in out


def test_human_report_when_holding(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *CORRECT)
    assert code == 0
    assert "Every checked property holds" in out
    assert "not checked" in out or "observed" in out  # P6 without --quality


def test_demo_finds_the_bug(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo")
    assert code == 0
    assert "VIOLATED" in out
    assert "Demo succeeded" in out
