"""The block recorder and its rig (harness/realfs, G1-G3): what it logs, the crash states it
mounts, the block-layer faults it injects, and that it leaves nothing mounted on any exit
path - an exception, its owner killed with SIGKILL, the recorder itself killed.

Real-file-system tests call `require_rig` first (tests/realfs_support.py).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildircheck.harness.realfs import rig as rig_module
from maildircheck.harness.realfs.blocklog import BlockLog, Fail, Flush, Mark, Write, copy_sparse
from maildircheck.harness.realfs.crashstates import CrashPoint, crash_points, state_writes, subsets
from maildircheck.harness.realfs.filesystems import FILESYSTEMS, real_fs
from maildircheck.harness.realfs.outcomes import Content, Entry, read_maildir
from maildircheck.harness.realfs.rig import Rig, sweep_stale, unavailable
from tests.realfs_support import require_rig

EXT4 = real_fs("ext4-ordered")
MESSAGE = b"Subject: recorded\n\n" + b"a line of the body\n" * 400  # 7.6 KB: two blocks


def leftovers(work: str) -> list[str]:
    """Mounts and loop devices that still refer to a rig's work directory."""
    with open("/proc/mounts") as f:
        found = [line.split()[1] for line in f if work in line]
    listing = subprocess.run(["losetup", "-J", "-l"], capture_output=True, text=True).stdout
    for dev in json.loads(listing or "{}").get("loopdevices", []):
        if str(dev.get("back-file", "")).startswith(work):
            found.append(dev["name"])
    return found


def deliver(root: str, mark: bool = True, rig: Rig | None = None) -> None:
    """The Maildir algorithm, with a mark after each step."""
    md = os.path.join(root, "Maildir")

    def step(label: str) -> None:
        if rig is not None and mark:
            rig.mark(label)

    fd = os.open(f"{md}/tmp/m1", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    os.write(fd, MESSAGE)
    step("written")
    os.fsync(fd)
    os.close(fd)
    step("fsynced")
    os.link(f"{md}/tmp/m1", f"{md}/new/m1")
    step("linked")
    dfd = os.open(f"{md}/new", os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)
    step("new/ fsynced")
    os.unlink(f"{md}/tmp/m1")
    step("unlinked")


def make_maildir(root: str) -> None:
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(root, "Maildir", sub))


def test_the_log_holds_the_workloads_writes_flushes_and_marks() -> None:
    require_rig(EXT4)
    with Rig(EXT4) as rig:
        make_maildir(rig.root)
        rig.record()
        rig.mark("start")
        deliver(rig.root, rig=rig)
        log = rig.finish()
    assert log.marks == ["start", "written", "fsynced", "linked", "new/ fsynced", "unlinked"]
    after_write = log.records[log.records.index(Mark("written")) :]
    upto_fsync = after_write[: after_write.index(Mark("fsynced"))]
    assert any(isinstance(r, Flush) for r in upto_fsync), "fsync(file) issued no cache flush"
    assert any(isinstance(r, Write) and MESSAGE[:4096] in r.data for r in upto_fsync), (
        "the message's first block was not written before fsync returned"
    )


def test_crash_states_recover_and_keep_what_was_synced() -> None:
    require_rig(EXT4)
    with Rig(EXT4) as rig:
        make_maildir(rig.root)
        rig.record()
        rig.mark("start")
        deliver(rig.root, rig=rig)
        log = rig.finish()
        points = {p.label: p for p in crash_points(log)}
        seen: dict[str, set[frozenset[Entry]]] = {}
        for label in ("start", "new/ fsynced"):
            for kept in subsets(points[label]):
                with rig.crash_state(log.base, state_writes(log, points[label], kept)) as root:
                    seen.setdefault(label, set()).add(
                        read_maildir(os.path.join(root, "Maildir"), [MESSAGE])
                    )
    assert seen["start"] == {frozenset()}, "before the workload the Maildir was empty"
    for outcome in seen["new/ fsynced"]:  # file and new/ fsynced: durable in every state
        assert Entry("new", "m1", Content.COMPLETE) in outcome, outcome


def test_a_failed_block_write_reaches_neither_the_image_nor_the_log_as_a_write() -> None:
    require_rig(EXT4)
    with Rig(EXT4) as rig:
        make_maildir(rig.root)
        rig.record()
        rig.fail(MESSAGE[:64], errno.EIO)
        fd = os.open(os.path.join(rig.root, "Maildir", "tmp", "m1"), os.O_CREAT | os.O_WRONLY)
        os.write(fd, MESSAGE)
        with pytest.raises(OSError) as failed:
            os.fsync(fd)
        os.close(fd)
        log = rig.finish()
        image = Path(rig.path("disk.img")).read_bytes()
    assert failed.value.errno == errno.EIO
    assert [r.errno for r in log.records if isinstance(r, Fail)] == [errno.EIO]
    assert not any(isinstance(r, Write) and MESSAGE[:64] in r.data for r in log.records)
    assert MESSAGE[:64] not in image


def test_nothing_is_left_mounted_after_an_exception() -> None:
    require_rig(EXT4)
    work = ""
    with pytest.raises(RuntimeError), Rig(EXT4) as rig:
        work = rig.work
        make_maildir(rig.root)
        raise RuntimeError("the workload failed")
    assert work and leftovers(work) == []
    assert not os.path.exists(work)


OWNER = textwrap.dedent(
    """
    import sys, time
    from maildircheck.harness.realfs.filesystems import real_fs
    from maildircheck.harness.realfs.rig import Rig
    rig = Rig(real_fs("ext4-ordered")).__enter__()
    rig.record()
    print(rig.work, rig._recorder.pid, flush=True)
    time.sleep(600)
    """
)


def start_owner() -> tuple[subprocess.Popen[str], str, int]:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    work, recorder = owner.stdout.readline().split()
    assert leftovers(work), "the rig mounted nothing"
    return owner, work, int(recorder)


def wait_gone(work: str, seconds: float = 20) -> list[str]:
    deadline = time.monotonic() + seconds
    while leftovers(work) and time.monotonic() < deadline:
        time.sleep(0.1)
    return leftovers(work)


def test_killing_the_owner_leaves_nothing_mounted() -> None:
    require_rig(EXT4)
    owner, work, recorder = start_owner()
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert wait_gone(work) == [], "the recorder did not tear down after its owner died"
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{recorder}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{recorder}"), "the recorder outlived its owner"
    sweep_stale()
    assert not os.path.exists(work)


def test_killing_the_recorder_too_is_swept_by_the_next_rig() -> None:
    require_rig(EXT4)
    owner, work, recorder = start_owner()
    os.kill(recorder, signal.SIGKILL)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    time.sleep(0.2)
    assert leftovers(work), "expected the killed recorder to leave its mounts behind"
    assert work in sweep_stale()
    assert leftovers(work) == []


def test_a_machine_that_cannot_run_it_is_told_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert unavailable() == "the real-file-system recorder needs root (mount, losetup)"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real_which = rig_module.shutil.which
    monkeypatch.setattr(
        rig_module.shutil, "which", lambda t: None if t == "mkfs.xfs" else real_which(t)
    )
    if os.path.exists("/dev/fuse") and os.path.exists("/dev/loop-control"):
        assert "mkfs.xfs not found" in (unavailable(FILESYSTEMS["xfs"]) or "")


@given(
    st.lists(
        st.one_of(
            st.builds(Write, st.integers(0, 1 << 30), st.binary(max_size=64)),
            st.just(Flush()),
            st.builds(Fail, st.integers(0, 1 << 30), st.integers(1, 4096), st.integers(1, 133)),
            st.builds(Mark, st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)),
        ),
        max_size=20,
    )
)
def test_a_block_log_reads_back_as_saved(records: list[Write | Flush | Fail | Mark]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        log = BlockLog(base="base.img", size=123, records=records)
        log.save(os.path.join(tmp, "log"))
        assert BlockLog.load(os.path.join(tmp, "log")) == log


def test_a_sparse_copy_keeps_content_and_holes(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    with open(src, "wb") as f:
        f.truncate(64 << 20)
        f.seek(1 << 20)
        f.write(b"x" * 8192)
        f.seek(40 << 20)
        f.write(b"y" * 4096)
    copy_sparse(str(src), str(dst))
    assert dst.read_bytes() == src.read_bytes()
    assert os.stat(dst).st_blocks * 512 < (1 << 20), "the copy filled its holes"


@pytest.mark.parametrize("n", [0, 1, 5, 8, 9, 14])
def test_subsets_are_distinct_and_exhaustive_while_small(n: int) -> None:
    point = CrashPoint("p", None, (0,), tuple(range(1, n + 1)))
    tried = list(subsets(point, seed=3))
    assert len(tried) == len(set(tried))
    assert () in tried and point.volatile in tried
    if n <= 8:
        assert len(tried) == point.total
    else:
        assert all((w,) in tried for w in point.volatile)
        assert tried == list(subsets(point, seed=3)), "the sample is not reproducible"


def test_a_crash_point_before_a_flush_keeps_any_subset_of_the_epoch() -> None:
    log = BlockLog("b", 0, [Write(0, b"a"), Flush(), Mark("m"), Write(1, b"b"), Write(2, b"c"),
                            Flush(), Fail(3, 1, 5), Mark("end")])
    points = crash_points(log)
    assert [(p.label, p.durable, p.volatile) for p in points] == [
        ("flush 1", (), (0,)),
        ("m", (0,), ()),
        ("flush 2", (0,), (1, 2)),
        ("end", (0, 1, 2), ()),
    ]
    assert state_writes(log, points[2], (2,)) == [Write(0, b"a"), Write(2, b"c")]
