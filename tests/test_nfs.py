"""NFS in the model (R1-R10, faults X8-X10) and what the checker shows with it.

The first half drives `NfsClientKernel` by hand; the second runs the checker on the NFS
environments and requires the outcomes issue 3 lists.
"""

from __future__ import annotations

import errno

import pytest

from maildircheck.harness.check import Check
from maildircheck.harness.verify import verify
from maildircheck.model.environments import ENVIRONMENTS, NFS
from maildircheck.model.faults import FAULTS
from maildircheck.model.fs import FileSystem
from maildircheck.model.kernel import Process
from maildircheck.model.nfs import EXPORT_ASYNC, EXPORT_SYNC, Mount, NfsClientKernel
from maildircheck.model.persistence import CrashChoice, power_loss
from maildircheck.model.syscalls import (
    Close,
    Fsync,
    Link,
    Open,
    OpenFlag,
    Stat,
    StatResult,
    Syscall,
    Write,
)

CREATE = OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.EXCL
DIRS = ("/m", "/m/tmp", "/m/new")


def clients(
    mount: Mount | None = None, drc: bool = True, async_export: bool = False
) -> tuple[FileSystem, NfsClientKernel, NfsClientKernel]:
    fs = FileSystem.with_dirs(*DIRS)
    export = EXPORT_ASYNC if async_export else EXPORT_SYNC
    a = NfsClientKernel(fs, export, mount=mount or Mount(), drc=drc)
    b = NfsClientKernel(fs, export, mount=mount or Mount(), drc=drc)
    return fs, a, b


def ok(kernel: NfsClientKernel, proc: Process, request: Syscall[object]) -> object:
    reply = kernel.execute(proc, request)
    assert not isinstance(reply, OSError), reply
    return reply


P = Process("D1", 100, "mx1.example")


def test_r3_writes_stay_in_the_client_until_close() -> None:
    fs, a, b = clients()
    fd = ok(a, P, Open("/m/tmp/f", CREATE))
    assert isinstance(fd, int)
    ok(a, P, Write(fd, b"hello"))
    ino = fs.lookup("/m/tmp/f")
    assert bytes(fs.inodes[ino].data) == b""  # the server (every other host) sees nothing
    reader = ok(b, Process("R", 200, "mx2.example"), Stat("/m/tmp/f"))
    assert isinstance(reader, StatResult) and reader.size == 0
    ok(a, P, Close(fd))  # close-to-open: flushed and committed
    assert bytes(fs.inodes[ino].data) == b"hello" and fs.durable_data[ino] == b"hello"


def test_r3_nocto_close_does_not_flush() -> None:
    fs, a, _ = clients(Mount(cto=False))
    fd = ok(a, P, Open("/m/tmp/f", CREATE))
    assert isinstance(fd, int)
    ok(a, P, Write(fd, b"hello"))
    ok(a, P, Close(fd))
    assert bytes(fs.inodes[fs.lookup("/m/tmp/f")].data) == b""
    a.crash()  # R7: the client's page cache dies with it
    assert a.dirty == {}


def test_r1_sync_export_metadata_at_once_data_at_commit() -> None:
    fs, a, _ = clients()
    fd = ok(a, P, Open("/m/tmp/f", CREATE))
    assert isinstance(fd, int)
    assert "f" in fs.durable_entries[fs.lookup("/m/tmp")]  # CREATE is stable on reply
    ok(a, P, Write(fd, b"x"))
    a.flush(fs.lookup("/m/tmp/f"))  # WRITE UNSTABLE
    assert (
        fs.lookup("/m/tmp/f") not in fs.durable_data or not fs.durable_data[fs.lookup("/m/tmp/f")]
    )
    ok(a, P, Fsync(fd))  # COMMIT
    assert fs.durable_data[fs.lookup("/m/tmp/f")] == b"x"


def test_r2_async_export_promises_nothing() -> None:
    fs, a, _ = clients(async_export=True)
    fd = ok(a, P, Open("/m/tmp/f", CREATE))
    assert isinstance(fd, int)
    ok(a, P, Write(fd, b"x"))
    ok(a, P, Fsync(fd))
    assert "f" not in fs.durable_entries[fs.lookup("/m/tmp")]
    assert not EXPORT_ASYNC.durable_success_possible


def test_r4_uncommitted_data_is_resent_after_a_server_reboot() -> None:
    fs, a, _ = clients()
    fd = ok(a, P, Open("/m/tmp/f", CREATE))
    assert isinstance(fd, int)
    ino = fs.lookup("/m/tmp/f")
    ok(a, P, Write(fd, b"data"))
    a.flush(ino)
    power_loss(fs, EXPORT_SYNC, CrashChoice(0, (1,)))  # the unstable write is lost
    assert bytes(fs.inodes[ino].data) == b""
    a.server_rebooted()  # the write verifier changed
    ok(a, P, Fsync(fd))
    assert fs.durable_data[ino] == b"data"


def test_r5_write_error_at_close_drops_the_client_data() -> None:
    fs, a, _ = clients()
    fd = ok(a, P, Open("/m/tmp/f", CREATE))
    assert isinstance(fd, int)
    ok(a, P, Write(fd, b"data"))
    reply = a.execute(P, Close(fd), FAULTS["enospc"])
    assert isinstance(reply, OSError) and reply.errno == errno.ENOSPC
    assert bytes(fs.inodes[fs.lookup("/m/tmp/f")].data) == b"" and a.dirty == {}


@pytest.mark.parametrize(("drc", "expect"), [(True, None), (False, errno.EEXIST)])
def test_r6_lost_link_reply_with_and_without_a_duplicate_request_cache(
    drc: bool, expect: int | None
) -> None:
    fs, a, _ = clients(drc=drc)
    fd = ok(a, P, Open("/m/tmp/f", CREATE))
    assert isinstance(fd, int)
    ok(a, P, Close(fd))
    reply = a.execute(P, Link("/m/tmp/f", "/m/new/f"), FAULTS["lost-reply"])
    assert fs.find("/m/new/f") is not None  # the server linked either way
    assert (reply.errno if isinstance(reply, OSError) else None) == expect


def test_r8_attribute_cache_keeps_a_stale_link_count() -> None:
    _, a, _ = clients()
    fd = ok(a, P, Open("/m/tmp/f", CREATE))
    assert isinstance(fd, int)
    ok(a, P, Close(fd))
    ok(a, P, Link("/m/tmp/f", "/m/new/f"))
    st = ok(a, P, Stat("/m/tmp/f"))
    assert isinstance(st, StatResult) and st.nlink == 1  # cached at open, fresh for 3 s
    a.clock_us += 3_000_001
    st = ok(a, P, Stat("/m/tmp/f"))
    assert isinstance(st, StatResult) and st.nlink == 2


# --- the checker on NFS: the outcomes of issue 3 -------------------------------------------
NFS_FAULTS = ("kill", "server-crash", "client-crash", "sigterm", "enospc", "edquot", "eio")


def test_r9_vpopmail_partial_message_seen_from_another_host() -> None:
    v = verify(Check.of("vpopmail-4.10.14", "nfs3-sync", NFS_FAULTS, max_examples=300, seed=1))
    assert v.violation is not None and v.violation.prop == "P1"
    assert "what a reader on another host sees" in v.violation.why


def test_unchecked_close_swallows_a_deferred_enospc() -> None:
    v = verify(Check.of("close-unchecked", "nfs3-sync", ("enospc",), max_examples=1000, seed=1))
    assert v.violation is not None and v.violation.prop in ("P1", "P2")
    assert v.timeline is not None and "[fault: enospc]" in v.timeline.render()


def test_unflushed_mail_is_linked_empty_under_nocto() -> None:
    """nocto: close does not flush, so a delivery without fsync links a file whose data
    only its client holds: every other host sees it empty (P1), and a client crash (X9)
    would lose the data for good."""
    v = verify(Check.of("no-fsync", "nfs3-nocto", ("client-crash",), max_examples=500, seed=1))
    assert v.violation is not None and v.violation.prop in ("P1", "P2")


def test_ambiguous_link_duplicates_without_a_drc_where_correct_delivers_once() -> None:
    bad = verify(
        Check.of(
            "ambiguous-link-fails",
            "nfs3-nodrc",
            ("lost-reply",),
            max_examples=1000,
            seed=1,
            quality=True,
        )
    )
    assert bad.violation is not None and bad.violation.prop == "P6"
    good = verify(
        Check.of("correct", "nfs3-nodrc", ("lost-reply",), max_examples=300, seed=1, quality=True)
    )
    assert good.holds, str(good.violation)


@pytest.mark.parametrize("env", ["nfs3-sync", "nfs3-nocto", "nfs3-nodrc"])
def test_correct_strategy_holds_on_nfs(env: str) -> None:
    faults = (*NFS_FAULTS, "lost-reply", "soft-timeout")
    v = verify(Check.of("correct", env, faults, max_examples=250, seed=3, strict_lifecycle=True))
    assert v.holds, f"{v.violation}\n{v.timeline.render() if v.timeline else ''}"
    assert v.environment is None


def test_async_export_is_a_verdict_on_the_environment() -> None:
    v = verify(Check.of("correct", "nfs3-async-export", NFS_FAULTS, max_examples=300, seed=1))
    assert v.holds  # the strategy is not blamed ...
    assert v.environment is not None and v.environment.violation is not None  # ... the export is
    assert v.environment.violation.prop in ("P1", "P2")
    assert v.as_json()["environment"]["durable_success_possible"] is False
    assert not ENVIRONMENTS["nfs3-async-export"].durable_success_possible


def test_pid_only_names_collide_between_two_hosts() -> None:
    """Two NFS clients each run pid 100 - no pid is reused on either host - and B12's
    host-less names collide: the second rename replaces the first message (P3)."""
    from maildircheck.harness.host import ROOT, Host
    from maildircheck.impl.strategies import resolve
    from maildircheck.model.outcome import Delivered, DeliveryRequest

    host = Host(ENVIRONMENTS["nfs3-sync"])
    outcomes = []
    for label, message, on in (("D1", "m1", 0), ("D2", "m2", 1)):
        proc, _ = host.spawn_delivery(label, 100, message, on)
        kernel = host.kernel_of(proc)
        gen = resolve("pid-only-name")(DeliveryRequest(ROOT))
        try:
            request = next(gen)
            while True:
                request = gen.send(kernel.execute(proc, request))
        except StopIteration as stop:
            outcomes.append(stop.value)
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert outcomes[0].name == outcomes[1].name  # same name from two hosts
    new = host.fs.entries[host.layout.new]
    assert len(new) == 1  # one message replaced the other
    # and the checker finds it (P3) - on one host through pid reuse, or across hosts
    v = verify(Check.of("pid-only-name", "nfs3-sync", (), max_examples=1500, seed=1))
    assert v.violation is not None and v.violation.prop == "P3"


def test_nfs_only_faults_need_an_nfs_environment() -> None:
    with pytest.raises(ValueError, match="needs an NFS environment"):
        verify(Check.of("correct", "sync", ("server-crash",), max_examples=5))


def test_soft_mount_timeout_duplicates_unless_the_link_is_checked_by_inode() -> None:
    """X10: EIO for a link the server performed. The correct strategy's dev+ino check
    sees it happened; ambiguous-link-fails reports failure and the retry duplicates."""
    bad = verify(
        Check.of(
            "ambiguous-link-fails",
            "nfs3-sync",
            ("soft-timeout",),
            max_examples=1000,
            seed=1,
            quality=True,
        )
    )
    assert bad.violation is not None and bad.violation.prop == "P6"
    assert bad.timeline is not None and "[fault: soft-timeout]" in bad.timeline.render()
    good = verify(
        Check.of(
            "correct", "nfs3-sync", ("soft-timeout", "eio"), max_examples=300, seed=1, quality=True
        )
    )
    assert good.holds, str(good.violation)


@pytest.mark.parametrize(("mode", "hidden"), [("all", True), ("pos", False), ("none", False)])
def test_r10_lookup_cache_hides_another_hosts_new_file(mode: str, hidden: bool) -> None:
    _, a, b = clients(Mount(lookupcache=mode))
    reader = Process("R", 200, "mx2.example")
    assert isinstance(b.execute(reader, Stat("/m/new/f")), OSError)  # b looks: no such name
    fd = ok(a, P, Open("/m/new/f", CREATE))  # host a creates it on the server
    assert isinstance(fd, int)
    ok(a, P, Close(fd))
    reply = b.execute(reader, Stat("/m/new/f"))
    assert isinstance(reply, OSError) is hidden  # a cached negative entry is still believed
    b.clock_us += 30_000_001  # acdirmin
    assert isinstance(b.execute(reader, Stat("/m/new/f")), StatResult)


def test_r10_positive_entry_of_a_removed_file_is_stale() -> None:
    from maildircheck.model.syscalls import Unlink

    fs, a, b = clients()
    fd = ok(a, P, Open("/m/new/f", CREATE))
    assert isinstance(fd, int)
    ok(a, P, Close(fd))
    reader = Process("R", 200, "mx2.example")
    ok(b, reader, Stat("/m/new/f"))  # b caches "new/f is inode N"
    ok(a, P, Unlink("/m/new/f"))
    reply = b.execute(reader, Stat("/m/new/f"))
    assert isinstance(reply, OSError) and reply.errno == errno.ESTALE
    assert fs.find("/m/new/f") is None
    own = a.execute(P, Stat("/m/new/f"))  # the host that removed it knows
    assert isinstance(own, OSError) and own.errno == errno.ENOENT


@pytest.mark.parametrize("env", [e.name for e in NFS])
def test_every_strategy_runs_on_every_nfs_environment(env: str) -> None:
    """Issue 3's done-when: verify works with every strategy on every NFS environment
    (a verdict either way, no crash of the checker), every fault enabled."""
    from maildircheck.impl.strategies import CATALOGUE
    from maildircheck.model.faults import FAULTS as ALL

    for name in CATALOGUE:
        v = verify(Check.of(name, env, tuple(ALL), max_examples=15, seed=1))
        assert v.examples > 0
        assert v.holds or v.timeline is not None


def test_r5_a_write_error_is_reported_at_close_not_at_write() -> None:
    fs, a, _ = clients()
    fd = ok(a, P, Open("/m/tmp/f", CREATE))
    assert isinstance(fd, int)
    assert a.execute(P, Write(fd, b"data"), FAULTS["edquot"]) == 4  # write(2) "succeeds"
    reply = a.execute(P, Close(fd))
    assert isinstance(reply, OSError) and reply.errno == errno.EDQUOT
    assert bytes(fs.inodes[fs.lookup("/m/tmp/f")].data) == b"" and fd not in P.fds
