"""Faults the checker can inject: each one value, with its family and where it applies.

A `Fault` says what it does (specs/requirements.md, X1-X16), which family it belongs to, and
whether it exists only on NFS; `FAULTS` is the one table, and everything else (the
environment table in `model.environments`, the checker's rules, the command line) reads
these values instead of spelling names out. The families:
  - `PROCESS`: the delivering process is stopped, as a step of its own - `kill` (kill -9
    at a syscall: the live view stays), `sigterm` (the agent is told to stop: its pending
    request is answered with `Interrupted`, as the 24-hour timer would);
  - `STORAGE_CRASH`: the disk, or the NFS server, restarts from a crash state the profile
    allows - `power-loss` (the whole site, clients included), `server-crash` (NFS only);
  - `HOST_CRASH`: an NFS client host crashes and loses its caches - `client-crash`;
  - `REPLY`: injected into one request - an errno instead of the call's effect (`enospc`,
    `edquot`, `eio`; at close it is a deferred write error, and the data written since the
    last successful fsync is lost, as on NFS), `lost-reply` (the call took effect but its
    reply was lost, and the retransmission answers EEXIST/ENOENT - a network file system's
    hazard) and `soft-timeout` (NFS only: a soft mount gives up on a call the server still
    performs); and the short transfers `short-write` (write(2) returns fewer bytes than
    asked, X11) and `short-read` (a read of standard input does, X12), whose count the
    checker draws (`short_count`);
  - `CLASH`: what real hosts do that makes two deliveries draw the same name parts
    (X13-X16): the clock steps back (`clock-back`, a step of its own), the host reboots
    with its clock back at its boot time and its pids starting again (`reboot`, a step
    of its own), two NFS clients answer one host name (`cloned-hostnames`, NFS only) and
    agents run in PID namespaces of their own (`pid-namespaces`); the last two hold for a
    whole run once chosen. Each names the parts of a unique name it can make equal
    (`defeats`, the fields of `impl.naming.NameParts`): a name that holds nothing else
    repeats under it.
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass
from typing import Any

from maildircheck.model.syscalls import (
    Close,
    Fdatasync,
    Fsync,
    FsyncDir,
    Link,
    Mkdir,
    Open,
    OpenFlag,
    Read,
    ReadInput,
    Rename,
    Syscall,
    Unlink,
    Write,
)

FAULT_KINDS = (
    "open",
    "write",
    "fsync",
    "close",
    "link",
    "rename",
    "unlink",
    "fsync_dir",
    "stdin",
)
_KIND_NAMES = {"fsyncdir": "fsync_dir", "fdatasync": "fsync", "lstat": "stat", "readinput": "stdin"}


def kind_of_type(request_type: type[Any]) -> str:
    """The kind a fault is aimed at: "open", "write", "fsync" (fdatasync too), "fsync_dir"..."""
    name = request_type.__name__.lower()
    return _KIND_NAMES.get(name, name)


class Family(enum.Enum):
    PROCESS = "process"
    STORAGE_CRASH = "storage crash"
    HOST_CRASH = "host crash"
    REPLY = "reply"
    CLASH = "name clash"


@dataclass(frozen=True, repr=False)
class Fault:
    name: str
    summary: str
    spec: str
    family: Family
    nfs_only: bool = False
    default: bool = False  # in the threat model a check gets when it names no faults
    errno: int | None = None
    targets: tuple[type[Syscall[Any]], ...] = ()
    short: bool = False  # a short transfer: the call moves fewer bytes than asked (X11, X12)
    defeats: tuple[str, ...] = ()  # CLASH: the name parts (NameParts fields) it can repeat

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:  # how Hypothesis prints a drawn fault in a falsifying run
        return f"FAULTS[{self.name!r}]"

    def can_hit(self, kind: str) -> bool:
        """Can this fault hit some request of this kind ("open", "link", "fsync_dir"...)?"""
        return kind in {kind_of_type(t) for t in self.targets}

    def hits(self, request: Syscall[Any]) -> bool:
        if self.short and isinstance(request, Write):
            return len(request.data) > 1  # a short count is at least 1 and less than asked
        if self.short and isinstance(request, ReadInput):
            return request.size > 1
        if isinstance(request, Open) and self.errno in (errno.ENOSPC, errno.EDQUOT):
            return OpenFlag.CREAT in request.flags
        return isinstance(request, self.targets)


_SPACE = (Write, Fsync, Fdatasync, Close, Open, Link, Mkdir, Rename)

KILL = Fault(
    "kill",
    "the delivering process is killed (kill -9) before a syscall",
    "X1",
    Family.PROCESS,
    default=True,
)
POWER_LOSS = Fault(
    "power-loss",
    "the machine loses power; a crash state replaces the live view",
    "X2",
    Family.STORAGE_CRASH,
    default=True,
)
SIGTERM = Fault(
    "sigterm",
    "the agent is told to stop (SIGTERM or its 24-hour timer)",
    "X3",
    Family.PROCESS,
    default=True,
)
SERVER_CRASH = Fault(
    "server-crash",
    "the NFS server crashes and reboots: what its export had not made stable is lost, its "
    "write verifier changes (NFS environments only)",
    "X8",
    Family.STORAGE_CRASH,
    nfs_only=True,
)
CLIENT_CRASH = Fault(
    "client-crash",
    "an NFS client host crashes: its page cache, attribute cache and processes are gone "
    "(NFS environments only)",
    "X9",
    Family.HOST_CRASH,
    nfs_only=True,
)
ENOSPC = Fault(
    "enospc",
    "ENOSPC instead of the call's effect",
    "X4",
    Family.REPLY,
    default=True,
    errno=errno.ENOSPC,
    targets=_SPACE,
)
EDQUOT = Fault(
    "edquot",
    "EDQUOT instead of the call's effect",
    "X5",
    Family.REPLY,
    default=True,
    errno=errno.EDQUOT,
    targets=_SPACE,
)
EIO = Fault(
    "eio",
    "EIO instead of the call's effect",
    "X6",
    Family.REPLY,
    default=True,
    errno=errno.EIO,
    targets=(Write, Read, Fsync, Fdatasync, Close, Link, Rename, Unlink, FsyncDir),
)
LOST_REPLY = Fault(
    "lost-reply",
    "the call took effect, its reply was lost; the retransmission answers EEXIST (link) or "
    "ENOENT (unlink, rename). An exclusive create is not hit: NFSv3 makes its "
    "retransmission idempotent with a verifier (RFC 1813 3.3.8)",
    "X7",
    Family.REPLY,
    targets=(Link, Unlink, Rename),
)
SOFT_TIMEOUT = Fault(
    "soft-timeout",
    "a soft mount gives up on a call (EIO) that the server still performs: link, unlink, "
    "rename (NFS environments only, nfs(5) soft)",
    "X10",
    Family.REPLY,
    nfs_only=True,
    targets=(Link, Unlink, Rename),
)
SHORT_WRITE = Fault(
    "short-write",
    "write(2) transfers only the first bytes it was given and returns that count (the "
    "disk filled mid-write, or a signal arrived after some data was written)",
    "X11",
    Family.REPLY,
    targets=(Write,),
    short=True,
)
SHORT_READ = Fault(
    "short-read",
    "a read of standard input returns fewer bytes than asked although more will come (a "
    "pipe hands over what its writer has written so far)",
    "X12",
    Family.REPLY,
    targets=(ReadInput,),
    short=True,
)

CLOCK_BACK = Fault(
    "clock-back",
    "the clock steps back (an NTP step, date -s): readings it already gave come again",
    "X13",
    Family.CLASH,
    defeats=("seconds", "microseconds"),
)
REBOOT = Fault(
    "reboot",
    "the host restarts cleanly with no clock kept: it comes back at the time it last booted "
    "at (no RTC, a VM snapshot) and gives out the same pids again",
    "X14",
    Family.CLASH,
    defeats=("seconds", "microseconds", "pid", "counter"),
)
CLONED_HOSTNAMES = Fault(
    "cloned-hostnames",
    "both NFS clients answer the same host name (a cloned machine image); each has its own "
    "pids and clock (NFS environments only)",
    "X15",
    Family.CLASH,
    nfs_only=True,
    defeats=("seconds", "microseconds", "pid", "counter", "host"),
)
PID_NAMESPACES = Fault(
    "pid-namespaces",
    "every agent runs in a PID namespace of its own (containers sharing the Maildir and the "
    "host name): deliveries running at once can have the same pid",
    "X16",
    Family.CLASH,
    defeats=("pid", "counter"),
)


def short_count(asked: int, cut: int) -> int:
    """How many bytes a short transfer of `asked` (>= 2) bytes moves: 1 to asked - 1,
    from the checker's draw `cut` (0 -> 1 byte, so shrinking goes toward the shortest)."""
    return 1 + cut % (asked - 1)


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        KILL,
        POWER_LOSS,
        SIGTERM,
        SERVER_CRASH,
        CLIENT_CRASH,
        ENOSPC,
        EDQUOT,
        EIO,
        LOST_REPLY,
        SOFT_TIMEOUT,
        SHORT_WRITE,
        SHORT_READ,
        CLOCK_BACK,
        REBOOT,
        CLONED_HOSTNAMES,
        PID_NAMESPACES,
    )
}
DEFAULT_FAULTS = tuple(f for f in FAULTS.values() if f.default)


def storage_crashes(faults: tuple[Fault, ...]) -> tuple[Fault, ...]:
    """Those of `faults` that restart the storage from a crash state."""
    return tuple(f for f in faults if f.family is Family.STORAGE_CRASH)


def names(faults: tuple[Fault, ...]) -> str:
    """`(KILL, EIO)` -> "kill,eio"; () -> "none" - what `parse_faults` reads back."""
    return ",".join(f.name for f in faults) or "none"


def parse_faults(text: str) -> tuple[Fault, ...]:
    """`"kill,eio"` -> (KILL, EIO); "none" -> (); "all" -> every fault (the environment
    keeps those that apply to it, `model.environments`).

    Raises ValueError naming the first unknown fault."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    if text == "all":
        return tuple(FAULTS.values())
    wanted = dict.fromkeys(n.strip() for n in text.split(",") if n.strip())
    return tuple(fault(n) for n in wanted)


def fault(name: str) -> Fault:
    """The fault called `name`; ValueError with a one-line message otherwise."""
    found = FAULTS.get(name)
    if found is None:
        raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
    return found
