"""The delivery benchmark, bench/deliver_perf.py (issue 5), in a tiny run.

Owns: the shape of the benchmark's JSON, and that every agent it times really delivered
each message complete and exactly once (the bench compares every file in new/ byte for
byte; this test reads its counts). Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "deliver_perf.py"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MESSAGES = 3
LATENCY_KEYS = {"median_ms", "p90_ms", "max_ms", "min_ms", "messages_per_second"}


def bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), "--dir", str(tmp_path), "--json-only", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def check_complete(delivered: dict[str, int]) -> None:
    assert delivered["complete"] == MESSAGES, delivered
    assert delivered["missing"] == delivered["corrupt"] == delivered["duplicates"] == 0
    assert delivered["left_in_tmp"] == 0


def test_tiny_run_delivers_every_message(tmp_path: Path) -> None:
    agents = ["maildir-deliver"]
    if shutil.which("safecat", path=SYSTEM_PATH):
        agents.append("safecat")
    done = bench(
        tmp_path,
        "--messages",
        str(MESSAGES),
        "--size",
        "4096",
        "--startup-runs",
        "2",
        "--agents",
        ",".join(agents),
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert done.stderr == ""  # --json-only

    assert result["skipped"] == {}
    assert set(result["agents"]) == set(agents)
    for name, row in result["agents"].items():
        assert set(row) >= LATENCY_KEYS, name
        assert row["invocation"]
        assert row["failed_runs"] == 0 and row["first_failure"] is None
        check_complete(row["delivered"])
        assert row["ok"] is True
        if "traced_calls" in row:  # strace installed: the file is synced before the link
            calls = row["traced_calls"]
            assert "fsync" in calls and calls.index("fsync") < len(calls) - 1, calls

    floors = result["floors"]
    check_complete(floors["fsync"]["delivered"])
    assert set(floors["fsync"]) >= LATENCY_KEYS and set(floors["fork_exec"]) >= LATENCY_KEYS
    assert floors["fork_exec"]["failed_runs"] == 0

    warm = result["beyond_startup_in_process"]  # main() called in one started process
    check_complete(warm["main_delivered"])
    check_complete(warm["floor"]["delivered"])
    assert warm["main"]["exit_codes"] == [0]

    startup = result["startup"]
    assert startup["python -c pass"]["exit_codes"] == [0]
    empty = startup["maildir-deliver MAILDIR < empty input"]  # the start-up the target uses
    assert empty["files_left_in_new_and_tmp"] == 0
    for name in ("startup", "beyond_startup"):
        target = result["targets"][name]
        assert {"ratio", "target", "met"} <= set(target), name
        assert isinstance(target["met"], bool)
    assert result["import_costs"]["top_cumulative"]
    assert result["filesystem"]["type"]
    assert result["config"]["messages"] == MESSAGES
    assert result["var_mail_unchanged"] is True
    assert list(tmp_path.iterdir()) == []  # the Maildirs are removed without --keep


@pytest.mark.parametrize("args", [["--agents", "no-such-agent"], ["--size", "10"]])
def test_usage_errors(tmp_path: Path, args: list[str]) -> None:
    done = bench(tmp_path, *args)
    assert done.returncode == 2
    assert "usage" in done.stderr
    assert done.stdout == ""
