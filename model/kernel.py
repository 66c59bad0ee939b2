"""The model's kernel: runs one request of one process against the model file system.

It owns what the OS keeps per process (file descriptors and offsets, pid, host, standard
input) and per machine (the simulated clock, the persistence profile, each file's writeback
error sequence), and answers every
request of `model.syscalls` with a reply value or an OSError, exactly like the OS driver.
Nondeterminism comes in as arguments: the fault to inject, an `entropy` integer for
getrandom, and a `cut` integer that sets how many bytes a short transfer moves (X11, X12).
The clock moves one microsecond per request and otherwise only when told: forward (a
sleep, time passing) or back (a clock step, X13; a reboot brings it back to `BOOT_US`,
X14). `hostname`, when set, is what gethostname answers every process of the machine -
two NFS clients cloned from one image answer the same (X15).

An errno injected into fsync/fdatasync is a failed writeback (F9), which does what the
profile's `failed_fsync` says: DROPPED - the file's pending data is lost for good
(`persistence.writeback_failed`) and the error is recorded like Linux's errseq_t: every open
file of that inode that has not yet seen it gets it from its next fsync, once, and files
opened later never do, so a retried fsync answers 0; READ_ONLY - the data is lost too and
the journal aborts: the fsync and every later change answer EROFS until a crash remounts
the file system; KEPT - the data stays pending.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maildircheck.model import persistence
from maildircheck.model.content import EMPTY, Content
from maildircheck.model.faults import Fault, short_count
from maildircheck.model.fs import DataOp, FileSystem, oserror
from maildircheck.model.persistence import FailedFsync, Profile
from maildircheck.model.syscalls import (
    Answer,
    ClockReading,
    Close,
    Fdatasync,
    FileKind,
    Fstat,
    Fsync,
    FsyncDir,
    GetHostname,
    GetPid,
    GetRandom,
    GetTime,
    Link,
    ListDir,
    Lstat,
    Mkdir,
    Open,
    OpenFlag,
    Read,
    ReadInput,
    Rename,
    Sleep,
    Stat,
    Sync,
    Syscall,
    Unlink,
    Write,
)


@dataclass
class OpenFile:
    ino: int
    flags: OpenFlag
    offset: int = 0
    path: str = ""
    wb_seen: int = 0  # the inode's writeback-error sequence this file has seen (errseq_t)

    @property
    def writable(self) -> bool:
        return bool(self.flags & (OpenFlag.WRONLY | OpenFlag.RDWR))

    @property
    def readable(self) -> bool:
        return not self.flags & OpenFlag.WRONLY


@dataclass
class Process:
    label: str
    pid: int
    host: str
    stdin: bytes = b""
    stdin_pos: int = 0
    fds: dict[int, OpenFile] = field(default_factory=dict)
    pipe_chunk: int = 64  # the most one read of stdin returns: what the writer put in the pipe
    input_marks: list[int] = field(default_factory=list)  # where recent stdin pieces start

    def as_content(self, data: bytes) -> Content:
        """Written `data` as file content: a run over standard input where it is a piece of
        it (a copy loop writes what it read, or after a short write the rest of it), so a
        copied message shares the message's runs (model.content); else a run of its own."""
        for start in reversed(self.input_marks):
            if data and self.stdin.startswith(data, start):
                end = start + len(data)
                if end not in self.input_marks:
                    self.mark_input(end)
                return Content.slice_of(self.stdin, start, end)
        return Content.of(data)

    def mark_input(self, at: int) -> None:
        self.input_marks = [*self.input_marks[-3:], at]

    def new_fd(self, handle: OpenFile) -> int:
        fd = 3
        while fd in self.fds:
            fd += 1
        self.fds[fd] = handle
        return fd

    def handle(self, fd: int) -> OpenFile:
        if fd not in self.fds:
            raise oserror(errno.EBADF)
        return self.fds[fd]


RETRANSMIT_ERRNO: dict[type[Any], int] = {
    Link: errno.EEXIST,
    Unlink: errno.ENOENT,
    Rename: errno.ENOENT,
}


BOOT_US = 1_700_000_000 * 1_000_000
"""The clock when a machine starts, and again after a reboot that keeps no clock (X14)."""


@dataclass
class Kernel:
    fs: FileSystem
    profile: Profile
    clock_us: int = BOOT_US
    _entropy: int = 0
    hostname: str | None = None  # what gethostname answers; None: the process's host
    wb_errors: dict[int, tuple[int, int]] = field(default_factory=dict)  # ino -> (seq, errno)

    def execute(
        self,
        proc: Process,
        request: Syscall[Any],
        fault: Fault | None = None,
        entropy: int = 0,
        cut: int = 0,
    ) -> object:
        """Perform `request` for `proc`; the reply value, or the OSError to raise. `cut` is
        the checker's draw for a short transfer's count (`faults.short_count`)."""
        self.clock_us += 1
        try:
            if self.fs.aborted and _changes(request):
                return oserror(errno.EROFS)  # F9: the journal aborted
            if fault is not None and fault.hits(request):
                return self._faulty(proc, request, fault, cut)
            return self._perform(proc, request, entropy)
        except OSError as err:
            return err
        finally:
            persistence.settle(self.fs, self.profile)

    def kill(self, proc: Process) -> None:
        """kill -9: the kernel closes the descriptors; nothing else changes."""
        proc.fds.clear()

    def _faulty(self, proc: Process, request: Syscall[Any], fault: Fault, cut: int = 0) -> object:
        if fault.short and isinstance(request, Write):
            # X11: only the first bytes are written - performed as the shorter write it became
            kept = short_count(len(request.data), cut)
            return self._perform(proc, Write(request.fd, request.data[:kept], request.at), 0)
        if fault.short and isinstance(request, ReadInput):
            # X12: the pipe holds less than asked for now; what it holds is read
            return self._stdin(proc, request, cut)
        if fault.errno is not None:
            if isinstance(request, Close) and request.fd in proc.fds:
                # A write error reported at close (nfs(5)): the data written since the last
                # successful fsync never reached storage. close(2) frees the fd regardless.
                self._lose_unsynced(proc.fds.pop(request.fd).ino)
            if isinstance(request, Fsync | Fdatasync) and request.fd in proc.fds:
                return self._writeback_failed(proc.fds[request.fd], fault.errno)
            return oserror(fault.errno)
        self._perform(proc, request, 0)  # lost reply: the effect happened
        return oserror(RETRANSMIT_ERRNO[type(request)])

    def _writeback_failed(self, handle: OpenFile, code: int) -> OSError:
        """F9: writing the file's data back failed with `code`; the profile says what then."""
        behaviour = self.profile.failed_fsync
        if behaviour is FailedFsync.KEPT:
            return oserror(code)
        persistence.writeback_failed(self.fs, handle.ino, errno.errorcode.get(code, "?"))
        if behaviour is FailedFsync.READ_ONLY:
            self.fs.aborted = True
            return oserror(errno.EROFS)
        seq = self.wb_errors.get(handle.ino, (0, 0))[0] + 1  # DROPPED: errseq_t
        self.wb_errors[handle.ino] = (seq, code)
        handle.wb_seen = seq  # reported now, to this file
        return oserror(code)

    def _lose_unsynced(self, ino: int) -> None:
        fs = self.fs
        fs.version += 1
        fs.pending = [op for op in fs.pending if not (isinstance(op, DataOp) and op.ino == ino)]
        fs.inodes[ino].data = fs.durable_data.get(ino, EMPTY)

    def _perform(self, proc: Process, request: Syscall[Any], entropy: int) -> object:
        self._entropy = entropy
        handler: Callable[[Process, Any], object] = getattr(self, _HANDLERS[type(request)])
        return handler(proc, request)

    # --- handlers -----------------------------------------------------------------------
    def _open(self, proc: Process, req: Open) -> int:
        fs = self.fs
        ino = fs.find(req.path)
        if ino is None:
            if OpenFlag.CREAT not in req.flags:
                fs.lookup(req.path)  # raises ENOENT or ENOTDIR
                raise oserror(errno.ENOENT, req.path)
            ino = fs.create(req.path, req.mode, self.clock_us, proc.label)
        else:
            if OpenFlag.CREAT in req.flags and OpenFlag.EXCL in req.flags:
                raise oserror(errno.EEXIST, req.path)
            kind = fs.inodes[ino].kind
            writing = bool(req.flags & (OpenFlag.WRONLY | OpenFlag.RDWR))
            if OpenFlag.DIRECTORY in req.flags and kind is not FileKind.DIRECTORY:
                raise oserror(errno.ENOTDIR, req.path)
            if kind is FileKind.DIRECTORY and (
                writing or req.flags & (OpenFlag.CREAT | OpenFlag.TRUNC)
            ):
                raise oserror(errno.EISDIR, req.path)
            if OpenFlag.TRUNC in req.flags and fs.inodes[ino].data:
                fs.truncate(ino, 0, self.clock_us, req.path)  # Linux truncates even O_RDONLY
        seen = self.wb_errors.get(ino, (0, 0))[0]  # errseq_sample: an error already seen
        return proc.new_fd(OpenFile(ino, req.flags, path=req.path, wb_seen=seen))

    def _write(self, proc: Process, req: Write) -> int:
        handle = proc.handle(req.fd)
        if not handle.writable:
            raise oserror(errno.EBADF)
        if req.at is not None:  # pwrite: the file offset is left alone; on Linux O_APPEND
            # still appends (pwrite(2), BUGS)
            data = self.fs.inodes[handle.ino].data
            at = len(data) if OpenFlag.APPEND in handle.flags else req.at
            if req.data:
                self.fs.write(handle.ino, at, proc.as_content(req.data), self.clock_us, handle.path)
            return len(req.data)
        if OpenFlag.APPEND in handle.flags and req.data:  # Linux: a write of 0 bytes returns
            handle.offset = len(self.fs.inodes[handle.ino].data)  # before it moves the offset
        if req.data:
            content = proc.as_content(req.data)
            self.fs.write(handle.ino, handle.offset, content, self.clock_us, handle.path)
        handle.offset += len(req.data)
        return len(req.data)

    def _read(self, proc: Process, req: Read) -> bytes:
        handle = proc.handle(req.fd)
        node = self.fs.inodes[handle.ino]
        if not handle.readable:
            raise oserror(errno.EBADF)
        if node.kind is FileKind.DIRECTORY:
            raise oserror(errno.EISDIR)
        chunk = node.data.read(handle.offset, handle.offset + req.size)
        handle.offset += len(chunk)
        node.atime_us = self.clock_us
        return chunk

    def _fsync(self, proc: Process, req: Fsync | Fdatasync) -> None:
        handle = proc.handle(req.fd)
        seq, code = self.wb_errors.get(handle.ino, (0, 0))
        if handle.wb_seen < seq:  # F9: an error this file has not seen, reported once
            handle.wb_seen = seq
            raise oserror(code)
        persistence.fsync_file(self.fs, self.profile, handle.ino)

    def _close(self, proc: Process, req: Close) -> None:
        proc.handle(req.fd)
        del proc.fds[req.fd]

    def _link(self, proc: Process, req: Link) -> None:
        self.fs.link(req.src, req.dst)

    def _rename(self, proc: Process, req: Rename) -> None:
        self.fs.rename(req.src, req.dst, req.noreplace)

    def _unlink(self, proc: Process, req: Unlink) -> None:
        self.fs.unlink(req.path)

    def _mkdir(self, proc: Process, req: Mkdir) -> None:
        self.fs.mkdir(req.path, req.mode, self.clock_us, proc.label)

    def _stat(self, proc: Process, req: Stat | Lstat) -> object:
        return self.fs.stat(self.fs.lookup(req.path))

    def _fstat(self, proc: Process, req: Fstat) -> object:
        return self.fs.stat(proc.handle(req.fd).ino)

    def _listdir(self, proc: Process, req: ListDir) -> tuple[str, ...]:
        ino = self.fs.lookup(req.path)
        if self.fs.inodes[ino].kind is not FileKind.DIRECTORY:
            raise oserror(errno.ENOTDIR, req.path)
        return tuple(sorted(self.fs.entries[ino]))

    def _fsync_dir(self, proc: Process, req: FsyncDir) -> None:
        ino = self.fs.lookup(req.path)
        if self.fs.inodes[ino].kind is not FileKind.DIRECTORY:
            raise oserror(errno.ENOTDIR, req.path)
        persistence.fsync_dir(self.fs, self.profile, ino)

    def _sync(self, proc: Process, req: Sync) -> None:
        persistence.sync_all(self.fs, self.profile)

    def _time(self, proc: Process, req: GetTime) -> ClockReading:
        return ClockReading(self.clock_us // 1_000_000, self.clock_us % 1_000_000)

    def _pid(self, proc: Process, req: GetPid) -> int:
        return proc.pid

    def _host(self, proc: Process, req: GetHostname) -> str:
        return proc.host if self.hostname is None else self.hostname

    def _random(self, proc: Process, req: GetRandom) -> int:
        return self._entropy % (1 << req.bits)

    def _answer(self, proc: Process, req: Answer) -> None:
        """A reply to the client: nothing on disk changes (the checker watches it)."""

    def _sleep(self, proc: Process, req: Sleep) -> None:
        self.clock_us += int(req.seconds * 1_000_000)

    def _stdin(self, proc: Process, req: ReadInput, cut: int | None = None) -> bytes:
        """`cut` given: a short read (X12), 1 byte to one less than a whole read gets."""
        size = max(0, min(req.size, proc.pipe_chunk, len(proc.stdin) - proc.stdin_pos))
        if cut is not None and size > 1:
            size = short_count(size, cut)
        chunk = proc.stdin[proc.stdin_pos : proc.stdin_pos + size]
        if chunk:
            proc.mark_input(proc.stdin_pos)
        proc.stdin_pos += len(chunk)
        return chunk


def _changes(request: Syscall[Any]) -> bool:
    """Does `request` need the journal - a change, or a sync (EROFS once it aborted, F9)?"""
    if isinstance(request, Open):
        return bool(request.flags & (OpenFlag.CREAT | OpenFlag.TRUNC))
    return isinstance(
        request, Write | Fsync | Fdatasync | FsyncDir | Sync | Link | Rename | Unlink | Mkdir
    )


_HANDLERS: dict[type[Any], str] = {  # request type -> the Kernel method answering it
    Open: "_open",
    Write: "_write",
    Read: "_read",
    Fsync: "_fsync",
    Fdatasync: "_fsync",
    Close: "_close",
    Link: "_link",
    Rename: "_rename",
    Unlink: "_unlink",
    Mkdir: "_mkdir",
    Stat: "_stat",
    Lstat: "_stat",
    Fstat: "_fstat",
    ListDir: "_listdir",
    FsyncDir: "_fsync_dir",
    Sync: "_sync",
    GetTime: "_time",
    GetPid: "_pid",
    GetHostname: "_host",
    GetRandom: "_random",
    Sleep: "_sleep",
    ReadInput: "_stdin",
    Answer: "_answer",
}
