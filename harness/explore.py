"""Breadth-first exploration of the checker's state machine within a bound (spec E8).

Where `verify` samples runs with Hypothesis, `explore` enumerates them: from the empty run,
every step the state machine could take next - start a delivery, one syscall of a
delivery (with each reply fault that can hit that very syscall), one syscall of the
reader or the cleaner, a clock jump, a kill, SIGTERM, a crash in every crash state the
profile allows - in order of the syscalls made, so the first violation found is a
shortest one (fewest syscalls, then fewest steps). A step is a rule call of the rule table
(harness/rules.py) with its count set to one syscall, so a counterexample is a program the
shrinker's `replay` runs and a timeline like verify's.

States are told apart by their trace: every syscall with its request, reply and fault,
and every event with its details (a crash's kept and lost operations, a clock jump, a
delivery's message). The model is deterministic, so two runs with one trace are in one
state, and a state reached twice is expanded once. A fault is only armed for the syscall
it hits, so no state holds a fault the trace does not show. This is the only reduction:
steps of independent processes are not commuted (every syscall moves the clock, which the
deliveries read, so few are independent here).

The bound: `syscalls` (depth), `deliveries` started, `faults` (injected replies, kills,
SIGTERM, crashes, clock steps back, reboots), `jumps` of the clock, and whether the reader
and the cleaner run (off by default); the messages are the plainest (one byte, a full
pipe) and getrandom answers one of `entropies`.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from maildircheck.harness.check import Check
from maildircheck.harness.draws import Choice, Step
from maildircheck.harness.machine import DeliveryMachine
from maildircheck.harness.messages import PIPE_CHUNKS, SIZES, Shape
from maildircheck.harness.rules import CLOCK_JUMPS, machine_for
from maildircheck.harness.shrink import replay
from maildircheck.harness.timeline import Timeline
from maildircheck.model.faults import kind_of_type
from maildircheck.model.fs import DataOp
from maildircheck.model.properties import Violation

PLAIN = (Shape(SIZES[0]), PIPE_CHUNKS[0])
FAULT_STEPS = frozenset(  # the steps that count as faults (a clock jump counts apart)
    ("r_kill", "r_sigterm", "r_power", "r_server", "r_client", "r_clock_back", "r_reboot")
)
MAX_CRASH_STATES = 256  # crash choices tried per crash step (dropped sets x data fates)


@dataclass(frozen=True)
class Bound:
    syscalls: int = 20
    deliveries: int = 2
    faults: int = 1
    jumps: int = 0
    entropies: tuple[int, ...] = (0,)
    reader: bool = False  # every reader syscall moves the clock, so each placement of one
    cleaner: bool = False  # is a state of its own: on, they multiply the states tenfold


@dataclass
class Exploration:
    check: Check
    bound: Bound
    violation: Violation | None
    timeline: Timeline | None
    program: list[Step]
    states: int  # distinct states reached
    depth: int  # the most syscalls a state reached had
    seconds: float
    complete: bool = True  # False when a state limit stopped it, or a crash had more states
    # than MAX_CRASH_STATES: then "no violation" holds only for what was explored
    by_depth: dict[int, int] = field(default_factory=dict)  # syscalls -> states


@dataclass
class _Node:
    program: list[Step]
    machine: DeliveryMachine
    violation: Violation | None
    deliveries: int
    faults: int
    jumps: int


def explore(
    check: Check, bound: Bound = Bound(), max_states: int | None = None, reduce: bool = True
) -> Exploration:
    """Every run within `bound`, shortest first; the first that violates a checked property
    is the answer. `reduce=False` expands a state each time it is reached (a tree search:
    the baseline the reduction is tested against)."""
    started = time.perf_counter()
    machine = machine_for(check)
    root = _run(machine, [])
    seen: set[object] = {_key(root.machine.timeline)}
    queue = collections.deque([root])  # 0-1 breadth first: a step without a syscall first
    by_depth: collections.Counter[int] = collections.Counter({0: 1})
    found: _Node | None = None
    complete = True
    capped = [False]
    while queue:
        node = queue.popleft()
        if node.violation is not None:
            found = node
            break
        for step in _steps(node, bound, capped):
            child = _run(machine, [*node.program, step])
            depth = child.machine.timeline.syscalls
            if depth > bound.syscalls:
                continue
            key = _key(child.machine.timeline) if reduce else len(seen)
            if key in seen:
                continue
            seen.add(key)
            by_depth[depth] += 1
            if depth == node.machine.timeline.syscalls:
                queue.appendleft(child)
            else:
                queue.append(child)
        if max_states is not None and len(seen) >= max_states:
            complete = False
            break
    return Exploration(
        check,
        bound,
        found.violation if found else None,
        found.machine.timeline if found else None,
        found.program if found else [],
        len(seen),
        max(by_depth),
        time.perf_counter() - started,
        complete and not capped[0],
        dict(sorted(by_depth.items())),
    )


def _run(machine: type[DeliveryMachine], program: list[Step]) -> _Node:
    run = replay(machine, program)
    rules = [s.rule for s in program]
    return _Node(
        program,
        run.machine,
        run.violation,
        rules.count("r_start"),
        sum(r in FAULT_STEPS for r in rules) + sum(_armed(s) for s in program),
        rules.count("r_clock"),
    )


def _armed(step: Step) -> bool:
    return dict(step.arguments).get("fault") is not None


def _key(timeline: Timeline) -> tuple[Any, ...]:
    return tuple(
        (ln.kind, ln.actor, ln.text, ln.reply, ln.fault, tuple(ln.detail)) for ln in timeline.lines
    )


def _steps(node: _Node, bound: Bound, capped: list[bool]) -> Iterator[Step]:
    """Every step the machine can take next within the bound (`capped` is set when a crash
    had more states than MAX_CRASH_STATES, so the search was not exhaustive)."""
    m, table = node.machine, node.machine.table
    can_fault = node.faults < bound.faults
    live = m.deliveries()
    if "r_start" in table and node.deliveries < bound.deliveries and m.can_start():
        hosts = range(len(m.host.kernels))
        for which, pid, entropy, on in itertools.product(
            range(3), range(3), bound.entropies, hosts
        ):
            yield _step(
                "r_start", which=which, pid=pid, count=1, entropy=entropy, fault=None,
                mail=PLAIN, on=on, cut=0,
            )  # fmt: skip
    aimed = table["r_run"].draws["fault"]  # the (fault, kind) aims the search draws from
    aims = [aim for aim in aimed.options if aim is not None] if isinstance(aimed, Choice) else []
    for which, actor in enumerate(live):
        yield _step("r_run", which=which, count=1, fault=None, cut=0)
        if can_fault and actor.request is not None:
            kind = kind_of_type(type(actor.request))
            for fault, aimed_at in aims:
                if aimed_at == kind and fault.hits(actor.request):
                    yield _step("r_run", which=which, count=1, fault=(fault, kind), cut=0)
    if bound.reader:
        yield _step("r_reader", count=1)
    if bound.cleaner and table["r_cleaner"].allows(m):
        yield _step("r_cleaner", count=1)
    if node.jumps < bound.jumps and table["r_clock"].allows(m):
        for jump in CLOCK_JUMPS:
            yield _step("r_clock", jump=jump)
    if not can_fault:
        return
    for rule in ("r_kill", "r_sigterm"):
        if rule in table:
            for which in range(len(live)):
                yield _step(rule, which=which)
    for rule in ("r_power", "r_server"):
        if rule in table and table[rule].allows(m):
            for dropped, fates in _crash_states(m, capped):
                yield _step(rule, dropped=dropped, fates=fates)
    for rule in ("r_client", "r_reboot"):
        if rule in table:
            for which in range(len(m.host.kernels)):
                yield _step(rule, which=which)
    if "r_clock_back" in table:
        for step_back, which in itertools.product((1, 1_000_000), range(len(m.host.kernels))):
            yield _step("r_clock_back", step=step_back, which=which)


def _step(rule: str, **arguments: Any) -> Step:
    return Step(rule, tuple(arguments.items()))


def _crash_states(machine: DeliveryMachine, capped: list[bool]) -> Iterator[tuple[int, list[int]]]:
    """The crash choices worth telling apart now: each subset of the pending metadata
    operations dropped, each fate of each pending data write (the trace of the crash then
    says which of them the profile allowed)."""
    pending = machine.host.fs.pending
    data = sum(isinstance(op, DataOp) for op in pending)
    meta = len(pending) - data
    if (1 << meta) * 4**data > MAX_CRASH_STATES:
        capped[0] = True
    choices = itertools.product(range(1 << min(meta, 12)), itertools.product(range(4), repeat=data))
    for dropped, fates in itertools.islice(choices, MAX_CRASH_STATES):
        yield dropped, list(fates)
