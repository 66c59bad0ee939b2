"""Progress of a long run on stderr (`maildircheck matrix`, `maildircheck verify`).

This module owns how a run reports how far it is, never what it finds: `Progress` is the
silent reporter the runs call (harness/matrix.py, harness/verify.py, harness/parallel.py);
`RichProgress` draws a live bar with rich (units done / total, what is running now, the
time elapsed, and a line per finished matrix cell) for a terminal; `LineProgress` writes
plain lines (one per finished cell or search, one per tenth of an example budget) for a
log. `for_stderr` picks one: on a terminal the bar, else silence, unless `--progress`
(lines off a terminal) or `--no-progress` (silence) says otherwise. Nothing here writes
to stdout, so `--json` and a report printed there stay clean.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """The interface, reporting nothing. A run calls `start` once, then `now` (what it
    works on), `advance` (one unit finished) or `count` (units finished so far, for an
    example counter), and `stop` once with its summary."""

    def start(self, what: str, total: int, unit: str) -> None:
        pass

    def now(self, label: str) -> None:
        pass

    def advance(self, label: str, result: str) -> None:
        pass

    def count(self, done: int, note: str) -> None:
        pass

    def stop(self, summary: str) -> None:
        pass


class LineProgress(Progress):
    """One plain line per finished unit, for a log file or a pipe."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.what, self.total, self.unit = "", 0, ""
        self.done = 0
        self.started = time.perf_counter()
        self.shown = (-1, "")  # the last (tenth of the budget, note) written by count

    def _line(self, text: str) -> None:
        elapsed = time.perf_counter() - self.started
        self.stream.write(f"[{self.done}/{self.total} {self.unit} {elapsed:.1f}s] {text}\n")
        self.stream.flush()

    def start(self, what: str, total: int, unit: str) -> None:
        self.what, self.total, self.unit, self.done = what, total, unit, 0
        self.started = time.perf_counter()
        self._line(f"{what}: started")

    def advance(self, label: str, result: str) -> None:
        self.done += 1
        self._line(f"{label}: {result}")

    def count(self, done: int, note: str) -> None:
        self.done = min(done, self.total)
        tenth = self.done * 10 // max(1, self.total)
        if (tenth, note) != self.shown:
            self.shown = (tenth, note)
            self._line(note)

    def stop(self, summary: str) -> None:
        self._line(f"{self.what}: {summary}")


class RichProgress(Progress):
    """A live bar on a terminal (rich), a line above it per finished unit."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console

        self.console = Console(file=stream, highlight=False)
        self.bar: Any = None
        self.task: Any = None

    def start(self, what: str, total: int, unit: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[what]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=self.console,
            transient=True,  # the bar goes when the run ends; the lines above it stay
            redirect_stdout=False,  # stdout is the command's own (JSON, a report)
            redirect_stderr=False,
        )
        self.bar.start()
        self.task = self.bar.add_task("", total=total, what=what, unit=unit)

    def now(self, label: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=label)

    def advance(self, label: str, result: str) -> None:
        if self.bar is not None:
            self.bar.console.print(f"  {label}: {result}", markup=False)
            self.bar.advance(self.task)

    def count(self, done: int, note: str) -> None:
        if self.bar is not None:
            total = self.bar.tasks[0].total or done
            self.bar.update(self.task, completed=min(done, total), description=note)

    def stop(self, summary: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=summary)
            self.bar.stop()
            self.bar = None


def for_stream(stream: TextIO, wanted: bool | None) -> Progress:
    """`wanted` None: a bar on a terminal, else nothing; True: a bar on a terminal, else
    lines; False: nothing."""
    if wanted is False:
        return Progress()
    if stream.isatty():
        return RichProgress(stream)
    return LineProgress(stream) if wanted else Progress()


def for_stderr(wanted: bool | None) -> Progress:
    return for_stream(sys.stderr, wanted)
