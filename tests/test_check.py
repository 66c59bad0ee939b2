"""The `Check` value (harness/check.py): built and validated once, and the command line it
renders names it exactly - `parse_check(check.argv()) == check` for drawn Checks - so a
replay command runs the same check. Also owns: what `Check.of` refuses, with one line each,
and that a Check travels to a worker process unchanged.
"""

from __future__ import annotations

import pickle
import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildircheck.harness.check import Check, CheckError
from maildircheck.harness.cli import UsageError, parse_check
from maildircheck.impl.strategies import CATALOGUE
from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.faults import DEFAULT_FAULTS, FAULTS, SERVER_CRASH

USER_FILE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "my_agent.py"


@st.composite
def checks(draw: st.DrawFn) -> Check:
    env = draw(st.sampled_from(list(ENVIRONMENTS.values())))
    strategy = draw(st.sampled_from([*CATALOGUE, f"{USER_FILE}:deliver"]))
    faults = draw(st.lists(st.sampled_from(env.faults), unique=True))
    return Check.of(
        strategy,
        env.name,
        faults,
        max_examples=draw(st.integers(1, 10**6)),
        seed=draw(st.none() | st.integers(-(2**63), 2**63)),
        quality=draw(st.booleans()),
        strict_lifecycle=draw(st.booleans()),
        workers=draw(st.integers(1, 64)),
    )


@given(checks())
def test_the_command_line_of_a_check_parses_back_to_it(check: Check) -> None:
    assert parse_check(check.argv()) == check
    assert shlex.split(check.replay_command()) == ["maildircheck", *check.argv()]


@given(checks())
def test_a_check_reaches_a_worker_process_unchanged(check: Check) -> None:
    assert pickle.loads(pickle.dumps(check)) == check


@given(checks())
def test_shares_split_the_budget_over_consecutive_seeds(check: Check) -> None:
    shares = check.shares()
    base = 1 if check.seed is None else check.seed
    assert [s.seed for s in shares] == [base + i for i in range(check.workers)]
    assert all(s.workers == 1 and s.faults == check.faults for s in shares)
    assert sum(s.max_examples for s in shares) >= check.max_examples


def test_defaults_are_the_default_threat_and_the_safety_and_progress_properties() -> None:
    check = Check.of("correct", "posix")
    assert check.faults == DEFAULT_FAULTS
    assert check.properties == ("P1", "P2", "P3", "P4", "P5", "P7")  # P7 progress: always
    assert Check.of("correct", "posix", quality=True, strict_lifecycle=True).properties[-3:] == (
        "P6",
        "P7",
        "L1",
    )


def test_all_faults_keep_those_that_apply_to_the_environment() -> None:
    local = Check.of("correct", "ext4-ordered", "all")
    assert local.faults == tuple(f for f in FAULTS.values() if not f.nfs_only)
    assert Check.of("correct", "nfs3-sync", "all").faults == tuple(FAULTS.values())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("no-such-strategy", "sync"), "no-such-strategy"),
        (("correct", "no-such-env"), "unknown environment 'no-such-env'"),
        (("correct", "sync", "kill,bogus"), "unknown fault 'bogus'"),
        (("correct", "sync", (SERVER_CRASH,)), "'server-crash' needs an NFS environment"),
        (("missing.py:deliver", "sync"), "no such file: missing.py"),
    ],
)
def test_a_check_that_names_nothing_usable_is_refused_in_one_line(
    args: tuple[str, ...], needle: str
) -> None:
    with pytest.raises(CheckError) as refused:
        Check.of(*args)
    assert needle in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("field", ["max_examples", "workers"])
def test_a_budget_or_worker_count_below_one_is_refused(field: str) -> None:
    with pytest.raises(CheckError, match="must be a positive integer"):
        Check.of("correct", "sync", **{field: 0})


def test_only_a_verify_command_line_names_a_check() -> None:
    with pytest.raises(UsageError):
        parse_check(["list"])
