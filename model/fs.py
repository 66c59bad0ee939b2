"""A local file system with a live view and a durable view.

This module owns the file-system state and the live effect of every metadata and data
operation. The live view is what processes see; the durable view is what is guaranteed to
survive a power loss. Every change that is not yet durable sits in an ordered log of
pending operations, of two kinds (after ALICE's micro-operations, specs F1-F3):

  MetaOp  - a set of directory-entry changes made atomic (create, link, unlink, mkdir,
            rename = remove+add in one step);
  DataOp  - a write at an offset, or a truncate, to one inode.

Which pending operations become durable, and when, is the persistence profile's business
(`model.persistence`): this module only records them and applies a chosen subset. No I/O, no
clock, no randomness: times come in as arguments.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from maildircheck.model.content import EMPTY, Content
from maildircheck.model.syscalls import FileKind, StatResult

ROOT_INO = 1
DEV = 1


def oserror(code: int, path: str = "") -> OSError:
    return OSError(code, os.strerror(code), path) if path else OSError(code, os.strerror(code))


@dataclass(frozen=True)
class EntryChange:
    """Directory `dir_ino` maps `name` to `ino` after the change (None: no entry)."""

    dir_ino: int
    name: str
    ino: int | None


@dataclass(frozen=True)
class MetaOp:
    changes: tuple[EntryChange, ...]
    label: str


@dataclass(frozen=True)
class DataOp:
    """`data` written at `offset`, or (when `truncate_to` is set) a truncate."""

    ino: int
    offset: int = 0
    data: Content = EMPTY
    truncate_to: int | None = None
    label: str = ""
    failed: bool = False  # its writeback failed: no sync makes it durable (F9)


PendingOp = MetaOp | DataOp


@dataclass
class Inode:
    ino: int
    kind: FileKind
    mode: int
    data: Content = EMPTY
    mtime_us: int = 0
    atime_us: int = 0
    creator: str = ""  # who created it (a process label), for reports and P4


@dataclass
class FileSystem:
    """Live view: `inodes` and `entries`; durable view: `durable_entries`, `durable_data`."""

    inodes: dict[int, Inode] = field(default_factory=dict)
    entries: dict[int, dict[str, int]] = field(default_factory=dict)
    durable_entries: dict[int, dict[str, int]] = field(default_factory=dict)
    durable_data: dict[int, Content] = field(default_factory=dict)
    pending: list[PendingOp] = field(default_factory=list)
    next_ino: int = ROOT_INO + 1
    version: int = 0  # bumped by every change to either view (lets checkers skip re-checks)
    aborted: bool = False  # the journal aborted after a failed writeback: changes fail (F9)

    @classmethod
    def with_dirs(cls, *paths: str) -> FileSystem:
        """A file system whose directories `paths` exist, all durable (the starting state)."""
        fs = cls()
        fs.inodes[ROOT_INO] = Inode(ROOT_INO, FileKind.DIRECTORY, 0o755)
        fs.entries[ROOT_INO] = {}
        for path in paths:
            parent, name = fs.parent_of(path)
            if name not in fs.entries[parent]:
                ino = fs._new_inode(FileKind.DIRECTORY, 0o700, 0, "setup")
                fs.entries[parent][name] = ino
        fs.make_all_durable()
        return fs

    # --- lookups -----------------------------------------------------------------------
    def parent_of(self, path: str) -> tuple[int, str]:
        """(directory inode, last name) for an absolute path whose parent must exist."""
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise oserror(errno.EEXIST, path)
        parent = self._walk(parts[:-1], path)
        if self.inodes[parent].kind is not FileKind.DIRECTORY:
            raise oserror(errno.ENOTDIR, path)
        return parent, parts[-1]

    def _walk(self, parts: list[str], path: str) -> int:
        ino = ROOT_INO
        for part in parts:
            if self.inodes[ino].kind is not FileKind.DIRECTORY:
                raise oserror(errno.ENOTDIR, path)
            nxt = self.entries[ino].get(part)
            if nxt is None:
                raise oserror(errno.ENOENT, path)
            ino = nxt
        return ino

    def lookup(self, path: str) -> int:
        ino = self._walk([p for p in path.split("/") if p], path)
        if path.endswith("/") and self.inodes[ino].kind is not FileKind.DIRECTORY:
            raise oserror(errno.ENOTDIR, path)
        return ino

    def find(self, path: str) -> int | None:
        try:
            return self.lookup(path)
        except OSError:
            return None

    def stat(self, ino: int) -> StatResult:
        node = self.inodes[ino]
        if node.kind is FileKind.DIRECTORY:
            subdirs = sum(
                1 for i in self.entries[ino].values() if self.inodes[i].kind is FileKind.DIRECTORY
            )
            nlink, size = 2 + subdirs, 4096
            if ino != ROOT_INO and self.link_count(ino) == 0:
                nlink = 0  # a directory replaced by a rename, still open
        else:
            nlink, size = self.link_count(ino), len(node.data)
        return StatResult(DEV, ino, node.kind, node.mode, nlink, size, node.mtime_us, node.atime_us)

    def link_count(self, ino: int) -> int:
        return sum(1 for d in self.entries.values() for i in d.values() if i == ino)

    # --- live operations (each records what must still become durable) ------------------
    def _new_inode(self, kind: FileKind, mode: int, now_us: int, creator: str) -> int:
        ino = self.next_ino
        self.next_ino += 1
        self.inodes[ino] = Inode(ino, kind, mode, mtime_us=now_us, atime_us=now_us, creator=creator)
        if kind is FileKind.DIRECTORY:
            self.entries[ino] = {}
        return ino

    def _change(self, label: str, *changes: EntryChange) -> None:
        self.version += 1
        for ch in changes:
            if ch.ino is None:
                self.entries[ch.dir_ino].pop(ch.name, None)
            else:
                self.entries[ch.dir_ino][ch.name] = ch.ino
        self.pending.append(MetaOp(changes, label))

    def create(self, path: str, mode: int, now_us: int, creator: str) -> int:
        parent, name = self.parent_of(path)
        if self.inodes[parent].kind is not FileKind.DIRECTORY:
            raise oserror(errno.ENOTDIR, path)
        ino = self._new_inode(FileKind.REGULAR, mode, now_us, creator)
        self._change(f"create {path}", EntryChange(parent, name, ino))
        return ino

    def mkdir(self, path: str, mode: int, now_us: int, creator: str) -> None:
        parent, name = self.parent_of(path)
        if name in self.entries[parent]:
            raise oserror(errno.EEXIST, path)
        ino = self._new_inode(FileKind.DIRECTORY, mode, now_us, creator)
        self._change(f"mkdir {path}", EntryChange(parent, name, ino))

    def link(self, src: str, dst: str) -> None:
        """Linux's order of checks: the source, then the new name, then EPERM for a dir."""
        ino = self.lookup(src)
        parent, name = self.parent_of(dst)
        if name in self.entries[parent]:
            raise oserror(errno.EEXIST, dst)
        if self.inodes[ino].kind is FileKind.DIRECTORY:
            raise oserror(errno.EPERM, src)
        self._change(f"link {src} -> {dst}", EntryChange(parent, name, ino))

    def unlink(self, path: str) -> None:
        parent, name = self.parent_of(path)
        ino = self.entries[parent].get(name)
        if ino is None:
            raise oserror(errno.ENOENT, path)
        if self.inodes[ino].kind is FileKind.DIRECTORY:
            raise oserror(errno.EISDIR, path)
        self._change(f"unlink {path}", EntryChange(parent, name, None))

    def rename(self, src: str, dst: str, noreplace: bool = False) -> int | None:
        """Rename; returns the inode it replaced at dst, if any (atomic: one MetaOp).
        Checks in Linux's order: both parents, the source, then the ancestry rules.
        `noreplace` is renameat2's RENAME_NOREPLACE: EEXIST when dst exists."""
        sparent, sname = self.parent_of(src)
        dparent, dname = self.parent_of(dst)
        ino = self.entries[sparent].get(sname)
        if ino is None:
            raise oserror(errno.ENOENT, src)
        old = self.entries[dparent].get(dname)
        if noreplace and old is not None:
            raise oserror(errno.EEXIST, dst)
        if old == ino:
            return None
        src_parts = [p for p in src.split("/") if p]
        dst_parts = [p for p in dst.split("/") if p]
        if dst_parts[: len(src_parts)] == src_parts:
            raise oserror(errno.EINVAL, dst)  # a directory into itself
        if src_parts[: len(dst_parts)] == dst_parts:
            raise oserror(errno.ENOTEMPTY, dst)  # onto one of its own ancestors
        if old is not None:
            src_dir = self.inodes[ino].kind is FileKind.DIRECTORY
            dst_dir = self.inodes[old].kind is FileKind.DIRECTORY
            if dst_dir and not src_dir:
                raise oserror(errno.EISDIR, dst)
            if src_dir and not dst_dir:
                raise oserror(errno.ENOTDIR, dst)
            if dst_dir and self.entries[old]:
                raise oserror(errno.ENOTEMPTY, dst)
        self._change(
            f"rename {src} -> {dst}",
            EntryChange(sparent, sname, None),
            EntryChange(dparent, dname, ino),
        )
        return old

    def write(
        self, ino: int, offset: int, data: bytes | Content, now_us: int, path: str = ""
    ) -> None:
        self.version += 1
        node = self.inodes[ino]
        data = Content.of(data)
        node.data = node.data.write(offset, data)
        node.mtime_us = now_us
        where = path or f"inode {ino}"
        self.pending.append(DataOp(ino, offset, data, label=f"write {where} at {offset}"))

    def truncate(self, ino: int, size: int, now_us: int, path: str = "") -> None:
        self.version += 1
        node = self.inodes[ino]
        node.data = node.data.slice(0, size)
        node.mtime_us = now_us
        self.pending.append(
            DataOp(ino, truncate_to=size, label=f"truncate {path or ino} to {size}")
        )

    # --- durability ---------------------------------------------------------------------
    def make_durable(self, keep: list[PendingOp]) -> None:
        """Apply `keep` (a sub-list of `pending`, in order) to the durable view."""
        if not keep:
            return
        self.version += 1
        chosen = {id(op) for op in keep}
        for op in keep:
            apply_to(self.durable_entries, self.durable_data, op)
        self.pending = _still_pending(self.pending, chosen)

    def make_all_durable(self) -> None:
        self.version += 1
        self.pending = []
        self.durable_entries = {d: dict(e) for d, e in self.entries.items()}
        self.durable_data = {i: n.data for i, n in self.inodes.items()}


def _still_pending(ops: list[PendingOp], durable: set[int]) -> list[PendingOp]:
    """`ops` without those just made durable (`durable`: their ids), and without the entry
    changes a later one of those overwrote. A durable view is the operations it kept applied
    in program order, so a create that becomes durable after a later rename of the same name
    must not bring the old name back (F5: under posix, fsync(new/) can make a rename out of
    tmp/ durable before the file's creation in tmp/)."""
    taken: set[tuple[int, str]] = set()
    kept: list[PendingOp] = []
    for op in reversed(ops):
        if id(op) in durable:
            if isinstance(op, MetaOp):
                taken |= {(ch.dir_ino, ch.name) for ch in op.changes}
            continue
        if isinstance(op, MetaOp) and any((ch.dir_ino, ch.name) in taken for ch in op.changes):
            live = tuple(ch for ch in op.changes if (ch.dir_ino, ch.name) not in taken)
            if not live:
                continue
            op = MetaOp(live, op.label)
        kept.append(op)
    kept.reverse()
    return kept


def apply_to(entries: dict[int, dict[str, int]], data: dict[int, Content], op: PendingOp) -> None:
    """Apply one pending operation, unchanged, to a durable view."""
    if isinstance(op, MetaOp):
        for ch in op.changes:
            directory = entries.setdefault(ch.dir_ino, {})
            if ch.ino is None:
                directory.pop(ch.name, None)
            else:
                directory[ch.name] = ch.ino
    else:
        data[op.ino] = apply_data(data.get(op.ino, EMPTY), op, op.data)


def apply_data(content: Content, op: DataOp, written: Content) -> Content:
    """`content` after `op`, with `written` standing for the bytes the write left on disk."""
    if op.truncate_to is not None:
        return content.slice(0, op.truncate_to)
    return content.write(op.offset, written)
