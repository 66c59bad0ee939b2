"""The checker's shrinker (spec E7): a failing run, replayed on the model with fewer and
simpler rule calls until no change keeps it failing.

Hypothesis finds the failing run; its program (the `Step`s harness/rules.py recorded) is
then shrunk here, by replaying programs straight on a fresh state machine - no Hypothesis
engine between the steps, so a replay costs only the model's time. A candidate is kept
when it violates the same property and is smaller: fewer syscalls in its timeline, then
fewer steps, then a lower rank of its arguments (harness/draws.py). Each kept candidate
lowers that key, so shrinking ends; MAX_REPLAYS bounds it besides.

The passes, repeated until a round keeps nothing: delete one step, then two neighbours
(last first) - a start deleted may hand its message's shape to the next start, since a
message takes its shape at its first delivery; merge a delivery's step into the one before
it; then, step by step, each argument's simpler values, simplest first - the order and the
data first, each step's count last. A smaller message also tries the counts after it
lowered by the reads and writes it saves (`Draw.slack`). A step whose precondition no
longer holds is skipped, and the run's own record is the program kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from maildircheck.harness.draws import Draw, Step, ranked
from maildircheck.harness.machine import DeliveryMachine, PropertyViolated
from maildircheck.harness.timeline import Timeline
from maildircheck.model.properties import Violation

MAX_REPLAYS = 4000
SLACK_STEPS = 4  # how many timed steps after a change may take up its slack


@dataclass
class Run:
    machine: DeliveryMachine  # as the run left it
    violation: Violation | None

    @property
    def program(self) -> list[Step]:  # the steps that ran (the machine's own record)
        return self.machine.program

    @property
    def timeline(self) -> Timeline:
        return self.machine.timeline

    @property
    def key(self) -> tuple[int, int, int]:
        """What shrinking lowers: syscalls, then steps, then the rank of the values."""
        table = self.machine.table
        rank = sum(ranked(table[s.rule].draws, s.called()) for s in self.program)
        return (self.timeline.syscalls, len(self.program), rank)


def replay(machine: type[DeliveryMachine], program: list[Step]) -> Run:
    """Run `program` on a fresh machine; a step whose precondition fails is skipped."""
    run = machine()
    violation = None
    try:
        for step in program:
            if run.table[step.rule].allows(run):
                getattr(run, step.rule)(**step.called())
    except PropertyViolated as raised:
        violation = raised.violation
    return Run(run, violation)


def shrink(machine: type[DeliveryMachine], program: list[Step]) -> Run | None:
    """The smallest run found that fails like `program` does; None when `program` itself
    does not fail when replayed (it always does: the model is deterministic)."""
    best = replay(machine, program)
    if best.violation is None:
        return None
    prop, best_key = best.violation.prop, best.key
    tried = {repr(best.program)}

    def better(candidate: list[Step]) -> bool:
        nonlocal best, best_key
        if len(tried) >= MAX_REPLAYS or repr(candidate) in tried:
            return False
        tried.add(repr(candidate))
        run = replay(machine, candidate)
        if run.violation is None or run.violation.prop != prop:
            return False
        key = run.key
        if key >= best_key:
            return False
        best, best_key = run, key
        tried.add(repr(run.program))
        return True

    draws = {name: entry.draws for name, entry in machine.table.items()}
    kept = True
    while kept and len(tried) < MAX_REPLAYS:
        kept = False
        for width in (1, 2):
            at = len(best.program) - width
            while at >= 0:
                deleted, rest = best.program[at], best.program[:at] + best.program[at + width :]
                if better(rest):
                    kept = True
                elif width == 1 and (carried := _carried(deleted, rest, at)) is not None:
                    kept |= better(carried)
                at = min(at, len(best.program) - width) - 1
        at = len(best.program) - 2
        while at >= 0:
            merged = _merged(best.program[at], best.program[at + 1])
            if merged is not None:
                kept |= better([*best.program[:at], merged, *best.program[at + 2 :]])
            at = min(at, len(best.program) - 1) - 1
        for timing in (False, True):  # what runs first, then how far each step runs
            at = 0
            while at < len(best.program):
                for name, _ in best.program[at].arguments:
                    if (name == "count") == timing and at < len(best.program):
                        kept |= _simplify(best.program, at, name, draws, better)
                at += 1
    return best


def _simplify(
    program: list[Step],
    at: int,
    name: str,
    draws: dict[str, dict[str, Draw[Any]]],
    better: Callable[[list[Step]], bool],
) -> bool:
    """Step `at`'s argument `name` at its simplest value that keeps the failure. A value
    that makes the run shorter (a smaller message) may need the counts after it lowered by
    as much, so that the run stops where it did: those are tried too (`Draw.slack`)."""
    step = program[at]
    called = step.called()
    if name not in called:
        return False
    draw = draws[step.rule][name]
    for simpler in draw.simpler(called[name]):
        candidate = [*program[:at], step.with_argument(name, simpler), *program[at + 1 :]]
        if better(candidate):
            return True
        timed = [j for j in range(at, len(candidate)) if "count" in candidate[j].called()]
        for less in draw.slack(called[name], simpler):
            for j in timed[:SLACK_STEPS]:
                count = candidate[j].called()["count"]
                if count > less:
                    refit = candidate[j].with_argument("count", count - less)
                    if better([*candidate[:j], refit, *candidate[j + 1 :]]):
                        return True
    return False


def _carried(deleted: Step, rest: list[Step], at: int) -> list[Step] | None:
    """`rest` (the program without the start `deleted`, which was at `at`) with the next
    start given the deleted one's message shape: a message takes its shape at its first
    delivery, so a start that only gave the message its shape can go."""
    if deleted.rule != "r_start":
        return None
    mail = deleted.called()["mail"]
    for j in range(at, len(rest)):
        if rest[j].rule == "r_start":
            if rest[j].called()["mail"] == mail:
                return None
            return [*rest[:j], rest[j].with_argument("mail", mail), *rest[j + 1 :]]
    return None


def _merged(first: Step, then: Step) -> Step | None:
    """`first` running on through what `then` (a step of a delivery) ran: one step whose
    count is both counts, armed with `then`'s fault when `first` had none."""
    if then.rule != "r_run" or first.rule not in ("r_start", "r_run"):
        return None
    a, b = first.called(), then.called()
    merged = first.with_argument("count", a["count"] + b["count"])
    if a.get("fault") is None and b.get("fault") is not None:
        merged = merged.with_argument("fault", b["fault"]).with_argument("cut", b["cut"])
    return merged
