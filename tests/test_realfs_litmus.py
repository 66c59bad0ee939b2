"""The fidelity check (G4): litmus workloads on a real ext4 against the model's profiles.

CI runs the small subset `litmus.CI_SUBSET` on ext4 data=ordered (the full table over every
file system is bench/fidelity.py). Owns: the claimed profile and posix are sound there; a
profile that is wrong about ext4 (`sync`, which keeps every call) is caught, at the crash
point where the disk disagrees; the measured table docs/fidelity.md quotes is what
`maildircheck fidelity --format md` prints now; the model's side of a workload, without a rig,
including what the measured profiles S5 (ext4-journal: never zero-filled) and S6 (btrfs) say.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from maildircheck.harness.cli import main
from maildircheck.harness.realfs.fidelity import Report, allowed, check, compare
from maildircheck.harness.realfs.fidelity_report import markdown
from maildircheck.harness.realfs.filesystems import FILESYSTEMS, real_fs
from maildircheck.harness.realfs.litmus import CI_SUBSET, WORKLOADS
from maildircheck.harness.realfs.outcomes import Content, Entry, describe
from maildircheck.model.environments import LOCAL
from maildircheck.model.persistence import PROFILES
from tests.realfs_support import require_rig

EXT4 = real_fs("ext4-ordered")
DOC = Path(__file__).resolve().parent.parent / "docs" / "fidelity.md"


@pytest.fixture(scope="module")
def report() -> Report:
    require_rig(EXT4)
    return check([EXT4.name], CI_SUBSET, ("claimed", "posix"))


def test_ci_subset_is_sound_on_ext4(report: Report) -> None:
    assert {(c.measured.workload.name, c.profile) for c in report.comparisons} == {
        (w, p) for w in CI_SUBSET for p in ("ext4-ordered", "posix")
    }
    for c in report.comparisons:
        assert c.sound, "\n".join(str(u) for u in c.unsound)
        m = c.measured
        assert m.states > 1 and m.writes > 0 and m.flushes > 0, m.workload.name
        assert len(m.observed) >= 1
    deliver = next(c.measured for c in report.comparisons if c.measured.workload.name == "deliver")
    after = next(p for p in deliver.points if p.label == "after sync")
    assert set(after.outcomes) == {frozenset({Entry("new", "m1", Content.COMPLETE)})}
    before = deliver.points[0]
    assert frozenset() in before.outcomes  # the crash before the first step: nothing yet


def test_an_unsound_profile_is_caught(report: Report) -> None:
    # `sync` says every call is durable on return; ext4 keeps a link only at its commit, so
    # right after the link into new/ the disk may still hold tmp/m1 alone.
    measured = next(
        c.measured for c in report.comparisons if c.measured.workload.name == "no-dir-fsync"
    )
    verdict = compare(measured, PROFILES["sync"])
    assert not verdict.sound
    shown = {describe(u.outcome) for u in verdict.unsound}
    assert "tmp/m1 (complete)" in shown, shown
    for u in verdict.unsound:
        point = next(p for p in measured.points if p.label == u.point)
        assert u.outcome in point.outcomes and point.outcomes[u.outcome] == u.kept


def test_docs_table_is_regenerated(report: Report) -> None:
    """docs/fidelity.md quotes `maildircheck fidelity --format md`; its ext4-ordered rows for
    the CI subset must be what that prints now (the rest: bench/fidelity.py, same renderer)."""
    text = DOC.read_text(encoding="utf-8")
    rows = [line for line in markdown(report).splitlines() if line.startswith("| ext4-ordered |")]
    assert len(rows) == len(CI_SUBSET)
    for row in rows:
        assert row in text, f"docs/fidelity.md: paste this row again:\n{row}"


def test_every_profile_claimed_is_a_local_profile() -> None:
    local = {e.name for e in LOCAL}
    for fs in FILESYSTEMS.values():
        assert fs.claimed_by in local, fs.name
    assert len({fs.claimed_by for fs in FILESYSTEMS.values()}) >= 3  # not one profile for all


def test_model_side_of_deliver() -> None:
    """No rig: what the model allows before each step of the delivery and at its end."""
    points = allowed(PROFILES["ext4-ordered"], WORKLOADS["deliver"])
    new_m1 = frozenset({Entry("new", "m1", Content.COMPLETE)})
    assert points[0] == {frozenset()}
    assert points[-1] == {new_m1}  # after sync(2): only the delivered message
    zeros = frozenset({Entry("tmp", "m1", Content.ZEROS)})
    assert any(zeros in p for p in points)  # delayed allocation: unsynced data may be zeros
    assert not any(zeros in p for p in allowed(PROFILES["ext4-journal"], WORKLOADS["deliver"]))


def test_fidelity_cli_rejects_bad_names(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--fs", "ext5"], ["--workload", "nope"], ["--profiles", "nfs3-sync"]):
        assert main(["fidelity", *argv]) == 2
        err = capsys.readouterr().err
        assert re.fullmatch(r"maildircheck: error: [^\n]+\n", err), err
