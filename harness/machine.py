"""The checker: a Hypothesis state machine running strategies inside the model.

One machine = one mail host: a model file system under a persistence profile, the
delivering processes (each the strategy's generator on the model kernel), a reader and a
tmp/ cleaner, a simulated clock. Rules start deliveries (the MTA, including retries after a
failure), advance one process a few syscalls at a time (injecting a reply fault at most
once per rule), kill a process, send it SIGTERM, cut the power, move the clock (and, with
the clash sources X13-X16, step it back or reboot the host). After every
syscall the properties are checked (model.properties) and each delivery's step is mapped
onto the lifecycle table (model.lifecycle); each delivery counts its syscalls since the
last fault that hit it (an injected reply, SIGTERM, a clock jump, a server crash) for P7.
A violation raises `PropertyViolated`;
the failing run's timeline and its rule calls (`program`, recorded by harness/rules.py) are
kept in the `RunLog`, and harness/shrink.py shrinks the program (E7).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from hypothesis.stateful import RuleBasedStateMachine

from maildircheck.harness.actors import cleaner, reader
from maildircheck.harness.check import Check
from maildircheck.harness.host import ROOT, Host, short, show, start
from maildircheck.harness.messages import MESSAGE_IDS, Shape, build, pipe_chunk
from maildircheck.harness.timeline import Timeline
from maildircheck.model.faults import (
    CLONED_HOSTNAMES,
    PID_NAMESPACES,
    Fault,
    kind_of_type,
    storage_crashes,
)
from maildircheck.model.lifecycle import Stage
from maildircheck.model.outcome import DeliveryRequest, Outcome, PermanentFailure, Strategy
from maildircheck.model.persistence import CrashChoice
from maildircheck.model.properties import (
    DeliveryRecord,
    Violation,
    collided,
    moves_the_message,
)
from maildircheck.model.syscalls import Interrupted, Syscall, Unlink

if TYPE_CHECKING:
    from maildircheck.harness.draws import Step
    from maildircheck.harness.rules import Rule

PID_POOL = (100, 101, 102)
MAX_DELIVERIES = 2


TRACEBACK_LINES = 12  # the last lines of a strategy's traceback a timeline shows


class NotASyscall(TypeError):
    """The strategy yielded something that is not a syscall request: a bug in the strategy
    the user wrote, reported like a usage error (harness.cli), not as a checker failure."""


class PropertyViolated(AssertionError):
    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


@dataclass
class RunLog:
    """What every run of one search shares: counts, and the last failing run's report."""

    examples: int = 0
    syscalls: int = 0
    violation: Violation | None = None
    timeline: Timeline | None = None
    observed: dict[str, str] = field(default_factory=dict)  # property -> first observation
    first_found: float | None = None  # perf_counter() when the first violation was seen
    examples_to_find: int | None = None
    program: list[Step] = field(default_factory=list)  # the last failing run's rule calls


@dataclass
class Actor:
    label: str
    kind: str  # "deliver", "reader", "cleaner"
    proc: Any
    gen: Generator[Syscall[Any], object, Any]
    request: Syscall[Any] | None
    record: DeliveryRecord | None = None
    stage: Stage = Stage.QUEUED
    interrupt: bool = False
    terminated: bool = False  # SIGTERM was sent (once: a second one changes nothing)
    entropy: int = 0  # what getrandom answers this process
    armed: tuple[Fault, str] | None = None  # (fault, syscall kind) waiting for its request
    cut: int = 0  # the draw that sets an armed short transfer's count (X11, X12)


class DeliveryMachine(RuleBasedStateMachine):
    check: ClassVar[Check]  # what `machine_for` built the rules for; its faults are searched
    table: ClassVar[dict[str, Rule]]  # the rule table (harness/rules.py) it was built from

    def __init__(self, log: RunLog | None = None) -> None:
        super().__init__()
        self.log = RunLog() if log is None else log
        self.strategy: Strategy = self.check.info.function
        crashes = bool(storage_crashes(self.check.faults))
        self.host = Host(self.check.env, crashes, cloned=CLONED_HOSTNAMES in self.check.faults)
        self.host.use_messages({}, MESSAGE_IDS)  # drawn, each at its first delivery
        self.shapes: dict[str, Shape] = {}
        self.timeline = Timeline()
        self.actors: list[Actor] = []
        self.reader_memory: set[str] = set()
        self.count = 0
        self.boots: dict[str, tuple[list[int], list[int]]] = {}  # X14: host -> pids given
        # out since the boot before the last one, and since the last one
        self.last_key: tuple[int, int, int, int] | None = None
        self.program: list[Step] = []  # the rule calls so far (harness/rules.py records them)
        self.log.examples += 1

    # --- rule bodies (machine_for wraps them as rules with this configuration's draws) ----
    def deliveries(self) -> list[Actor]:
        return [a for a in self.actors if a.kind == "deliver"]

    def can_start(self) -> bool:
        busy = {a.record.message for a in self.deliveries() if a.record}
        return len(self.deliveries()) < MAX_DELIVERIES and bool(
            [m for m in self.host.undelivered() if m not in busy]
        )

    def start_delivery(
        self,
        which: int,
        pid: int,
        count: int,
        entropy: int,
        fault: tuple[Fault, str] | None,
        mail: tuple[Shape, int],
        on: int = 0,
        cut: int = 0,
    ) -> None:
        """The MTA starts a delivery (or a retry) of a message not yet delivered, and the
        new process runs its first `count` syscalls; getrandom answers it `entropy`. `mail`
        is (shape, pipe): a message's first delivery gives it its content, of that shape;
        each delivery reads it through a pipe that hands over `pipe` bytes a read (at most
        MAX_READS reads, E6)."""
        busy = {a.record.message for a in self.deliveries() if a.record}
        waiting = [m for m in self.host.undelivered() if m not in busy]
        hosts = list(self.host.kernels)
        on_host = hosts[on % len(hosts)]
        used = {a.proc.pid for a in self.actors if a.proc.host == on_host}  # pids are per host
        if PID_NAMESPACES in self.check.faults:  # X16: ... and per namespace, one per agent
            used = set()
        free = [p for p in PID_POOL if p not in used]
        message = waiting[which % len(waiting)]
        self.count += 1
        label = f"D{self.count}"
        before, since = self.boots.setdefault(on_host, ([], []))
        chosen = free[pid % len(free)]
        if len(since) < len(before) and before[len(since)] in free:
            chosen = before[len(since)]  # X14: a booted host gives out its pids in order again
        since.append(chosen)
        shape, pipe = mail
        if message not in self.host.mail:
            self.host.add_message(message, build(message, shape))
            self.shapes[message] = shape
        data = self.host.mail[message]
        chunk = pipe_chunk(pipe, len(data))
        proc, record = self.host.spawn_delivery(label, chosen, message, on, chunk)
        gen = start(self.strategy, DeliveryRequest(ROOT))
        actor = Actor(label, "deliver", proc, gen, None, record, entropy=entropy)
        self.actors.append(actor)
        self.timeline.event(
            self.host.lane(proc),
            f"MTA starts delivering {message}, {self.shapes[message].describe()}, "
            f"{chunk} bytes a read (pid {proc.pid})",
        )
        self._advance(actor, None)
        self._run(actor, count, fault, cut)

    def run_delivery(
        self, which: int, count: int, fault: tuple[Fault, str] | None, cut: int = 0
    ) -> None:
        """Run one delivering process for up to `count` syscalls. `fault` = (fault, kind)
        arms that fault for the process's next request of that kind (X4-X7, X10-X12);
        `cut` sets how short a short transfer is (`faults.short_count`)."""
        live = self.deliveries()
        self._run(live[which % len(live)], count, fault, cut)

    def _run(self, actor: Actor, count: int, fault: tuple[Fault, str] | None, cut: int = 0) -> None:
        if fault is not None:
            actor.armed, actor.cut = fault, cut
        for _ in range(count):
            if actor not in self.actors:
                return
            hit = None
            request, armed = actor.request, actor.armed
            if (
                armed
                and request
                and kind_of_type(type(request)) == armed[1]
                and armed[0].hits(request)
            ):
                hit, actor.armed = armed[0], None
            self._syscall(actor, hit)

    def run_reader(self, count: int) -> None:
        self._run_helper("reader", count)

    def run_cleaner(self, count: int) -> None:
        self._run_helper("cleaner", count)

    def advance_clock(self, jump: int) -> None:
        self.host.advance_clock(jump)
        self.timeline.event("clock", f"time passes: {jump / 3_600_000_000:g} h")
        self._hit_running()  # the 24-hour timer (A7) and the tmp/ cleaner (E2) may now act

    def clock_back(self, step: int, which: int) -> None:
        """X13: one host's clock steps back by `step` microseconds."""
        name = list(self.host.kernels)[which % len(self.host.kernels)]
        self.host.clock_back(name, step)
        lane = self.host.host_lane(name) if self.host.nfs else "clock"
        shown = f"{step} us" if step < 1_000_000 else f"{step / 1_000_000:g} s"
        self.timeline.event(lane, f"the clock steps back {shown}")

    def reboot(self, which: int) -> None:
        """X14: a host restarts cleanly; its processes are gone, its clock is back at its
        boot time and its pids are given out again."""
        name = list(self.host.kernels)[which % len(self.host.kernels)]
        self.host.reboot(name)
        self.boots[name] = (self.boots.get(name, ([], []))[1], [])
        lane = self.host.host_lane(name) if self.host.nfs else "host"
        self.timeline.event(lane, "REBOOT - back at the boot time, pids start again")
        for actor in list(self.actors):
            if actor.proc.host == name:
                self._end(actor, None, "died in the reboot")
        self._check(None)

    def _hit(self, record: DeliveryRecord) -> None:
        """P7: a fault hit this delivery attempt; its syscall budget starts again."""
        record.faults += 1
        record.since_fault = 0

    def _hit_running(self) -> None:
        for actor in self.deliveries():
            if actor.record is not None:
                self._hit(actor.record)

    def kill(self, which: int) -> None:
        live = self.deliveries()
        actor = live[which % len(live)]
        self.host.kernel_of(actor.proc).kill(actor.proc)
        self.timeline.event(
            self.host.lane(actor.proc),
            f"is killed (kill -9) before {short(actor.request)}"
            if actor.request
            else "is killed (kill -9)",
        )
        self._end(actor, None, "killed")

    def sigterm(self, which: int) -> None:
        live = [a for a in self.deliveries() if not a.terminated]
        if live:
            actor = live[which % len(live)]
            actor.interrupt = actor.terminated = True
            self.timeline.event(self.host.lane(actor.proc), "receives SIGTERM")

    def power_loss(self, dropped: int, fates: list[int]) -> None:
        choice = CrashChoice(dropped, tuple(fates))
        detail = self.host.power_loss(choice)
        self.timeline.event("host", "POWER LOSS - the machine restarts", detail)
        for actor in list(self.actors):
            self._end(actor, None, "died in the power loss")
        self._check(None)

    def server_crash(self, dropped: int, fates: list[int]) -> None:
        """The NFS server crashes and reboots (X8); the clients and their processes go on."""
        detail = self.host.server_crash(CrashChoice(dropped, tuple(fates)))
        self.timeline.event("server", "SERVER CRASH - the NFS server reboots", detail)
        self._hit_running()
        self._check(None)

    def client_crash(self, which: int) -> None:
        """An NFS client host crashes (X9): its caches and its processes are gone."""
        name = list(self.host.kernels)[which % len(self.host.kernels)]
        self.host.client_crash(name)
        self.timeline.event(self.host.host_lane(name), "CLIENT CRASH")
        for actor in list(self.actors):
            if actor.proc.host == name:
                self._end(actor, None, "died with its host")
        self._check(None)

    # --- running processes ------------------------------------------------------------------
    def _run_helper(self, kind: str, count: int) -> None:
        actor = next((a for a in self.actors if a.kind == kind), None)
        if actor is None:
            gen = reader(ROOT, self.reader_memory) if kind == "reader" else cleaner(ROOT)
            proc = self.host.spawn_helper(kind, 200 if kind == "reader" else 300)
            actor = Actor(kind[0].upper(), kind, proc, gen, None)
            self.actors.append(actor)
            self._advance(actor, None)
        for _ in range(count):
            if actor not in self.actors:
                return
            self._syscall(actor, None)

    def _syscall(self, actor: Actor, fault: Fault | None) -> None:
        request = actor.request
        assert request is not None
        before = self.host.visible()
        if actor.interrupt:
            actor.interrupt = False
            reply: object = Interrupted("SIGTERM")
            line = self.timeline.syscall(
                self.host.lane(actor.proc), short(request), "interrupted (SIGTERM)"
            )
        else:
            reply = self.host.kernel_of(actor.proc).execute(
                actor.proc, request, fault, actor.entropy, actor.cut
            )
            line = self.timeline.syscall(
                self.host.lane(actor.proc),
                short(request),
                show(reply),
                fault.name if fault else "",
            )
        self.log.syscalls += 1
        if actor.record is not None:
            # P7: a fault hit it - injected now, SIGTERM, or one whose effect goes on (F9:
            # an aborted journal answers EROFS until a crash remounts the file system)
            collision = collided(self.host.fs, request, reply, actor.label)
            if fault is not None or isinstance(reply, Interrupted) or self.host.fs.aborted:
                self._hit(actor.record)
            elif collision is not None and collision not in actor.record.collisions:
                actor.record.collisions.add(collision)  # a name clash hits it, once a name
                self._hit(actor.record)
            elif not moves_the_message(request, reply):
                actor.record.since_fault += 1
            if isinstance(request, Unlink) and isinstance(reply, OSError):
                actor.record.refused_unlinks.add(request.path)
        if actor.kind == "reader":
            self.host.note_reader_step(request, before)
        key = self.host.key()
        if key != self.last_key:  # nothing a property looks at changed: skip the checks
            self.last_key = key
            self._check(actor, before)
            for a in self.actors:
                if a.record is not None and (a is actor or self.check.strict_lifecycle):
                    label = self._track_stage(a)
                    if a is actor and label:
                        line.transition = label
        self._advance(actor, reply)  # may end the process: its report is judged in _end
        if actor.record is not None:
            self._raise(self.host.check_progress(actor.record))  # P7: still no report?

    def _advance(self, actor: Actor, reply: object) -> None:
        try:
            actor.request = actor.gen.send(reply) if actor.request else next(actor.gen)
        except StopIteration as stop:
            self._end(actor, stop.value, None)
            return
        except Exception as err:  # the agent crashed: its exit status is a bounce
            below = err.__traceback__.tb_next if err.__traceback__ else None  # the agent's
            lines = traceback.format_exception(type(err), err, below, chain=False)
            shown = "".join(lines).rstrip().splitlines()
            self.timeline.event(
                self.host.lane(actor.proc),
                f"raises {type(err).__name__} (its traceback, last lines):",
                shown[-TRACEBACK_LINES:],
            )
            said = str(err).replace("\n", "\\n")  # one line: the timeline's and the report's
            self._end(actor, PermanentFailure(f"uncaught {type(err).__name__}: {said}"), None)
            return
        if not isinstance(actor.request, Syscall):
            raise NotASyscall(
                f"the strategy yielded {actor.request!r} ({type(actor.request).__name__}), "
                "not a syscall request from maildircheck.model.syscalls"
            )

    def _end(self, actor: Actor, outcome: Outcome | None, death: str | None) -> None:
        if actor in self.actors:
            self.actors.remove(actor)
        if actor.record is None:
            return
        actor.record.outcome = outcome
        actor.record.ended = death
        line = None
        if death != "killed":
            line = self.timeline.event(self.host.lane(actor.proc), death or f"reports {outcome}")
        if outcome is not None:
            self._raise(self.host.check_report(actor.record))
            self._check(None)  # a report can break P2 (or P3's unique names) by itself
        label = self._track_stage(actor)
        if line is not None and label:
            line.text += f"   ({label})"

    def _track_stage(self, actor: Actor) -> str:
        assert actor.record is not None
        before = actor.stage
        after, label = self.host.stage_step(actor.record, before)
        actor.stage = after
        if label is None:
            self._raise(Violation("L1", f"{actor.label} went {before.value} -> {after.value}"))
            return f"off the protocol: {before.value} -> {after.value}"
        return f"{before.value} -> {after.value}" if label else ""

    def _check(self, actor: Actor | None, before: dict[int, str] | None = None) -> None:
        for violation in self.host.check(
            actor.label if actor else None, actor is not None and actor.kind == "reader", before
        ):
            if violation.prop in self.check.properties:
                self._raise(violation)
            self.log.observed.setdefault(violation.prop, str(violation))

    def _raise(self, violation: Violation | None) -> None:
        if violation is None:
            return
        if violation.prop not in self.check.properties:
            self.log.observed.setdefault(violation.prop, str(violation))
            return
        self.timeline.event("check", f"VIOLATED {violation}", self.host.explain(violation))
        if self.log.violation is None:
            self.log.first_found = time.perf_counter()
            self.log.examples_to_find = self.log.examples
        self.log.violation = violation
        self.log.timeline = self.timeline
        self.log.program = self.program  # the recording adds the step that is raising
        raise PropertyViolated(violation)
