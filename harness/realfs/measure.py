"""A litmus workload measured on a real file system (G4): every crash point, every state.

`measure(fs, workload)` makes the file system under the recorder (`rig.Rig`), creates the
Maildir, runs the workload's set-up and makes it durable, then runs its crash window with a
mark before each step and one at its end. From the block log it takes every crash point
(`crashstates.crash_points`: the marks and the moment before each flush), mounts each state
the bounds allow (`crashstates.subsets`) so that the file system's own recovery runs, and
reads the Maildir back as an `Outcome`. A state is named by the writes it keeps; the same
set of writes reached from two points is mounted once.

Each `Point` says which steps of the model it must be compared with: a mark before step i is
the model's state before step i; a flush inside step i (an fsync's journal commit, say) may
show anything from before step i to after it, so both.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from maildircheck.harness.realfs.blocklog import BlockLog, Flush
from maildircheck.harness.realfs.crashstates import CrashPoint, crash_points, state_writes, subsets
from maildircheck.harness.realfs.filesystems import RealFs
from maildircheck.harness.realfs.litmus import SUBDIRS, Workload, label, run_steps, window
from maildircheck.harness.realfs.outcomes import UNMOUNTABLE, Outcome, read_maildir
from maildircheck.harness.realfs.rig import Rig, StateUnmountable
from maildircheck.impl.drivers import perform_on_os
from maildircheck.model.syscalls import Sync, Syscall

END = "end of the workload"
COMMITTED = "after the periodic commit"
DURABLE = "after sync"


@dataclass(frozen=True)
class Point:
    label: str  # the mark's label, or "flush N during <the step's label>"
    steps: tuple[int, ...]  # the model's points (before step i; len(steps) = the end) it may show
    outcomes: dict[Outcome, tuple[int, ...]]  # each outcome seen, with a state that showed it
    explored: int  # crash states mounted or looked up for this point
    total: int  # crash states the point has (2 ** writes since the last flush)


@dataclass(frozen=True)
class Measured:
    fs: RealFs
    workload: Workload
    points: tuple[Point, ...]
    writes: int  # block writes in the log
    flushes: int
    states: int  # distinct crash states mounted
    seconds: float  # the whole measurement: set-up, workload, every state
    kernel: str  # uname -r

    @property
    def observed(self) -> set[Outcome]:
        return {o for p in self.points for o in p.outcomes}


def measure(fs: RealFs, workload: Workload) -> Measured:
    started = time.monotonic()
    with Rig(fs) as rig:
        md = os.path.join(rig.root, "Maildir")
        os.mkdir(md, 0o700)
        for sub in SUBDIRS:
            os.mkdir(os.path.join(md, sub), 0o700)
        if workload.setup is not None:
            run_steps(workload.setup(md), _os, lambda i, r: None)
        rig.record()
        labels: dict[str, int] = {}

        def before(index: int, request: Syscall[Any]) -> None:
            text = label(index, request, md)
            if isinstance(request, Sync):
                labels[END] = labels[COMMITTED] = index
                rig.mark(END)
                time.sleep(fs.settle_s)
                rig.mark(COMMITTED)
            labels[text] = index
            rig.mark(text)

        count = run_steps(window(workload, md), _os, before)
        labels[DURABLE] = count
        rig.mark(DURABLE)
        log = rig.finish()
        states = StateReader(rig, log, workload.messages)
        points = []
        for point in crash_points(log):
            outcomes: dict[Outcome, tuple[int, ...]] = {}
            explored = 0
            for kept in subsets(point):
                explored += 1
                outcomes.setdefault(states.outcome(point, kept), kept)
            shows: tuple[int, ...]
            if point.label in labels:
                name, shows = point.label, (labels[point.label],)
            else:
                at = labels.get(point.after_mark or "", 0)
                during = point.after_mark or "the set-up"
                name, shows = f"{point.label} during {during}", (at, min(at + 1, count))
            points.append(Point(name, shows, outcomes, explored, point.total))
    return Measured(
        fs,
        workload,
        tuple(points),
        len(log.writes),
        sum(isinstance(r, Flush) for r in log.records),
        states.mounted,
        time.monotonic() - started,
        os.uname().release,
    )


def _os(request: Syscall[Any]) -> object:
    return perform_on_os(request, io.BytesIO())  # litmus workloads read no input


class StateReader:
    """Reads the Maildir of crash states of `log` (at `maildir` under the file system's root),
    mounting each distinct set of kept writes once, however many points reach it."""

    def __init__(
        self, rig: Rig, log: BlockLog, messages: Iterable[bytes], maildir: str = "Maildir"
    ) -> None:
        self.rig, self.log, self.messages, self.maildir = rig, log, tuple(messages), maildir
        self.seen: dict[tuple[int, ...], Outcome] = {}

    @property
    def mounted(self) -> int:
        return len(self.seen)

    def outcome(self, point: CrashPoint, kept: tuple[int, ...]) -> Outcome:
        writes = (*point.durable, *kept)
        if writes not in self.seen:
            self.seen[writes] = self._read(point, kept)
        return self.seen[writes]

    def _read(self, point: CrashPoint, kept: tuple[int, ...]) -> Outcome:
        try:
            with self.rig.crash_state(self.log.base, state_writes(self.log, point, kept)) as root:
                return read_maildir(os.path.join(root, self.maildir), self.messages)
        except StateUnmountable:
            return UNMOUNTABLE
