"""The checker: a Hypothesis state machine running strategies inside the model.

One machine = one mail host: a model file system under a persistence profile, the
delivering processes (each the strategy's generator on the model kernel), a reader and a
tmp/ cleaner, a simulated clock. Rules start deliveries (the MTA, including retries after a
failure), advance one process a few syscalls at a time (injecting a reply fault at most
once per rule), kill a process, send it SIGTERM, cut the power, move the clock. After every
syscall the properties are checked (model.properties) and each delivery's step is mapped
onto the lifecycle table (model.lifecycle). A violation raises `PropertyViolated`;
Hypothesis then shrinks the rule sequence, and the last (minimal) failing run's timeline is
kept in the `RunLog`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule
from maildircheck.harness import world
from maildircheck.harness.actors import cleaner, reader
from maildircheck.harness.timeline import Timeline
from maildircheck.model.faults import FAULTS, REPLY_FAULTS
from maildircheck.model.lifecycle import Stage
from maildircheck.model.outcome import DeliveryRequest, Outcome, PermanentFailure, Strategy
from maildircheck.model.persistence import CrashChoice, Profile
from maildircheck.model.properties import DeliveryRecord, Violation
from maildircheck.model.syscalls import Interrupted, Syscall

PID_POOL = (100, 101, 102)
MAX_DELIVERIES = 2
CLOCK_JUMPS = (1_000_000, 2_000_000, 25 * 3600 * 1_000_000, 37 * 3600 * 1_000_000)


class PropertyViolated(AssertionError):
    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


@dataclass
class Config:
    strategy: Strategy
    profile: Profile
    faults: tuple[str, ...]
    fail_on: frozenset[str]
    strict_lifecycle: bool = False


@dataclass
class RunLog:
    """What every run of one search shares: counts, and the last failing run's report."""

    examples: int = 0
    syscalls: int = 0
    violation: Violation | None = None
    timeline: Timeline | None = None
    observed: dict[str, str] = field(default_factory=dict)  # property -> first observation


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


class DeliveryMachine(RuleBasedStateMachine):
    config: ClassVar[Config]
    log: ClassVar[RunLog]

    def __init__(self) -> None:
        super().__init__()
        self.host = world.Host(self.config.profile)
        self.timeline = Timeline()
        self.actors: list[Actor] = []
        self.reader_memory: set[str] = set()
        self.count = 0
        self.log.examples += 1

    # --- rules ------------------------------------------------------------------------------
    @rule(which=st.integers(0, 2), pid=st.integers(0, 2))
    def start_delivery(self, which: int, pid: int) -> None:
        """The MTA starts a delivery (or a retry) of a message not yet delivered."""
        live = [a for a in self.actors if a.kind == "deliver"]
        busy = {a.record.message for a in live if a.record}
        waiting = [m for m in self.host.undelivered() if m not in busy]
        if len(live) >= MAX_DELIVERIES or not waiting:
            return
        free = [p for p in PID_POOL if p not in {a.proc.pid for a in self.actors}]
        message = waiting[which % len(waiting)]
        self.count += 1
        label = f"D{self.count}"
        proc, record = self.host.spawn_delivery(label, free[pid % len(free)], message)
        gen = self.config.strategy(DeliveryRequest(world.ROOT))
        actor = Actor(label, "deliver", proc, gen, None, record)
        self.actors.append(actor)
        self.timeline.event(label, f"MTA starts delivering {message} (pid {proc.pid})")
        self._advance(actor, None)

    @rule(which=st.integers(0, 3), count=st.integers(1, 24),
          fault=st.sampled_from((None, *REPLY_FAULTS)), at=st.integers(0, 23),
          entropy=st.integers(0, 3))
    def run_delivery(self, which: int, count: int, fault: str | None, at: int,
                     entropy: int) -> None:
        """Run one delivering process for up to `count` syscalls; a reply fault (if that
        fault is enabled) hits the first request it can, from the `at`-th on."""
        live = [a for a in self.actors if a.kind == "deliver"]
        if not live:
            return
        actor = live[which % len(live)]
        pending = FAULTS[fault] if fault in self.config.faults else None
        for i in range(count):
            if actor not in self.actors:
                return
            hit = pending if pending and i >= at and pending.hits(actor.request) else None
            if hit is not None:
                pending = None
            self._syscall(actor, hit.name if hit else None, entropy)

    @rule(count=st.integers(1, 16))
    def run_reader(self, count: int) -> None:
        self._run_helper("reader", count)

    @rule(count=st.integers(1, 8))
    def run_cleaner(self, count: int) -> None:
        self._run_helper("cleaner", count)

    @rule(jump=st.sampled_from(CLOCK_JUMPS))
    def advance_clock(self, jump: int) -> None:
        self.host.kernel.clock_us += jump
        self.timeline.event("clock", f"time passes: {jump / 3_600_000_000:g} h")

    @precondition(lambda self: "kill" in self.config.faults)
    @rule(which=st.integers(0, 3))
    def kill(self, which: int) -> None:
        live = [a for a in self.actors if a.kind == "deliver"]
        if live:
            actor = live[which % len(live)]
            self.host.kernel.kill(actor.proc)
            self._end(actor, None, "killed (kill -9)")

    @precondition(lambda self: "sigterm" in self.config.faults)
    @rule(which=st.integers(0, 3))
    def sigterm(self, which: int) -> None:
        live = [a for a in self.actors if a.kind == "deliver" and not a.interrupt]
        if live:
            actor = live[which % len(live)]
            actor.interrupt = True
            self.timeline.event(actor.label, "receives SIGTERM")

    @precondition(lambda self: "power-loss" in self.config.faults)
    @rule(dropped=st.integers(0, 4095), fates=st.lists(st.integers(0, 3), max_size=12))
    def power_loss(self, dropped: int, fates: list[int]) -> None:
        choice = CrashChoice(dropped, tuple(fates))
        detail = self.host.power_loss(choice)
        self.timeline.event("host", "POWER LOSS - the machine restarts", detail)
        for actor in list(self.actors):
            self._end(actor, None, "died in the power loss")
        self._check(None)

    # --- running processes ------------------------------------------------------------------
    def _run_helper(self, kind: str, count: int) -> None:
        actor = next((a for a in self.actors if a.kind == kind), None)
        if actor is None:
            gen = reader(world.ROOT, self.reader_memory) if kind == "reader" else cleaner(world.ROOT)
            proc = self.host.spawn_helper(kind, 200 if kind == "reader" else 300)
            actor = Actor(kind[0].upper(), kind, proc, gen, None)
            self.actors.append(actor)
            self._advance(actor, None)
        for _ in range(count):
            if actor not in self.actors:
                return
            self._syscall(actor, None, 0)

    def _syscall(self, actor: Actor, fault: str | None, entropy: int) -> None:
        request = actor.request
        assert request is not None
        before = self.host.visible()
        if actor.interrupt:
            actor.interrupt = False
            reply: object = Interrupted("SIGTERM")
            line = self.timeline.syscall(actor.label, str(request), "interrupted (SIGTERM)")
        else:
            reply = self.host.kernel.execute(
                actor.proc, request, FAULTS[fault] if fault else None, entropy
            )
            line = self.timeline.syscall(actor.label, str(request), world.show(reply),
                                         fault or "")
        self.log.syscalls += 1
        self._advance(actor, reply)
        if actor.kind == "reader":
            self.host.note_reader_step(request, before)
        self._check(actor, before)
        for a in self.actors + [actor]:
            if a.record is not None:
                label = self._track_stage(a)
                if a is actor and label:
                    line.transition = label

    def _advance(self, actor: Actor, reply: object) -> None:
        try:
            actor.request = actor.gen.send(reply) if actor.request else next(actor.gen)
        except StopIteration as stop:
            self._end(actor, stop.value, None)
        except Exception as err:  # the agent crashed: its exit status is a bounce
            self._end(actor, PermanentFailure(f"uncaught {type(err).__name__}: {err}"), None)

    def _end(self, actor: Actor, outcome: Outcome | None, death: str | None) -> None:
        if actor in self.actors:
            self.actors.remove(actor)
        if actor.record is None:
            return
        actor.record.outcome = outcome
        actor.record.ended = death
        self.timeline.event(actor.label, death or f"reports {outcome}")
        if outcome is not None:
            self._raise(self.host.check_report(actor.record))
        self._track_stage(actor)

    def _track_stage(self, actor: Actor) -> str:
        assert actor.record is not None
        before = actor.stage
        after, label = self.host.stage_step(actor.record, before)
        actor.stage = after
        if label is None:
            note = f"off the protocol: {before.value} -> {after.value}"
            if self.config.strict_lifecycle:
                self._raise(Violation("L1", f"{actor.label} went {before.value} -> {after.value}"))
            return note
        return f"{before.value} -> {after.value}" if label else ""

    def _check(self, actor: Actor | None, before: dict[int, str] | None = None) -> None:
        for violation in self.host.check(actor.label if actor else None,
                                         actor is not None and actor.kind == "reader", before):
            if violation.prop in self.config.fail_on:
                self._raise(violation)
            self.log.observed.setdefault(violation.prop, str(violation))

    def _raise(self, violation: Violation | None) -> None:
        if violation is None:
            return
        if violation.prop not in self.config.fail_on and violation.prop != "L1":
            self.log.observed.setdefault(violation.prop, str(violation))
            return
        self.timeline.event("check", f"VIOLATED {violation}", self.host.explain(violation))
        self.log.violation = violation
        self.log.timeline = self.timeline
        raise PropertyViolated(violation)


def machine_for(config: Config, log: RunLog) -> type[DeliveryMachine]:
    """A state-machine class bound to one configuration and one run log."""
    return type("Check", (DeliveryMachine,), {"config": config, "log": log})
