"""`trace --faults`: each Maildir call of the clean run made to fail, one run at a time.

From the clean traced run, every call the agent made on the Maildir that can fail with an
error of the disk - create, write, fsync/fdatasync, close, link, rename, unlink, mkdir - is
made to fail in a run of its own, once per errno that call really returns on a full,
over-quota or failing disk (ERRNOS). The fault is aimed by counting per process, as
strace's `-e inject=CALL:error=ERRNO:when=N` counts: N is the call's place among the calls
of that name its process made in the clean run. Counting is all strace offers (it cannot
pick a path), so every faulted run is checked: the fault landed only when the run's
Maildir calls include an injected failure of the same kind; otherwise the row says "fault
missed" and gives no verdict. Each run that landed is judged like any trace (its exit,
what it left in tmp/, the replay under the profiles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from maildircheck.harness.host import ROOT
from maildircheck.harness.trace.reader import parse
from maildircheck.harness.trace.runner import TracedRun, run_traced
from maildircheck.harness.trace.translator import Step, translate
from maildircheck.harness.trace.verdicts import TraceReport, check_run
from maildircheck.harness.vocabulary import VIOLATED
from maildircheck.model.syscalls import (
    Close,
    Fdatasync,
    Fsync,
    Link,
    Mkdir,
    Open,
    OpenFlag,
    Rename,
    Syscall,
    Unlink,
    Write,
)

FULL = ("ENOSPC", "EDQUOT", "EIO")
ERRNOS: dict[type[Syscall[Any]], tuple[str, ...]] = {
    Open: ("EEXIST", *FULL),  # only a create is faulted (O_CREAT): EEXIST is a clash
    Write: FULL,
    Fsync: ("EIO", "ENOSPC"),
    Fdatasync: ("EIO", "ENOSPC"),
    Close: ("EIO",),
    Link: ("EEXIST", *FULL),
    Rename: FULL,
    Unlink: ("EIO",),
    Mkdir: FULL,
}


@dataclass
class FaultRow:
    call: str  # the call as the clean run made it, paths relative to the Maildir
    inject: str  # strace's -e inject value
    errno: str
    landed: bool
    report: TraceReport | None  # the faulted run judged (None: the fault missed)

    @property
    def outcome(self) -> str:
        if not self.landed or self.report is None:
            return "fault missed: it hit no Maildir call of that kind"
        run = self.report.run
        left = sorted(p for p, d in run.after.items() if p.startswith("tmp/") and d is not None)
        said = self.report.verdict
        broken = [
            r.violation.prop
            for r, verdict in zip(self.report.results, self.report.verdicts(), strict=True)
            if verdict == VIOLATED and r.violation is not None
        ]
        if broken:
            said = f"violated {', '.join(sorted(set(broken)))} ({len(broken)} profiles)"
        return f"exit {run.status}; {len(left)} file(s) left in tmp/; {said}"


def aims(run: TracedRun, events: Sequence[Any]) -> list[tuple[Step, str, int]]:
    """The clean run's faultable Maildir calls: (step, strace's name for it, its place N
    among its process's calls of that name)."""
    calls = {c.line: c for c in parse(run.trace)}
    seen: dict[tuple[int, str], int] = {}
    place: dict[int, int] = {}
    for c in sorted(calls.values(), key=lambda c: c.line):
        seen[(c.pid, c.name)] = seen.get((c.pid, c.name), 0) + 1
        place[c.line] = seen[(c.pid, c.name)]
    found = []
    for e in events:
        if not isinstance(e, Step) or e.errno is not None or type(e.request) not in ERRNOS:
            continue
        if isinstance(e.request, Open) and OpenFlag.CREAT not in e.request.flags:
            continue
        call = calls.get(e.line)
        if call is not None:
            found.append((e, call.name, place[e.line]))
    return found


def fault_table(
    clean: TraceReport,
    command: Sequence[str],
    envs: Sequence[str],
    temporary: Sequence[int],
    *,
    user: str | None = None,
    timeout: float = 60.0,
) -> list[FaultRow]:
    """A faulted run per faultable Maildir call of `clean` and per errno it can return."""
    rows = []
    for step, name, n in aims(clean.run, clean.events):
        for errno_name in ERRNOS[type(step.request)]:
            inject = f"{name}:error={errno_name}:when={n}"
            run = run_traced(
                command, clean.run.message, inject=[inject], user=user, timeout=timeout
            )
            events = translate(parse(run.trace), run.root, run.cwd)
            landed = any(
                isinstance(e, Step) and e.injected and type(e.request) is type(step.request)
                for e in events
            )
            report = check_run(run, envs, temporary) if landed else None
            shown = str(step.request).replace(ROOT + "/", "")  # the model's paths
            rows.append(FaultRow(shown, inject, errno_name, landed, report))
    return rows


def render_faults(rows: Sequence[FaultRow]) -> list[str]:
    lines = [f"every Maildir call made to fail ({len(rows)} runs):"]
    for row in rows:
        lines.append(f"  {row.call}  -> {row.errno}: {row.outcome}")
    missed = sum(not r.landed for r in rows)
    if missed:
        lines.append(f"  ({missed} fault(s) missed: strace counts calls per process, by name)")
    return lines


def faults_json(rows: Sequence[FaultRow]) -> list[dict[str, Any]]:
    return [
        {
            "call": r.call,
            "inject": r.inject,
            "errno": r.errno,
            "landed": r.landed,
            "outcome": r.outcome,
            "exit_status": r.report.run.status if r.report else None,
            "verdicts": dict(
                zip([x.env for x in r.report.results], r.report.verdicts(), strict=True)
            )
            if r.report
            else None,
        }
        for r in rows
    ]
