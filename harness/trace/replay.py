"""Replaying a traced run in the model, with a crash at every point (specs T4-T6).

This module owns the replay: it feeds the events of `trace.translator` to one model host
(`harness.host.Host`, so local disks and NFS alike), one model process per traced
process, keeps the traced descriptor numbers (dup shares the open file description, as
POSIX says), and after every step asks the same questions the checker asks: P1 live and
in every crash state the profile allows at that point (so a kill or a power cut at every
point is covered), P3 against a message that was already there, and P6. The run's exit
status is its report: at the end P2 (success must be durable) or P4/P5 (a failure must be
clean and temporary). Whatever the model cannot follow - a call it does not have, or a
result that differs from the real kernel's - ends the replay there and is reported, never
guessed at; and what one run cannot show (the branches it did not take) is said plainly.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from maildircheck.harness.host import ROOT, Host, short, show
from maildircheck.harness.timeline import Timeline
from maildircheck.harness.trace.translator import Dup, Event, Fork, Seek, Step, Unmodeled
from maildircheck.model.content import Content, Messages
from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.kernel import Kernel, Process
from maildircheck.model.outcome import Delivered, Outcome, PermanentFailure, TemporaryFailure
from maildircheck.model.properties import DeliveryRecord, Violation
from maildircheck.model.syscalls import (
    Fdatasync,
    FileKind,
    Fstat,
    Fsync,
    FsyncDir,
    Lstat,
    Open,
    OpenFlag,
    Stat,
    Syscall,
)

LABEL = "A"  # every process of the traced agent is one delivery
SEEDED = "an earlier message"
# Postfix defers on EX_OSERR 71 and EX_TEMPFAIL 75 (its sys_exits.c marks only those two
# soft), Exim on 73-75 by default (temp_errors), qmail on 111 (qmail-command(8)).
TEMPORARY_EXIT = (71, 75, 111)


@dataclass
class ReplayResult:
    env: str
    # the counterexample record the checker's search keeps too: each call with its strace
    # line, the exit, and the violation with what a crash could keep or lose
    timeline: Timeline = field(default_factory=Timeline)
    violation: Violation | None = None
    stopped: str | None = None  # why the replay ended early (unmodeled call, disagreement)
    outcome: Outcome | None = None

    def violated(self, violation: Violation, explanation: list[str]) -> None:
        self.violation = violation
        self.timeline.event("check", f"VIOLATED {violation}", explanation)

    @property
    def verdict(self) -> str:
        if self.violation is not None:
            return "violated"
        return "incomplete" if self.stopped else "holds"


def outcome_of(
    status: int, signal_name: str | None = None, temporary: Sequence[int] = TEMPORARY_EXIT
) -> Outcome | None:
    """The agent's report to its MTA: exit 0 delivered; by default 71, 75 and 111
    temporary (EX_OSERR and EX_TEMPFAIL, which Postfix defers on; qmail-command(8)'s 111),
    any other status permanent; killed by a signal: no report."""
    if signal_name is not None:
        return None
    if status == 0:
        return Delivered("(exit 0)")
    if status in temporary:
        return TemporaryFailure(f"exit {status}")
    return PermanentFailure(f"exit {status}")


@dataclass
class _Replay:
    host: Host
    kernel: Kernel
    result: ReplayResult
    procs: dict[int, Process] = field(default_factory=dict)

    def proc(self, pid: int) -> Process:
        if pid not in self.procs:
            self.procs[pid] = Process(LABEL, pid, next(iter(self.host.kernels)))
        return self.procs[pid]

    def lane(self, pid: int) -> str:
        first = min(self.procs) if self.procs else pid
        return LABEL if pid == first else f"{LABEL}:{pid}"

    def apply(self, event: Event) -> bool:
        """Apply one event; False when the replay cannot go on."""
        if isinstance(event, Unmodeled):
            self.result.stopped = f"line {event.line}: {event.call}: {event.why}"
            return False
        if isinstance(event, Fork):
            parent = self.proc(event.parent)
            child = Process(LABEL, event.child, parent.host)
            child.fds = parent.fds if event.shares_fds else dict(parent.fds)
            self.procs[event.child] = child
            return True
        proc = self.proc(event.pid)
        if isinstance(event, Dup):
            if event.old in proc.fds:
                proc.fds[event.new] = proc.fds[event.old]
            return True
        if isinstance(event, Seek):
            if event.fd in proc.fds:
                proc.fds[event.fd].offset = event.offset
            return True
        return self.step(event, proc)

    def step(self, event: Step, proc: Process) -> bool:
        request: Syscall[Any] = event.request
        if isinstance(request, Fsync | Fdatasync) and request.fd in proc.fds:
            handle = proc.fds[request.fd]
            if self.host.fs.inodes[handle.ino].kind is FileKind.DIRECTORY:
                request = FsyncDir(handle.path)
        before = self.host.visible()
        if event.injected:  # strace -e inject: the call never ran, it just failed
            code = int(getattr(errno, event.errno or "EIO", errno.EIO))
            reply: object = OSError(code, event.errno)
        else:
            reply = self.kernel.execute(proc, request)
        if isinstance(request, Open) and isinstance(reply, int) and event.result is not None:
            proc.fds[event.result] = proc.fds.pop(reply)  # keep the traced fd number
            reply = event.result
        self.result.timeline.syscall(
            self.lane(event.pid), short(request), show(reply), source=f"strace line {event.line}"
        )
        model_failed = isinstance(reply, OSError)
        model_errno = errno.errorcode.get(reply.errno or 0) if isinstance(reply, OSError) else None
        if model_failed != (event.errno is not None) or (
            model_failed and model_errno != event.errno
        ):
            real = f"-1 {event.errno}" if event.errno else str(event.result)
            self.result.stopped = (
                f"line {event.line}: the model answered {show(reply)} where the kernel "
                f"answered {real}; the replay stops rather than follow a different run"
            )
            return False
        return self.check(before)

    def check(self, before: dict[int, str] | None) -> bool:
        found = self.host.check(LABEL, False, before)
        if found:
            self.result.violated(found[0], self.host.explain(found[0]))
            return False
        return True


def replay(
    events: Sequence[Event],
    env: str,
    content: bytes,
    initial: Mapping[str, bytes | None],
    outcome: Outcome | None,
    crashes: bool = True,
) -> ReplayResult:
    """Replay `events` on a model maildir under `env`.

    `content`: the message as the agent delivered it (judged complete); `initial`: the
    Maildir before the run (relative path -> bytes, None for a directory), all durable; a
    file already in new/ or cur/ is an earlier message the agent must leave alone (P3);
    `outcome`: what the exit status reported."""
    host = Host(ENVIRONMENTS[env], crashes)
    host.messages = Messages({"the message": Content.of(content)})
    for rel, data in sorted(initial.items()):
        path = f"{ROOT}/{rel}"
        if data is None:
            if host.fs.find(path) is None:
                host.fs.mkdir(path, 0o700, 0, "earlier")
            continue
        ino = host.fs.create(path, 0o600, 0, "earlier")
        host.fs.write(ino, 0, data, 0)
        if rel.split("/", 1)[0] in ("new", "cur"):
            host.messages.add(SEEDED, Content.of(data))
    host.fs.make_all_durable()
    record = DeliveryRecord(LABEL, "the message", Content.of(content))
    host.records.append(record)
    kernel = host.kernels[next(iter(host.kernels))]
    result = ReplayResult(env)
    run = _Replay(host, kernel, result)
    for event in events:
        if not run.apply(event):
            return result
    record.outcome = outcome
    result.outcome = outcome
    if outcome is None:
        record.ended = "killed"
    result.timeline.event(LABEL, "exit: " + ("killed" if outcome is None else str(outcome)))
    if run.check(None) and outcome is not None and not isinstance(outcome, Delivered):
        found = host.check_report(record, progress=False)  # one real run: P7 is the checker's
        if found is not None:
            result.violated(found, host.explain(found))
    return result


def _probe(step: Step) -> bool:
    """A call whose failure is how agents ask a question, not an error they handle: a stat
    (is this name free?) or an open without O_CREAT of a file that is not there (is there
    a quota file, a maildirfolder?)."""
    request = step.request
    if isinstance(request, Stat | Lstat | Fstat):
        return True
    return (
        isinstance(request, Open) and OpenFlag.CREAT not in request.flags and step.errno == "ENOENT"
    )


def unexplored(events: Sequence[Event], outcome: Outcome | None) -> list[str]:
    """What one recorded run cannot show, in words (T6)."""
    steps = [e for e in events if isinstance(e, Step)]
    failed = [e for e in steps if e.errno is not None and not _probe(e)]
    notes = []
    if not failed:
        notes.append(
            "error paths: no call on the Maildir failed in this run, so what the agent does "
            "when open, write, fsync, close, link or rename fails was not seen (run again "
            "with --inject CALL:ERRNO to take one of those branches)"
        )
    else:
        names = sorted({type(e.request).__name__.lower() for e in failed})
        notes.append(f"error paths: only the failures this run met ({', '.join(names)}) were taken")
    notes.append(
        "other processes: one delivery ran alone, so name collisions with a concurrent "
        "delivery, a reader moving new/ to cur/ and a tmp/ cleaner were not exercised"
    )
    notes.append(
        "timing: the agent's clock, pid and random choices are those of this run; a name "
        "collision its naming would allow was not provoked"
    )
    if outcome is None:
        notes.append("the agent was killed before it reported: no success or failure to judge")
    return notes
