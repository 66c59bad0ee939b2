"""The syscall vocabulary: every request a delivery agent (or a reader) can make.

This module owns the values that cross the boundary between an algorithm and whatever runs
it. An algorithm is a generator: it yields a `Syscall`, and the driver sends back either the
reply value or an `OSError` carrying an errno. `call` is the one place that yields (after
trio's `_core/_traps.py`): algorithms write `fd = yield from call(Open(...))` and get a typed
value back, or the `OSError` raised at that point, exactly as the `os` module would raise it.

Every value is frozen (a `Record`, not a dataclass: start-up cost, model/record.py) and has
a short, readable `str` so that a shrunk counterexample reads like an strace log.
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from typing import Any, Generic, TypeVar, cast

from maildircheck.model.record import Record

R = TypeVar("R")


class OpenFlag(enum.Flag):
    """The portable subset of open(2) flags an agent uses; drivers map them to `os.O_*`."""

    RDONLY = 0
    WRONLY = enum.auto()
    RDWR = enum.auto()
    CREAT = enum.auto()
    EXCL = enum.auto()
    TRUNC = enum.auto()
    APPEND = enum.auto()
    NOFOLLOW = enum.auto()
    DIRECTORY = enum.auto()

    def __str__(self) -> str:
        if not self:
            return "O_RDONLY"
        return "|".join(f"O_{f.name}" for f in OpenFlag if f and f in self)


class FileKind(enum.Enum):
    REGULAR = "file"
    DIRECTORY = "dir"
    SYMLINK = "symlink"


class StatResult(Record):
    """What stat/lstat/fstat report. Times are integer microseconds since the epoch."""

    dev: int
    ino: int
    kind: FileKind
    mode: int
    nlink: int
    size: int
    mtime_us: int
    atime_us: int

    def __str__(self) -> str:
        kind = self.kind.value
        return f"{{dev={self.dev} ino={self.ino} {kind} nlink={self.nlink} size={self.size}}}"


class ClockReading(Record):
    seconds: int
    microseconds: int

    def __str__(self) -> str:
        return f"{self.seconds}.{self.microseconds:06d}"


class Syscall(Record, Generic[R]):
    """Base of every request. `R` is the type of a successful reply."""

    __slots__ = ()

    def touches(self) -> tuple[str, ...]:
        """Paths named by this call (for traces and for keeping only what touches a Maildir)."""
        return ()


def _q(path: str) -> str:
    return '"' + path + '"'


class Open(Syscall[int]):
    path: str
    flags: OpenFlag
    mode: int = 0o600

    def __str__(self) -> str:
        mode = f", 0o{self.mode:o}" if OpenFlag.CREAT in self.flags else ""
        return f"open({_q(self.path)}, {self.flags}{mode})"

    def touches(self) -> tuple[str, ...]:
        return (self.path,)


class Write(Syscall[int]):
    """Reply: the number of bytes written (a short write is a legal reply). With `at`, a
    pwrite(2): written at that offset, the file offset unchanged."""

    fd: int
    data: bytes
    at: int | None = None

    def __str__(self) -> str:
        if self.at is not None:
            return f"pwrite({self.fd}, <{len(self.data)} bytes>, {self.at})"
        return f"write({self.fd}, <{len(self.data)} bytes>)"


class Read(Syscall[bytes]):
    fd: int
    size: int

    def __str__(self) -> str:
        return f"read({self.fd}, {self.size})"


class Fsync(Syscall[None]):
    fd: int

    def __str__(self) -> str:
        return f"fsync({self.fd})"


class Fdatasync(Syscall[None]):
    fd: int

    def __str__(self) -> str:
        return f"fdatasync({self.fd})"


class Close(Syscall[None]):
    fd: int

    def __str__(self) -> str:
        return f"close({self.fd})"


class Link(Syscall[None]):
    src: str
    dst: str

    def __str__(self) -> str:
        return f"link({_q(self.src)}, {_q(self.dst)})"

    def touches(self) -> tuple[str, ...]:
        return (self.src, self.dst)


class Rename(Syscall[None]):
    """rename(2); with `noreplace`, renameat2(RENAME_NOREPLACE): EEXIST if dst exists."""

    src: str
    dst: str
    noreplace: bool = False

    def __str__(self) -> str:
        if self.noreplace:
            return f"renameat2({_q(self.src)}, {_q(self.dst)}, RENAME_NOREPLACE)"
        return f"rename({_q(self.src)}, {_q(self.dst)})"

    def touches(self) -> tuple[str, ...]:
        return (self.src, self.dst)


class Unlink(Syscall[None]):
    path: str

    def __str__(self) -> str:
        return f"unlink({_q(self.path)})"

    def touches(self) -> tuple[str, ...]:
        return (self.path,)


class Mkdir(Syscall[None]):
    path: str
    mode: int = 0o700

    def __str__(self) -> str:
        return f"mkdir({_q(self.path)}, 0o{self.mode:o})"

    def touches(self) -> tuple[str, ...]:
        return (self.path,)


class Stat(Syscall[StatResult]):
    path: str

    def __str__(self) -> str:
        return f"stat({_q(self.path)})"

    def touches(self) -> tuple[str, ...]:
        return (self.path,)


class Lstat(Syscall[StatResult]):
    path: str

    def __str__(self) -> str:
        return f"lstat({_q(self.path)})"

    def touches(self) -> tuple[str, ...]:
        return (self.path,)


class Fstat(Syscall[StatResult]):
    fd: int

    def __str__(self) -> str:
        return f"fstat({self.fd})"


class ListDir(Syscall[tuple[str, ...]]):
    """Reply: the entry names, sorted (the model and the OS driver both sort)."""

    path: str

    def __str__(self) -> str:
        return f"listdir({_q(self.path)})"

    def touches(self) -> tuple[str, ...]:
        return (self.path,)


class FsyncDir(Syscall[None]):
    """open(path, O_RDONLY|O_DIRECTORY); fsync; close - made durable as one request."""

    path: str

    def __str__(self) -> str:
        return f"fsync_dir({_q(self.path)})"

    def touches(self) -> tuple[str, ...]:
        return (self.path,)


class Sync(Syscall[None]):
    """sync(2) or syncfs(2): every pending write of the file system is made durable."""

    def __str__(self) -> str:
        return "sync()"


class GetTime(Syscall[ClockReading]):
    def __str__(self) -> str:
        return "gettimeofday()"


class GetPid(Syscall[int]):
    def __str__(self) -> str:
        return "getpid()"


class GetHostname(Syscall[str]):
    def __str__(self) -> str:
        return "gethostname()"


class GetRandom(Syscall[int]):
    """Reply: a non-negative integer below 2**bits (getrandom(2))."""

    bits: int = 32

    def __str__(self) -> str:
        return f"getrandom({self.bits} bits)"


class Sleep(Syscall[None]):
    seconds: float

    def __str__(self) -> str:
        return f"sleep({self.seconds})"


class ReadInput(Syscall[bytes]):
    """Read up to `size` bytes of the message from standard input; b"" at end of input."""

    size: int

    def __str__(self) -> str:
        return f"read(stdin, {self.size})"


class Answer(Syscall[None]):
    """Tell the client how one delivery of a batch ended: an LMTP server's reply line for
    one recipient (impl/batch.py). `token` is the driver's name for that recipient and
    `outcome` a `model.outcome` Outcome. No file changes; the checker judges the outcome
    at this moment, as it judges a delivery agent's exit (P2, P4)."""

    token: int
    outcome: object

    def __str__(self) -> str:
        return f"answer(#{self.token}, {self.outcome})"


Reply = object  # a reply value, or an exception (an OSError, or `Interrupted`) to raise inside


class Interrupted(Exception):
    """Sent instead of a reply when the delivery must stop now: SIGTERM, or the 24-hour timer."""


SyscallGen = Generator[Syscall[Any], Reply, R]


def call(request: Syscall[R]) -> Generator[Syscall[Any], Reply, R]:
    """Yield one request and return its reply, raising the exception the driver sent back."""
    reply = yield request
    if isinstance(reply, BaseException):
        raise reply
    return cast(R, reply)
