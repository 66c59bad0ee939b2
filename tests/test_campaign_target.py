"""Fuzz targets for long campaigns (docs/campaigns.md): the checker's state machine, bound to
one strategy and one environment with that environment's threat model, exposed as one
pytest-collectable `RuleBasedStateMachine.TestCase` per pair - what HypoFuzz
(`hypothesis fuzz -- tests/test_campaign_target.py`) and plain pytest both run.

The targets are the correct strategy under every environment: in CI each runs a small,
derandomized search (it must hold); a campaign spends hours trying to break it. Settings:

- default: CI_BUDGET examples, derandomized, no example database;
- MAILDIRCHECK_PROFILE=long: LONG_BUDGET examples and longer runs (LONG_STEPS), random,
  with Hypothesis's example database;
- MAILDIRCHECK_DB=/shared/dir: that directory as the example database
  (DirectoryBasedExampleDatabase), or MAILDIRCHECK_DB=redis://host:port/0 (or unix://path)
  a Redis server (Hypothesis's RedisExampleDatabase), so several workers or machines work
  on one search and any of them replays what another found; random. It becomes the
  session's default database (a Hypothesis settings profile loaded on import), which is
  where HypoFuzz looks.
- under HypoFuzz: random, with the example database (MAILDIRCHECK_DB's, else the default),
  and HypoFuzz patched to record the choices it replays (tests/hypofuzz_forced.py: without
  it no input of any stateful test entered its corpus).

A target executes the same code each time it runs the same input (HypoFuzz keeps an input's
coverage only then): the P7 budgets are worked out for every drawn size before the first
run, and no other cache lives across runs.

A run that breaks a property notes its timeline and the `maildircheck verify` command for
the same target, which Hypothesis prints under the falsifying example. Also owns: every
environment has a target, and a target does fail (with the timeline) when its strategy is
flawed.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from maildircheck.harness.check import Check
from maildircheck.harness.host import warm_budgets
from maildircheck.harness.machine import DeliveryMachine
from maildircheck.harness.rules import machine_for
from maildircheck.harness.verify import STEPS
from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.faults import storage_crashes

CI_BUDGET = 25
LONG_BUDGET = 20_000
LONG_STEPS = 25


def in_hypofuzz() -> bool:
    try:
        from hypofuzz.detection import in_hypofuzz_run
    except ImportError:
        return False
    return bool(in_hypofuzz_run())


def shared_database(spec: str) -> ExampleDatabase:
    """MAILDIRCHECK_DB's database: a Redis server for a redis://, rediss:// or unix:// URL
    (tests/test_campaign_redis.py runs two workers on one), else a directory."""
    if spec.startswith(("redis://", "rediss://", "unix://")):
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase

        return RedisExampleDatabase(redis.Redis.from_url(spec))
    return DirectoryBasedExampleDatabase(spec)


if in_hypofuzz():  # its replays of a stateful test misalign without this (see the module)
    from tests.hypofuzz_forced import record_unforced_choices_only

    record_unforced_choices_only()

SHARED = os.environ.get("MAILDIRCHECK_DB")
if SHARED:
    # HypoFuzz fuzzes only the tests whose database is the default profile's, and keeps
    # its own records there: for this session the shared directory is that default.
    settings.register_profile(
        "maildircheck-shared",
        parent=settings(),
        database=shared_database(SHARED),
        derandomize=False,
    )
    settings.load_profile("maildircheck-shared")


def campaign_settings() -> settings:
    long = os.environ.get("MAILDIRCHECK_PROFILE") == "long"
    searching = long or bool(SHARED) or in_hypofuzz()
    # searching: random, with the default profile's database (the shared one if set)
    extra: dict[str, Any] = {"derandomize": False}
    if not searching:
        extra = {"derandomize": True, "database": None}
    return settings(
        max_examples=LONG_BUDGET if long else CI_BUDGET,
        stateful_step_count=LONG_STEPS if long else STEPS,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        **extra,
    )


def campaign_check(strategy: str, env: str) -> Check:
    """The matrix's check for `env`; where the environment itself cannot keep mail
    through a crash (an async NFS export) without that crash, as `verify` searches it."""
    where = ENVIRONMENTS[env]
    faults = where.threat
    if not where.durable_success_possible:
        faults = tuple(f for f in faults if f not in storage_crashes(faults))
    return Check.of(strategy, env, faults, max_examples=10_000, seed=1)


def campaign_machine(strategy: str, env: str) -> type[RuleBasedStateMachine]:
    """The checker's machine for one strategy and environment, named after them (Hypothesis
    keys its example database by the machine's name), noting a breaking run's timeline."""
    check = campaign_check(strategy, env)
    base = machine_for(check)
    warm_budgets(env)  # no run is the first to work out a P7 budget: its coverage is stable

    def teardown(self: DeliveryMachine) -> None:
        base.teardown(self)
        if self.log.timeline is self.timeline:  # this run broke a property
            note(f"{self.log.violation}\n{self.timeline.render()}")
            note(f"the checker's own search on this target: {check.replay_command()}")

    name = f"Campaign_{strategy}_on_{env}".replace("-", "_").replace(".", "_")
    return type(name, (base,), {"teardown": teardown})


def target(strategy: str, env: str) -> Any:
    """The pytest-collectable TestCase of `campaign_machine(strategy, env)`."""
    case = campaign_machine(strategy, env).TestCase
    case.settings = campaign_settings()
    case.pytestmark = [pytest.mark.slow]  # `pytest -m slow`: the campaign targets alone
    return case


TestCorrectOnSync = target("correct", "sync")
TestCorrectOnExt4Ordered = target("correct", "ext4-ordered")
TestCorrectOnExt4Writeback = target("correct", "ext4-writeback")
TestCorrectOnExt4Journal = target("correct", "ext4-journal")
TestCorrectOnBtrfs = target("correct", "btrfs")
TestCorrectOnPosix = target("correct", "posix")
TestCorrectOnNfs3Sync = target("correct", "nfs3-sync")
TestCorrectOnNfs3AsyncExport = target("correct", "nfs3-async-export")
TestCorrectOnNfs3Nocto = target("correct", "nfs3-nocto")
TestCorrectOnNfs3Nodrc = target("correct", "nfs3-nodrc")


def test_every_environment_has_a_target() -> None:
    targets = [v for k, v in globals().items() if k.startswith("TestCorrectOn")]
    envs = {t.__name__.split("_on_")[1].removesuffix(".TestCase") for t in targets}
    assert envs == {e.replace("-", "_").replace(".", "_") for e in ENVIRONMENTS}


def test_a_target_fails_on_a_flawed_strategy_and_shows_the_timeline() -> None:
    machine = campaign_machine("vpopmail-4.10.14", "ext4-ordered")
    with pytest.raises(AssertionError) as failure:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=50,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            ),
        )
    notes = "\n".join(getattr(failure.value, "__notes__", []))
    assert "P1 no-partial" in str(failure.value)
    assert 'open("new/' in notes, "the breaking run's timeline is noted"
    assert "maildircheck verify --strategy vpopmail-4.10.14 --env ext4-ordered" in notes


def test_no_run_of_a_target_is_the_first_to_work_out_a_budget() -> None:
    """HypoFuzz re-executes an input that found new coverage and keeps it only when the
    second execution covers the same branches, so a run must not take a path only the
    first run in a process takes. P7's budgets were one: worked out on a cache miss, per
    message content, by running the correct algorithm - in about 3 inputs of 5 the first
    execution covered that code and the re-execution did not (measured with HypoFuzz's
    coverage collector). Now they are keyed by size and worked out before the first run:
    a campaign's runs miss the cache not once."""
    import random

    from hypothesis.stateful import get_state_machine_test

    from maildircheck.harness.host import correct_syscalls

    test = get_state_machine_test(
        campaign_machine("correct", "ext4-ordered"),
        settings=settings(database=None, deadline=None, suppress_health_check=list(HealthCheck)),
    )
    before = correct_syscalls.cache_info()
    rng = random.Random(1)
    for _ in range(30):
        test.hypothesis.fuzz_one_input(rng.randbytes(4000))  # type: ignore[attr-defined]
    after = correct_syscalls.cache_info()
    assert after.hits > before.hits + 30  # the runs delivered, and asked for budgets
    assert after.misses == before.misses
