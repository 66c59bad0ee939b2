"""`maildircheck realfs` (G5): a delivery program run on a real file system, every crash
state its block writes allow judged for P1 (no-partial) and P2 (no-early-success), and the
model's verdict of the same program (`trace` under the claimed profile) set beside it.

The judging rules are tested on hand-made states (no rig needed); the programs run on
ext4 data=ordered under the recorder, so those tests call `require_rig` first
(tests/realfs_support.py). Each run takes a few seconds: the rig, the program, the
periodic commit it waits for (`RealFs.settle_s`) and the crash states it mounts.
"""

from __future__ import annotations

import json
import pwd
import shutil
import sys
from pathlib import Path

import pytest

from maildircheck.harness.cli import main
from maildircheck.harness.realfs import cli as realfs_cli
from maildircheck.harness.realfs import rig as rig_module
from maildircheck.harness.realfs.crashstates import CrashPoint
from maildircheck.harness.realfs.filesystems import real_fs
from maildircheck.harness.realfs.outcomes import UNMOUNTABLE, Content, Entry
from maildircheck.harness.realfs.program import (
    REPORTED,
    RealRun,
    State,
    Verdict,
    judge,
    model_verdict,
    run_program,
)
from maildircheck.harness.trace.replay import ReplayResult
from maildircheck.harness.trace.runner import DEFAULT_MESSAGE, run_traced
from maildircheck.harness.trace.verdicts import check_run
from maildircheck.model.outcome import Delivered, PermanentFailure
from maildircheck.model.properties import Violation
from tests.realfs_support import require_rig

EXT4 = real_fs("ext4-ordered")
AGENT = str(Path(sys.executable).with_name("maildir-deliver"))
# A strategy known to be broken: the message written straight into new/, no fsync, exit 0
# (vpopmail 4.10.14's flaw, the seed report). Its stderr says which user it ran as.
STRAIGHT_INTO_NEW = ["sh", "-c", 'id -u >&2; cat > "$1/new/m1"', "sh", "{maildir}"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["realfs", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- the judging rules, on states made by hand ------------------------------------------------
DURING = CrashPoint("flush 1", None, (), (0, 1))
AT_REPORT = CrashPoint(REPORTED, REPORTED, (0, 1), ())


def fake_run(states: list[State], report: object = None) -> RealRun:
    return RealRun(
        EXT4,
        ["agent"],
        ["agent", "/m"],
        0,
        None,
        report if report is not None else Delivered("(exit 0)"),  # type: ignore[arg-type]
        b"msg",
        "",
        tuple(states),
        2,
        5,
        len(states),
        2,
        1,
        0.0,
        0.0,
    )


def state(point: CrashPoint, *entries: Entry, kept: tuple[int, ...] = ()) -> State:
    return State(point, kept, frozenset(entries))


@pytest.mark.parametrize("content", [c for c in Content if c is not Content.COMPLETE])
def test_p1_any_file_in_new_or_cur_that_is_not_the_complete_message_is_a_violation(
    content: Content,
) -> None:
    """P1: a prefix, an empty file, zeros or other bytes in new/ (or cur/) violate it; in
    tmp/ they do not."""
    bad = state(DURING, Entry("new", "m1", content), kept=(1,))
    verdict = judge(fake_run([state(DURING), bad, state(AT_REPORT, Entry("new", "m1"))]), "P1")
    assert verdict.verdict == "violated" and verdict.evidence == bad
    assert content.value in verdict.why
    in_tmp = state(DURING, Entry("tmp", "m1", content))
    in_cur = state(DURING, Entry("cur", "m1:2,S", content))
    assert judge(fake_run([in_tmp, state(AT_REPORT, Entry("new", "m1"))]), "P1").verdict == "holds"
    assert judge(fake_run([in_cur]), "P1").verdict == "violated"


def test_p2_needs_the_message_in_every_state_from_the_report_on() -> None:
    """P2: a state at or after the report without the complete message in new/ or cur/
    violates it; states before the report do not count; a bounce has nothing to keep."""
    early = state(DURING)  # nothing yet, before the report: fine
    kept = state(AT_REPORT, Entry("cur", "m1:2,S"))
    assert judge(fake_run([early, kept]), "P2").verdict == "holds"
    lost = state(AT_REPORT, Entry("tmp", "m1"))
    verdict = judge(fake_run([early, kept, lost]), "P2")
    assert verdict.verdict == "violated" and verdict.evidence == lost
    partial = state(AT_REPORT, Entry("new", "m1", Content.PREFIX))
    assert judge(fake_run([partial]), "P2").verdict == "violated"
    bounced = judge(fake_run([lost], PermanentFailure("exit 100")), "P2")
    assert bounced.verdict == "holds" and "no success" in bounced.why


def test_a_state_that_did_not_mount_leaves_the_property_unjudged_never_passed() -> None:
    run = fake_run([state(AT_REPORT, Entry("new", "m1")), State(AT_REPORT, (), UNMOUNTABLE)])
    for prop in ("P1", "P2"):
        assert judge(run, prop).verdict == "unjudged"


def test_differences_name_the_property_and_which_side_is_weaker() -> None:
    verdicts = [Verdict("P1", "holds", ""), Verdict("P2", "violated", "")]
    found = realfs_cli.differences(verdicts, {"P1": "violated", "P2": "holds"}, "ext4-ordered")
    assert len(found) == 2
    assert found[0].startswith("P1: the disk says holds, the model says violated")
    assert "profile is wrong" in found[1]
    same = {"P1": "holds", "P2": "not judged (the replay stopped at P1)"}
    assert realfs_cli.differences(verdicts, same, "ext4-ordered") == []


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.skipif(shutil.which("safecat") is None, reason="safecat is not installed")
def test_the_models_p1_holds_when_its_replay_stopped_only_at_the_exit() -> None:
    """safecat's replay ends at P2, judged at its exit after P1 was checked at every step,
    so the model did judge P1 (it holds); a replay that stopped at P1 did not judge P2."""
    command = ["safecat", "{maildir}/tmp", "{maildir}/new"]
    result = check_run(run_traced(command), ["ext4-ordered"]).results[0]
    assert result.violation is not None and result.violation.prop == "P2"
    assert [model_verdict(result, p) for p in ("P1", "P2")] == ["holds", "violated"]
    stopped = ReplayResult("ext4-ordered", violation=Violation("P1", "new/m holds nothing"))
    assert model_verdict(stopped, "P2") == "not judged (the replay stopped at P1)"
    assert model_verdict(ReplayResult("ext4-ordered", stopped="unmodeled"), "P1") == "incomplete"


def test_the_plain_report_names_the_point_the_state_and_where_the_model_differs() -> None:
    lost = state(AT_REPORT, Entry("tmp", "m1"))
    run = fake_run([state(DURING), lost])
    verdicts = [judge(run, p) for p in ("P1", "P2")]
    model = ReplayResult("ext4-ordered", violation=Violation("P1", "new/m1 holds nothing"))
    said = {p: model_verdict(model, p) for p in ("P1", "P2")}
    report = realfs_cli.RealfsReport(run, verdicts, model, replay_command="maildircheck trace")
    report.differences = realfs_cli.differences(verdicts, said, "ext4-ordered")
    text = realfs_cli.report_text(report, as_json=False).splitlines()
    assert any(line.split()[:3] == ["P2", "no-early-success", "VIOLATED"] for line in text)
    assert f"at {REPORTED}: a state keeping the 2 writes flushed before it" in "\n".join(text)
    assert "its Maildir: tmp/m1 (complete)" in "\n".join(text)
    assert [line for line in text if line.startswith("differs: ")] == [
        "differs: " + report.differences[0]
    ]
    assert report.differences[0].startswith("P1: the disk says holds, the model says violated")
    as_json = json.loads(realfs_cli.report_text(report, as_json=True))
    assert as_json["verdicts"][1]["kept_writes"] == [] and as_json["model"]["verdict"] == "violated"


# --- bad input and a rig that cannot run -----------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--fs", "ext5", "--", "true"], "unknown file system 'ext5'"),
        (["--", "true"], "--fs"),
        (["--fs", "ext4-ordered"], "needs a command after --"),
        (["--fs", "ext4-ordered", "--temporary-exits", "0", "--", "true"], "exit codes"),
        (["--fs", "ext4-ordered", "--message", "/nonexistent/m", "--", "true"], "--message"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("maildircheck: error: ") and needle in err


def test_a_rig_that_cannot_run_is_one_line_and_exit_3(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    why = "the real-file-system recorder needs root (mount, losetup)"
    monkeypatch.setattr(rig_module, "unavailable", lambda fs=None: why)
    code, out, err = run_cli(capsys, "--fs", "ext4-ordered", "--", "true")
    assert (code, out, err) == (3, "", f"maildircheck: error: {why}\n")


# --- real programs on ext4 data=ordered ------------------------------------------------------
def test_maildir_deliver_holds_p1_and_p2_on_ext4_ordered() -> None:
    require_rig(EXT4)
    run = run_program(EXT4, [AGENT, "{maildir}"], DEFAULT_MESSAGE)
    assert run.status == 0 and isinstance(run.report, Delivered), run.stderr
    # not vacuous: its fsyncs flush during the run, and after the report the message is there
    assert any(s.point.after_mark is None for s in run.states)
    after = [s for s in run.states if s.after_report]
    assert after and all(
        any(e.subdir == "new" and e.content is Content.COMPLETE for e in s.outcome) for s in after
    )
    assert [judge(run, p).verdict for p in ("P1", "P2")] == ["holds", "holds"]
    assert run.mounted <= len(run.states) <= run.total


def test_a_program_writing_straight_into_new_without_fsync_violates_p2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """exit 0 with the message only in the page cache: a crash at the report loses it (P2).
    Run as `nobody`, so the Maildir on the real file system must be theirs (`--user`)."""
    require_rig(EXT4)
    nobody = pwd.getpwnam("nobody")
    code, out, _ = run_cli(
        capsys, "--fs", "ext4-ordered", "--user", "nobody", "--json", "--", *STRAIGHT_INTO_NEW
    )
    report = json.loads(out)
    assert code == 1 and report["exit_status"] == 0
    verdicts = {v["property"]: v for v in report["verdicts"]}
    p2 = verdicts["P2"]
    assert p2["verdict"] == "violated" and p2["point"] == REPORTED
    assert p2["why"] == "reported delivered, but a crash then leaves nothing"
    assert report["model"]["env"] == "ext4-ordered" and report["model"]["verdict"] == "violated"
    assert report["notes"] == []
    assert report["stderr"] == str(nobody.pw_uid)  # it ran as nobody


@pytest.mark.skipif(shutil.which("safecat") is None, reason="safecat is not installed")
@pytest.mark.skipif(shutil.which("deliverquota") is None, reason="maildrop is not installed")
@pytest.mark.parametrize(
    ("command", "p1", "model_p1"),
    [
        # it fsyncs the file before the link: no state has the name without the data
        (["safecat", "{maildir}/tmp", "{maildir}/new"], ("holds",), "holds"),
        # no fsync: whether the commit after its exit takes the name before the data is up
        # to delayed allocation's timing (measured: either, from one run to the next)
        (["deliverquota", "{maildir}"], ("holds", "violated"), "violated"),
    ],
    ids=["safecat", "deliverquota"],
)
def test_debian_agents_lose_a_reported_message_on_ext4_ordered_and_the_report_compares(
    capsys: pytest.CaptureFixture[str], command: list[str], p1: tuple[str, ...], model_p1: str
) -> None:
    """Neither fsyncs new/ after the link (deliverquota fsyncs nothing), so at the moment it
    reports, the link is still in ext4's running transaction: P2 is violated on the disk
    (and in the model). Whatever the disk shows for P1, the report says whether `trace`
    under the claimed profile agrees."""
    require_rig(EXT4)
    code, out, _ = run_cli(capsys, "--fs", "ext4-ordered", "--json", "--", *command)
    report = json.loads(out)
    assert code == 1 and report["exit_status"] == 0 and report["outcome"] == "delivered (exit 0)"
    verdicts = {v["property"]: v for v in report["verdicts"]}
    assert verdicts["P2"]["verdict"] == "violated" and verdicts["P2"]["point"] == REPORTED
    assert verdicts["P1"]["verdict"] in p1
    assert report["model"]["verdict"] == "violated"  # trace's ext4-ordered verdict
    assert verdicts["P1"]["model"] == model_p1
    differ = {
        p
        for p, v in verdicts.items()
        if v["model"] in ("holds", "violated") and v["model"] != v["verdict"]
    }
    assert {d.split(":", 1)[0] for d in report["differences"]} == differ
    assert 0 < report["states_mounted"] <= report["states_explored"] <= report["states_total"]


def test_a_command_that_does_not_exist_is_one_line_and_exit_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_rig(EXT4)
    code, out, err = run_cli(capsys, "--fs", "ext4-ordered", "--", "/nonexistent/agent")
    assert code == 3 and out == "" and err.count("\n") == 1
    assert "command not found or not runnable: /nonexistent/agent" in err


def test_a_program_past_its_timeout_is_killed_and_has_made_no_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--timeout as for trace: the program (and what it started) is killed, it reported
    nothing, so P2 asks nothing of it; P1 is still judged on every state."""
    require_rig(EXT4)
    slow = ["sh", "-c", 'cat > "$1/tmp/m1"; sleep 60 >/dev/null 2>&1 & sleep 60', "sh", "{maildir}"]
    code, out, _ = run_cli(
        capsys, "--fs", "ext4-ordered", "--timeout", "0.5", "--json", "--", *slow
    )
    report = json.loads(out)
    assert report["killed_by"] == "SIGKILL" and report["outcome"] is None
    assert report["notes"] == ["the run was stopped after 0.5 s"]
    verdicts = {v["property"]: v for v in report["verdicts"]}
    assert verdicts["P1"]["verdict"] == "holds"
    assert verdicts["P2"]["verdict"] == "holds" and "was killed" in verdicts["P2"]["why"]
    assert code == 0
    # the background sleep died with it (it holds none of the pipes: nothing else waits)
    maildir = report["command"][-1]
    assert not [c for c in Path("/proc").glob("[0-9]*/cmdline") if maildir in _read(c)]


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""
