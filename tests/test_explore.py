"""The breadth-first explorer (issue 12, harness/explore.py): it finds a shortest
counterexample, as short as verify's shrunk one where that is shortest, says when none
exists within its bound, and its one reduction (a state reached twice is expanded once)
keeps every violation the tree search finds.

Spec IDs exercised: E8, P1, F8, X2, E7 (a found program replays as a counterexample).
"""

from __future__ import annotations

import json

import pytest

from maildircheck.harness.check import Check
from maildircheck.harness.cli import main
from maildircheck.harness.explore import Bound, explore
from maildircheck.harness.rules import machine_for
from maildircheck.harness.shrink import replay
from maildircheck.harness.verify import verify

ONE = Bound(syscalls=20, deliveries=1, faults=1)


def test_vpopmail_shortest_counterexample_is_verifys() -> None:
    check = Check.of("vpopmail-4.10.14", "ext4-ordered")
    found = explore(check, ONE)
    shrunk = verify(check)
    assert found.violation is not None and shrunk.violation is not None
    assert found.violation.prop == shrunk.violation.prop == "P1"
    assert found.timeline is not None and shrunk.timeline is not None
    assert found.timeline.syscalls == shrunk.timeline.syscalls == 8
    again = replay(machine_for(check), found.program)  # the program is a counterexample
    assert again.timeline.render() == found.timeline.render()


def test_no_fsync_needs_a_power_loss_and_is_as_short_as_verifys() -> None:
    check = Check.of("no-fsync", "ext4-ordered", ("power-loss",))
    found = explore(check, ONE)
    assert found.violation is not None and found.violation.prop == "P1"
    assert found.timeline is not None and found.timeline.syscalls == 14
    assert "after a power loss now" in found.violation.why  # the crash states computed (F8)
    shrunk = verify(check)
    assert shrunk.timeline is not None and shrunk.timeline.syscalls == 14


def test_correct_holds_within_the_bound_and_says_how_far_it_looked() -> None:
    found = explore(Check.of("correct", "ext4-ordered", ("power-loss", "eio")), ONE)
    assert found.violation is None and found.complete
    assert found.depth >= 17  # at least a whole delivery, with its fsync of new/
    assert found.states == sum(found.by_depth.values()) > 17


def test_the_reductions_keep_what_the_tree_search_finds() -> None:
    """A state expanded once, and the first fresh message and pid standing for all (E8),
    against the plain tree search: the same answer, the same shortest length."""
    cases = (
        ("vpopmail-4.10.14", ("power-loss",), Bound(8, 1, 1)),
        ("correct", ("kill",), Bound(5, 2, 0)),
        ("pid-only-name", (), Bound(29, 2, 0, preemptions=0)),  # the same pid, reused
        ("pid-only-name", (), Bound(28, 2, 0, preemptions=0)),  # one syscall short: none
    )
    found = []
    for name, faults, bound in cases:
        check = Check.of(name, "ext4-ordered", faults)
        reduced, tree = explore(check, bound), explore(check, bound, reduce=False)
        assert (reduced.violation is None) == (tree.violation is None)
        if tree.violation is not None:
            assert reduced.violation is not None and reduced.timeline and tree.timeline
            assert reduced.violation.prop == tree.violation.prop
            assert reduced.timeline.syscalls == tree.timeline.syscalls
        assert reduced.depth == tree.depth and reduced.states <= tree.states
        assert reduced.states < tree.states  # starts that differ in no way merge
        found.append(tree.violation.prop if tree.violation else None)
    assert found == ["P1", None, "P3", None]  # the pid reused at 29 syscalls, not before


def test_preemptions_bound_the_interleavings() -> None:
    """Without a preemption, a second delivery starts only once the first has ended; each
    preemption allowed adds the runs that switch once more (a bound, like CHESS's)."""
    check = Check.of("correct", "ext4-ordered", ())
    states = [explore(check, Bound(24, 2, 0, preemptions=p)).states for p in (0, 1, 2)]
    assert states[0] < states[1] < states[2]
    found = explore(check, Bound(24, 2, 0, preemptions=0))
    assert found.violation is None and found.complete


def test_workers_give_the_same_answer() -> None:
    check = Check.of("pid-only-name", "ext4-ordered", ())
    one, two = (explore(check, Bound(30, 2, 0), workers=w) for w in (1, 2))
    assert one.program == two.program and one.states == two.states and two.workers == 2
    assert one.timeline is not None and one.timeline.syscalls == 29


def test_explore_command_exit_codes_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["explore", "--strategy", "vpopmail-4.10.14", "--env", "ext4-ordered"]
    assert main(argv) == 1
    assert "Shortest counterexample (8 syscalls):" in capsys.readouterr().out
    assert main([*argv, "--json"]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["verdict"] == "violated" and found["counterexample"]["syscalls"] == 8
    assert found["violation"]["property"] == "P1" and found["complete"]
    correct = ["explore", "--strategy", "correct", "--env", "sync", "--faults", "none"]
    assert main(correct) == 0
    assert "No violation within the bound" in capsys.readouterr().out
    assert main([*correct, "--max-states", "5"]) == 3  # stopped early: no answer
    assert "Not exhausted" in capsys.readouterr().out
    assert main(["explore", "--strategy", "nonesuch", "--env", "sync"]) == 2
    assert "maildircheck: error:" in capsys.readouterr().err
