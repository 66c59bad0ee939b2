"""Drivers: run a sans-IO algorithm on the real operating system.

A driver only turns requests into `os` calls and replies into `send`s; it holds no delivery
logic. The model's driver is `maildircheck.model.kernel` (one request at a time, so the
checker can interleave processes).

This module owns the OS driver: `perform_on_os` (one request -> one reply, or the `OSError`
the OS raised), `run_on_os` (the send loop), `run_batch_on_os` (the same for a batch of
impl/batch.py, whose `Answer`s go to a callback) and `StopFlag` (how a signal handler, which
lives in the CLI, asks the running algorithm to stop: the next reply is `Interrupted`).
"""

from __future__ import annotations

import errno
import io
import os
import stat
import time
from _thread import get_ident
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar, cast

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
    Interrupted,
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
    StatResult,
    Sync,
    Syscall,
    SyscallGen,
    Unlink,
    Write,
)

T = TypeVar("T")

_FLAGS: tuple[tuple[OpenFlag, int], ...] = (
    (OpenFlag.WRONLY, os.O_WRONLY),
    (OpenFlag.RDWR, os.O_RDWR),
    (OpenFlag.CREAT, os.O_CREAT),
    (OpenFlag.EXCL, os.O_EXCL),
    (OpenFlag.TRUNC, os.O_TRUNC),
    (OpenFlag.APPEND, os.O_APPEND),
    (OpenFlag.NOFOLLOW, os.O_NOFOLLOW),
    (OpenFlag.DIRECTORY, os.O_DIRECTORY),
)


def os_flags(flags: OpenFlag) -> int:
    """The `os.O_*` bits for `flags`, always with O_CLOEXEC (O_RDONLY is 0)."""
    bits = os.O_RDONLY | os.O_CLOEXEC
    for flag, bit in _FLAGS:
        if flag in flags:
            bits |= bit
    return bits


def stat_result(st: os.stat_result) -> StatResult:
    if stat.S_ISDIR(st.st_mode):
        kind = FileKind.DIRECTORY
    elif stat.S_ISLNK(st.st_mode):
        kind = FileKind.SYMLINK
    else:
        kind = FileKind.REGULAR
    return StatResult(
        dev=st.st_dev,
        ino=st.st_ino,
        kind=kind,
        mode=st.st_mode & 0o7777,
        nlink=st.st_nlink,
        size=st.st_size,
        mtime_us=st.st_mtime_ns // 1000,
        atime_us=st.st_atime_ns // 1000,
    )


class StopFlag:
    """Set by a signal handler to stop the algorithm the driver is running.

    `stop(reason)` records the reason; the driver then sends `Interrupted(reason)` once, as
    the reply to the next request, instead of performing it (later requests - the
    algorithm's clean-up - are performed as usual). A request that may block for ever and
    has no effect on the file system (reading standard input, sleeping) is abandoned at
    once: while the driver waits in one, `stop` raises `Interrupted` out of the handler,
    because Python retries a system call a signal interrupted (PEP 475).
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.waiting = False
        self._waiter = -1

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        if self.waiting and get_ident() == self._waiter:  # raise only into the waiting thread
            self.waiting = False
            raise Interrupted(self.reason)

    def wait(self, blocking: Callable[[], T]) -> T:
        """Run `blocking` so that `stop` can abandon it."""
        if self.reason is not None:
            raise Interrupted(self.reason)
        self._waiter = get_ident()
        self.waiting = True
        try:
            return blocking()
        finally:
            self.waiting = False


def _read_input(stdin: BinaryIO, size: int) -> bytes:
    read1: Callable[[int], bytes | None] | None = getattr(stdin, "read1", None)
    data = read1(size) if read1 is not None else stdin.read(size)
    if data is None:  # a non-blocking stdin with nothing ready: never mistake it for EOF
        raise BlockingIOError(errno.EAGAIN, "standard input would block")
    return bytes(data)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _rename_noreplace(src: str, dst: str) -> None:
    """renameat2(RENAME_NOREPLACE) through libc (the os module has no binding for it)."""
    import ctypes  # only this rarely used call needs it; keep start-up imports small

    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.renameat2(
        _AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE
    )
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), src, None, dst)


def _random(bits: int) -> int:
    value = int.from_bytes(os.urandom((bits + 7) // 8), "big")
    return value & ((1 << bits) - 1)


def _clock() -> ClockReading:
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return ClockReading(seconds, nanos // 1000)


def perform_on_os(request: Syscall[T], stdin: BinaryIO, stop: StopFlag | None = None) -> T:
    """Perform one request on the OS and return its reply; the OS's `OSError` propagates."""
    return cast(T, _perform(request, stdin, stop))


def _perform(request: Syscall[Any], stdin: BinaryIO, stop: StopFlag | None) -> object:
    match request:
        case Open(path, flags, mode):
            return os.open(path, os_flags(flags), mode)
        case Write(fd, data, at):
            return os.write(fd, data) if at is None else os.pwrite(fd, data, at)
        case Read(fd, size):
            return os.read(fd, size)
        case Fsync(fd):
            os.fsync(fd)
            return None
        case Fdatasync(fd):
            os.fdatasync(fd)
            return None
        case Close(fd):
            os.close(fd)
            return None
        case Link(src, dst):
            os.link(src, dst, follow_symlinks=False)
            return None
        case Rename(src, dst, noreplace):
            if noreplace:
                _rename_noreplace(src, dst)
            else:
                os.rename(src, dst)
            return None
        case Unlink(path):
            os.unlink(path)
            return None
        case Mkdir(path, mode):
            os.mkdir(path, mode)
            return None
        case Stat(path):
            return stat_result(os.stat(path))
        case Lstat(path):
            return stat_result(os.lstat(path))
        case Fstat(fd):
            return stat_result(os.fstat(fd))
        case ListDir(path):
            return tuple(sorted(os.listdir(path)))
        case FsyncDir(path):
            _fsync_dir(path)
            return None
        case Sync():
            os.sync()
            return None
        case GetTime():
            return _clock()
        case GetPid():
            return os.getpid()
        case GetHostname():
            return os.uname().nodename
        case GetRandom(bits):
            return _random(bits)
        case Sleep(seconds):
            if stop is None:
                time.sleep(seconds)
            else:
                stop.wait(lambda: time.sleep(seconds))
            return None
        case ReadInput(size):
            if stop is None:
                return _read_input(stdin, size)
            return stop.wait(lambda: _read_input(stdin, size))
    raise TypeError(f"the OS driver cannot perform {request!r}")


def run_on_os(gen: SyscallGen[T], stdin: BinaryIO, stop: StopFlag | None = None) -> T:
    """Drive `gen` to its end on the real OS and return what it returns.

    Each request is performed and its reply sent back; an `OSError` is sent back as the
    reply for `call` to raise. When `stop` has been set, the next reply is `Interrupted`.
    An exception the generator lets escape propagates to the caller.
    """
    interrupted = False
    try:
        request = next(gen)
        while True:
            reply: object
            if stop is not None and stop.reason is not None and not interrupted:
                interrupted = True
                reply = Interrupted(stop.reason)
            else:
                try:  # after the one interruption, blocking requests are plain again
                    reply = perform_on_os(request, stdin, None if interrupted else stop)
                except OSError as err:
                    reply = err
                except Interrupted as err:
                    interrupted = True
                    reply = err
            request = gen.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result


_NO_INPUT: BinaryIO = io.BytesIO()  # a batch's requests never read standard input


def run_batch_on_os(gen: SyscallGen[T], on_answer: Callable[[int, object], None]) -> T:
    """Drive a batch (impl/batch.py) on the real OS: each `Answer` is handed to
    `on_answer(token, outcome)` the moment the algorithm makes it; every other request is
    performed as `run_on_os` performs it. A batch reads no standard input."""
    try:
        request = next(gen)
        while True:
            reply: object = None
            if isinstance(request, Answer):
                on_answer(request.token, request.outcome)
            else:
                try:
                    reply = _perform(request, _NO_INPUT, None)
                except OSError as err:
                    reply = err
            request = gen.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result
