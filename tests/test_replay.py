"""A counterexample replays: the command a report prints gives the same timeline in a new
process, whatever else that process has imported (harness/verify.py keeps Hypothesis from
mixing constants of the loaded modules into its draws)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from maildircheck.harness.check import Check
from maildircheck.harness.cli import main
from maildircheck.harness.verify import verify

BIN = Path(sys.executable).parent


def test_replay_command_reproduces_the_counterexample_in_a_fresh_process() -> None:
    v = verify(
        Check.of(
            "no-dir-fsync",
            "ext4-ordered",
            ("kill", "power-loss", "sigterm"),
            max_examples=300,
            seed=1,
        )
    )
    assert v.violation is not None and v.timeline is not None
    argv = shlex.split(v.replay_command())
    assert argv[0] == "maildircheck"
    out = subprocess.run(
        [str(BIN / "maildircheck"), *argv[1:], "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data["violation"]["property"] == v.violation.prop
    assert data["counterexample"]["steps"] == v.timeline.as_json()


def test_seeded_search_does_not_depend_on_the_process() -> None:
    script = (
        "import sys, json, decimal, fractions, statistics\n"
        "junk = [object() for _ in range(int(sys.argv[1]))]\n"
        "from maildircheck.harness.check import Check\n"
        "from maildircheck.harness.verify import verify\n"
        "v = verify(Check.of('non-exclusive-create', 'posix', (), max_examples=400, seed=1))\n"
        "print(json.dumps(v.timeline.as_json() if v.timeline else None))\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script, str(n)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        for n in (0, 5000)
    ]
    assert runs[0] == runs[1] and runs[0].strip() != "null"


def test_workers_spread_the_search_and_the_replay_is_one_workers_run() -> None:
    v = verify(
        Check.of(
            "no-dir-fsync", "ext4-ordered", ("power-loss",), workers=2, max_examples=200, seed=1
        )
    )
    assert v.violation is not None and v.violation.prop == "P2" and v.timeline is not None
    argv = shlex.split(v.replay_command())
    seed = int(argv[argv.index("--seed") + 1])
    budget = int(argv[argv.index("--max-examples") + 1])
    assert seed in (1, 2) and budget == 100
    alone = verify(
        Check.of("no-dir-fsync", "ext4-ordered", ("power-loss",), max_examples=budget, seed=seed)
    )
    assert alone.timeline is not None and alone.timeline.as_json() == v.timeline.as_json()


def test_a_spread_verdict_reports_the_count_and_seed_its_replay_uses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`verify --workers 2` said "budget 400 examples, seed 3" and "found after" the sum of
    both searches' examples, while its replay line ran one search of 200 from seed 3 or 4."""
    argv = ["verify", "--strategy", "no-dir-fsync", "--env", "ext4-ordered", "--seed", "3"]
    assert main([*argv, "--workers", "2", "--max-examples", "400", "--json"]) == 1
    spread = json.loads(capsys.readouterr().out)
    replay = shlex.split(spread["replay"])
    seed, budget = (int(replay[replay.index(flag) + 1]) for flag in ("--seed", "--max-examples"))
    assert (spread["seed"], budget) == (seed, 200)
    assert spread["searches"]["count"] == 2 and spread["searches"]["seeds"] == [3, 4]
    assert main([*replay[1:], "--json"]) == 1
    alone = json.loads(capsys.readouterr().out)
    assert alone["examples"] == spread["examples"] and alone["searches"] is None
