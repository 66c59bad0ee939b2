"""F9, a failed fsync drops the data and reports once: measured on real file systems
(harness/realfs/eio.py, with the rig) and held against the profile that claims each one;
and the rule in the model - the retried fsync answers 0, the data never becomes durable,
a crash loses it, the error reaches each open file once - with the catalogue entry
fsync-retry (B14) that trusts the retry.

The real-file-system tests call `require_rig` first (tests/realfs_support.py): in CI a
machine without the rig fails them, elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import errno
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from maildircheck.harness.check import Check
from maildircheck.harness.cli import main
from maildircheck.harness.realfs import eio_report
from maildircheck.harness.realfs.eio import MESSAGE, measure_all, measure_eio, mismatches, predict
from maildircheck.harness.realfs.filesystems import FILESYSTEMS
from maildircheck.harness.verify import verify
from maildircheck.model.faults import EIO, ENOSPC, POWER_LOSS, Fault
from maildircheck.model.fs import FileSystem
from maildircheck.model.kernel import Kernel, Process
from maildircheck.model.persistence import (
    PROFILES,
    STALE_PATTERN,
    CrashChoice,
    FailedFsync,
    crash_choices,
    crash_view,
    power_loss,
)
from maildircheck.model.syscalls import (
    Close,
    Fsync,
    Link,
    Open,
    OpenFlag,
    Read,
    Sync,
    Syscall,
    Write,
)
from tests.realfs_support import require_rig


@pytest.mark.parametrize("fs_name", list(FILESYSTEMS))
def test_f9_each_file_system_agrees_with_the_profile_claiming_it(fs_name: str) -> None:
    fs = FILESYSTEMS[fs_name]
    require_rig(fs)
    row = measure_eio(fs, errno.EIO)
    assert row.refused >= 1, "the block fault never fired"
    assert row.behaviour is row.claimed, row
    assert row.mismatches == [], row.mismatches


def test_f9_enospc_from_the_device_is_dropped_like_eio_on_ext4() -> None:
    fs = FILESYSTEMS["ext4-ordered"]
    require_rig(fs)
    row = measure_eio(fs, errno.ENOSPC)
    assert (row.fsync1, row.fsync2, row.fd_before, row.fd_after) == ("ENOSPC", "0", "ENOSPC", "0")
    assert row.behaviour is FailedFsync.DROPPED is row.claimed
    assert row.mismatches == []


def test_f9_read_only_in_the_model_is_what_ext4_data_journal_does() -> None:
    """The comparison can fail: the same measurement against the profile with DROPPED."""
    fs = FILESYSTEMS["ext4-journal"]
    require_rig(fs)
    row = measure_eio(fs, errno.EIO)
    assert row.behaviour is FailedFsync.READ_ONLY is row.claimed
    assert mismatches(row, predict(row.profile, errno.EIO)) == []
    dropping = replace(row.profile, failed_fsync=FailedFsync.DROPPED)
    assert mismatches(row, predict(dropping, errno.EIO)) != []


# --- the rule in the model ---------------------------------------------------------------
CREATE = OpenFlag.CREAT | OpenFlag.WRONLY | OpenFlag.EXCL
PATH = "/m/tmp/a"


class Setup:
    """A file written under `profile` and an open descriptor on it, nothing synced."""

    def __init__(
        self, profile_name: str = "ext4-ordered", failed_fsync: FailedFsync | None = None
    ) -> None:
        self.profile = PROFILES[profile_name]
        if failed_fsync is not None:
            self.profile = replace(self.profile, failed_fsync=failed_fsync)
        self.fs = FileSystem.with_dirs("/m", "/m/tmp", "/m/new")
        self.kernel = Kernel(self.fs, self.profile)
        self.proc = Process("D1", 100, "h")
        self.fd = self.fd_of(Open(PATH, CREATE, 0o600))
        self.before = self.fd_of(Open(PATH, OpenFlag.RDONLY))
        assert self.ask(Write(self.fd, MESSAGE)) == len(MESSAGE)
        self.ino = self.fs.lookup(PATH)

    def ask(self, request: Syscall[Any], fault: Fault | None = None) -> object:
        return self.kernel.execute(self.proc, request, fault)

    def fd_of(self, request: Syscall[Any]) -> int:
        fd = self.ask(request)
        assert isinstance(fd, int), fd
        return fd

    def code(self, request: Syscall[Any], fault: Fault | None = None) -> int:
        reply = self.ask(request, fault)
        return reply.errno or -1 if isinstance(reply, OSError) else 0

    def crash_contents(self) -> set[bytes]:
        return {
            bytes(crash_view(self.fs, self.profile, c)[1].get(self.ino, b""))
            for c in crash_choices(self.fs, self.profile)
        }


@pytest.mark.parametrize(
    "profile",
    [p for p, v in PROFILES.items() if not v.is_sync and v.failed_fsync is FailedFsync.DROPPED],
)
def test_f9_a_retried_fsync_succeeds_and_the_data_is_never_durable(profile: str) -> None:
    s = Setup(profile)
    assert PROFILES[profile].failed_fsync is FailedFsync.DROPPED
    assert s.code(Fsync(s.fd), EIO) == errno.EIO
    assert s.code(Fsync(s.fd)) == 0  # the error was reported once
    assert s.code(Fsync(s.fd)) == 0 and s.code(Sync()) == 0
    assert bytes(s.fs.inodes[s.ino].data) == MESSAGE  # reads come from the page cache
    reader = s.fd_of(Open(PATH, OpenFlag.RDONLY))
    assert s.ask(Read(reader, 2 * len(MESSAGE))) == MESSAGE
    assert s.fs.durable_data.get(s.ino, b"") != MESSAGE
    contents = s.crash_contents()
    assert MESSAGE not in contents  # no crash keeps it: zeros, nothing, or stale blocks
    assert all(not c.strip(b"\0") or STALE_PATTERN[:8] in c for c in contents), contents


def test_f9_the_error_reaches_each_file_opened_before_it_once() -> None:
    s = Setup()
    assert s.code(Fsync(s.fd), ENOSPC) == errno.ENOSPC
    after = s.fd_of(Open(PATH, OpenFlag.RDONLY))
    assert s.code(Fsync(after)) == 0  # opened after the error was seen: never told
    assert s.code(Fsync(s.before)) == errno.ENOSPC  # opened before: told once
    assert s.code(Fsync(s.before)) == 0


def test_f9_a_crash_after_the_retry_loses_the_linked_message() -> None:
    s = Setup()
    s.code(Fsync(s.fd), EIO)
    assert s.code(Fsync(s.fd)) == 0
    assert s.code(Close(s.fd)) == 0
    assert s.code(Link(PATH, "/m/new/a")) == 0
    assert s.code(Sync()) == 0  # everything else durable: the entry in new/ survives
    power_loss(s.fs, s.profile, CrashChoice())
    new = s.fs.lookup("/m/new")
    assert "a" in s.fs.entries[new]
    assert bytes(s.fs.inodes[s.fs.entries[new]["a"]].data) == bytes(len(MESSAGE))


def test_f9_a_rewrite_after_the_failure_is_durable_and_not_zeroed_by_it() -> None:
    """Writing the message again and fsyncing it is a real recovery: the failed write may
    at most have grown the file, never overwrite what a later write put on disk."""
    s = Setup()
    s.code(Fsync(s.fd), EIO)
    assert s.ask(Write(s.fd, MESSAGE, at=0)) == len(MESSAGE)
    assert s.code(Fsync(s.fd)) == 0
    assert s.crash_contents() == {MESSAGE}


def test_f9_kept_leaves_the_data_for_a_retry() -> None:
    s = Setup(failed_fsync=FailedFsync.KEPT)
    assert s.code(Fsync(s.fd), EIO) == errno.EIO
    assert s.code(Fsync(s.before)) == 0  # nothing recorded: the data is still pending
    assert s.code(Fsync(s.fd)) == 0
    assert s.crash_contents() == {MESSAGE}


def test_f9_read_only_fails_every_later_change_until_a_crash() -> None:
    s = Setup(failed_fsync=FailedFsync.READ_ONLY)
    assert s.code(Fsync(s.fd), EIO) == errno.EROFS
    for request in (Fsync(s.fd), Write(s.fd, b"x"), Link(PATH, "/m/new/a"), Sync()):
        assert s.code(request) == errno.EROFS, request
    assert s.code(Open("/m/tmp/b", CREATE, 0o600)) == errno.EROFS
    assert s.ask(Read(s.before, 4)) == MESSAGE[:4]  # reading still works
    assert MESSAGE not in s.crash_contents()  # the data never reached the disk
    power_loss(s.fs, s.profile, CrashChoice(dropped_meta=99))
    assert s.code(Open("/m/tmp/b", CREATE, 0o600)) == 0  # mounted again after the crash


def test_f9_nfs_exports_keep_what_the_server_has() -> None:
    from maildircheck.model.nfs import EXPORT_ASYNC, EXPORT_SYNC

    assert EXPORT_SYNC.failed_fsync is EXPORT_ASYNC.failed_fsync is FailedFsync.KEPT


def test_f9_fsync_retry_is_caught_where_data_is_dropped_and_correct_holds() -> None:
    caught = verify(
        Check.of("fsync-retry", "ext4-ordered", (EIO, POWER_LOSS), max_examples=600, seed=1)
    )
    assert caught.violation is not None and caught.violation.prop in ("P1", "P2")
    assert caught.timeline is not None and "EIO" in caught.timeline.render()
    assert verify(
        Check.of("fsync-retry", "sync", (EIO, POWER_LOSS), max_examples=200, seed=1)
    ).holds
    assert verify(
        Check.of("correct", "ext4-ordered", (EIO, POWER_LOSS), max_examples=200, seed=1)
    ).holds


def test_f9_the_table_command_rejects_bad_options_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["--fs", "ext5"], ["--fs", ""], ["--workload", "nope"]):
        assert main(["fidelity", "--fsync-failure", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("maildircheck: error: ") and err.count("\n") == 1, err


def test_f9_the_table_renders_every_column_of_a_row() -> None:
    fs = FILESYSTEMS["ext4-ordered"]
    require_rig(fs)
    rows = [measure_eio(fs, errno.EIO)]
    table = eio_report.render(rows).splitlines()
    assert len(table) == 3 and table[0].count("|") == table[2].count("|")
    assert "| DROPPED | DROPPED (ext4-ordered) | yes |" in table[2]
    (cells,) = eio_report.as_json(rows)
    assert cells["fsync2"] == "0" and cells["mismatches"] == [] and cells["kernel"]


def test_f9_docs_table_is_regenerated() -> None:
    """docs/fidelity.md quotes `maildircheck fidelity --fsync-failure`; its ext4-ordered
    rows must be what a measurement prints now."""
    fs = FILESYSTEMS["ext4-ordered"]
    require_rig(fs)
    doc = (Path(__file__).resolve().parent.parent / "docs" / "fidelity.md").read_text()
    rows = eio_report.render(measure_all([fs.name], (errno.EIO, errno.ENOSPC))).splitlines()[2:]
    assert len(rows) == 2
    for row in rows:
        assert row in doc, f"docs/fidelity.md: paste this row again:\n{row}"
