"""A delivery program on a real file system (G5): every crash state it can leave, judged.

`run_program(fs, command, message)` makes `fs` under the block recorder (`rig.Rig`), creates
the Maildir on it, starts the log (`Rig.record`) and runs the program with the message on
standard input - `{maildir}` in its arguments, its environment, `--user` and the time
limit as `maildircheck trace` has them (`trace.runner`). The moment it exits the log is
marked (`REPORTED`); then the file system's periodic commit is waited for and marked
(`COMMITTED`: a crash after the report is a crash too). Every crash point of the log
(`crashstates.crash_points`: each mark and the moment before each flush) gives its states
(`crashstates.subsets`), each mounted once so its journal replays, and its Maildir read
back (`measure.StateReader`, `outcomes.read_maildir`).

`judge(run, prop)` checks a property on those states, as specs/requirements.md defines it:
P1 no-partial - in every state at every point, every file in new/ and cur/ is the complete
message; P2 no-early-success - once the program reported success (exit 0), every state at
or after `REPORTED` holds the complete message in new/ or cur/. The first state that shows
a violation is the evidence. A state the file system would not mount leaves the property
unjudged, never passed. `model_verdict` reads what `maildircheck trace` says of the same
property, so a report can say where the model and the disk differ.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from maildircheck.harness.realfs.blocklog import Flush
from maildircheck.harness.realfs.crashstates import CrashPoint, crash_points, subsets
from maildircheck.harness.realfs.filesystems import RealFs
from maildircheck.harness.realfs.measure import COMMITTED, StateReader
from maildircheck.harness.realfs.outcomes import SUBDIRS, UNMOUNTABLE, Content, Outcome, describe
from maildircheck.harness.realfs.rig import Rig
from maildircheck.harness.trace.replay import TEMPORARY_EXIT, ReplayResult, outcome_of
from maildircheck.harness.trace.runner import (
    TraceSetupError,
    child_environment,
    command_for,
    delivered,
    give_to,
    run_in_session,
    snapshot,
    user_entry,
)
from maildircheck.harness.trace.verdicts import complete_message
from maildircheck.model.outcome import Delivered
from maildircheck.model.outcome import Outcome as Report

REPORTED = "the program reported"
PROPERTIES = {"P1": "no-partial", "P2": "no-early-success"}
PLACED = ("new", "cur")


@dataclass(frozen=True)
class State:
    """One crash state: its point, the writes it keeps and what its Maildir held."""

    point: CrashPoint
    kept: tuple[int, ...]  # of `point.volatile`; every state keeps `point.durable`
    outcome: Outcome

    @property
    def after_report(self) -> bool:
        return self.point.after_mark in (REPORTED, COMMITTED)

    def where(self) -> str:
        """`flush 3 during the run`, `the program reported`, ..."""
        if self.point.label == self.point.after_mark:
            return self.point.label
        return f"{self.point.label} " + (
            "during the run" if self.point.after_mark is None else f"after {self.point.after_mark}"
        )

    def writes(self) -> str:
        """What the state keeps, in words: `the 3 writes flushed before it, and [4] of the
        2 since (writes 3-4)`."""
        durable, vol = len(self.point.durable), self.point.volatile
        if not durable and not vol:
            return "the disk as recording began (no write had reached it)"
        text = f"the {durable} writes flushed before it"
        if vol:
            text += f", and {list(self.kept) or 'none'} of the {len(vol)} since"
            text += f" (write {vol[0]})" if len(vol) == 1 else f" (writes {vol[0]}-{vol[-1]})"
        return text


@dataclass(frozen=True)
class RealRun:
    fs: RealFs
    command: list[str]  # as given, `{maildir}` in it
    argv: list[str]  # as run, the Maildir's path in it
    status: int
    signal_name: str | None
    report: Report | None  # exit 0 delivered, temporary exits deferred, else bounced
    message: bytes  # the complete message the states are judged against
    stderr: str
    states: tuple[State, ...]  # every state explored, point by point
    points: int
    total: int  # crash states the points have (2 ** writes since the last flush, summed)
    mounted: int  # distinct states mounted
    writes: int
    flushes: int
    run_seconds: float  # the program alone
    seconds: float  # everything: the rig, the run, the commit, every state
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    prop: str
    verdict: str  # "holds", "violated" or "unjudged"
    why: str
    evidence: State | None = None


def run_program(
    fs: RealFs,
    command: Sequence[str],
    message: bytes,
    *,
    user: str | None = None,
    timeout: float = 60.0,
    temporary: Sequence[int] = TEMPORARY_EXIT,
) -> RealRun:
    """Run `command` on `fs` under the recorder; `RigError` when the rig cannot run,
    `TraceSetupError` when the command cannot start or `user` does not exist."""
    started = time.monotonic()
    entry = user_entry(user) if user is not None else None
    scratch = os.path.realpath(tempfile.mkdtemp(prefix="maildircheck-program-"))
    try:
        home = os.path.join(scratch, "home")
        os.mkdir(home, 0o700)
        with open(os.path.join(scratch, "message"), "wb") as f:
            f.write(message)
        with Rig(fs) as rig:
            md = os.path.join(rig.root, "Maildir")
            for d in (md, *(os.path.join(md, sub) for sub in SUBDIRS)):
                os.mkdir(d, 0o700)
            if entry is not None:
                os.chmod(rig.work, 0o711)  # the user passes through to the Maildir
                give_to(entry, md)
                give_to(entry, home)
            argv = command_for(command, md)
            rig.record()
            ran = time.monotonic()
            status, signal_name, stderr, notes = _execute(
                argv, os.path.join(scratch, "message"), home, md, user, timeout
            )
            rig.mark(REPORTED)
            run_seconds = time.monotonic() - ran
            time.sleep(fs.settle_s)
            rig.mark(COMMITTED)
            whole = complete_message(delivered({}, snapshot(md)), message)
            log = rig.finish()
            reader = StateReader(rig, log, (whole,))
            points = crash_points(log)
            states = tuple(
                State(point, kept, reader.outcome(point, kept))
                for point in points
                for kept in subsets(point)
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return RealRun(
        fs,
        list(command),
        argv,
        status,
        signal_name,
        outcome_of(status, signal_name, temporary),
        whole,
        stderr,
        states,
        len(points),
        sum(p.total for p in points),
        reader.mounted,
        len(log.writes),
        sum(isinstance(r, Flush) for r in log.records),
        run_seconds,
        time.monotonic() - started,
        tuple(notes),
    )


def _execute(
    argv: list[str], stdin_file: str, home: str, md: str, user: str | None, timeout: float
) -> tuple[int, str | None, str, list[str]]:
    """Run the program as `trace` would, without strace: status, signal, stderr, notes."""
    entry = user_entry(user) if user is not None else None
    try:
        done = run_in_session(
            argv, stdin_file, home, child_environment(home, md, user), timeout, entry
        )
    except OSError as err:
        why = f"command not found or not runnable: {argv[0]} ({err.strerror})"
        raise TraceSetupError(why) from None
    notes = [f"the run was stopped after {timeout:g} s"] if done.timed_out else []
    signal_name = signal.Signals(-done.status).name if done.status < 0 else None
    return done.status, signal_name, done.stderr.strip(), notes


def _bad_entries(state: State) -> list[str]:
    return [
        str(e)
        for e in sorted(state.outcome)
        if e.subdir in PLACED and e.content is not Content.COMPLETE
    ]


def _has_message(state: State) -> bool:
    return any(e.subdir in PLACED and e.content is Content.COMPLETE for e in state.outcome)


def judge(run: RealRun, prop: str) -> Verdict:
    """P1 or P2 on every state of `run` (specs/requirements.md P1, P2)."""
    if prop == "P2" and not isinstance(run.report, Delivered):
        said = "was killed" if run.report is None else f"reported {run.report}"
        return Verdict(prop, "holds", f"the program {said}: no success to keep")
    judged = [s for s in run.states if prop == "P1" or s.after_report]
    unmountable = [s for s in judged if s.outcome == UNMOUNTABLE]
    for state in judged:
        if state.outcome == UNMOUNTABLE:
            continue
        if prop == "P1" and _bad_entries(state):
            return Verdict(prop, "violated", ", ".join(_bad_entries(state)), state)
        if prop == "P2" and not _has_message(state):
            return Verdict(
                prop,
                "violated",
                f"reported delivered, but a crash then leaves {describe(state.outcome)}",
                state,
            )
    if unmountable:
        return Verdict(
            prop, "unjudged", f"{len(unmountable)} crash states did not mount", unmountable[0]
        )
    where = "every crash point" if prop == "P1" else "every crash point after the report"
    return Verdict(prop, "holds", f"{len(judged)} crash states at {where}")


# What the replay judges only at the exit, once every step's checks (P1 among them) passed
# (trace.replay: P2 on success, P4/P5 on a failure; specs T4, T5).
AT_EXIT = ("P2", "P4", "P5")


def model_verdict(result: ReplayResult, prop: str) -> str:
    """What the model's replay says of `prop`: holds, violated, or why it did not judge it
    (the replay ends at its first violation)."""
    if result.violation is not None:
        if result.violation.prop == prop:
            return "violated"
        if result.violation.prop in AT_EXIT and prop not in AT_EXIT:
            return "holds"
        return f"not judged (the replay stopped at {result.violation.prop})"
    return "incomplete" if result.stopped else "holds"
