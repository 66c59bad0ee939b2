"""The checker's own shrinker (E7): rule calls recorded as steps, replayed on the model, and
made smaller - and the draws it shrinks with, the same table the search draws from.

Spec IDs exercised: E7, E6 (a message shrinks to the plainest), P1, P3.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from maildircheck.harness.check import Check
from maildircheck.harness.draws import Step
from maildircheck.harness.messages import PIPE_CHUNKS, SIZES, Shape
from maildircheck.harness.rules import machine_for, rules_for
from maildircheck.harness.shrink import replay, shrink
from maildircheck.harness.verify import verify
from maildircheck.model.faults import FAULTS

START = {"which": 0, "pid": 0, "entropy": 0, "fault": None, "on": 0, "cut": 0}
EVERY_FAULT = Check.of("correct", "nfs3-sync", tuple(f for f in FAULTS if f != "soft-timeout"))
DRAWS = [
    (f"{rule}.{name}", draw)
    for table in (rules_for(EVERY_FAULT), rules_for(Check.of("correct", "ext4-ordered")))
    for rule, entry in table.items()
    for name, draw in entry.draws.items()
]


def step(rule: str, **arguments: Any) -> Step:
    return Step(rule, tuple(arguments.items()))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_simpler_value_ranks_lower_so_shrinking_ends(data: st.DataObject) -> None:
    label, draw = data.draw(st.sampled_from(DRAWS))
    value = data.draw(draw.strategy(), label=label)
    assert draw.rank(value) >= 0
    for simpler in draw.simpler(value):
        assert draw.rank(simpler) < draw.rank(value), (label, value, simpler)


def test_a_message_shrinks_toward_the_smallest_plainest_through_a_full_pipe() -> None:
    mail = dict(rules_for(Check.of("correct", "ext4-ordered"))["r_start"].draws)["mail"]
    worst = (Shape(SIZES[-1], True, True, True, True, True), PIPE_CHUNKS[-1])
    candidates = list(mail.simpler(worst))
    assert candidates[0] == (Shape(SIZES[0], True, True, True, True, True), PIPE_CHUNKS[-1])
    assert (
        Shape(SIZES[-1], crlf=True, nul=True, eight_bit=True, no_final_newline=True),
        PIPE_CHUNKS[-1],
    ) in candidates  # the From_ line off, the rest kept
    assert (worst[0], PIPE_CHUNKS[0]) in candidates
    assert mail.rank((Shape(SIZES[0]), PIPE_CHUNKS[0])) == 0


def test_a_step_is_recorded_with_the_count_its_delivery_used() -> None:
    machine = machine_for(Check.of("correct", "sync"))()
    machine.r_start(count=40, mail=(Shape(20), PIPE_CHUNKS[0]), **START)
    (recorded,) = machine.program
    used = machine.log.syscalls
    assert not machine.deliveries()  # it finished within its 40
    assert 0 < used < 40 and recorded.called()["count"] == used


def noisy_vpopmail_run() -> tuple[type, list[Step]]:
    """vpopmail-4.10.14 creates its file in new/ (P1 at once), in a run full of steps and
    values the violation does not need."""
    machine = machine_for(Check.of("vpopmail-4.10.14", "ext4-ordered", ("power-loss",)))
    program = [
        step("r_reader", count=5),
        step("r_clock", jump=2_000_000),
        step("r_start", count=3, mail=(Shape(4097, crlf=True, nul=True), 64), **START),
        step("r_run", which=0, count=40, fault=None, cut=0),
        step("r_reader", count=3),
        step("r_power", dropped=4095, fates=[3, 2, 1, 3]),
    ]
    return machine, program


def test_a_recorded_run_replays_to_the_same_timeline() -> None:
    machine, program = noisy_vpopmail_run()
    first = replay(machine, program)
    again = replay(machine, first.program)
    assert first.violation is not None and first.violation.prop == "P1"
    assert again.violation == first.violation
    assert again.timeline.render() == first.timeline.render()


def test_shrinking_keeps_only_what_the_violation_needs() -> None:
    machine, program = noisy_vpopmail_run()
    original = replay(machine, program)
    shrunk = shrink(machine, program)
    assert shrunk is not None and shrunk.violation is not None
    assert shrunk.violation.prop == original.violation.prop == "P1"
    assert shrunk.key < original.key
    # the readers, the clock and the crash go; start and run merge into one step; the
    # message is the smallest, with no traits, through a full pipe
    (only,) = shrunk.program
    assert only.rule == "r_start" and only.called()["mail"] == (Shape(SIZES[0]), PIPE_CHUNKS[0])
    assert replay(machine, shrunk.program).timeline.render() == shrunk.timeline.render()


def test_a_shrunk_run_loses_its_violation_without_any_one_of_its_steps() -> None:
    check = Check.of("rename-clobber", "ext4-ordered", max_examples=1000, seed=2)
    verdict = verify(check)
    assert verdict.violation is not None and verdict.timeline is not None
    machine, program = machine_for(check), verdict.program
    best = replay(machine, program)
    assert best.timeline.render() == verdict.timeline.render()
    for at in range(len(program)):
        without = replay(machine, program[:at] + program[at + 1 :])
        assert (
            without.violation is None
            or without.violation.prop != best.violation.prop  # type: ignore[union-attr]
            or without.key >= best.key
        ), f"step {at} ({program[at].rule}) was not needed"


def test_the_same_seed_gives_the_same_counterexample() -> None:
    check = Check.of("non-exclusive-create", "ext4-ordered", max_examples=1000, seed=5)
    first, second = verify(check), verify(check)
    assert first.timeline is not None and second.timeline is not None
    assert first.timeline.render() == second.timeline.render()


def test_p7_a_deferral_after_a_name_collision_is_excused() -> None:
    """After a reboot D2 picks D1's name (same boot time, pid and draw of getrandom): its
    link answers EEXIST, and ambiguous-link-fails defers. The collision is a fault that hit
    D2 (P7), so the deferral is not a violation; the same run on a machine that never
    rebooted has no collision, and D2 delivers."""
    check = Check.of("ambiguous-link-fails", "sync", ("reboot",), quality=True)
    small = (Shape(SIZES[0]), PIPE_CHUNKS[0])
    first = step("r_start", count=40, mail=small, **START)
    second = step("r_start", count=40, mail=small, **START)
    collided = replay(machine_for(check), [first, step("r_reboot", which=0), second])
    assert "link: EEXIST" in collided.timeline.render()
    assert collided.violation is None
    assert collided.program[-1].rule == "r_start"  # D2 ran and reported
    assert "reports temporary failure" in collided.timeline.render()


def test_a_smaller_message_lowers_the_counts_after_it_so_the_run_still_stops_in_time() -> None:
    """P6 needs the power to fail right after D1's link: 45 syscalls into a 1,000-byte
    message read 64 bytes at a time. A 1-byte message alone makes D1 run past the link
    and report; lowered by the reads and writes it saves (`Draw.slack`), the count stops
    at the link again. Without that pass the run stays at 60 syscalls."""
    machine = machine_for(Check.of("correct", "ext4-ordered", ("power-loss",), quality=True))
    program = [
        step("r_start", count=45, mail=(Shape(1000), 64), **START),
        step("r_power", dropped=0, fates=[]),
        step("r_start", count=40, mail=(Shape(1000), PIPE_CHUNKS[0]), **START),
    ]
    assert replay(machine, program).timeline.syscalls == 60
    shrunk = shrink(machine, program)
    assert shrunk is not None and shrunk.violation is not None
    assert shrunk.violation.prop == "P6" and shrunk.timeline.syscalls == 30
    mails = [s.called()["mail"] for s in shrunk.program if s.rule == "r_start"]
    assert mails == [(Shape(SIZES[0]), PIPE_CHUNKS[0])] * 2
