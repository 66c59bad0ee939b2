"""What a traced run did to the Maildir: `TraceCall`s into the model's syscall vocabulary.

This module owns the meaning of the calls real agents make (specs/requirements.md, T1-T3):
per process it follows the working directory (chdir, fchdir) and the descriptor table
(open/openat/openat2/creat, dup/dup2/dup3/fcntl F_DUPFD, close/close_range, O_CLOEXEC at
execve, fork and clone - with CLONE_FILES a shared table), resolves every path against
them, and keeps only what touches the Maildir: writes (write, pwrite64, writev, pwritev),
the fsync family (a directory fd's fsync is `FsyncDir`; sync and syncfs are `Sync`), link,
rename (renameat2's RENAME_NOREPLACE kept), unlink, mkdir and the stat family, plus seeks
and reads that move a Maildir file's offset. A call it cannot express in the model (an
O_TMPFILE file, RENAME_EXCHANGE, ftruncate, rmdir, a link or rename across the Maildir's
edge) becomes `Unmodeled`, which the replay reports instead of guessing.

Paths inside the Maildir are rewritten onto the model's maildir (`harness.host.ROOT`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from maildircheck.harness.host import ROOT
from maildircheck.harness.trace.reader import (
    TraceCall,
    TraceSyntaxError,
    decode_string,
    fd_of,
    fd_path,
    flags_of,
)
from maildircheck.model.syscalls import (
    Close,
    Fdatasync,
    Fstat,
    Fsync,
    Link,
    Lstat,
    Mkdir,
    Open,
    OpenFlag,
    Read,
    Rename,
    Stat,
    Sync,
    Syscall,
    Unlink,
    Write,
)

AT_FDCWD = -100
_OPEN_FLAGS = {
    "O_WRONLY": OpenFlag.WRONLY,
    "O_RDWR": OpenFlag.RDWR,
    "O_CREAT": OpenFlag.CREAT,
    "O_EXCL": OpenFlag.EXCL,
    "O_TRUNC": OpenFlag.TRUNC,
    "O_APPEND": OpenFlag.APPEND,
    "O_NOFOLLOW": OpenFlag.NOFOLLOW,
    "O_DIRECTORY": OpenFlag.DIRECTORY,
}
_STRUCT_FIELD = re.compile(r"(\w+)=([^,}]+)")
_OPENS = ("open", "openat", "openat2", "creat")
_WRITES = ("write", "pwrite64", "writev", "pwritev", "pwritev2")
_STATS = ("stat", "lstat", "newfstatat", "fstatat64", "statx", "stat64", "lstat64")
_FORKS = ("clone", "clone3", "fork", "vfork")
_AT_CALLS = ("unlinkat", "mkdirat", "newfstatat", "fstatat64", "statx")


@dataclass(frozen=True)
class Step:
    """One model request of one traced process, with the result the real kernel gave."""

    line: int
    pid: int
    request: Syscall[Any]
    result: int | None
    errno: str | None = None
    injected: bool = False


@dataclass(frozen=True)
class Dup:
    line: int
    pid: int
    old: int
    new: int


@dataclass(frozen=True)
class Seek:
    """The offset of a Maildir file's descriptor moved to `offset` (lseek, read)."""

    line: int
    pid: int
    fd: int
    offset: int


@dataclass(frozen=True)
class Fork:
    line: int
    parent: int
    child: int
    shares_fds: bool


@dataclass(frozen=True)
class Unmodeled:
    line: int
    pid: int
    call: str
    why: str


Event = Step | Dup | Seek | Fork | Unmodeled


@dataclass
class _Fd:
    path: str  # absolute, as resolved when opened
    inside: bool
    cloexec: bool
    offset: int = 0


@dataclass
class _Proc:
    cwd: str
    fds: dict[int, _Fd] = field(default_factory=dict)


@dataclass
class Translator:
    """Turns one run's calls into events; `root` is the real Maildir, `cwd` where the
    command started."""

    root: str
    cwd: str
    procs: dict[int, _Proc] = field(default_factory=dict)
    parents: dict[int, tuple[int, bool]] = field(
        default_factory=dict
    )  # child -> (parent, CLONE_FILES)
    first_pid: int | None = None

    # --- paths ------------------------------------------------------------------------
    def inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + "/")

    def model_path(self, path: str) -> str:
        return ROOT + path[len(self.root) :]

    def resolve(self, proc: _Proc, dirfd: int, raw: str, decorated: str | None) -> str:
        path = decode_string(raw).decode("utf-8", "surrogateescape")
        if path.startswith("/"):
            return os.path.normpath(path)
        if dirfd == AT_FDCWD:
            base = proc.cwd
        elif dirfd in proc.fds:
            base = proc.fds[dirfd].path
        elif decorated is not None:
            base = decorated
        else:
            raise TraceSyntaxError(f"a path relative to fd {dirfd}, which the trace never opened")
        return os.path.normpath(os.path.join(base, path)) if path else base

    # --- processes ----------------------------------------------------------------------
    def proc(self, pid: int) -> _Proc:
        if pid in self.procs:
            return self.procs[pid]
        if self.first_pid is None:
            self.first_pid = pid
        parent, shared = self.parents.get(pid, (self.first_pid, False))
        if parent in self.procs and parent != pid:
            src = self.procs[parent]
            fds = src.fds if shared else {n: replace(f) for n, f in src.fds.items()}
            self.procs[pid] = _Proc(src.cwd, fds)
        else:
            self.procs[pid] = _Proc(self.cwd)
        return self.procs[pid]

    def note_forks(self, calls: list[TraceCall]) -> None:
        """Children can print before their parent's clone returns: learn them first."""
        for c in calls:
            if c.name in _FORKS and c.result is not None and c.result > 0:
                shared = "CLONE_FILES" in " ".join(c.args) or "CLONE_THREAD" in " ".join(c.args)
                self.parents[c.result] = (c.pid, shared)

    # --- the translation ----------------------------------------------------------------
    def events(self, calls: Iterable[TraceCall]) -> Iterator[Event]:
        listed = list(calls)
        self.note_forks(listed)
        for c in listed:
            proc = self.proc(c.pid)
            yield from self._one(c, proc)

    def _close(self, c: TraceCall, proc: _Proc, fd: int) -> Iterator[Event]:
        handle = proc.fds.pop(fd, None)
        if handle is not None and handle.inside and fd not in proc.fds:
            # a failed close (EIO, or one injected) still gives the fd up, as Linux does
            yield Step(c.line, c.pid, Close(fd), c.result, c.errno, c.injected)

    def _one(self, c: TraceCall, proc: _Proc) -> Iterator[Event]:
        name, a = c.name, c.args
        if name in ("+++exit", "+++killed"):
            for fd in sorted(proc.fds):
                yield from self._close(c, proc, fd)
            return
        if name in _FORKS:
            if c.result is not None and c.result > 0:
                yield Fork(c.line, c.pid, c.result, self.parents.get(c.result, (0, False))[1])
            return
        if name == "execve" and not c.failed:
            for fd in [n for n, f in proc.fds.items() if f.cloexec]:
                yield from self._close(c, proc, fd)
            return
        if name in ("chdir", "fchdir") and not c.failed:
            if name == "chdir":
                proc.cwd = self.resolve(proc, AT_FDCWD, a[0], None)
            else:
                proc.cwd = (
                    proc.fds[fd_of(a[0])].path
                    if fd_of(a[0]) in proc.fds
                    else (fd_path(a[0]) or proc.cwd)
                )
            return
        if name in _OPENS:
            yield from self._open(c, proc)
        elif name in ("close",) and a:
            yield from self._close(c, proc, fd_of(a[0]))
        elif name == "close_range" and not c.failed:
            first, last = int(a[0], 0), min(int(a[1], 0), 1 << 20)
            for fd in [n for n in sorted(proc.fds) if first <= n <= last]:
                yield from self._close(c, proc, fd)
        elif name in ("dup", "dup2", "dup3") or (name == "fcntl" and "F_DUPFD" in a[1:2]):
            yield from self._dup(c, proc)
        elif name == "fcntl" and a[1] == "F_SETFD" and fd_of(a[0]) in proc.fds:
            proc.fds[fd_of(a[0])].cloexec = "FD_CLOEXEC" in a[2]
        elif name in ("sync", "syncfs"):
            yield Step(c.line, c.pid, Sync(), c.result, c.errno, c.injected)
        else:
            yield from self._maildir_call(c, proc)

    def _open(self, c: TraceCall, proc: _Proc) -> Iterator[Event]:
        a = c.args
        if c.name == "creat":
            dirfd, raw, flags, mode = (
                AT_FDCWD,
                a[0],
                frozenset({"O_WRONLY", "O_CREAT", "O_TRUNC"}),
                a[1],
            )
        elif c.name == "open":
            dirfd, raw, flags, mode = AT_FDCWD, a[0], flags_of(a[1]), a[2] if len(a) > 2 else "0"
        elif c.name == "openat":
            dirfd, raw, flags = fd_of(a[0]), a[1], flags_of(a[2])
            mode = a[3] if len(a) > 3 else "0"
        else:  # openat2(dirfd, path, {flags=..., mode=..., resolve=...}, size)
            fields = dict(_STRUCT_FIELD.findall(a[2]))
            dirfd, raw, flags, mode = (
                fd_of(a[0]),
                a[1],
                flags_of(fields.get("flags", "0")),
                fields.get("mode", "0"),
            )
        path = self.resolve(
            proc, dirfd, raw, fd_path(a[0]) if c.name in ("openat", "openat2") else None
        )
        inside = self.inside(path)
        if inside and any("TMPFILE" in flag for flag in flags):
            yield Unmodeled(c.line, c.pid, c.name, "O_TMPFILE: a file with no name")
        elif inside:
            model_flags = OpenFlag(0)
            for flag in flags:
                model_flags |= _OPEN_FLAGS.get(flag, OpenFlag(0))
            request = Open(self.model_path(path), model_flags, _mode(mode))
            yield Step(c.line, c.pid, request, c.result, c.errno, c.injected)
        if not c.failed and c.result is not None:
            if c.result in proc.fds:
                yield from self._close(c, proc, c.result)
            proc.fds[c.result] = _Fd(path, inside, "O_CLOEXEC" in flags)

    def _dup(self, c: TraceCall, proc: _Proc) -> Iterator[Event]:
        if c.failed or c.result is None:
            return
        old = fd_of(c.args[0])
        if c.result in proc.fds and c.result != old:
            yield from self._close(c, proc, c.result)
        if old not in proc.fds:
            return
        cloexec = "CLOEXEC" in " ".join(c.args[1:])  # dup3 O_CLOEXEC, F_DUPFD_CLOEXEC
        proc.fds[c.result] = replace(proc.fds[old], cloexec=cloexec)
        if proc.fds[old].inside:
            yield Dup(c.line, c.pid, old, c.result)

    def _maildir_call(self, c: TraceCall, proc: _Proc) -> Iterator[Event]:
        name, a = c.name, c.args
        step: Syscall[Any] | None = None
        if name in _WRITES or name in ("read", "lseek", "fsync", "fdatasync", "fstat", "ftruncate"):
            fd = fd_of(a[0])
            handle = proc.fds.get(fd)
            if handle is None or not handle.inside:
                return
            if name in _WRITES:
                step = self._write(c, fd)
            elif name == "read":
                if not c.failed and c.result:
                    step = Read(fd, c.result)
            elif name == "lseek":
                if not c.failed and c.result is not None:
                    yield Seek(c.line, c.pid, fd, c.result)
            elif name == "fsync":
                step = Fsync(fd)
            elif name == "fdatasync":
                step = Fdatasync(fd)
            elif name == "fstat":
                step = Fstat(fd)
            else:
                yield Unmodeled(c.line, c.pid, name, "ftruncate is not in the model")
        elif name in ("link", "linkat", "rename", "renameat", "renameat2"):
            yield from self._two_paths(c, proc)
            return
        elif name in ("unlink", "unlinkat", "mkdir", "mkdirat", "rmdir", *_STATS):
            at = name in _AT_CALLS
            dirfd = fd_of(a[0]) if at else AT_FDCWD
            raw = a[1] if at else a[0]
            flags = " ".join(a[2:])
            if (
                name in ("newfstatat", "fstatat64", "statx")
                and "AT_EMPTY_PATH" in flags
                and raw == '""'
            ):
                fd = dirfd
                if fd in proc.fds and proc.fds[fd].inside:
                    step = Fstat(fd)
            else:
                path = self.resolve(proc, dirfd, raw, fd_path(a[0]) if at else None)
                if not self.inside(path):
                    return
                target = self.model_path(path)
                if name in ("rmdir",) or (name == "unlinkat" and "AT_REMOVEDIR" in flags):
                    yield Unmodeled(c.line, c.pid, name, "removing a directory is not in the model")
                    return
                if name.startswith("unlink"):
                    step = Unlink(target)
                elif name.startswith("mkdir"):
                    step = Mkdir(target, _mode(a[-1]))
                elif name in ("lstat", "lstat64") or "AT_SYMLINK_NOFOLLOW" in flags:
                    step = Lstat(target)
                else:
                    step = Stat(target)
        if step is not None:
            yield Step(c.line, c.pid, step, c.result, c.errno, c.injected)

    def _write(self, c: TraceCall, fd: int) -> Syscall[Any]:
        a = c.args
        if c.name in ("write", "pwrite64"):
            data = decode_string(a[1])
        else:
            data = b"".join(
                decode_string(s) for s in re.findall(r'iov_base=("(?:[^"\\]|\\.)*")', a[1])
            )
        if not c.failed and c.result is not None:
            data = data[: c.result]  # a short write: what the kernel took
        at = None
        if c.name == "pwrite64" or c.name in ("pwritev", "pwritev2"):
            at = int(a[3], 0)
        return Write(fd, data, at)

    def _two_paths(self, c: TraceCall, proc: _Proc) -> Iterator[Event]:
        a = c.args
        at = c.name.endswith("at") or c.name == "renameat2"
        if at:
            src = self.resolve(proc, fd_of(a[0]), a[1], fd_path(a[0]))
            dst = self.resolve(proc, fd_of(a[2]), a[3], fd_path(a[2]))
            flags = " ".join(a[4:])
        else:
            src = self.resolve(proc, AT_FDCWD, a[0], None)
            dst = self.resolve(proc, AT_FDCWD, a[1], None)
            flags = ""
        if not self.inside(src) and not self.inside(dst):
            return
        if "AT_EMPTY_PATH" in flags or not (self.inside(src) and self.inside(dst)):
            yield Unmodeled(c.line, c.pid, c.name, "a link or rename across the Maildir's edge")
            return
        if "RENAME_EXCHANGE" in flags or "RENAME_WHITEOUT" in flags:
            yield Unmodeled(c.line, c.pid, c.name, "RENAME_EXCHANGE is not in the model")
            return
        s, d = self.model_path(src), self.model_path(dst)
        request: Syscall[Any] = (
            Link(s, d) if c.name.startswith("link") else Rename(s, d, "RENAME_NOREPLACE" in flags)
        )
        yield Step(c.line, c.pid, request, c.result, c.errno, c.injected)


def _mode(text: str) -> int:
    """strace prints modes in octal (`0600`); anything else is read as 0600."""
    try:
        return int(text.strip(), 8)
    except ValueError:
        return 0o600


def translate(calls: Iterable[TraceCall], root: str, cwd: str) -> list[Event]:
    """The Maildir events of a run whose Maildir is `root` (real path) started in `cwd`."""
    return list(Translator(os.path.normpath(root), os.path.normpath(cwd)).events(calls))
