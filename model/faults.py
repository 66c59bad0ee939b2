"""Faults the checker can inject, and which requests each one can hit.

Two families (specs/requirements.md, X1-X10):
  - process and machine faults, which the checker schedules as steps of their own:
    `kill` (kill -9 at a syscall: the live view stays), `power-loss` (the live view is
    replaced by a crash state the profile allows), `sigterm` (the agent is told to stop:
    its pending request is answered with `Interrupted`, as the 24-hour timer would);
  - reply faults, injected into one request: an errno instead of the call's effect
    (`enospc`, `edquot`, `eio`; at close it is a deferred write error, and the data written
    since the last successful fsync is lost, as on NFS), or `lost-reply` (the call took
    effect but its reply was lost, and the retransmission answers EEXIST/ENOENT - a network
    file system's hazard).
"""

from __future__ import annotations

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
    Rename,
    Syscall,
    Unlink,
    Write,
)

FAULT_KINDS = ("open", "write", "fsync", "close", "link", "rename", "unlink", "fsync_dir")
_KIND_NAMES = {"fsyncdir": "fsync_dir", "fdatasync": "fsync", "lstat": "stat"}


def kind_of_type(request_type: type[Any]) -> str:
    """The kind a fault is aimed at: "open", "write", "fsync" (fdatasync too), "fsync_dir"..."""
    name = request_type.__name__.lower()
    return _KIND_NAMES.get(name, name)


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    spec: str
    errno: int | None = None
    targets: tuple[type[Syscall[Any]], ...] = ()

    def can_hit(self, kind: str) -> bool:
        """Can this fault hit some request of this kind ("open", "link", "fsync_dir"...)?"""
        return kind in {kind_of_type(t) for t in self.targets}

    def hits(self, request: Syscall[Any]) -> bool:
        if isinstance(request, Open) and self.errno in (errno.ENOSPC, errno.EDQUOT):
            return OpenFlag.CREAT in request.flags
        return isinstance(request, self.targets)


_SPACE = (Write, Fsync, Fdatasync, Close, Open, Link, Mkdir, Rename)

FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("kill", "the delivering process is killed (kill -9) before a syscall", "X1"),
        Fault("power-loss", "the machine loses power; a crash state replaces the live view", "X2"),
        Fault("sigterm", "the agent is told to stop (SIGTERM or its 24-hour timer)", "X3"),
        Fault(
            "server-crash",
            "the NFS server crashes and reboots: what its export had not made stable is "
            "lost, its write verifier changes (NFS environments only)",
            "X8",
        ),
        Fault(
            "client-crash",
            "an NFS client host crashes: its page cache, attribute cache and processes "
            "are gone (NFS environments only)",
            "X9",
        ),
        Fault("enospc", "ENOSPC instead of the call's effect", "X4", errno.ENOSPC, _SPACE),
        Fault("edquot", "EDQUOT instead of the call's effect", "X5", errno.EDQUOT, _SPACE),
        Fault(
            "eio",
            "EIO instead of the call's effect",
            "X6",
            errno.EIO,
            (Write, Read, Fsync, Fdatasync, Close, Link, Rename, Unlink, FsyncDir),
        ),
        Fault(
            "lost-reply",
            "the call took effect, its reply was lost; the retransmission answers "
            "EEXIST (link) or ENOENT (unlink, rename). An exclusive create is not hit: "
            "NFSv3 makes its retransmission idempotent with a verifier (RFC 1813 3.3.8)",
            "X7",
            None,
            (Link, Unlink, Rename),
        ),
        Fault(
            "soft-timeout",
            "a soft mount gives up on a call (EIO) that the server still performs: link, "
            "unlink, rename (NFS environments only, nfs(5) soft)",
            "X10",
            None,
            (Link, Unlink, Rename),
        ),
    )
}

NFS_ONLY = ("server-crash", "client-crash", "soft-timeout")
REPLY_FAULTS = ("enospc", "edquot", "eio", "lost-reply", "soft-timeout")
DEFAULT_FAULTS = ("kill", "power-loss", "sigterm", "enospc", "edquot", "eio")


def parse_faults(text: str) -> tuple[str, ...]:
    """`"kill,eio"` -> ("kill", "eio"); "none" -> (); "all" -> every fault.

    Raises ValueError naming the first unknown fault."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    if text == "all":
        return tuple(FAULTS)
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r} (known: {', '.join(FAULTS)})")
    return names
