"""The library API: check one strategy under one profile and fault set.

`verify(...)` runs the state machine under Hypothesis with the given budget and seed and
returns a `Verdict`: each property's status, the shrunk counterexample's timeline, how many
examples and syscalls ran and the seconds taken. `Verdict.as_json()` is the stable JSON the
CLI prints (schema documented in docs/counterexamples.md).
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis.stateful import get_state_machine_test

from maildircheck.harness.machine import (
    Config,
    DeliveryMachine,
    PropertyViolated,
    RunLog,
    machine_for,
)
from maildircheck.harness.progress import Progress
from maildircheck.harness.timeline import Timeline
from maildircheck.impl.strategies import resolve
from maildircheck.model.faults import DEFAULT_FAULTS, FAULTS, NFS_ONLY
from maildircheck.model.nfs import NFS_ENVS
from maildircheck.model.outcome import Strategy
from maildircheck.model.persistence import PROFILES
from maildircheck.model.properties import PROPERTIES, SAFETY, Violation


@dataclass
class Verdict:
    strategy: str
    env: str
    faults: tuple[str, ...]
    checked: tuple[str, ...]
    violation: Violation | None
    timeline: Timeline | None
    observed: dict[str, str]
    examples: int
    syscalls: int
    seconds: float
    seed: int | None
    max_examples: int = 200
    environment: Verdict | None = None  # when no strategy can keep durability here: the
    # correct strategy's counterexample that shows it (the strategy ran without the crash)

    @property
    def holds(self) -> bool:
        return self.violation is None

    def status(self, prop: str) -> str:
        """violated / holds / observed (seen, not checked) / not checked; and, when the
        search stopped at another property's violation, "no counterexample" (it was
        checked until then, which does not make it hold)."""
        if self.violation is not None and self.violation.prop == prop:
            return "violated"
        if prop in self.observed:
            return "violated" if prop in self.checked else "observed"
        if prop not in self.checked:
            return "not checked"
        return "holds" if self.violation is None else "no counterexample"

    def replay_command(self) -> str:
        faults = ",".join(self.faults) or "none"
        cmd = (
            f"maildircheck verify --strategy {shlex.quote(self.strategy)} --env {self.env} "
            f"--faults {faults} --max-examples {self.max_examples}"
        )
        if self.seed is not None:
            cmd += f" --seed {self.seed}"
        if "P6" in self.checked:
            cmd += " --quality"
        if "L1" in self.checked:
            cmd += " --strict-lifecycle"
        return cmd

    def as_json(self) -> dict[str, Any]:
        v = self.violation
        return {
            "verdict": "holds" if v is None else "violated",
            "strategy": self.strategy,
            "env": self.env,
            "faults": list(self.faults),
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
            "seed": self.seed,
            "replay": self.replay_command(),
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


@contextlib.contextmanager
def _same_search_everywhere() -> Iterator[None]:
    """Make a seeded search the same in every process. Hypothesis mixes into its draws
    constants it collects from whatever local modules the process has imported (keyed by
    module id), so a seed replayed from the CLI could explore differently than in the run
    that printed it. The checker's draws are indices and choices, not literals worth
    mining, so that pool is switched off for the duration of the search."""
    try:
        from hypothesis.internal.conjecture import providers

        original = providers._get_local_constants
        empty = type(original())()  # an empty pool of Hypothesis's own Constants type
        cache = providers.CONSTANTS_CACHE.cache
    except (ImportError, AttributeError):  # a Hypothesis without the pool
        yield
        return
    providers._get_local_constants = lambda: empty
    cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.clear()


def _counted(
    machine: type[DeliveryMachine], log: RunLog, progress: Progress
) -> type[DeliveryMachine]:
    """`machine`, telling `progress` how many examples the search has started, or that it
    found a violation and is shrinking it. The rules and draws are the inherited ones, so
    the search is the same."""

    def __init__(self: DeliveryMachine) -> None:
        machine.__init__(self)
        found, at = log.violation, log.examples_to_find
        if found is None or at is None:
            progress.count(log.examples, "searching")
        else:  # the runs from here on shrink; the count stays where the search stopped
            progress.count(at, f"shrinking the {found.prop} counterexample found at example {at}")

    return type("Counted", (machine,), {"__init__": __init__})


def verify(
    strategy: str | Strategy,
    env: str,
    faults: tuple[str, ...] = DEFAULT_FAULTS,
    *,
    max_examples: int = 200,
    seed_value: int | None = None,
    quality: bool = False,
    strict_lifecycle: bool = False,
    steps: int = 12,
    judge_environment: bool = True,
    progress: Progress | None = None,
) -> Verdict:
    """Search for a violation of P1-P5 (and P6 with `quality`) within the budget.

    Where no strategy can keep the durability promise (an NFS async export, R2) and the
    threat model has the crash that breaks it, the verdict on the environment is shown
    with the correct strategy's counterexample (`Verdict.environment`), and the strategy
    is checked without that crash. `judge_environment=False` turns this off. `progress`
    hears how many examples have run (harness/progress.py)."""
    func = resolve(strategy) if isinstance(strategy, str) else strategy
    name = strategy if isinstance(strategy, str) else getattr(func, "__name__", "strategy")
    checked = SAFETY + (("P6",) if quality else ()) + (("L1",) if strict_lifecycle else ())
    if env not in PROFILES and env not in NFS_ENVS:
        raise ValueError(f"unknown environment {env!r}")
    if set(faults) == set(FAULTS) and env not in NFS_ENVS:  # "all" on a local disk
        faults = tuple(f for f in faults if f not in NFS_ONLY)
    nfs_only = set(NFS_ONLY) & set(faults)
    if nfs_only and env not in NFS_ENVS:
        raise ValueError(f"fault {sorted(nfs_only)[0]!r} needs an NFS environment (nfs3-*)")
    profile = NFS_ENVS[env].export if env in NFS_ENVS else PROFILES[env]
    requested, environment = faults, None
    crashes = {"power-loss", "server-crash"} & set(faults)
    if crashes and not profile.durable_success_possible and judge_environment:
        environment = verify(
            "correct",
            env,
            tuple(sorted(crashes)),
            max_examples=max_examples,
            seed_value=seed_value if seed_value is not None else 1,
            steps=steps,
            judge_environment=False,
        )
        faults = tuple(f for f in faults if f not in crashes)
    config = Config(func, env, faults, frozenset(checked), strict_lifecycle)
    log = RunLog()
    machine = machine_for(config, log)
    if progress is not None:
        machine = _counted(machine, log, progress)
    test = get_state_machine_test(
        machine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            derandomize=seed_value is None,
            verbosity=Verbosity.quiet,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            phases=(Phase.generate, Phase.shrink),
            print_blob=False,
        ),
    )
    if seed_value is not None:
        test = seed(seed_value)(test)
    started = time.perf_counter()
    if progress is not None:
        progress.start(f"{name} on {env}", max_examples, "examples")
    try:
        with _same_search_everywhere():
            test()
    except PropertyViolated:
        pass
    finally:
        if progress is not None:
            found = f"{log.violation.prop} violated" if log.violation else "no violation"
            progress.stop(f"{found} ({log.examples} examples)")
    return Verdict(
        name,
        env,
        requested,
        checked,
        log.violation,
        log.timeline if log.violation else None,
        dict(log.observed),
        log.examples,
        log.syscalls,
        time.perf_counter() - started,
        seed_value,
        max_examples,
        environment if environment is not None and not environment.holds else None,
    )
