"""Persistence profiles: which pending operations a sync makes durable, and which crash
states a power loss may leave.

A profile answers four questions (rules cited in specs/requirements.md, S1-S6 and F1-F9):
  - on return of a call: is everything durable at once (`sync`)?
  - on fsync(file) / fsync(dir): which pending operations become durable?
  - when writing a file's data back fails (an fsync answers EIO or ENOSPC): is the data
    dropped - marked clean, never to be written, the error reported once (F9, measured on
    ext4, xfs and btrfs by harness/realfs/eio.py) - kept pending, or does the file system
    abort (`FailedFsync`)?
  - on power loss: which subsets of the still-pending metadata operations may survive
    (a journal prefix, or any subset), and what may each pending data write become
    (kept, lost, zero-filled, or stale foreign bytes)?

A crash state is named by a `CrashChoice` - plain integers the checker draws, so a
counterexample shrinks it (0 everywhere = nothing lost). `find_crash_state` and
`guaranteed_in` compute what a crash could leave without sampling.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from maildircheck.model.content import EMPTY, Content
from maildircheck.model.fs import DataOp, FileSystem, MetaOp, PendingOp, apply_data, apply_to

STALE_PATTERN = b"<stale block of a deleted file>"


class Fate(enum.Enum):
    KEEP = "kept"
    LOSE = "lost"
    ZERO = "zero-filled"
    STALE = "stale bytes"


class FailedFsync(enum.Enum):
    """What the file system does with a file's dirty data when writing it back fails (F9).

    DROPPED is what Linux does on ext4 (data=ordered, writeback, nodelalloc), xfs and btrfs:
    the pages are marked clean although they never reached the disk, reads still show them
    from the page cache, the error is reported once per open file description (errseq_t),
    so a second fsync answers 0, and no later fsync or sync writes the data. ext4
    data=journal aborts its journal instead (READ_ONLY: the fsync and every later change
    answer EROFS). KEPT (the data stays pending, a retry may still write it) is the model's
    behaviour on NFS, whose client drops its own pages (R5) over an export that keeps what
    it has."""

    DROPPED = "the dirty data is marked clean and lost; the error is reported once"
    KEPT = "the data stays pending: a later fsync or sync may still make it durable"
    READ_ONLY = "the file system aborts: every later write fails (EROFS)"


class Ordering(enum.Enum):
    SYNC = "durable on return"
    JOURNAL = "a prefix of metadata operations survives (journal order)"
    ANY = "any subset of unsynced metadata operations survives"
    META_SYNC = "metadata durable when the call returns, data when committed (NFS sync export)"
    NEVER = "nothing is guaranteed durable, not even after fsync (NFS async export)"


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    ordering: Ordering
    data_fates: tuple[Fate, ...]
    specs: tuple[str, ...]
    # file data goes through the journal in order with the metadata (ext4 data=journal): a
    # write before a surviving metadata operation survives, and fsync commits everything
    data_journaled: bool = False
    failed_fsync: FailedFsync = FailedFsync.DROPPED

    @property
    def is_sync(self) -> bool:
        return self.ordering is Ordering.SYNC

    @property
    def durable_success_possible(self) -> bool:
        """Can any strategy make a message durable before it reports success here?"""
        return self.ordering is not Ordering.NEVER


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "sync",
            "mounted sync,dirsync: every call is durable when it returns",
            Ordering.SYNC,
            (Fate.KEEP,),
            ("S1",),
            failed_fsync=FailedFsync.DROPPED,  # nothing is pending at an fsync: all durable
        ),
        Profile(
            "ext4-ordered",
            "ext4 data=ordered, delayed allocation: journal commits metadata in order; "
            "unsynced data may be lost or zero-filled although its name survived",
            Ordering.JOURNAL,
            (Fate.KEEP, Fate.LOSE, Fate.ZERO),
            ("S2", "F4", "F9"),
            failed_fsync=FailedFsync.DROPPED,
        ),
        Profile(
            "ext4-writeback",
            "ext4 data=writeback: journal commits metadata in order; unsynced data may be "
            "lost, zero-filled or show stale blocks of other files",
            Ordering.JOURNAL,
            (Fate.KEEP, Fate.LOSE, Fate.ZERO, Fate.STALE),
            ("S3", "F4", "F9"),
            failed_fsync=FailedFsync.DROPPED,
        ),
        Profile(
            "ext4-journal",
            "ext4 data=journal: file data goes through the journal in order with the "
            "metadata, so a crash keeps a prefix of every operation; never zero-filled",
            Ordering.JOURNAL,
            (Fate.KEEP, Fate.LOSE),
            ("S5", "F4", "F9"),
            data_journaled=True,
            failed_fsync=FailedFsync.READ_ONLY,  # measured: the journal aborts (EROFS)
        ),
        Profile(
            "btrfs",
            "btrfs: copy-on-write; fsync(dir) logs only that directory's entries (a rename's "
            "other half stays pending); unsynced data may be lost, never zero-filled",
            Ordering.ANY,
            (Fate.KEEP, Fate.LOSE),
            ("S6", "F5", "F6", "F9"),
            failed_fsync=FailedFsync.DROPPED,
        ),
        Profile(
            "posix",
            "only what was fsynced is guaranteed: file data by fsync(file), directory "
            "entries by fsync(dir); anything else may be lost, in any combination",
            Ordering.ANY,
            (Fate.KEEP, Fate.LOSE, Fate.ZERO, Fate.STALE),
            ("S4", "F5", "F9"),
            failed_fsync=FailedFsync.DROPPED,  # what Linux does; POSIX leaves it unspecified
        ),
    )
}

SYNC = PROFILES["sync"]  # what the live view is when the storage cannot crash


@dataclass(frozen=True)
class CrashChoice:
    """Which pending operations a power loss keeps.

    `dropped_meta`: for a journal, how many metadata operations are lost from the tail; for
    `posix`, a bit mask of the lost ones (bit i = the i-th pending metadata operation).
    `data_fates`: an index into the profile's fates per pending data operation (0 = kept).
    """

    dropped_meta: int = 0
    data_fates: tuple[int, ...] = ()


# --- what a sync makes durable ------------------------------------------------------------
def settle(fs: FileSystem, profile: Profile) -> None:
    """Called after every operation: under `sync` everything is durable on return (S1); on
    an NFS sync export every metadata operation is (R1)."""
    if profile.is_sync and fs.pending:
        fs.make_durable(_syncable(fs))
    elif profile.ordering is Ordering.META_SYNC and fs.pending:
        fs.make_durable([op for op in fs.pending if isinstance(op, MetaOp)])


def fsync_file(fs: FileSystem, profile: Profile, ino: int) -> None:
    """fsync(fd): the file's data; on a journal also every metadata operation so far (F2).
    On an NFS async export the server's COMMIT promises nothing (R2)."""
    if profile.ordering is Ordering.NEVER:
        return
    journal = profile.ordering is Ordering.JOURNAL
    if profile.data_journaled:  # the journal commit carries every file's data (S5)
        fs.make_durable(_syncable(fs))
        return
    fs.make_durable(
        [
            op
            for op in fs.pending
            if (isinstance(op, DataOp) and op.ino == ino and not op.failed)
            or (journal and isinstance(op, MetaOp))
        ]
    )


def fsync_dir(fs: FileSystem, profile: Profile, dir_ino: int) -> None:
    """fsync(dir): the directory's entries; on a journal every metadata operation (F3).
    Elsewhere a rename into this directory from another one is split: its new entry becomes
    durable, the removal of its old entry stays pending, so a crash may keep both names
    (F6, measured on btrfs). A rename out of this directory becomes durable whole."""
    if profile.ordering is Ordering.NEVER:
        return
    if profile.ordering is Ordering.JOURNAL:
        journaled = [op for op in _syncable(fs) if profile.data_journaled or isinstance(op, MetaOp)]
        fs.make_durable(journaled)  # a journal commit: its metadata, and journaled data (S5)
        return
    fs.pending = [half for op in fs.pending for half in _halves(op, dir_ino)]
    fs.make_durable(
        [
            op
            for op in fs.pending
            if isinstance(op, MetaOp) and any(ch.dir_ino == dir_ino for ch in op.changes)
        ]
    )


def writeback_failed(fs: FileSystem, ino: int, why: str) -> None:
    """F9, DROPPED: writing `ino`'s pending data back failed, and the kernel marked it clean.
    The live view (the page cache) still shows it; the disk never gets it: each pending
    write of the file becomes a `failed` write of zeros that no fsync or sync makes durable
    and a crash leaves as zeros or nothing - measured, the file's size survives with zeros
    where its data was (ext4, btrfs) or the file comes back empty (xfs)."""
    fs.version += 1
    fs.pending = [
        replace(
            op,
            data=Content.zeros(len(op.data)),
            failed=True,
            label=f"{op.label}: writeback failed ({why})",
        )
        if isinstance(op, DataOp) and op.ino == ino and op.truncate_to is None and not op.failed
        else op
        for op in fs.pending
    ]


def _syncable(fs: FileSystem) -> list[PendingOp]:
    """The pending operations a sync can still make durable: not the failed writes (F9)."""
    return [op for op in fs.pending if not (isinstance(op, DataOp) and op.failed)]


def _halves(op: PendingOp, dir_ino: int) -> list[PendingOp]:
    """`op`, or - for a rename that adds an entry to `dir_ino` and removes one elsewhere -
    its new entry followed by the removal of the old one."""
    if not isinstance(op, MetaOp):
        return [op]
    inside = tuple(ch for ch in op.changes if ch.dir_ino == dir_ino)
    rest = tuple(ch for ch in op.changes if ch.dir_ino != dir_ino)
    if not inside or not rest or any(ch.ino is None for ch in inside):
        return [op]
    return [
        MetaOp(inside, f"{op.label} (its new entry)"),
        MetaOp(rest, f"{op.label} (the removal of its old entry)"),
    ]


def sync_all(fs: FileSystem, profile: Profile) -> None:
    """sync(2)/syncfs(2): everything pending becomes durable (not on an async export, R2)."""
    if profile.ordering is not Ordering.NEVER and fs.pending:
        fs.make_durable(_syncable(fs))


# --- crash states -------------------------------------------------------------------------
def meta_ops(fs: FileSystem) -> list[MetaOp]:
    return [op for op in fs.pending if isinstance(op, MetaOp)]


def data_ops(fs: FileSystem) -> list[DataOp]:
    return [op for op in fs.pending if isinstance(op, DataOp)]


def kept_meta(profile: Profile, metas: list[MetaOp], choice: CrashChoice) -> list[MetaOp]:
    if profile.ordering is Ordering.JOURNAL:
        return metas[: max(0, len(metas) - choice.dropped_meta)]
    if profile.ordering in (Ordering.ANY, Ordering.NEVER):
        return [op for i, op in enumerate(metas) if not (choice.dropped_meta >> i) & 1]
    return list(metas)


def fate_of(profile: Profile, choice: CrashChoice, index: int) -> Fate:
    if index >= len(choice.data_fates):
        return Fate.KEEP
    return profile.data_fates[choice.data_fates[index] % len(profile.data_fates)]


def fates(fs: FileSystem, profile: Profile, choice: CrashChoice) -> list[Fate]:
    """What `choice` makes of each pending data write, in order. With journaled data (S5) a
    write that precedes a surviving metadata operation was committed with it: kept."""
    kept = {id(op) for op in kept_meta(profile, meta_ops(fs), choice)}
    last_kept = max((i for i, op in enumerate(fs.pending) if id(op) in kept), default=-1)
    found: list[Fate] = []
    for at, op in enumerate(fs.pending):
        if isinstance(op, DataOp):
            fate = fate_of(profile, choice, len(found))
            if profile.data_journaled:  # the journal keeps a prefix of the writes too
                lost = bool(found) and found[-1] is not Fate.KEEP
                fate = Fate.KEEP if at < last_kept else Fate.LOSE if lost else fate
            found.append(fate)
    return found


def crash_view(
    fs: FileSystem, profile: Profile, choice: CrashChoice
) -> tuple[dict[int, dict[str, int]], dict[int, Content]]:
    """The entries and file contents a power loss with `choice` leaves."""
    entries = {d: dict(e) for d, e in fs.durable_entries.items()}
    data = dict(fs.durable_data)
    kept = {id(op) for op in kept_meta(profile, meta_ops(fs), choice)}
    data_fates = iter(fates(fs, profile, choice))
    for op in fs.pending:
        if isinstance(op, MetaOp):
            if id(op) in kept:
                apply_to(entries, data, op)
            continue
        fate = next(data_fates)
        if fate is Fate.LOSE:
            continue
        written = op.data
        if fate is Fate.ZERO:
            written = Content.zeros(len(op.data))
        elif fate is Fate.STALE:
            written = Content.repeat(STALE_PATTERN, len(op.data))
        old = data.get(op.ino, EMPTY)
        grown = apply_data(old, op, written)
        # F9: a failed write at most grew the file; the bytes already on disk stay
        data[op.ino] = (
            old.write(len(old), grown.slice(len(old), len(grown))) if op.failed else grown
        )
    return entries, data


def power_loss(fs: FileSystem, profile: Profile, choice: CrashChoice) -> None:
    """Replace the live view by the crash state `choice` names; it is all durable after."""
    entries, data = crash_view(fs, profile, choice)
    fs.aborted = False  # mounted again: the journal is recovered (F9, READ_ONLY)
    for ino, node in fs.inodes.items():
        node.data = data.get(ino, EMPTY)
    fs.entries = {d: dict(entries.get(d, {})) for d in fs.entries}
    for d, e in entries.items():
        fs.entries.setdefault(d, dict(e))
    fs.make_all_durable()


def explain(fs: FileSystem, profile: Profile, choice: CrashChoice) -> list[str]:
    """What a power loss with `choice` keeps and loses, one line per pending operation."""
    kept = {id(op) for op in kept_meta(profile, meta_ops(fs), choice)}
    lines = []
    data_fates = iter(fates(fs, profile, choice))
    for op in fs.pending:
        if isinstance(op, MetaOp):
            lines.append(f"{'kept' if id(op) in kept else 'LOST'}: {op.label}")
        else:
            fate = next(data_fates)
            size = f"{len(op.data)} bytes" if op.truncate_to is None else "truncate"
            lines.append(
                f"{fate.value if fate is Fate.KEEP else fate.value.upper()}: {op.label} ({size})"
            )
    return lines


def crash_choices(fs: FileSystem, profile: Profile) -> Iterator[CrashChoice]:
    """Every crash state the profile allows for what is pending now, each named once: the
    metadata operations a journal may lose from its tail (or, under posix, any subset),
    times every fate of every pending data write. Exponential - for litmus-sized
    workloads, which the fidelity check compares with a real file system's states."""
    if profile.is_sync:
        yield CrashChoice()
        return
    metas = len(meta_ops(fs))
    if profile.ordering is Ordering.JOURNAL:
        drops: range = range(metas + 1)
    elif profile.ordering is Ordering.META_SYNC:
        drops = range(1)
    else:
        drops = range(1 << metas)
    fates = range(len(profile.data_fates))
    for dropped in drops:
        for vector in itertools.product(fates, repeat=len(data_ops(fs))):
            yield CrashChoice(dropped, vector)


# --- what every crash state has in common (no sampling) -----------------------------------
def fate_vectors(profile: Profile, count: int) -> Iterator[tuple[int, ...]]:
    """Data-fate vectors that cover every way a file's unsynced writes can end up wrong:
    each uniform fate, and every torn prefix (the first k writes kept, the rest lost)."""
    if count == 0:
        yield ()
        return
    for index in range(len(profile.data_fates)):
        yield (index,) * count
    if Fate.LOSE in profile.data_fates:
        lose = profile.data_fates.index(Fate.LOSE)
        for k in range(1, count):
            yield (0,) * k + (lose,) * (count - k)


def _dropped_for(profile: Profile, total: int, kept: int) -> int:
    """The `dropped_meta` value that keeps the first `kept` of `total` metadata operations."""
    if profile.ordering is Ordering.JOURNAL:
        return total - kept
    return ((1 << total) - 1) ^ ((1 << kept) - 1)


def find_crash_state(
    fs: FileSystem,
    profile: Profile,
    dirs: tuple[int, ...],
    bad: Callable[[dict[int, dict[str, int]], dict[int, Content]], str | None],
) -> tuple[CrashChoice, str] | None:
    """A crash state in which `bad` (which looks only at `dirs`) reports a problem, or None.

    Exact for which entries of `dirs` may survive: an entry exists after a crash only if the
    operation adding it (or the durable state) put it there and no later surviving operation
    removed it, so keeping every prefix that ends just before or just after an operation
    touching `dirs` reaches every such entry - under a journal those are the only states, and
    under `posix` a prefix is one allowed subset. The contents of the files those entries
    name are covered by `fate_vectors` over their unsynced writes (others are kept)."""
    if profile.is_sync:
        return None
    metas = meta_ops(fs)
    touching = [i for i, op in enumerate(metas) if any(ch.dir_ino in dirs for ch in op.changes)]
    inos = {i for d in dirs for i in fs.durable_entries.get(d, {}).values()}
    inos |= {ch.ino for i in touching for ch in metas[i].changes if ch.ino is not None}
    datas = data_ops(fs)
    relevant = [k for k, op in enumerate(datas) if op.ino in inos]
    prefixes = sorted({0, len(metas)} | {i for i in touching} | {i + 1 for i in touching})
    if not touching and not relevant:
        prefixes = [len(metas)]  # nothing pending reaches `dirs`: every crash state agrees
    for sub in fate_vectors(profile, len(relevant)):
        fates = [0] * len(datas)
        for k, fate in zip(relevant, sub, strict=True):
            fates[k] = fate
        for kept in reversed(prefixes):
            choice = CrashChoice(_dropped_for(profile, len(metas), kept), tuple(fates))
            why = bad(*crash_view(fs, profile, choice))
            if why is not None:
                return choice, why
    return None


def guaranteed_in(
    fs: FileSystem,
    profile: Profile,
    dirs: tuple[int, ...],
    content: Content,
    among: set[int] | None = None,
) -> bool:
    """True when every crash state keeps a file with exactly `content` in one of `dirs`.

    Exact: a candidate inode must have `content` durably with no pending write to it; then
    every allowed combination of the pending metadata operations that touch those
    directories is tried (prefixes for a journal, all subsets for posix). `among` limits
    the candidate files (say, to those one delivery created)."""
    if profile.is_sync:
        return any(
            fs.inodes[i].data == content and (among is None or i in among)
            for d in dirs
            for i in fs.entries[d].values()
        )
    touched = {op.ino for op in data_ops(fs)}
    candidates = {
        ino
        for ino, data in fs.durable_data.items()
        if data == content and ino not in touched and (among is None or ino in among)
    }
    if not candidates:
        return False
    names = {
        (d, name)
        for d in dirs
        for name, i in fs.durable_entries.get(d, {}).items()
        if i in candidates
    }
    metas = meta_ops(fs)
    names |= {(ch.dir_ino, ch.name) for op in metas for ch in op.changes if ch.ino in candidates}
    relevant = [
        op
        for op in metas
        if any(ch.dir_ino in dirs and (ch.dir_ino, ch.name) in names for ch in op.changes)
    ]
    if profile.ordering is Ordering.JOURNAL:
        subsets: Iterator[tuple[PendingOp, ...]] = (
            tuple(relevant[:k]) for k in range(len(relevant) + 1)
        )
    else:
        subsets = itertools.chain.from_iterable(
            itertools.combinations(relevant, k) for k in range(len(relevant) + 1)
        )
    for subset in subsets:
        entries = {d: dict(fs.durable_entries.get(d, {})) for d in dirs}
        scratch: dict[int, Content] = {}
        for op in subset:
            apply_to(entries, scratch, op)
        if not any(i in candidates for d in dirs for i in entries.get(d, {}).values()):
            return False
    return True
