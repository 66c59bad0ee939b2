"""The checker for group commit: an LMTP server's batch algorithm inside the model.

One machine = one mail server process (lane S) delivering for several mailboxes on a model
file system under one local persistence profile. Rules: the client hands over a message
for one or more recipients (each a job of impl/batch.py, answered by token); the server
starts a batch of every job waiting; the batch runs a few syscalls at a time, one reply
fault (ENOSPC, EDQUOT, EIO, a lost reply, a short write) armed at most once per rule; the
server is killed, or the power fails. A job whose answer was lost with the server is handed
over again (the client retries), so the checker sees retries too. After every syscall the
properties are judged, per recipient (spec M6):

  P1  no partial or foreign content in any mailbox's new/ or cur/, live or after a crash;
  P2  once a recipient is answered 250, its message is in its new/ in every crash state;
  P4  a recipient answered 4xx left nothing behind: at its answer no file in its tmp/
      holds part of its message, and no more copies of it are visible in new/ or cur/
      than deliveries that were answered 250 or died unanswered (what 4xx promises: not
      visible now; after a crash it may reappear, a duplicate, never a loss);
  P5  no permanent failure (every fault here is transient);
  M6  every job is answered exactly once, while its batch runs.

`check_batch` runs the search with Hypothesis (its own shrinker) and returns the verdict
with the failing run's timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as seeded
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

from maildircheck.harness.host import show
from maildircheck.impl.batch import BatchSteps, Job, run_batch
from maildircheck.impl.deliver import envelope_headers
from maildircheck.model import persistence
from maildircheck.model.content import Content, Messages
from maildircheck.model.environments import ENVIRONMENTS, Environment
from maildircheck.model.faults import FAULTS, Fault
from maildircheck.model.fs import FileSystem
from maildircheck.model.kernel import Kernel, Process
from maildircheck.model.outcome import Delivered, DeliveryRequest, PermanentFailure
from maildircheck.model.persistence import CrashChoice
from maildircheck.model.properties import (
    Layout,
    Violation,
    check_crash_states,
    check_visible,
)
from maildircheck.model.syscalls import Answer, Syscall, Unlink

MAILBOXES = ("/srv/mail/a/Maildir", "/srv/mail/b/Maildir")
REPLY_FAULTS = ("enospc", "edquot", "eio", "lost-reply", "short-write")
MAX_JOBS = 6  # jobs handed over in one run (retries included)


@dataclass
class Recipient:
    """One job as the checker follows it."""

    job: Job
    mailbox: int
    content: Content  # what its file in new/ must hold: the headers, then the message
    answered: object = None  # the outcome it was answered with
    died: bool = False  # its batch died before answering it


@dataclass
class BatchLog:
    examples: int = 0
    violation: Violation | None = None
    timeline: list[str] = field(default_factory=list)


class BatchViolated(AssertionError):
    pass


class BatchMachine(RuleBasedStateMachine):
    steps: ClassVar[BatchSteps]
    env: ClassVar[Environment]
    log: ClassVar[BatchLog]

    def __init__(self) -> None:
        super().__init__()
        self.log.examples += 1
        dirs = [d for m in MAILBOXES for d in (m, f"{m}/tmp", f"{m}/new", f"{m}/cur")]
        self.fs = FileSystem.with_dirs("/srv", "/srv/mail", "/srv/mail/a", "/srv/mail/b", *dirs)
        self.profile = self.env.profile
        self.kernel = Kernel(self.fs, self.profile, hostname="mx")
        self.layouts = [Layout.of(self.fs, m) for m in MAILBOXES]
        self.messages = Messages()
        self.recipients: dict[int, Recipient] = {}
        self.waiting: list[int] = []
        self.batch: list[int] = []
        self.gen: Any = None
        self.request: Syscall[Any] | None = None
        self.proc = Process("S1", 100, "mx")  # each incarnation its own label (the creator)
        self.armed: Fault | None = None  # a reply fault waiting for a request of `aimed`
        self.aimed: type[Any] = object
        self.refused: set[str] = set()  # tmp/ paths whose unlink failed (excused, P4)
        self.count = 0
        self.timeline: list[str] = []

    # --- the client ---------------------------------------------------------------------
    def _hand_over(self, mailbox: int, content_of: bytes) -> None:
        token = len(self.recipients) + 1
        request = DeliveryRequest(
            MAILBOXES[mailbox],
            return_path=True,
            sender="s@example.org",
            delivered_to=f"{'ab'[mailbox]}{token}@example.org",  # one address a recipient
        )
        job = Job(token, request, content_of)
        content = Content.of(envelope_headers(request, None) + content_of)
        self.messages.add(f"#{token}", content)
        self.recipients[token] = Recipient(job, mailbox, content)
        self.waiting.append(token)

    @precondition(lambda self: len(self.recipients) < MAX_JOBS)
    @rule(to=st.lists(st.integers(0, len(MAILBOXES) - 1), min_size=1, max_size=3))
    def message(self, to: list[int]) -> None:
        """The client hands over a message for one or more recipients."""
        self.count += 1
        data = f"Subject: m{self.count}\n\nbody {self.count}\n".encode()
        for mailbox in to[: MAX_JOBS - len(self.recipients)]:
            self._hand_over(mailbox, data)
        shown = ", ".join(f"#{t}->{'ab'[self.recipients[t].mailbox]}" for t in self.waiting)
        self.timeline.append(f"client   message m{self.count}; waiting: {shown}")

    @precondition(lambda self: self.gen is None and bool(self.waiting))
    @rule()
    def start_batch(self) -> None:
        self.batch, self.waiting = self.waiting, []
        jobs = [self.recipients[t].job for t in self.batch]
        self.timeline.append(f"S        starts a batch of {' '.join(f'#{t}' for t in self.batch)}")
        self.gen = run_batch(jobs, self.steps)
        self._advance(None)

    @precondition(lambda self: self.gen is not None)
    @rule(
        count=st.integers(1, 8),
        fault=st.none() | st.sampled_from(REPLY_FAULTS),
        aim=st.integers(0, 15),
    )
    def run(self, count: int, fault: str | None, aim: int) -> None:
        """The batch makes up to `count` syscalls; `fault` is armed for the next request
        of one of the kinds it can hit (`aim` picks the kind)."""
        if fault is not None:
            targets = FAULTS[fault].targets
            self.armed = FAULTS[fault]
            self.aimed = targets[aim % len(targets)]
        for _ in range(count):
            if self.gen is None:
                return
            self._syscall()

    @precondition(lambda self: self.gen is not None)
    @rule()
    def kill(self) -> None:
        self.kernel.kill(self.proc)
        self.timeline.append("S        is killed (kill -9)")
        self._die()

    @rule(dropped=st.integers(0, 4095), fates=st.lists(st.integers(0, 3), max_size=8))
    def power_loss(self, dropped: int, fates: list[int]) -> None:
        persistence.power_loss(self.fs, self.profile, CrashChoice(dropped, tuple(fates)))
        self.timeline.append("host     POWER LOSS - the machine restarts")
        self._die()
        self._check()

    # --- running the server -------------------------------------------------------------
    def _die(self) -> None:
        """The server is gone: its unanswered jobs are handed over again (the client got no
        reply, so it retries)."""
        self.proc = Process(f"S{self.proc.pid - 98}", self.proc.pid + 1, "mx")
        if self.gen is not None:
            for token in self.batch:
                rec = self.recipients[token]
                if rec.answered is None:
                    rec.died = True
                    if len(self.recipients) < MAX_JOBS:
                        self._hand_over(rec.mailbox, rec.job.data)
        self.gen, self.request, self.batch, self.armed = None, None, [], None

    def _syscall(self) -> None:
        request = self.request
        assert request is not None
        fault = None
        if self.armed and isinstance(request, self.aimed) and self.armed.hits(request):
            fault, self.armed = self.armed, None
        if isinstance(request, Answer):
            self._answered(request)
            reply: object = None
        else:
            reply = self.kernel.execute(self.proc, request, fault)
            shown = show(reply)
            mark = f"   <- {fault.name}" if fault else ""
            said = str(request).replace("/srv/mail/", "")
            self.timeline.append(f"S        {said} = {shown}{mark}")
            if isinstance(request, Unlink) and isinstance(reply, OSError):
                self.refused.add(request.path)
        self._check()
        self._advance(reply)

    def _advance(self, reply: object) -> None:
        try:
            self.request = self.gen.send(reply) if self.request else next(self.gen)
        except StopIteration:
            unanswered = [t for t in self.batch if self.recipients[t].answered is None]
            self.gen, self.request, self.batch = None, None, []
            if unanswered:
                self._raise(Violation("M6", f"the batch ended without answering {unanswered}"))
            self._leftovers()

    # --- the properties -----------------------------------------------------------------
    def _answered(self, request: Answer) -> None:
        rec = self.recipients.get(request.token)
        self.timeline.append(f"S        answers #{request.token}: {request.outcome}")
        if rec is None or request.token not in self.batch or rec.answered is not None:
            self._raise(Violation("M6", f"#{request.token} answered twice or out of its batch"))
            return
        rec.answered = request.outcome
        if isinstance(request.outcome, PermanentFailure):
            self._raise(Violation("P5", f"#{request.token} bounced: {request.outcome.reason}"))
        if not isinstance(request.outcome, Delivered):
            self._honest_failure(rec)  # P2 for a 250 is judged by the _check that follows

    def _honest_failure(self, rec: Recipient) -> None:
        layout = self.layouts[rec.mailbox]
        for name, ino in sorted(self.fs.entries[layout.tmp].items()):
            data, full = self.fs.inodes[ino].data, rec.content
            part = bool(data) and len(data) <= len(full) and full.slice(0, len(data)) == data
            part = part and self.fs.inodes[ino].creator == self.proc.label
            if part and f"{layout.root}/tmp/{name}" not in self.refused:
                self._raise(Violation("P4", f"#{rec.job.token} answered 4xx but left tmp/{name}"))
        copies = sum(
            1
            for d in layout.visible
            for ino in self.fs.entries[d].values()
            if self.fs.inodes[ino].data == rec.content
        )
        excused = sum(
            1
            for r in self.recipients.values()
            if r.content == rec.content and (isinstance(r.answered, Delivered) or r.died)
        )
        if copies > excused:
            self._raise(Violation("P4", f"#{rec.job.token} answered 4xx but is visible in new/"))

    def _check_durable(self, rec: Recipient) -> None:
        if isinstance(rec.answered, Delivered):
            layout = self.layouts[rec.mailbox]
            if not persistence.guaranteed_in(self.fs, self.profile, layout.visible, rec.content):
                self._raise(
                    Violation(
                        "P2",
                        f"#{rec.job.token} was answered 250 but a power loss now could "
                        f"lose it from {'ab'[rec.mailbox]}'s new/",
                    )
                )

    def _leftovers(self) -> None:
        for layout in self.layouts:
            for name, ino in sorted(self.fs.entries[layout.tmp].items()):
                mine = self.fs.inodes[ino].creator == self.proc.label  # not a crash's leftover
                if mine and f"{layout.root}/tmp/{name}" not in self.refused:
                    self._raise(
                        Violation("P4", f"the batch ended leaving {layout.root}/tmp/{name}")
                    )

    def _check(self) -> None:
        for layout in self.layouts:
            for found in (
                check_visible(self.fs, layout, self.messages),
                check_crash_states(self.fs, self.profile, layout, self.messages),
            ):
                if found is not None:
                    self._raise(found)
        for rec in self.recipients.values():
            self._check_durable(rec)

    def _raise(self, violation: Violation) -> None:
        self.timeline.append(f"check    VIOLATED {violation.prop}: {violation.why}")
        self.log.violation, self.log.timeline = violation, list(self.timeline)
        raise BatchViolated(str(violation))


@dataclass(frozen=True)
class BatchVerdict:
    env: str
    violation: Violation | None
    timeline: list[str]
    examples: int

    @property
    def holds(self) -> bool:
        return self.violation is None


def check_batch(
    steps: BatchSteps,
    env: str,
    max_examples: int = 300,
    seed: int | None = 1,
    shrink: bool = True,
) -> BatchVerdict:
    """Search for a violation of the batch's per-recipient properties under `env`; with
    `shrink`, Hypothesis shrinks the failing run and its timeline is the shrunk one's."""
    log = BatchLog()
    machine = type(
        "BatchCheck", (BatchMachine,), {"steps": steps, "env": ENVIRONMENTS[env], "log": log}
    )
    if seed is not None:
        machine = seeded(seed)(machine)
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=max_examples,
                stateful_step_count=30,
                deadline=None,
                database=None,
                verbosity=Verbosity.quiet,
                report_multiple_bugs=False,
                suppress_health_check=list(HealthCheck),
                phases=(Phase.generate, Phase.shrink) if shrink else (Phase.generate,),
                print_blob=False,
            ),
        )
    except BatchViolated:
        pass
    return BatchVerdict(env, log.violation, log.timeline if log.violation else [], log.examples)
