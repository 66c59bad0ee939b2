"""The fidelity check (G4): a profile's crash states against a real file system's.

`allowed(profile, workload)` runs the litmus workload's crash window in the model kernel
under `profile` and, before each step and at the end, lists every Maildir outcome a power
loss may leave there (`persistence.crash_choices`, exhaustive). `compare(measured,
profile)` holds a measurement (`measure.Measured`) against it:
  - sound: every outcome observed at a crash point is one the model allows at the steps that
    point may show (an observed outcome outside them is `Unsound`, with the crash state - the
    writes it kept - that showed it);
  - precision: the outcomes the model allows somewhere in the window that no crash state
    showed (`Comparison.never_seen`).
`check(fs_names, workload_names, profiles)` measures and compares every pair and is what
`maildircheck fidelity` and bench/fidelity.py run; `fidelity_report` renders it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from maildircheck.harness.realfs.filesystems import FILESYSTEMS, RealFs
from maildircheck.harness.realfs.litmus import SUBDIRS, WORKLOADS, Workload, run_steps, window
from maildircheck.harness.realfs.measure import Measured, measure
from maildircheck.harness.realfs.outcomes import Outcome, describe, from_view
from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.fs import FileSystem
from maildircheck.model.kernel import Kernel, Process
from maildircheck.model.persistence import Profile, crash_choices, crash_view
from maildircheck.model.syscalls import Syscall

MAILDIR = "/Maildir"


def allowed(profile: Profile, workload: Workload) -> list[set[Outcome]]:
    """The outcomes a crash may leave before each step of the window and after its end."""
    fs = FileSystem.with_dirs(MAILDIR, *(f"{MAILDIR}/{s}" for s in SUBDIRS))
    kernel = Kernel(fs, profile)
    proc = Process("litmus", 100, "litmus")
    dirs = {s: fs.lookup(f"{MAILDIR}/{s}") for s in SUBDIRS}

    def perform(request: Syscall[Any]) -> object:
        reply = kernel.execute(proc, request)
        if isinstance(reply, OSError):
            raise reply
        return reply

    if workload.setup is not None:
        run_steps(workload.setup(MAILDIR), perform, lambda i, r: None)
        fs.make_all_durable()
    points: list[set[Outcome]] = []

    def here() -> None:
        found = set()
        for choice in crash_choices(fs, profile):
            entries, data = crash_view(fs, profile, choice)
            view = {s: entries.get(ino, {}) for s, ino in dirs.items()}
            found.add(from_view(view, data, workload.messages))
        points.append(found)

    run_steps(window(workload, MAILDIR), perform, lambda i, r: here())
    here()
    return points


@dataclass(frozen=True)
class Unsound:
    point: str
    outcome: Outcome
    kept: tuple[int, ...]  # the block writes (indices into the log) of a state that showed it

    def __str__(self) -> str:
        return (
            f"at {self.point}: {describe(self.outcome)} (a state keeping writes {list(self.kept)})"
        )


@dataclass(frozen=True)
class Comparison:
    measured: Measured
    profile: str
    unsound: tuple[Unsound, ...]
    never_seen: tuple[Outcome, ...]  # allowed somewhere in the window, never observed

    @property
    def sound(self) -> bool:
        return not self.unsound


def compare(measured: Measured, profile: Profile) -> Comparison:
    points = allowed(profile, measured.workload)
    unsound = []
    for point in measured.points:
        ok = set().union(*(points[s] for s in point.steps))
        unsound += [
            Unsound(point.label, o, kept) for o, kept in point.outcomes.items() if o not in ok
        ]
    never = set().union(*points) - measured.observed
    return Comparison(measured, profile.name, tuple(unsound), tuple(sorted(never, key=describe)))


@dataclass(frozen=True)
class Report:
    comparisons: tuple[Comparison, ...]

    @property
    def sound(self) -> bool:
        return all(c.sound for c in self.comparisons)


def check(
    fs_names: Iterable[str],
    workload_names: Iterable[str],
    profiles: Sequence[str] = ("claimed", "posix"),
    progress: Callable[[Measured], None] = lambda m: None,
) -> Report:
    """Measure each workload on each file system; compare with each profile ("claimed" is
    the one the file system's table entry names). `progress` hears of each measurement."""
    names = list(workload_names)
    comparisons = []
    for fs in (FILESYSTEMS[n] for n in fs_names):
        for w in (WORKLOADS[n] for n in names):
            measured = measure(fs, w)
            progress(measured)
            for p in dict.fromkeys(_profile_name(fs, p) for p in profiles):
                comparisons.append(compare(measured, ENVIRONMENTS[p].profile))
    return Report(tuple(comparisons))


def _profile_name(fs: RealFs, name: str) -> str:
    return fs.claimed_by if name == "claimed" else name
