"""Progress of long runs on stderr (harness/progress.py; issue 4, part 5).

Owns: off a terminal `matrix` and `verify` are silent on stderr unless `--progress`, which
writes a line per finished cell (matrix), per tenth of the example budget (verify) or per
finished search (verify --workers), each with done/total and the time elapsed; stdout's
JSON is the same with or without it; watching a search does not change it; on a terminal
(a pty) the default is rich's live bar, with a line per finished cell above it.
Budgets are small: vpopmail-4.10.14 breaks P1 within 30 examples with seed 1.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from maildircheck.harness.check import Check
from maildircheck.harness.cli import main
from maildircheck.harness.progress import LineProgress, Progress, RichProgress, for_stream
from maildircheck.harness.verify import verify

MATRIX = ["matrix", "--strategies", "correct,vpopmail-4.10.14", "--envs", "sync"]
MATRIX += ["--max-examples", "30", "--format", "json"]
VERIFY = ["verify", "--strategy", "vpopmail-4.10.14", "--env", "ext4-ordered", "--seed", "1"]
VERIFY += ["--json"]
LINE = re.compile(r"^\[(\d+)/(\d+) (\w+) (\d+\.\d)s\] (.*)$")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def parsed(lines: list[str]) -> list[tuple[int, int, str, float, str]]:
    rows = []
    for line in lines:
        m = LINE.match(line)
        assert m, f"not a progress line: {line!r}"
        rows.append((int(m[1]), int(m[2]), m[3], float(m[4]), m[5]))
    return rows


def timeless(data: Any) -> Any:
    """`data` without its "seconds" fields, which differ from run to run."""
    if isinstance(data, dict):
        return {k: timeless(v) for k, v in data.items() if k != "seconds"}
    if isinstance(data, list):
        return [timeless(v) for v in data]
    return data


def test_off_a_terminal_verify_is_silent_and_matrix_says_each_cell(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A matrix runs for minutes: off a terminal it writes a line per finished cell unless
    --no-progress (it was silent, issue 13); verify stays silent unless --progress."""
    for argv in (VERIFY, [*MATRIX, "--no-progress"], [*VERIFY, "--no-progress"]):
        _, out, err = run(capsys, *argv)
        assert err == [], f"{argv}: stderr {err}"
        json.loads(out)
    _, out, err = run(capsys, *MATRIX)
    json.loads(out)
    rows = parsed(err)
    assert rows[0][4] == "matrix: started" and len(rows) == 4


def test_matrix_progress_is_a_line_per_cell(capsys: pytest.CaptureFixture[str]) -> None:
    _, quiet, _ = run(capsys, *MATRIX, "--no-progress")
    code, out, err = run(capsys, *MATRIX, "--progress")
    assert code == 0
    data = json.loads(out)
    assert timeless(data) == timeless(json.loads(quiet)), "the same JSON with or without"
    rows = parsed(err)
    assert rows[0][:3] == (0, 2, "cells") and rows[0][4] == "matrix: started"
    cells = [(c["strategy"], c["env"], c["result"]) for c in data["cells"]]
    assert [(r[0], r[4]) for r in rows[1:-1]] == [
        (i, f"{s} on {e}: {result}") for i, (s, e, result) in enumerate(cells, 1)
    ]
    assert rows[-1][:2] == (2, 2) and rows[-1][4] == "matrix: 2 cells, 1 with a violation"
    times = [r[3] for r in rows]
    assert times == sorted(times), "elapsed time only grows"


def test_verify_progress_counts_examples_then_shrinks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, *VERIFY, "--progress")
    assert code == 1
    data = json.loads(out)  # stdout holds the JSON verdict and nothing else
    rows = parsed(err)
    assert all(r[1:3] == (200, "examples") for r in rows)
    assert rows[0][4] == "vpopmail-4.10.14 on ext4-ordered: started"
    assert "searching" in [r[4] for r in rows]
    shrink = [r for r in rows if r[4].startswith("shrinking the P1 counterexample found at")]
    assert len(shrink) == 1, "one line when the search turns to shrinking"
    assert (
        rows[-1][4]
        == f"vpopmail-4.10.14 on ext4-ordered: P1 violated ({data['examples']} examples)"
    )


def test_verify_progress_marks_each_tenth_of_a_long_budget() -> None:
    stream = io.StringIO()
    v = verify(Check.of("correct", "sync", max_examples=100, seed=1), progress=LineProgress(stream))
    assert v.holds
    counts = [row[0] for row in parsed(stream.getvalue().splitlines())[1:-1]]
    assert counts == sorted(counts) and counts[-1] == 100
    assert {c * 10 // 100 for c in counts} == set(range(11)), "a line per tenth"


def test_watching_does_not_change_the_search() -> None:
    plain = verify(Check.of("no-dir-fsync", "ext4-ordered", max_examples=100, seed=3))
    watched = verify(
        Check.of("no-dir-fsync", "ext4-ordered", max_examples=100, seed=3),
        progress=LineProgress(io.StringIO()),
    )
    assert plain.timeline is not None and watched.timeline is not None
    assert plain.timeline.as_json() == watched.timeline.as_json()
    assert plain.examples == watched.examples


def test_workers_progress_is_a_line_per_search(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *VERIFY, "--workers", "2", "--progress")
    assert code == 1 and json.loads(out)["violation"]["property"] == "P1"
    rows = parsed(err)
    assert [r[:3] for r in rows] == [
        (0, 2, "searches"),
        (1, 2, "searches"),
        (2, 2, "searches"),
        (2, 2, "searches"),
    ]
    seeds = sorted(r[4].split(":")[0] for r in rows[1:3])
    assert seeds == ["seed 1", "seed 2"]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_choice_of_reporter() -> None:
    assert type(for_stream(io.StringIO(), None)) is Progress
    assert type(for_stream(io.StringIO(), False)) is Progress
    assert type(for_stream(io.StringIO(), True)) is LineProgress
    assert type(for_stream(Tty(), None)) is RichProgress
    assert type(for_stream(Tty(), True)) is RichProgress
    assert type(for_stream(Tty(), False)) is Progress


def command() -> list[str]:
    script = Path(sys.executable).with_name("maildircheck")
    return [str(script)] if script.exists() else [sys.executable, "-m", "maildircheck.harness.cli"]


def run_on_a_terminal(argv: list[str], timeout: float = 120) -> tuple[int, str, str]:
    """Run the command with stderr on a pseudo-terminal and stdout on a pipe."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [*command(), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    assert proc.stdout is not None
    got: dict[int, bytearray] = {master: bytearray(), proc.stdout.fileno(): bytearray()}
    open_fds = set(got)
    deadline = time.monotonic() + timeout
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"{argv} did not finish within {timeout} s")
        ready, _, _ = select.select(list(open_fds), [], [], left)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                data = b""
            if data:
                got[fd].extend(data)
            else:
                open_fds.discard(fd)
    os.close(master)
    code = proc.wait(timeout=timeout)
    err = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", got[master].decode("utf-8", "replace"))
    return code, got[proc.stdout.fileno()].decode(), err


def test_on_a_terminal_a_live_bar_by_default() -> None:
    code, out, err = run_on_a_terminal(MATRIX)
    assert code == 0
    assert len(json.loads(out)["cells"]) == 2, "stdout is the JSON alone"
    assert "correct on sync: holds" in err
    assert "vpopmail-4.10.14 on sync: P1 violated" in err
    assert re.search(r"\d/2 cells", err), "the bar: cells done / total"
    assert not LINE.search(err.splitlines()[0] if err else ""), "not the plain lines"
