"""NFS (version 3) in the model: client hosts with caches over one server (specs R1-R10).

Theory of operation. The server is the shared `FileSystem`; its export decides durability
through a persistence profile: a `sync` export puts every metadata operation on stable
storage before it replies, and file data when the client COMMITs it (RFC 1813 3.3.7,
3.3.21); an `async` export replies before anything is stable, so a server crash may lose
acknowledged data and metadata alike, COMMIT included.

Each client host runs an `NfsClientKernel`: the same syscall answers as the local kernel,
except that
  - write(2) only fills the client's page cache ("dirty"); close(2) flushes it with
    close-to-open consistency (`cto`, the default), fsync(2) always: WRITE UNSTABLE, then
    COMMIT. A write error therefore surfaces at close or fsync (nfs(5)): a fault aimed at
    write(2) succeeds there and is reported by the next close (cto) or fsync;
  - data sent but not yet committed stays "unstable" in the client; when the server
    reboots (its write verifier changes) the client sends it again at the next flush;
  - stat(2) answers from an attribute cache for `acregmin` (3 s), so st_nlink can be
    stale after a link; under cto, open(2) revalidates the file's attributes;
  - a lost reply to a non-idempotent call (LINK, REMOVE, RENAME) is retransmitted: with a
    duplicate-request cache (DRC) the server answers with the first reply, without one
    the retransmission fails (EEXIST, ENOENT) although the call took effect;
  - stat(2) resolves the last name of a path through a lookup cache (lookupcache=all:
    positive and negative entries; pos; none) believed for `acdirmin` (30 s), so another
    host's new file can stay invisible (ENOENT) and a removed one stale (ESTALE); the
    host's own changes to a name, and open(2), look it up afresh;
  - a soft mount's time-out answers EIO for a call the server still performs (X10);
  - a client crash loses its page cache and its attribute cache.
Other hosts see the server's data, so a file a client has created but not yet flushed is
an empty (partial) file for every other host.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from maildircheck.model import persistence
from maildircheck.model.content import Content
from maildircheck.model.faults import LOST_REPLY, SOFT_TIMEOUT, Fault
from maildircheck.model.fs import oserror
from maildircheck.model.kernel import Kernel, OpenFile, Process
from maildircheck.model.persistence import FailedFsync, Fate, Ordering, Profile
from maildircheck.model.syscalls import (
    Close,
    Fdatasync,
    FileKind,
    Fstat,
    Fsync,
    Link,
    Lstat,
    Open,
    OpenFlag,
    Read,
    Rename,
    Stat,
    StatResult,
    Sync,
    Syscall,
    Unlink,
    Write,
)

EXPORT_SYNC = Profile(
    "nfs3 sync export",
    "the server replies to a metadata call once it is on stable storage; file data is "
    "stable once COMMITted (fsync, or close under cto)",
    Ordering.META_SYNC,
    (Fate.KEEP, Fate.LOSE),
    ("R1",),
    failed_fsync=FailedFsync.KEPT,  # the client drops its pages (R5); the server keeps its own
)
EXPORT_ASYNC = Profile(
    "nfs3 async export",
    "the server replies before anything is on stable storage, COMMIT included: a server "
    "crash can lose acknowledged data and metadata",
    Ordering.NEVER,
    (Fate.KEEP, Fate.LOSE),
    ("R2",),
    failed_fsync=FailedFsync.KEPT,
)


@dataclass(frozen=True)
class Mount:
    """The client's mount options that matter here (nfs(5))."""

    cto: bool = True
    acregmin_us: int = 3_000_000
    acdirmin_us: int = 30_000_000
    lookupcache: str = "all"  # "all" (positive and negative entries), "pos" or "none"


@dataclass
class Pending:
    """A write the client holds: in its page cache, or sent UNSTABLE and not committed."""

    offset: int
    data: Content
    path: str


@dataclass
class NfsClientKernel(Kernel):
    """One client host. `fs` is the server's file system, shared with the other hosts."""

    mount: Mount = field(default_factory=Mount)
    drc: bool = True
    dirty: dict[int, list[Pending]] = field(default_factory=dict)
    unstable: dict[int, list[Pending]] = field(default_factory=dict)
    attrs: dict[int, tuple[StatResult, int]] = field(default_factory=dict)
    lookups: dict[tuple[int, str], tuple[int | None, int]] = field(default_factory=dict)
    deferred: dict[int, int] = field(default_factory=dict)  # ino -> errno due at close/fsync

    # --- what this host sees ----------------------------------------------------------------
    def view(self, ino: int) -> Content:
        """The file as this host sees it: the server's data with its own dirty pages."""
        data = self.fs.inodes[ino].data
        for w in self.dirty.get(ino, []):
            data = data.write(w.offset, w.data)
        return data

    def _attributes(self, ino: int, revalidate: bool = False) -> StatResult:
        cached = self.attrs.get(ino)
        if cached is not None and not revalidate and cached[1] > self.clock_us:
            st = cached[0]
        else:
            st = self.fs.stat(ino)
            if st.kind is FileKind.REGULAR:
                self.attrs[ino] = (st, self.clock_us + self.mount.acregmin_us)
        if ino in self.dirty and st.kind is FileKind.REGULAR:
            st = StatResult(
                st.dev,
                st.ino,
                st.kind,
                st.mode,
                st.nlink,
                len(self.view(ino)),
                st.mtime_us,
                st.atime_us,
            )
        return st

    def resolve(self, path: str) -> int:
        """LOOKUP of a path's last name through the lookup cache (R10): a cached entry -
        "this name is inode N" or, with lookupcache=all, "no such name" - is believed until
        the directory's attributes expire (acdirmin), whatever the server now holds."""
        parent, name = self.fs.parent_of(path)
        cached = self.lookups.get((parent, name))
        if cached is not None and cached[1] > self.clock_us:
            if cached[0] is None:
                raise oserror(errno.ENOENT, path)
            if self.fs.link_count(cached[0]) == 0:
                raise oserror(errno.ESTALE, path)  # the server no longer has that file
            return cached[0]
        ino = self.fs.entries[parent].get(name)
        if self.mount.lookupcache == "all" or (self.mount.lookupcache == "pos" and ino):
            self.lookups[(parent, name)] = (ino, self.clock_us + self.mount.acdirmin_us)
        if ino is None:
            raise oserror(errno.ENOENT, path)
        return ino

    def _forget(self, *paths: str) -> None:
        """This host's own change to a name updates its own lookup cache."""
        for path in paths:
            try:
                self.lookups.pop(self.fs.parent_of(path), None)
            except OSError:
                pass

    # --- the client's flush and commit ------------------------------------------------------
    def flush(self, ino: int) -> None:
        """WRITE UNSTABLE every dirty page of `ino` to the server."""
        for w in self.dirty.pop(ino, []):
            self.fs.write(ino, w.offset, w.data, self.clock_us, w.path)
            self.unstable.setdefault(ino, []).append(w)

    def commit(self, ino: int) -> None:
        """COMMIT: the export decides what becomes stable (R1, R2)."""
        self.flush(ino)
        persistence.fsync_file(self.fs, self.profile, ino)
        self.unstable.pop(ino, None)
        self._attributes(ino, revalidate=True)  # WRITE/COMMIT replies carry attributes

    def crash(self) -> None:
        """The client host dies: its page cache and attribute cache are gone (R7)."""
        self.dirty.clear()
        self.unstable.clear()
        self.attrs.clear()
        self.lookups.clear()
        self.deferred.clear()

    def server_rebooted(self) -> None:
        """The write verifier changed: uncommitted data is sent again at the next flush."""
        for ino, writes in self.unstable.items():
            self.dirty.setdefault(ino, [])[:0] = writes
        self.unstable.clear()

    # --- syscalls that differ from a local kernel ---------------------------------------
    def _open(self, proc: Process, req: Open) -> int:
        self._forget(req.path)  # open(2) looks the name up again on the server (LOOKUP_OPEN)
        fd = super()._open(proc, req)
        ino = proc.fds[fd].ino
        if OpenFlag.TRUNC in req.flags:
            self.dirty.pop(ino, None)
        if self.mount.cto:
            self._attributes(ino, revalidate=True)  # close-to-open: GETATTR on open
        return fd

    def _write(self, proc: Process, req: Write) -> int:
        handle: OpenFile = proc.handle(req.fd)
        if not handle.writable:
            return super()._write(proc, req)  # EBADF
        appending = OpenFlag.APPEND in handle.flags
        at = handle.offset if req.at is None else req.at  # pwrite leaves the offset alone
        if appending:
            at = len(self.view(handle.ino))
        if req.data:
            written = Pending(at, proc.as_content(req.data), handle.path)
            self.dirty.setdefault(handle.ino, []).append(written)
            self.fs.inodes[handle.ino].mtime_us = self.clock_us
        if req.at is None:
            handle.offset = at + len(req.data)
        return len(req.data)

    def _read(self, proc: Process, req: Read) -> bytes:
        handle = proc.handle(req.fd)
        if handle.ino in self.dirty:
            data = self.view(handle.ino)
            chunk = data.read(handle.offset, handle.offset + req.size)
            handle.offset += len(chunk)
            return chunk
        return super()._read(proc, req)

    def _fsync(self, proc: Process, req: Fsync | Fdatasync) -> None:
        ino = proc.handle(req.fd).ino
        self._raise_deferred(ino)
        self.commit(ino)

    def _close(self, proc: Process, req: Close) -> None:
        ino = proc.handle(req.fd).ino
        super()._close(proc, req)
        if self.mount.cto:
            self._raise_deferred(ino)
            self.commit(ino)

    def _raise_deferred(self, ino: int) -> None:
        """A write error the server returned while flushing is reported now (R5)."""
        code = self.deferred.pop(ino, None)
        if code is not None:
            self._lose_unsynced(ino)
            raise oserror(code)

    def _stat(self, proc: Process, req: Stat | Lstat) -> object:
        return self._attributes(self.resolve(req.path))

    def _link(self, proc: Process, req: Link) -> None:
        self._forget(req.dst)
        super()._link(proc, req)

    def _unlink(self, proc: Process, req: Unlink) -> None:
        self._forget(req.path)
        super()._unlink(proc, req)

    def _rename(self, proc: Process, req: Rename) -> None:
        self._forget(req.src, req.dst)
        super()._rename(proc, req)

    def _sync(self, proc: Process, req: Sync) -> None:
        """sync(2) on a client: every file this host holds data for is written and
        committed (the export decides what that makes stable, R1-R2)."""
        for ino in sorted({*self.dirty, *self.unstable}):
            self.commit(ino)
        super()._sync(proc, req)

    def _fstat(self, proc: Process, req: Fstat) -> object:
        return self._attributes(proc.handle(req.fd).ino)

    def _lose_unsynced(self, ino: int) -> None:
        """A write error reported at close or fsync: the flush failed, so the pages the
        client still held never reach the server, and it drops them (R5). What the server
        already has stays: data committed earlier is not undone by a later error."""
        if self.dirty.pop(ino, None) or self.unstable.pop(ino, None):
            self.fs.version += 1

    def _faulty(self, proc: Process, request: Syscall[Any], fault: Fault, cut: int = 0) -> object:
        if fault == LOST_REPLY and self.drc:
            return self._perform(proc, request, 0)  # the DRC replays the first reply (R6)
        if fault == SOFT_TIMEOUT:
            self._perform(proc, request, 0)  # the server performs it; the client gave up
            return oserror(errno.EIO)
        if fault.errno is not None and isinstance(request, Write):
            # the page goes into the cache; the server's error comes back at close/fsync
            reply = self._perform(proc, request, 0)
            handle = proc.fds.get(request.fd)
            if handle is not None and not isinstance(reply, OSError):
                self.deferred.setdefault(handle.ino, fault.errno)
            return reply
        if fault.errno is not None and isinstance(request, Fsync | Fdatasync):
            handle = proc.fds.get(request.fd)
            if handle is not None:
                self._lose_unsynced(handle.ino)
        return super()._faulty(proc, request, fault, cut)
