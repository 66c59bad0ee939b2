"""The library API: run one `Check` and return its `Verdict`.

`verify(check)` runs the checker's state machine (harness/machine.py) under Hypothesis with
the check's budget and seed - spread over processes when it asks for workers
(harness/parallel.py) - and returns a `Verdict`: the Check it answers, each property's
status, the shrunk counterexample's timeline, how many examples and syscalls ran and the
seconds taken. `Verdict.as_json()` is the stable JSON the CLI prints (schema documented in
docs/counterexamples.md).

Where no strategy can keep the durability promise (an NFS async export, R2) and the check's
faults hold the storage crash that breaks it, the verdict on the environment is shown with
the correct strategy's counterexample (`Verdict.environment`), and the strategy itself is
searched without that crash.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis.stateful import run_state_machine_as_test

from maildircheck.harness.check import Check
from maildircheck.harness.draws import Step
from maildircheck.harness.hypothesis_internals import same_search_everywhere
from maildircheck.harness.machine import DeliveryMachine, PropertyViolated, RunLog
from maildircheck.harness.progress import Progress
from maildircheck.harness.rules import machine_for
from maildircheck.harness.shrink import shrink
from maildircheck.harness.timeline import Timeline
from maildircheck.harness.vocabulary import ENVIRONMENT_CANNOT, HOLDS, VIOLATED
from maildircheck.model.faults import storage_crashes
from maildircheck.model.properties import PROPERTIES, SAFETY, Violation

STEPS = 12  # rules per run (Hypothesis's stateful_step_count)
CORRECT = "correct"  # the strategy whose counterexample shows what an environment cannot do


@dataclass(frozen=True)
class Spread:
    """`verify --workers N`: the N searches a verdict was chosen from."""

    searches: int
    first_seed: int | None
    last_seed: int | None
    examples: int  # in all the searches


@dataclass
class Verdict:
    check: Check
    violation: Violation | None
    timeline: Timeline | None
    observed: dict[str, str]  # property -> first observation (seen, not failed on)
    examples: int
    syscalls: int
    seconds: float
    environment: Verdict | None = None  # when no strategy can keep durability here: the
    # correct strategy's counterexample that shows it (the strategy ran without the crash)
    program: list[Step] = field(default_factory=list)  # the counterexample's rule calls (E7)
    spread: Spread | None = None  # when it is one of several searches' (harness/parallel.py)

    @property
    def holds(self) -> bool:
        return self.violation is None

    @property
    def verdict(self) -> str:
        """holds, violated, or environment cannot keep it (harness/vocabulary.py)."""
        if self.violation is not None:
            return VIOLATED
        return HOLDS if self.environment is None else ENVIRONMENT_CANNOT

    def status(self, prop: str) -> str:
        """violated / holds / observed (seen, not checked) / not checked; and, when the
        search stopped at another property's violation, "no counterexample" (it was
        checked until then, which does not make it hold)."""
        if self.violation is not None and self.violation.prop == prop:
            return "violated"
        if prop in self.observed:
            return "violated" if prop in self.check.properties else "observed"
        if prop not in self.check.properties:
            return "not checked"
        return "holds" if self.violation is None else "no counterexample"

    def replay_command(self) -> str:
        return self.check.replay_command()

    def as_json(self) -> dict[str, Any]:
        v = self.violation
        return {
            "verdict": self.verdict,
            "strategy": self.check.strategy,
            "env": self.check.env.name,
            "faults": [f.name for f in self.check.faults],
            "properties": {
                p: {
                    "name": PROPERTIES[p].name,
                    "status": self.status(p),
                    "safety": PROPERTIES[p].safety,
                    "kind": PROPERTIES[p].kind,
                }
                for p in PROPERTIES
            },
            "violation": None
            if v is None
            else {"property": v.prop, "name": PROPERTIES[v.prop].name, "why": v.why},
            "counterexample": None
            if self.timeline is None
            else {
                "syscalls": self.timeline.syscalls,
                "steps": self.timeline.as_json(),
            },
            "examples": self.examples,
            "syscalls_run": self.syscalls,
            "seconds": round(self.seconds, 3),
            "seed": self.check.seed,
            "replay": self.replay_command(),
            "searches": None
            if self.spread is None
            else {
                "count": self.spread.searches,
                "seeds": [self.spread.first_seed, self.spread.last_seed],
                "examples": self.spread.examples,
            },
            "environment": None
            if self.environment is None
            else {
                "durable_success_possible": False,
                "why": ENVIRONMENT_WHY,
                "evidence": self.environment.as_json(),
            },
        }


ENVIRONMENT_WHY = (
    "the server acknowledges data and metadata before they are stable, COMMIT included "
    "(R2): a server crash can lose mail whatever the agent does, so no strategy can keep "
    "the durability promise here; the strategy itself was checked without server crashes"
)


def verify(check: Check, progress: Progress | None = None) -> Verdict:
    """Search for a violation of the check's properties within its budget. `progress`
    hears how many examples have run (harness/progress.py)."""
    if check.workers > 1:
        from maildircheck.harness.parallel import verify_spread

        return verify_spread(check, progress)
    crashes = storage_crashes(check.faults)
    if not crashes or check.env.durable_success_possible:
        return search(check, progress)
    evidence = search(
        replace(
            check,
            strategy=CORRECT,
            faults=tuple(sorted(crashes, key=lambda f: f.name)),
            properties=SAFETY,
            seed=1 if check.seed is None else check.seed,
        ),
        None,
    )
    without = tuple(f for f in check.faults if f not in crashes)
    verdict = search(replace(check, faults=without), progress, asked=check)
    if not evidence.holds:
        verdict.environment = evidence
    return verdict


def search(searched: Check, progress: Progress | None, asked: Check | None = None) -> Verdict:
    """One Hypothesis search of `searched`, answered as the verdict on `asked` (the check
    as it was asked for, before the environment's crash was set aside)."""
    log = RunLog()
    rules = machine_for(searched)

    def __init__(self: DeliveryMachine) -> None:
        rules.__init__(self, log)
        if progress is not None:
            found, at = log.violation, log.examples_to_find
            if found is None or at is None:
                progress.count(log.examples, "searching")
            else:  # the runs from here on shrink; the count stays where the search stopped
                what = f"shrinking the {found.prop} counterexample found at example {at}"
                progress.count(at, what)

    # Each run of this search is one instance, sharing `log`. The class's name and its
    # __init__'s signature are what Hypothesis derives a derandomized search from
    # (function_digest): kept as they were, so an unseeded search explores as before.
    machine = type("Check", (rules,), {"__init__": __init__})
    if searched.seed is not None:
        machine = seed(searched.seed)(machine)
    started = time.perf_counter()
    if progress is not None:
        progress.start(searched.label, searched.max_examples, "examples")
    try:
        with same_search_everywhere():
            run_state_machine_as_test(machine, settings=_settings(searched))
    except PropertyViolated:
        if searched.shrink:  # E7: the checker's own shrinker, on the failing run's program
            shrunk = shrink(machine, log.program)
            if shrunk is not None:
                log.violation, log.timeline, log.program = (
                    shrunk.violation,
                    shrunk.timeline,
                    shrunk.program,
                )
    finally:
        if progress is not None:
            found = f"{log.violation.prop} violated" if log.violation else "no violation"
            progress.stop(f"{found} ({log.examples} examples)")
    return Verdict(
        asked or searched,
        log.violation,
        log.timeline if log.violation else None,
        dict(log.observed),
        log.examples,
        log.syscalls,
        time.perf_counter() - started,
        program=log.program if log.violation else [],
    )


def _settings(check: Check) -> settings:
    return settings(
        max_examples=check.max_examples,
        stateful_step_count=STEPS,
        deadline=None,
        database=None,
        derandomize=check.seed is None,
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate,),  # a failing run is shrunk by harness/shrink.py (E7)
        print_blob=False,
    )
