"""The model's persistence rules (F1-F8) and its environment (E1-E5), one test each or more.

The F8 tests compare what `find_crash_state` and `guaranteed_in` compute against a brute
force over every `CrashChoice` a profile allows, on random small histories.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maildircheck.harness.actors import cleaner, reader
from maildircheck.harness.check import Check
from maildircheck.harness.host import Host
from maildircheck.harness.verify import verify
from maildircheck.model import persistence
from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.faults import FAULTS
from maildircheck.model.fs import FileSystem, MetaOp
from maildircheck.model.kernel import Kernel, Process
from maildircheck.model.outcome import TemporaryFailure
from maildircheck.model.persistence import PROFILES, CrashChoice, Fate, Ordering
from maildircheck.model.properties import DeliveryRecord
from maildircheck.model.syscalls import (
    Close,
    Fsync,
    FsyncDir,
    GetTime,
    Link,
    Open,
    OpenFlag,
    Read,
    Rename,
    Syscall,
    Unlink,
    Write,
)

DIRS = ("/m", "/m/tmp", "/m/new", "/m/cur")
CRASHING = [name for name, p in PROFILES.items() if not p.is_sync]  # every local profile but sync
CREATE = OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.EXCL
FULL = b"abcd"


def fresh(profile: str = "posix") -> tuple[FileSystem, Kernel, Process]:
    fs = FileSystem.with_dirs(*DIRS)
    return fs, Kernel(fs, PROFILES[profile]), Process("D1", 100, "h")


def run(kernel: Kernel, proc: Process, request: Syscall[object]) -> object:
    reply = kernel.execute(proc, request)
    assert not isinstance(reply, OSError), reply
    return reply


def write_file(kernel: Kernel, proc: Process, path: str, data: bytes = FULL) -> int:
    fd = run(kernel, proc, Open(path, CREATE))
    assert isinstance(fd, int)
    run(kernel, proc, Write(fd, data))
    return fd


# --- F1: live at once, durable only when made so ------------------------------------------
def test_f1_changes_are_live_at_once_and_pending_until_synced() -> None:
    fs, kernel, proc = fresh("ext4-ordered")
    write_file(kernel, proc, "/m/tmp/a")
    tmp = fs.lookup("/m/tmp")
    assert "a" in fs.entries[tmp]
    assert "a" not in fs.durable_entries[tmp]
    assert len(fs.pending) == 2  # the create and the write


def test_s1_sync_profile_is_durable_on_return() -> None:
    fs, kernel, proc = fresh("sync")
    write_file(kernel, proc, "/m/tmp/a")
    assert fs.pending == []
    assert fs.durable_data[fs.lookup("/m/tmp/a")] == FULL


# --- F2 / F3: what fsync makes durable ----------------------------------------------------
@pytest.mark.parametrize(("profile", "entry_durable"), [("ext4-ordered", True), ("posix", False)])
def test_f2_fsync_file(profile: str, entry_durable: bool) -> None:
    fs, kernel, proc = fresh(profile)
    fd = write_file(kernel, proc, "/m/tmp/a")
    run(kernel, proc, Fsync(fd))
    ino = fs.lookup("/m/tmp/a")
    assert fs.durable_data[ino] == FULL
    assert ("a" in fs.durable_entries[fs.lookup("/m/tmp")]) is entry_durable


def test_f3_fsync_dir_makes_only_that_directory_durable_under_posix() -> None:

    fs, kernel, proc = fresh("posix")
    write_file(kernel, proc, "/m/tmp/a")
    run(kernel, proc, Link("/m/tmp/a", "/m/new/a"))
    run(kernel, proc, FsyncDir("/m/new"))
    assert "a" in fs.durable_entries[fs.lookup("/m/new")]
    assert "a" not in fs.durable_entries[fs.lookup("/m/tmp")]
    assert fs.lookup("/m/new/a") not in fs.durable_data  # the data was never synced


# --- F4 / F5: crash states ----------------------------------------------------------------
def test_f4_journal_keeps_a_prefix_and_data_may_be_zero_filled() -> None:

    fs, kernel, proc = fresh("ext4-ordered")
    write_file(kernel, proc, "/m/tmp/a")
    run(kernel, proc, Link("/m/tmp/a", "/m/new/a"))
    profile = PROFILES["ext4-ordered"]
    new = fs.lookup("/m/new")
    tmp = fs.lookup("/m/tmp")
    # dropping one metadata op from the tail loses the link but keeps the create
    entries, _ = persistence.crash_view(fs, profile, CrashChoice(1, ()))
    assert "a" in entries[tmp] and "a" not in entries.get(new, {})
    zero = profile.data_fates.index(Fate.ZERO)
    entries, data = persistence.crash_view(fs, profile, CrashChoice(0, (zero,)))
    assert data[entries[new]["a"]] == bytes(len(FULL))
    assert Fate.STALE not in profile.data_fates
    assert Fate.STALE in PROFILES["ext4-writeback"].data_fates


def test_f5_posix_may_keep_a_later_operation_without_an_earlier_one() -> None:

    fs, kernel, proc = fresh("posix")
    write_file(kernel, proc, "/m/tmp/a")
    run(kernel, proc, Link("/m/tmp/a", "/m/new/a"))
    profile = PROFILES["posix"]
    assert profile.ordering is Ordering.ANY
    entries, _ = persistence.crash_view(fs, profile, CrashChoice(0b01, ()))  # drop the create
    assert "a" in entries[fs.lookup("/m/new")] and "a" not in entries[fs.lookup("/m/tmp")]


def test_f5_an_earlier_create_made_durable_later_does_not_undo_a_durable_rename() -> None:
    # fsync(new/) makes the rename out of tmp/ durable while the create in tmp/ is pending;
    # a later sync must not bring tmp/a back (found by the fidelity check, G4).
    fs, kernel, proc = fresh("posix")
    fd = write_file(kernel, proc, "/m/tmp/a")
    run(kernel, proc, Fsync(fd))
    run(kernel, proc, Rename("/m/tmp/a", "/m/new/a"))
    run(kernel, proc, FsyncDir("/m/new"))
    for choice in persistence.crash_choices(fs, PROFILES["posix"]):
        entries, _ = persistence.crash_view(fs, PROFILES["posix"], choice)
        assert "a" in entries[fs.lookup("/m/new")]
    persistence.sync_all(fs, PROFILES["posix"])
    assert fs.durable_entries[fs.lookup("/m/tmp")] == {}
    assert "a" in fs.durable_entries[fs.lookup("/m/new")]


def test_s5_journaled_data_survives_with_the_metadata_after_it() -> None:
    # ext4 data=journal (S5, measured in G4): write, link, no fsync - a crash that keeps the
    # link keeps the write; of writes after the last kept operation, a prefix survives.
    fs, kernel, proc = fresh("ext4-journal")
    profile = PROFILES["ext4-journal"]
    fd = write_file(kernel, proc, "/m/tmp/a")
    run(kernel, proc, Link("/m/tmp/a", "/m/new/a"))
    run(kernel, proc, Write(fd, b"tail"))
    run(kernel, proc, Write(fd, b"more"))
    ino = fs.lookup("/m/tmp/a")
    seen = set()
    for choice in persistence.crash_choices(fs, profile):
        entries, data = persistence.crash_view(fs, profile, choice)
        if "a" in entries[fs.lookup("/m/new")]:
            seen.add(bytes(data[ino]))
    assert seen == {FULL, FULL + b"tail", FULL + b"tailmore"}
    assert all(
        Fate.ZERO not in persistence.fates(fs, profile, c)
        for c in persistence.crash_choices(fs, profile)
    )
    run(kernel, proc, FsyncDir("/m/cur"))  # any commit carries every file's data
    assert fs.pending == []


# --- F6: rename is one operation ----------------------------------------------------------
def test_f6_rename_is_atomic_in_every_profile() -> None:

    for name, profile in PROFILES.items():
        fs, kernel, proc = fresh(name)
        write_file(kernel, proc, "/m/tmp/a")
        fs.make_all_durable()
        run(kernel, proc, Rename("/m/tmp/a", "/m/new/a"))
        if profile.is_sync:
            continue
        (op,) = fs.pending
        assert isinstance(op, MetaOp) and len(op.changes) == 2
        for dropped in range(2):
            entries, _ = persistence.crash_view(fs, profile, CrashChoice(dropped, ()))
            names = ["a" in entries[fs.lookup(d)] for d in ("/m/tmp", "/m/new")]
            assert names.count(True) == 1, (name, dropped)


def renamed_to_cur_and_synced(profile: str, synced: str) -> FileSystem:
    """A durable new/a renamed to cur/a (a reader's move), then `synced` fsynced."""
    fs, kernel, proc = fresh(profile)
    write_file(kernel, proc, "/m/new/a")
    fs.make_all_durable()
    run(kernel, proc, Rename("/m/new/a", "/m/cur/a"))
    run(kernel, proc, FsyncDir(synced))
    return fs


@pytest.mark.parametrize("profile", ["posix", "btrfs"])
def test_f6_fsync_of_the_target_directory_keeps_only_its_half(profile: str) -> None:
    # measured on btrfs (S6, G4): rename new/ -> cur/, fsync(cur/), crash: both names
    fs = renamed_to_cur_and_synced(profile, "/m/cur")
    seen = set()
    for choice in persistence.crash_choices(fs, PROFILES[profile]):
        entries, _ = persistence.crash_view(fs, PROFILES[profile], choice)
        seen.add(tuple("a" in entries[fs.lookup(d)] for d in ("/m/new", "/m/cur")))
    assert seen == {(False, True), (True, True)}  # never lost, maybe under both names


@pytest.mark.parametrize("profile", ["posix", "btrfs"])
def test_f6_fsync_of_the_source_directory_keeps_the_rename_whole(profile: str) -> None:
    # a reader renames new/a to cur/ before the agent's fsync(new/): the message must not
    # vanish from both directories
    fs = renamed_to_cur_and_synced(profile, "/m/new")
    assert fs.pending == []
    assert "a" in fs.durable_entries[fs.lookup("/m/cur")]


def test_f6_a_journal_commits_a_synced_rename_whole() -> None:
    assert renamed_to_cur_and_synced("ext4-ordered", "/m/cur").pending == []


# --- F7: a write error at close loses what was not synced ---------------------------------
def test_f7_close_error_loses_unsynced_data() -> None:
    fs, kernel, proc = fresh("ext4-ordered")
    fd = write_file(kernel, proc, "/m/tmp/a")
    reply = kernel.execute(proc, Close(fd), FAULTS["enospc"])
    assert isinstance(reply, OSError) and reply.errno == errno.ENOSPC
    assert fd not in proc.fds  # close(2) frees the descriptor anyway
    assert bytes(fs.inodes[fs.lookup("/m/tmp/a")].data) == b""


def test_f7_close_error_after_fsync_loses_nothing() -> None:
    fs, kernel, proc = fresh("ext4-ordered")
    fd = write_file(kernel, proc, "/m/tmp/a")
    run(kernel, proc, Fsync(fd))
    kernel.execute(proc, Close(fd), FAULTS["eio"])
    assert bytes(fs.inodes[fs.lookup("/m/tmp/a")].data) == FULL


# --- F8: computed crash states agree with brute force -------------------------------------
OPS = st.lists(
    st.sampled_from(
        [
            "create_tmp",
            "create_new",
            "write",
            "link",
            "rename",
            "unlink_tmp",
            "unlink_new",
            "fsync",
            "fsync_new",
            "fsync_tmp",
        ]
    ),
    max_size=6,
)


def replay(profile: str, ops: list[str]) -> FileSystem:
    """Apply a small history; a step that is impossible at that point is skipped."""

    fs, kernel, proc = fresh(profile)
    fd = None
    written = 0
    for i, op in enumerate(ops):
        request: Syscall[object] | None = None
        if op in ("create_tmp", "create_new") and fd is None:
            path = f"/m/{op[7:]}/f{i}"
            reply = kernel.execute(proc, Open(path, CREATE))
            fd, written = (reply if isinstance(reply, int) else None), 0
        elif op == "write" and fd is not None and written < len(FULL):
            request = Write(fd, FULL[written : written + 2])
            written += 2
        elif op == "fsync" and fd is not None:
            request = Fsync(fd)
        elif op in ("link", "rename"):
            names = sorted(fs.entries[fs.lookup("/m/tmp")])
            if names:
                cls = Link if op == "link" else Rename
                request = cls(f"/m/tmp/{names[0]}", f"/m/new/{names[0]}")
        elif op in ("unlink_tmp", "unlink_new"):
            d = op[7:]
            names = sorted(fs.entries[fs.lookup(f"/m/{d}")])
            if names:
                request = Unlink(f"/m/{d}/{names[0]}")
        elif op in ("fsync_new", "fsync_tmp"):
            request = FsyncDir(f"/m/{op[6:]}")
        if request is not None:
            kernel.execute(proc, request)
    return fs


def all_choices(fs: FileSystem, profile: persistence.Profile) -> list[CrashChoice]:
    metas = len(persistence.meta_ops(fs))
    datas = len(persistence.data_ops(fs))
    drops = range(metas + 1) if profile.ordering is Ordering.JOURNAL else range(1 << metas)
    fates = itertools.product(range(len(profile.data_fates)), repeat=datas)
    return [CrashChoice(d, f) for f, d in itertools.product(list(fates), drops)]


def bad_in_new(
    fs: FileSystem,
) -> Callable[[dict[int, dict[str, int]], dict[int, bytes]], str | None]:
    new = fs.lookup("/m/new")

    def bad(entries: dict[int, dict[str, int]], data: dict[int, bytes]) -> str | None:
        for name, ino in entries.get(new, {}).items():
            if data.get(ino, b"") != FULL:
                return name
        return None

    return bad


@settings(max_examples=150, deadline=None)
@given(profile=st.sampled_from(CRASHING), ops=OPS)
def test_f8_find_crash_state_agrees_with_brute_force(profile: str, ops: list[str]) -> None:
    fs = replay(profile, ops)
    prof = PROFILES[profile]
    bad = bad_in_new(fs)
    brute = any(bad(*persistence.crash_view(fs, prof, c)) for c in all_choices(fs, prof))
    found = persistence.find_crash_state(fs, prof, (fs.lookup("/m/new"),), bad)
    assert (found is not None) == brute
    if found is not None:  # the witness really is such a state
        assert bad(*persistence.crash_view(fs, prof, found[0])) is not None


@settings(max_examples=150, deadline=None)
@given(profile=st.sampled_from(CRASHING), ops=OPS)
def test_f8_guaranteed_in_agrees_with_brute_force(profile: str, ops: list[str]) -> None:
    fs = replay(profile, ops)
    prof = PROFILES[profile]
    new = fs.lookup("/m/new")
    brute = all(
        any(data.get(i) == FULL for i in entries.get(new, {}).values())
        for entries, data in (persistence.crash_view(fs, prof, c) for c in all_choices(fs, prof))
    )
    assert persistence.guaranteed_in(fs, prof, (new,), FULL) == brute


def test_f8_no_power_loss_in_the_threat_model_means_no_crash_states() -> None:
    """no-fsync is unsafe only through a crash: without power-loss it holds (Host.crashes)."""
    assert verify(
        Check.of("no-fsync", "ext4-ordered", ("kill", "eio"), max_examples=100, seed=1)
    ).holds
    assert not verify(
        Check.of("no-fsync", "ext4-ordered", ("power-loss",), max_examples=300, seed=1)
    ).holds


# --- E1-E5: the rest of the mail host ------------------------------------------------------
def drive(kernel: Kernel, proc: Process, gen: object) -> None:
    from collections.abc import Generator

    assert isinstance(gen, Generator)
    try:
        request = next(gen)
        while True:
            request = gen.send(kernel.execute(proc, request))
    except StopIteration:
        pass


def test_e1_reader_moves_new_to_cur_then_deletes_what_it_read() -> None:

    fs, kernel, proc = fresh()
    write_file(kernel, proc, "/m/tmp/a")
    run(kernel, proc, Link("/m/tmp/a", "/m/new/a"))
    seen: set[str] = set()
    drive(kernel, Process("R", 200, "h"), reader("/m", seen))
    assert fs.entries[fs.lookup("/m/new")] == {} and "a:2,S" in fs.entries[fs.lookup("/m/cur")]
    drive(kernel, Process("R", 200, "h"), reader("/m", seen))
    assert fs.entries[fs.lookup("/m/cur")] == {}


def test_e2_cleaner_removes_only_tmp_files_older_than_36_hours() -> None:
    fs, kernel, proc = fresh()
    write_file(kernel, proc, "/m/tmp/old")
    kernel.clock_us += 36 * 3600 * 1_000_000 + 10
    write_file(kernel, proc, "/m/tmp/young")
    drive(kernel, Process("C", 300, "h"), cleaner("/m"))
    assert sorted(fs.entries[fs.lookup("/m/tmp")]) == ["young"]


def test_e3_the_mta_retries_what_was_not_reported_delivered() -> None:
    host = Host(ENVIRONMENTS["sync"])
    assert host.undelivered() == ["m1", "m2", "m3"]
    _, record = host.spawn_delivery("D1", 100, "m1")
    record.outcome = TemporaryFailure("x")
    assert "m1" in host.undelivered()
    assert isinstance(record, DeliveryRecord)


def test_p7_budget_and_deferral() -> None:
    """P7: the syscall bound is PROGRESS_FACTOR times the correct algorithm's measured
    fault-free count for the message (longer messages need more writes); it is exceeded
    only past the bound and only while no report came; a deferral needs a fault."""
    from maildircheck.harness.host import PROGRESS_FACTOR, correct_syscalls
    from maildircheck.harness.messages import FIXED
    from maildircheck.model.outcome import Delivered
    from maildircheck.model.properties import check_deferral, check_progress

    host = Host(ENVIRONMENTS["ext4-ordered"])
    m1 = correct_syscalls("ext4-ordered", len(FIXED["m1"]))
    m3 = correct_syscalls("ext4-ordered", len(FIXED["m3"]))
    assert 10 < m1 < m3  # the check, the name, the copy, fsync, close, link, fsync new/
    assert host.progress_budget("m1") == PROGRESS_FACTOR * m1
    _, rec = host.spawn_delivery("D1", 100, "m1")
    rec.since_fault = host.progress_budget("m1")
    assert host.check_progress(rec) is None
    rec.since_fault += 1
    late = host.check_progress(rec)
    assert late is not None and late.prop == "P7" and "without reporting" in late.why
    rec.outcome = Delivered("x")
    assert host.check_progress(rec) is None
    assert check_deferral(host.fs, host.layout, rec) is None
    rec.outcome = TemporaryFailure("link: EDQUOT")
    found = check_deferral(host.fs, host.layout, rec)
    assert found is not None and found.prop == "P7" and "no fault" in found.why
    from maildircheck.harness.host import ROOT

    proc, _ = host.spawn_delivery("D0", 101, "m1")
    write_file(host.kernel_of(proc), proc, f"{ROOT}/new/m1", FIXED["m1"])
    assert check_deferral(host.fs, host.layout, rec) is None  # in new/: only P6 can say more
    rec.faults = 1  # a fault hit this attempt: deferring is right
    assert check_deferral(host.fs, host.layout, rec) is None and check_progress(rec, 0) is None


def test_e4_reused_pids_let_weak_names_collide() -> None:
    """rename-clobber names files seconds.pid.host: only a reused pid within one second
    makes two deliveries share a name, and the checker finds it (P3)."""
    v = verify(Check.of("rename-clobber", "sync", (), max_examples=1500, seed=1))
    assert v.violation is not None and v.violation.prop == "P3"
    assert v.timeline is not None
    starts = [ln.text for ln in v.timeline.lines if "MTA starts" in ln.text]
    pids = [t.rsplit("pid ", 1)[1].rstrip(")") for t in starts]
    assert len(pids) != len(set(pids))


def test_e5_clock_moves_one_microsecond_per_syscall() -> None:
    _, kernel, proc = fresh()
    first = run(kernel, proc, GetTime())
    second = run(kernel, proc, GetTime())
    assert first is not None and second is not None
    assert (second.microseconds - first.microseconds) == 1  # type: ignore[attr-defined]


def test_f1_a_zero_byte_append_leaves_the_offset_alone() -> None:
    # Linux's generic_write_checks returns for an empty write before O_APPEND moves the
    # offset (found by tests/test_differential.py against the OS)
    _, kernel, proc = fresh()
    run(kernel, proc, Close(write_file(kernel, proc, "/m/cur/a")))
    fd = run(kernel, proc, Open("/m/cur/a", OpenFlag.RDWR | OpenFlag.APPEND))
    assert isinstance(fd, int)
    assert run(kernel, proc, Write(fd, b"")) == 0
    assert run(kernel, proc, Read(fd, 10)) == FULL
