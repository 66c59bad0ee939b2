"""The litmus suite (G4): small workloads run on a real file system and in the model alike.

A `Workload` is written once, as a sans-IO generator of `Syscall`s over a Maildir at a root
it is given (like the delivery algorithm), so the OS driver (`impl.drivers.perform_on_os`)
runs it on a recorded file system and the model kernel runs it under a profile - the same
requests, in the same order. `setup` (optional) builds what must be durable before the
crash window opens (an old file to replace, a message already in new/).

`window` is what is crashed into: the workload, then a sync(2). `run_steps` is the one
loop that drives a workload: before each request it calls `before` with the step's index,
then performs the request. `label` names step i in both worlds.

The workloads: Ferrite's published litmus programs (Bornholt et al., ASPLOS 2016: prefix
append, atomic replace via rename, atomic create via rename) and the Maildir ones - a file
written in tmp/ with and without fsync, linked or renamed into new/, with and without an
fsync of new/ and of tmp/, the unlink of tmp/, two deliveries, a reader's rename from new/
to cur/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from maildircheck.model.syscalls import (
    Close,
    Fsync,
    FsyncDir,
    Link,
    Open,
    OpenFlag,
    Rename,
    Sync,
    Syscall,
    SyscallGen,
    Unlink,
    Write,
    call,
)

SUBDIRS = ("tmp", "new", "cur")

OLD = b"From: litmus\nSubject: the old version\n\n" + b"old body line\n" * 300  # 4.2 KB
MSG1 = b"From: litmus\nSubject: message one\n\n" + b"first body line .....\n" * 400  # 8.8 KB
MSG2 = b"From: litmus\nSubject: message two\n\n" + b"second body line ....\n" * 200  # 4.4 KB
APPENDED = b"the appended record .\n" * 200  # 4.4 KB


@dataclass(frozen=True)
class Workload:
    name: str
    source: str  # where the program comes from: "Ferrite" or "Maildir"
    summary: str
    run: Callable[[str], SyscallGen[None]]  # the crash window, over the Maildir at a root
    messages: tuple[bytes, ...]  # the contents a complete file may hold
    setup: Callable[[str], SyscallGen[None]] | None = None  # made durable before the window


def run_steps(
    gen: SyscallGen[None],
    perform: Callable[[Syscall[Any]], object],
    before: Callable[[int, Syscall[Any]], None],
) -> int:
    """Drive `gen`: `before(i, request)`, then perform it (an OSError is sent back as the
    reply). Returns the number of steps."""
    index = 0
    try:
        request = next(gen)
        while True:
            before(index, request)
            index += 1
            try:
                reply = perform(request)
            except OSError as err:
                reply = err
            request = gen.send(reply)
    except StopIteration:
        return index


def window(workload: Workload, md: str) -> SyscallGen[None]:
    """The crash window: the workload, then sync(2) - so the writeback the file system does
    on its own (a periodic commit, the flush of delayed allocations) is crashed into too."""
    yield from workload.run(md)
    yield from call(Sync())


def label(index: int, request: Syscall[Any], root: str) -> str:
    """`step 3: fsync(5)` - the same text in both worlds (the root is cut off)."""
    return f"step {index}: " + str(request).replace(root.rstrip("/") + "/", "")


# --- the building blocks ------------------------------------------------------------------
_CREATE = OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.EXCL


def _write_file(path: str, data: bytes, fsync: bool) -> SyscallGen[None]:
    fd = yield from call(Open(path, _CREATE, 0o600))
    yield from call(Write(fd, data))
    if fsync:
        yield from call(Fsync(fd))
    yield from call(Close(fd))


def _deliver(
    md: str,
    name: str,
    data: bytes,
    *,
    fsync: bool = True,
    move: str = "link",
    sync_new: bool = True,
    sync_tmp: bool = False,
) -> SyscallGen[None]:
    """One delivery: write tmp/NAME, then link+unlink (or rename) it into new/."""
    yield from _write_file(f"{md}/tmp/{name}", data, fsync)
    if move == "rename":
        yield from call(Rename(f"{md}/tmp/{name}", f"{md}/new/{name}"))
    else:
        yield from call(Link(f"{md}/tmp/{name}", f"{md}/new/{name}"))
    if sync_new:
        yield from call(FsyncDir(f"{md}/new"))
    if move != "rename":
        yield from call(Unlink(f"{md}/tmp/{name}"))
    if sync_tmp:
        yield from call(FsyncDir(f"{md}/tmp"))


# --- Ferrite's programs -------------------------------------------------------------------
def _old_file(md: str) -> SyscallGen[None]:
    yield from _write_file(f"{md}/cur/file", OLD, fsync=True)


def _prefix_append(md: str) -> SyscallGen[None]:
    fd = yield from call(Open(f"{md}/cur/file", OpenFlag.WRONLY | OpenFlag.APPEND))
    yield from call(Write(fd, APPENDED))
    yield from call(Write(fd, APPENDED))
    yield from call(Close(fd))


def _replace_via_rename(md: str) -> SyscallGen[None]:
    yield from _write_file(f"{md}/tmp/file", MSG1, fsync=False)
    yield from call(Rename(f"{md}/tmp/file", f"{md}/cur/file"))


def _create_via_rename(md: str) -> SyscallGen[None]:
    yield from _write_file(f"{md}/tmp/file", MSG1, fsync=False)
    yield from call(Rename(f"{md}/tmp/file", f"{md}/new/file"))


# --- Maildir programs ---------------------------------------------------------------------
def _in_new(md: str) -> SyscallGen[None]:
    yield from _deliver(md, "m0", MSG2)


def _reader_rename(md: str) -> SyscallGen[None]:
    yield from call(Rename(f"{md}/new/m0", f"{md}/cur/m0:2,S"))


def _reader_rename_sync(md: str) -> SyscallGen[None]:
    yield from call(Rename(f"{md}/new/m0", f"{md}/cur/m0:2,S"))
    yield from call(FsyncDir(f"{md}/cur"))


def _reader_rename_sync_new(md: str) -> SyscallGen[None]:
    yield from call(Rename(f"{md}/new/m0", f"{md}/cur/m0:2,S"))
    yield from call(FsyncDir(f"{md}/new"))


def _two(md: str) -> SyscallGen[None]:
    yield from _deliver(md, "m1", MSG1)
    yield from _deliver(md, "m2", MSG2)


def _straight_into_new(md: str) -> SyscallGen[None]:
    yield from _write_file(f"{md}/new/m1", MSG1, fsync=False)


def _delivery(**how: Any) -> Callable[[str], SyscallGen[None]]:
    def run(md: str) -> SyscallGen[None]:
        yield from _deliver(md, "m1", MSG1, **how)

    return run


_ONE = (MSG1,)
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "prefix-append",
            "Ferrite",
            "two appends to a durable file, no fsync",
            _prefix_append,
            (OLD + APPENDED + APPENDED,),
            _old_file,
        ),
        Workload(
            "replace-via-rename",
            "Ferrite",
            "write a new version in tmp/, no fsync, rename it over the durable old one",
            _replace_via_rename,
            (OLD, MSG1),
            _old_file,
        ),
        Workload(
            "create-via-rename",
            "Ferrite",
            "write a file, no fsync, rename it to its name",
            _create_via_rename,
            _ONE,
        ),
        Workload(
            "deliver",
            "Maildir",
            "the algorithm: tmp/ file fsynced, linked into new/, new/ fsynced, unlinked",
            _delivery(),
            _ONE,
        ),
        Workload(
            "deliver-sync-tmp",
            "Maildir",
            "as deliver, and tmp/ fsynced after the unlink",
            _delivery(sync_tmp=True),
            _ONE,
        ),
        Workload(
            "deliver-rename",
            "Maildir",
            "tmp/ file fsynced, renamed into new/, new/ fsynced",
            _delivery(move="rename"),
            _ONE,
        ),
        Workload(
            "no-fsync",
            "Maildir",
            "linked into new/ and unlinked, nothing fsynced",
            _delivery(fsync=False, sync_new=False),
            _ONE,
        ),
        Workload(
            "no-dir-fsync",
            "Maildir",
            "tmp/ file fsynced, linked, unlinked; new/ not fsynced",
            _delivery(sync_new=False),
            _ONE,
        ),
        Workload(
            "dir-fsync-only",
            "Maildir",
            "file not fsynced; linked, new/ fsynced, unlinked",
            _delivery(fsync=False),
            _ONE,
        ),
        Workload(
            "rename-no-fsync",
            "Maildir",
            "renamed into new/, nothing fsynced",
            _delivery(fsync=False, sync_new=False, move="rename"),
            _ONE,
        ),
        Workload(
            "straight-into-new",
            "Maildir",
            "written straight into new/, no fsync (vpopmail 4.10.14)",
            _straight_into_new,
            _ONE,
        ),
        Workload(
            "two-deliveries",
            "Maildir",
            "two deliveries by the algorithm, one after the other",
            _two,
            (MSG1, MSG2),
        ),
        Workload(
            "reader-rename",
            "Maildir",
            "a reader renames new/m0 to cur/m0:2,S, no fsync",
            _reader_rename,
            (MSG2,),
            _in_new,
        ),
        Workload(
            "reader-rename-sync",
            "Maildir",
            "a reader renames new/m0 to cur/, cur/ fsynced",
            _reader_rename_sync,
            (MSG2,),
            _in_new,
        ),
        Workload(
            "reader-rename-sync-new",
            "Maildir",
            "a reader renames new/m0 to cur/, then new/ is fsynced (the agent's fsync, late)",
            _reader_rename_sync_new,
            (MSG2,),
            _in_new,
        ),
    )
}

# The small subset CI runs on a real ext4 (tests/test_realfs_litmus.py): one Ferrite program
# and the two Maildir workloads that separate a correct delivery from a careless one.
CI_SUBSET = ("replace-via-rename", "deliver", "no-dir-fsync")


def workload(name: str) -> Workload:
    found = WORKLOADS.get(name)
    if found is None:
        raise ValueError(f"unknown workload {name!r} (known: {', '.join(WORKLOADS)})")
    return found
