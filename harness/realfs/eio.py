"""What a failed writeback leaves on a real file system (F9), measured with the rig.

`measure_eio(fs, code)` writes a file of a few blocks under `tmp/` of a Maildir on the
recorded disk (`rig.Rig`), opens a second descriptor on it, makes the next block writes
holding its data fail with `code` (EIO, or ENOSPC as a thin-provisioned device answers), and
then asks, in this order:
  - `fsync1`: fsync of the writing descriptor while the writes fail (the rule is then
    disarmed: the device is healthy again, as after a transient fault);
  - `fsync2`: fsync of the same descriptor again - does a retry report success?
  - `fd_before` / `fd_after`: fsync of the descriptor opened before the error, and of one
    opened after it (errseq_t reports an error once per open file description);
  - `cache`: what a read shows now (through the page cache);
  - `on_disk`: whether the data's bytes reached the disk image at all;
  - `dropped`: what a read shows once the file's clean pages are dropped (POSIX_FADV_DONTNEED;
    dirty pages would be written back first), i.e. what the file system holds;
  - `read_only`: whether the file system went read-only, and `later`: what creating,
    writing and fsyncing another file answers after it;
  - `crash`: the Maildir a power loss right then leaves - every write the disk was sent,
    mounted as a crash state so that recovery runs (`outcomes.read_maildir`).
Each answer is an errno name or "0". `Row.behaviour` names what the row shows as one of the
model's `FailedFsync` values (None: none of them). `predict(profile, code)` runs the same
steps in the model kernel, and `mismatches(row, prediction)` lists where the profile that
claims the file system (`filesystems.RealFs.claimed_by`) disagrees with the measurement:
each answer, the cached read, and the crash - the measured outcome must be one of those the
model allows there. `measure_all` measures a table; `eio_report` renders and prints it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from maildircheck.harness.realfs.blocklog import Fail
from maildircheck.harness.realfs.crashstates import crash_points, state_writes
from maildircheck.harness.realfs.filesystems import FILESYSTEMS, RealFs
from maildircheck.harness.realfs.outcomes import (
    SUBDIRS,
    UNMOUNTABLE,
    Content,
    Outcome,
    classify,
    describe,
    from_view,
    read_maildir,
)
from maildircheck.harness.realfs.rig import Rig, StateUnmountable
from maildircheck.model.environments import environment
from maildircheck.model.faults import FAULTS
from maildircheck.model.fs import FileSystem
from maildircheck.model.kernel import Kernel, Process
from maildircheck.model.persistence import FailedFsync, Profile, crash_choices, crash_view
from maildircheck.model.syscalls import Close, Fsync, Open, OpenFlag, Read, Syscall, Write

PATTERN = b"<maildircheck eio data>"
MESSAGE = b"Subject: a failed writeback\n\n" + b"".join(
    b"%05d " % i + PATTERN + b"\n" for i in range(400)
)  # 11.6 KB: three blocks, each holding the pattern many times
END = "after the checks"
LATER = "later"  # the file created after the error (not part of the crash outcome)


@dataclass(frozen=True)
class Row:
    fs: str
    injected: str  # the errno the block writes failed with
    refused: int  # block writes the device refused
    fsync1: str
    fsync2: str
    fd_before: str
    fd_after: str
    cache: Content
    on_disk: bool
    dropped: Content
    read_only: bool
    later: str
    crash: Outcome
    kernel: str

    @property
    def behaviour(self) -> FailedFsync | None:
        """The model's name for what this row shows, or None when it fits none."""
        if self.read_only or self.later == "EROFS":
            return FailedFsync.READ_ONLY
        kept = self.on_disk or _complete_in(self.crash)
        if self.fsync1 == self.injected and self.fsync2 == "0" and kept:
            return FailedFsync.KEPT
        if (
            self.fsync1 == self.injected
            and self.fsync2 == "0"
            and self.cache is Content.COMPLETE
            and not kept
        ):
            return FailedFsync.DROPPED
        return None

    @property
    def profile(self) -> Profile:
        """The profile that claims this file system."""
        return environment(FILESYSTEMS[self.fs].claimed_by).profile

    @property
    def mismatches(self) -> list[str]:
        """Where the claiming profile's prediction disagrees with this row (`mismatches`)."""
        return mismatches(self, predict(self.profile, getattr(errno, self.injected)))

    @property
    def claimed(self) -> FailedFsync:
        """What the profile claiming this file system says a failed fsync does."""
        return self.profile.failed_fsync


def _complete_in(outcome: Outcome) -> bool:
    return any(e.content is Content.COMPLETE for e in outcome)


def _answer(call: Any, *args: Any) -> str:
    try:
        call(*args)
    except OSError as err:
        return errno.errorcode.get(err.errno or 0, str(err.errno))
    return "0"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _drop_and_read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return os.pread(fd, len(MESSAGE) * 2, 0)
    finally:
        os.close(fd)


def _read_only(root: str) -> bool:
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == root:
                return "ro" in fields[3].split(",")
    return False


def _create_another(md: str) -> None:
    fd = os.open(f"{md}/tmp/{LATER}", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"written after the error\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def _image_holds(path: str) -> bool:
    """Does the disk image hold the message's data anywhere (read in 16 MB pieces)?"""
    piece = 16 << 20
    overlap = len(PATTERN)
    with open(path, "rb") as f:
        tail = b""
        while chunk := f.read(piece):
            if PATTERN in tail + chunk:
                return True
            tail = chunk[-overlap:]
    return False


def measure_eio(fs: RealFs, code: int = errno.EIO) -> Row:
    with Rig(fs) as rig:
        md = os.path.join(rig.root, "Maildir")
        for sub in ("", *SUBDIRS):
            os.mkdir(os.path.join(md, sub), 0o700)
        rig.record()
        path = f"{md}/tmp/m1"
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        before = os.open(path, os.O_RDONLY)
        try:
            os.write(fd, MESSAGE)
            rig.fail(PATTERN, code, 1000)
            rig.mark("fsync 1")
            fsync1 = _answer(os.fsync, fd)
            rig.fail(PATTERN, code, 0)
            rig.mark("fsync 2")
            fsync2 = _answer(os.fsync, fd)
            after = os.open(path, os.O_RDONLY)
            try:
                fd_before = _answer(os.fsync, before)
                fd_after = _answer(os.fsync, after)
            finally:
                os.close(after)
        finally:
            os.close(before)
            os.close(fd)
        cache = classify(_read(path), [MESSAGE])
        on_disk = _image_holds(rig.path("disk.img"))
        dropped = classify(_drop_and_read(path), [MESSAGE])
        read_only = _read_only(rig.root)
        later = _answer(_create_another, md)
        rig.mark(END)
        log = rig.finish()
        refused = sum(isinstance(r, Fail) for r in log.records)
        point = next(p for p in reversed(crash_points(log)) if p.label == END)
        try:
            with rig.crash_state(log.base, state_writes(log, point, point.volatile)) as root:
                found = read_maildir(os.path.join(root, "Maildir"), [MESSAGE])
                crash = frozenset(e for e in found if e.name != LATER)
        except StateUnmountable:
            crash = UNMOUNTABLE
    return Row(
        fs.name,
        errno.errorcode[code],
        refused,
        fsync1,
        fsync2,
        fd_before,
        fd_after,
        cache,
        on_disk,
        dropped,
        read_only,
        later,
        crash,
        os.uname().release,
    )


@dataclass(frozen=True)
class Prediction:
    """What the model says the same steps answer, under one profile."""

    profile: str
    fsync1: str
    fsync2: str
    fd_before: str
    fd_after: str
    cache: Content
    later: str
    crash: frozenset[Outcome]  # every outcome a power loss right then may leave


MAILDIR = "/Maildir"
CREATE = OpenFlag.CREAT | OpenFlag.WRONLY | OpenFlag.EXCL


def predict(profile: Profile, code: int = errno.EIO) -> Prediction:
    """The measurement's steps in the model kernel, the fault at the first fsync."""
    fs = FileSystem.with_dirs(MAILDIR, *(f"{MAILDIR}/{s}" for s in SUBDIRS))
    kernel = Kernel(fs, profile)
    proc = Process("eio", 100, "eio")
    fault = next(f for f in FAULTS.values() if f.errno == code and f.can_hit("fsync"))

    def ask(request: Syscall[Any], inject: bool = False) -> object:
        return kernel.execute(proc, request, fault if inject else None)

    def answer(reply: object) -> str:
        if isinstance(reply, OSError):
            return errno.errorcode.get(reply.errno or 0, str(reply.errno))
        return "0"

    path = f"{MAILDIR}/tmp/m1"
    fd = ask(Open(path, CREATE, 0o600))
    before = ask(Open(path, OpenFlag.RDONLY))
    assert isinstance(fd, int) and isinstance(before, int)
    ask(Write(fd, MESSAGE))
    fsync1 = answer(ask(Fsync(fd), inject=True))
    fsync2 = answer(ask(Fsync(fd)))
    after = ask(Open(path, OpenFlag.RDONLY))
    assert isinstance(after, int)
    fd_before, fd_after = answer(ask(Fsync(before))), answer(ask(Fsync(after)))
    for handle in (after, before, fd):
        ask(Close(handle))
    reader = ask(Open(path, OpenFlag.RDONLY))
    assert isinstance(reader, int)
    cached = ask(Read(reader, len(MESSAGE) * 2))
    ask(Close(reader))
    cache = classify(cached if isinstance(cached, bytes) else b"", [MESSAGE])
    other = ask(Open(f"{MAILDIR}/tmp/{LATER}", CREATE, 0o600))
    later = answer(other)
    if isinstance(other, int):
        later = answer(ask(Write(other, b"written after the error\n")))
        later = answer(ask(Fsync(other))) if later == "0" else later
        ask(Close(other))
    dirs = {s: fs.lookup(f"{MAILDIR}/{s}") for s in SUBDIRS}
    crash = set()
    for choice in crash_choices(fs, profile):
        entries, data = crash_view(fs, profile, choice)
        view = {
            s: {n: i for n, i in entries.get(d, {}).items() if n != LATER} for s, d in dirs.items()
        }
        crash.add(from_view(view, data, [MESSAGE]))
    return Prediction(
        profile.name, fsync1, fsync2, fd_before, fd_after, cache, later, frozenset(crash)
    )


def mismatches(row: Row, prediction: Prediction) -> list[str]:
    """Where the model's prediction and the measured row disagree (empty: they agree)."""
    found = [
        f"{name}: measured {measured}, the model says {said}"
        for name, measured, said in (
            ("fsync1", row.fsync1, prediction.fsync1),
            ("fsync2", row.fsync2, prediction.fsync2),
            ("fd_before", row.fd_before, prediction.fd_before),
            ("fd_after", row.fd_after, prediction.fd_after),
            ("cache", row.cache.value, prediction.cache.value),
            ("later", row.later, prediction.later),
        )
        if measured != said
    ]
    if row.crash not in prediction.crash:
        allowed = "; ".join(sorted(describe(o) for o in prediction.crash))
        found.append(f"crash: measured {describe(row.crash)}, the model allows {allowed}")
    return found


def measure_all(
    names: Iterable[str] = FILESYSTEMS, codes: Iterable[int] = (errno.EIO,)
) -> list[Row]:
    codes = tuple(codes)
    return [measure_eio(FILESYSTEMS[n], c) for n in names for c in codes]
