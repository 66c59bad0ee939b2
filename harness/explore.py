"""Breadth-first exploration of the checker's state machine within a bound (spec E8).

Where `verify` samples runs with Hypothesis, `explore` enumerates them: from the empty run,
every step the state machine could take next - start a delivery, one syscall of a
delivery (with each reply fault that can hit that very syscall), one syscall of the
reader or the cleaner, a clock jump, a kill, SIGTERM, a crash in every crash state the
profile allows - in order of the syscalls made, so the first violation found is a
shortest one (fewest syscalls, then fewest steps). A step is a rule call of the rule table
(harness/rules.py) with its count set to one syscall, so a counterexample is a program the
shrinker's `replay` runs and a timeline like verify's.

Two reductions, each kept exact (tests/test_explore.py compares them with the plain tree
search on small bounds):
- states are told apart by their trace (every syscall with its request, reply and fault,
  every event with its details); the model is deterministic, so two runs with one trace are
  in one state, and a state reached twice is expanded once;
- symmetry: messages never handed to a delivery are alike (same shape, same length), and
  so are pids never given out on a host, so a start takes the first such message and the
  first such pid, beside every message and pid already in play.
Steps of independent processes are not commuted: every syscall moves the clock, which the
deliveries read and stamp on files, so two orders rarely leave one state. Instead the bound
counts preemptions, as CHESS does (Musuvathi and Qadeer, "Iterative context bounding for
systematic testing of multithreaded programs", PLDI 2007): a step of one process while
another that ran last is still alive. Runs one delivery after the other need none.

The bound: `syscalls` (depth), `deliveries` started, `faults` (injected replies, kills,
SIGTERM, crashes, clock steps back, reboots), `jumps` of the clock, `preemptions`, the
message `sizes` a new message may have (plain, through a full pipe), how many syscalls the
reader and the cleaner make (none by default), and the `entropies` getrandom answers.

The search goes a depth (a syscall) at a time; a round expands the frontier's programs, in
`workers` processes or in this one - each replays its program (generators cannot be
copied), then each next step - and the frontier is deduplicated here by a 128-bit digest
of each trace. The answer does not depend on the number of workers.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from maildircheck.harness.check import Check
from maildircheck.harness.draws import Choice, Step
from maildircheck.harness.machine import PID_POOL, DeliveryMachine
from maildircheck.harness.messages import PIPE_CHUNKS, Shape
from maildircheck.harness.progress import Progress
from maildircheck.harness.rules import CLOCK_JUMPS, machine_for
from maildircheck.harness.shrink import replay
from maildircheck.harness.timeline import Timeline
from maildircheck.model.faults import PID_NAMESPACES, kind_of_type
from maildircheck.model.fs import DataOp
from maildircheck.model.properties import Violation

FAULT_STEPS = frozenset(  # the steps that count as faults (a clock jump counts apart)
    ("r_kill", "r_sigterm", "r_power", "r_server", "r_client", "r_clock_back", "r_reboot")
)
PROCESS_STEPS = frozenset(("r_start", "r_run", "r_reader", "r_cleaner"))  # run a process
MAX_CRASH_STATES = 256  # crash choices tried per crash step (dropped sets x data fates)


@dataclass(frozen=True)
class Bound:
    syscalls: int = 20
    deliveries: int = 2
    faults: int = 1
    jumps: int = 0
    preemptions: int = 1
    sizes: tuple[int, ...] = (1,)  # the sizes a new message may have
    entropies: tuple[int, ...] = (0,)
    reader: int = 0  # the most syscalls the reader makes, and the tmp/ cleaner: each of
    cleaner: int = 0  # theirs moves the clock, so each placement of one is a state of its own


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
    workers: int = 1


@dataclass(frozen=True)
class Node:
    """A run reached: its program, and what the bound counts of it that the program alone
    does not say (preemptions, the process that ran last)."""

    program: tuple[Step, ...]
    syscalls: int
    violation: Violation | None
    preemptions: int = 0
    last: str = ""  # the process that made the last syscall

    def count(self, *rules: str) -> int:
        """How many steps of the program are calls of `rules`."""
        return sum(step.rule in rules for step in self.program)

    @property
    def faults(self) -> int:
        return self.count(*FAULT_STEPS) + sum(_armed(step) for step in self.program)


def explore(
    check: Check,
    bound: Bound = Bound(),
    max_states: int | None = None,
    reduce: bool = True,
    workers: int = 1,
    progress: Progress | None = None,
) -> Exploration:
    """Every run within `bound`, shortest first; the first that violates a checked property
    is the answer. `reduce=False` is the plain tree search: every state expanded each time
    it is reached, every message and pid tried (the baseline the reductions are tested
    against)."""
    started = time.perf_counter()
    progress = progress or Progress()
    progress.start(f"explore {check.label}", bound.syscalls, "syscalls deep")
    seen: set[bytes] = set()
    by_depth: dict[int, int] = {0: 1}
    frontier = [Node((), 0, None)]
    found: Node | None = None
    complete = True
    pool = None
    if workers > 1:
        pool = ProcessPoolExecutor(workers, initializer=_init, initargs=(check,))
    _init(check)
    try:
        depth = 0
        while frontier and found is None:
            later: list[Node] = []
            while frontier:  # a round: the frontier's children at this depth join it
                found = min((n for n in frontier if n.violation), key=_shortest, default=None)
                if found is not None:
                    break
                now: list[Node] = []
                for children, capped in _expand_all(pool, frontier, bound, reduce, workers):
                    complete = complete and not capped
                    for child, key in children:
                        if key in seen:
                            continue
                        seen.add(key)
                        by_depth[child.syscalls] = by_depth.get(child.syscalls, 0) + 1
                        (now if child.syscalls == depth else later).append(child)
                frontier = now
                if max_states is not None and len(seen) >= max_states:
                    complete, frontier, later = False, [], []
            progress.count(depth, f"depth {depth} done: {len(seen) + 1} states")
            frontier, depth = later, depth + 1
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        progress.stop(f"{len(seen) + 1} states, {'a violation' if found else 'no violation'}")
    run = replay(_MACHINE[0], list(found.program)) if found is not None else None
    return Exploration(
        check,
        bound,
        run.violation if run else None,
        run.timeline if run else None,
        list(found.program) if found else [],
        len(seen) + 1,
        max(by_depth),
        time.perf_counter() - started,
        complete,
        dict(sorted(by_depth.items())),
        workers,
    )


def _shortest(node: Node) -> tuple[int, int, str]:
    return (node.syscalls, len(node.program), repr(node.program))  # the same with any workers


_MACHINE: list[type[DeliveryMachine]] = []  # this process's machine class for the check


def _init(check: Check) -> None:
    _MACHINE[:] = [machine_for(check)]


def _expand_all(
    pool: ProcessPoolExecutor | None,
    frontier: Sequence[Node],
    bound: Bound,
    reduce: bool,
    workers: int,
) -> Iterator[tuple[list[tuple[Node, bytes]], bool]]:
    if pool is None:
        yield from (expand(n, bound, reduce) for n in frontier)
        return
    chunk = max(1, len(frontier) // (workers * 4))
    yield from pool.map(_expand_task, [(n, bound, reduce) for n in frontier], chunksize=chunk)


def _expand_task(task: tuple[Node, Bound, bool]) -> tuple[list[tuple[Node, bytes]], bool]:
    return expand(*task)


def expand(node: Node, bound: Bound, reduce: bool) -> tuple[list[tuple[Node, bytes]], bool]:
    """The children of `node` within `bound`, each with the digest of its trace (of its
    program without the reduction), and whether a crash had more states than were tried."""
    machine = _MACHINE[0]
    parent = replay(machine, list(node.program)).machine
    capped = [False]
    children = []
    for step in _steps(parent, node, bound, reduce, capped):
        actor, preempts = _who(parent, node, step)
        if node.preemptions + preempts > bound.preemptions:
            continue
        run = replay(machine, [*node.program, step])
        syscalls = run.machine.timeline.syscalls
        if syscalls > bound.syscalls:
            continue
        child = Node(
            (*node.program, step),
            syscalls,
            run.violation,
            node.preemptions + preempts,
            actor or node.last,
        )
        key = _digest(run.machine.timeline) if reduce else _digest(child.program)
        children.append((child, key))
    return children, capped[0]


def _who(m: DeliveryMachine, node: Node, step: Step) -> tuple[str, int]:
    """The process `step` runs (none for a fault or a jump), and 1 if running it preempts
    the process that ran last while that one is still alive."""
    if step.rule not in PROCESS_STEPS:
        return "", 0
    arguments = dict(step.arguments)
    live = m.deliveries()
    if step.rule == "r_start":
        actor = f"D{m.count + 1}"
    elif step.rule == "r_run":
        actor = live[arguments["which"] % len(live)].label
    else:
        actor = step.rule[2].upper()
    alive = {a.label for a in m.actors}
    return actor, int(bool(node.last) and node.last != actor and node.last in alive)


def _armed(step: Step) -> bool:
    return dict(step.arguments).get("fault") is not None


def _digest(of: Timeline | tuple[Step, ...]) -> bytes:
    if isinstance(of, Timeline):
        text = repr(
            [(ln.kind, ln.actor, ln.text, ln.reply, ln.fault, tuple(ln.detail)) for ln in of.lines]
        )
    else:
        text = repr(of)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _steps(
    m: DeliveryMachine, node: Node, bound: Bound, reduce: bool, capped: list[bool]
) -> Iterator[Step]:
    """Every step the machine can take next within the bound (`capped` is set when a crash
    had more states than MAX_CRASH_STATES, so the search was not exhaustive)."""
    table = m.table
    can_fault = node.faults < bound.faults
    live = m.deliveries()
    if "r_start" in table and node.count("r_start") < bound.deliveries and m.can_start():
        yield from _starts(m, bound, reduce)
    aimed = table["r_run"].draws["fault"]  # the (fault, kind) aims the search draws from
    aims = [aim for aim in aimed.options if aim is not None] if isinstance(aimed, Choice) else []
    for which, actor in enumerate(live):
        yield _step("r_run", which=which, count=1, fault=None, cut=0)
        if can_fault and actor.request is not None:
            kind = kind_of_type(type(actor.request))
            for fault, aimed_at in aims:
                if aimed_at == kind and fault.hits(actor.request):
                    yield _step("r_run", which=which, count=1, fault=(fault, kind), cut=0)
    if node.count("r_reader") < bound.reader:
        yield _step("r_reader", count=1)
    if node.count("r_cleaner") < bound.cleaner and table["r_cleaner"].allows(m):
        yield _step("r_cleaner", count=1)
    if node.count("r_clock") < bound.jumps and table["r_clock"].allows(m):
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


def _starts(m: DeliveryMachine, bound: Bound, reduce: bool) -> Iterator[Step]:
    """The MTA's starts: which message, on which host, with which pid (as
    `DeliveryMachine.start_delivery` picks them), and the new message's size."""
    busy = {a.record.message for a in m.deliveries() if a.record}
    waiting = [mid for mid in m.host.undelivered() if mid not in busy]
    fresh = [i for i, mid in enumerate(waiting) if mid not in m.host.mail]
    messages = [i for i in range(len(waiting)) if not reduce or i not in fresh[1:]]
    for on, host in enumerate(m.host.kernels):
        used = {a.proc.pid for a in m.actors if a.proc.host == host}
        free = (
            list(PID_POOL)
            if PID_NAMESPACES in m.check.faults
            else [p for p in PID_POOL if p not in used]
        )
        given = set(itertools.chain(*m.boots.get(host, ([], []))))
        new_pids = [i for i, p in enumerate(free) if p not in given]
        pids = [i for i in range(len(free)) if not reduce or i not in new_pids[1:]]
        for which, pid in itertools.product(messages, pids):
            sizes = bound.sizes if which in fresh else bound.sizes[:1]  # the shape is set once
            for size, entropy in itertools.product(sizes, bound.entropies):
                yield _step(
                    "r_start", which=which, pid=pid, count=1, entropy=entropy, fault=None,
                    mail=(Shape(size), PIPE_CHUNKS[0]), on=on, cut=0,
                )  # fmt: skip


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
