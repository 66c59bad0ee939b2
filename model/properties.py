"""The Maildir properties (specs/requirements.md, P1-P7) as checks on model states.

Each check takes the model's file system and what the deliveries reported, and returns a
`Violation` (property ID, a one-line reason, and for crash-state findings the crash that
shows it) or None. The checker calls them after every step.

  P1 no-partial        new/ and cur/ hold only complete messages - live, and in every
                       crash state the profile allows;
  P2 no-early-success  after a delivery reports success its message is in new/ or cur/ in
                       every crash state from then on (computed, not sampled);
  P3 no-clobber        a delivery never replaces or removes another message; names unique;
  P4 honest-failure    after a reported failure the delivery left no tmp/ file (unless the
                       file system refused its unlink) and nothing partial;
  P5 no-false-bounce   a transient problem is never reported as a permanent failure;
  P6 at-most-once      (quality) a message appears under at most one name in new/ and cur/;
  P7 progress          (progress) once the faults stop, a delivery reports within a bounded
                       number of its own syscalls, and an attempt no fault hit succeeds.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from maildircheck.model.content import EMPTY, Content, Messages
from maildircheck.model.fs import FileSystem
from maildircheck.model.outcome import Delivered, Outcome, PermanentFailure, TemporaryFailure
from maildircheck.model.persistence import (
    STALE_PATTERN,
    CrashChoice,
    Profile,
    find_crash_state,
    guaranteed_in,
)
from maildircheck.model.syscalls import Link, Open, OpenFlag, ReadInput, Syscall, Write


@dataclass(frozen=True)
class PropertyInfo:
    id: str
    name: str
    statement: str
    safety: bool = True
    kind: str = "safety"  # "safety", "quality" (P6), "progress" (P7) or "conformance" (L1)


PROPERTIES: dict[str, PropertyInfo] = {
    p.id: p
    for p in (
        PropertyInfo(
            "P1",
            "no-partial",
            "no partial or foreign content is visible in new/ or "
            "cur/, live or in any state a crash could leave",
        ),
        PropertyInfo(
            "P2",
            "no-early-success",
            "once success is reported, the complete "
            "message is in new/ or cur/ in every state a crash could leave",
        ),
        PropertyInfo(
            "P3",
            "no-clobber",
            "a delivery never replaces or removes another message, and delivered names are unique",
        ),
        PropertyInfo(
            "P4",
            "honest-failure",
            "after a reported failure the delivery left no tmp/ file and nothing partial",
        ),
        PropertyInfo(
            "P5",
            "no-false-bounce",
            "a transient problem is reported as a temporary failure, never a permanent one",
        ),
        PropertyInfo(
            "P6",
            "at-most-once",
            "a message appears at most once in new/ and cur/ (quality, not safety)",
            safety=False,
            kind="quality",
        ),
        PropertyInfo(
            "P7",
            "progress",
            "once faults stop, a delivery reports within a bounded number of its own syscalls, "
            "and a delivery attempt no fault hit ends in success (progress, not safety)",
            safety=False,
            kind="progress",
        ),
    )
}
SAFETY = tuple(p for p, info in PROPERTIES.items() if info.safety)
ALWAYS = tuple(p for p, info in PROPERTIES.items() if info.kind in ("safety", "progress"))
"""The properties every check judges: the safety properties and P7."""
PROPERTIES["L1"] = PropertyInfo(
    "L1",
    "lifecycle",
    "every step of a delivery is an edge of the lifecycle table (model/lifecycle.py); "
    "checked on request (--strict-lifecycle), as flawed strategies leave it by design",
    safety=False,
    kind="conformance",
)


Bad = Callable[[Mapping[int, Mapping[str, int]], Mapping[int, Content]], "str | None"]


@dataclass(frozen=True)
class Violation:
    prop: str
    why: str
    crash: CrashChoice | None = None

    def __str__(self) -> str:
        return f"{self.prop} {PROPERTIES[self.prop].name}: {self.why}"


@dataclass(frozen=True)
class Layout:
    """The maildir's directories, as inode numbers of the model file system."""

    root: str
    tmp: int
    new: int
    cur: int

    @classmethod
    def of(cls, fs: FileSystem, root: str) -> Layout:
        return cls(root, *(fs.lookup(f"{root}/{d}") for d in ("tmp", "new", "cur")))

    @property
    def visible(self) -> tuple[int, int]:
        return (self.new, self.cur)

    def dirname(self, ino: int) -> str:
        return {self.tmp: "tmp", self.new: "new", self.cur: "cur"}.get(ino, "?")


@dataclass
class DeliveryRecord:
    """One delivery attempt of one message, as the checker saw it."""

    label: str
    message: str
    content: Content
    outcome: Outcome | None = None
    ended: str | None = None  # "killed" or "power loss" when it died without reporting
    refused_unlinks: set[str] = field(default_factory=set)  # paths whose unlink failed
    faults: int = 0  # faults that hit this attempt (P7): injected replies, SIGTERM, ...
    since_fault: int = 0  # its syscalls that moved no data since the last of them (or start)
    collisions: set[str] = field(default_factory=set)  # names it found taken by another's file


def describe_content(content: Content, messages: Messages) -> str:
    """Say what a file holds, relative to the messages being delivered."""
    mid = messages.get(content)
    if mid is not None:
        return f"{mid} (complete)"
    if not content:
        return "nothing (0 bytes)"
    if STALE_PATTERN[:8] in bytes(content):
        return f"{len(content)} bytes including stale blocks of another file"
    for mid, full in messages.by_id.items():
        if len(full) > len(content) and full.slice(0, len(content)) == content:
            return f"the first {len(content)} of {len(full)} bytes of {mid}"
    if content == Content.zeros(len(content)):
        return f"{len(content)} zero bytes"
    for mid, full in messages.by_id.items():
        if len(full) == len(content):
            return f"{mid} with {bytes_differing(full, content)} of {len(full)} bytes altered"
    return f"{len(content)} bytes that are no message"


def bytes_differing(a: Content, b: Content) -> int:
    """How many bytes two contents of one size differ in."""
    xor = int.from_bytes(bytes(a), "big") ^ int.from_bytes(bytes(b), "big")
    return len(a) - xor.to_bytes(len(a), "big").count(0)


def _bad_entry(
    entries: Mapping[int, Mapping[str, int]],
    data: Mapping[int, Content],
    layout: Layout,
    messages: Messages,
) -> str | None:
    for d in layout.visible:
        for name, ino in sorted(entries.get(d, {}).items()):
            content = data.get(ino, EMPTY)
            if content not in messages:
                return f"{layout.dirname(d)}/{name} holds {describe_content(content, messages)}"
    return None


def check_visible(
    fs: FileSystem, layout: Layout, messages: Messages, view: str = "live view"
) -> Violation | None:
    """P1 in the live view (on NFS: the server's, which every other host reads)."""
    data = {ino: fs.inodes[ino].data for d in layout.visible for ino in fs.entries[d].values()}
    why = _bad_entry(fs.entries, data, layout, messages)
    return Violation("P1", f"{view}: {why}") if why else None


def check_crash_states(
    fs: FileSystem,
    profile: Profile,
    layout: Layout,
    messages: Messages,
    crash: str = "a power loss",
) -> Violation | None:
    """P1 in every state a power loss (on NFS: a server crash) could leave now."""
    found = find_crash_state(
        fs, profile, layout.visible, lambda e, d: _bad_entry(e, d, layout, messages)
    )
    if found is None:
        return None
    choice, why = found
    return Violation("P1", f"after {crash} now: {why}", choice)


def check_durable_success(
    fs: FileSystem,
    profile: Profile,
    layout: Layout,
    records: Iterable[DeliveryRecord],
    consumed: set[str],
    crash: str = "a power loss",
) -> Violation | None:
    """P2 for every delivery that reported success and whose message the reader kept."""
    for rec in records:
        if (
            isinstance(rec.outcome, Delivered)
            and rec.message not in consumed
            and not guaranteed_in(fs, profile, layout.visible, rec.content)
        ):
            live = any(
                fs.inodes[i].data == rec.content
                for d in layout.visible
                for i in fs.entries[d].values()
            )
            if not live:
                return Violation(
                    "P2",
                    f"{rec.label} reported success for {rec.message}, which is not in new/ or cur/",
                )
            witness = find_crash_state(fs, profile, layout.visible, _absent(layout, rec.content))
            return Violation(
                "P2",
                f"{rec.label} reported success for {rec.message}, which {crash} could "
                "still remove or corrupt",
                witness[0] if witness else None,
            )
    return None


def _absent(layout: Layout, content: Content) -> Bad:
    """A crash-state test: no entry of new/ or cur/ holds exactly `content`."""

    def test(entries: Mapping[int, Mapping[str, int]], data: Mapping[int, Content]) -> str | None:
        for d in layout.visible:
            if any(data.get(i) == content for i in entries.get(d, {}).values()):
                return None
        return "the message is gone"

    return test


def visible_messages(fs: FileSystem, layout: Layout) -> dict[int, str]:
    """inode -> "new/NAME" for every live entry of new/ and cur/."""
    return {
        ino: f"{layout.dirname(d)}/{name}"
        for d in layout.visible
        for name, ino in fs.entries[d].items()
    }


def check_clobber(
    before: Mapping[int, str],
    fs: FileSystem,
    layout: Layout,
    actor: str,
    is_reader: bool,
    messages: Messages,
) -> Violation | None:
    """P3: did `actor`'s last step remove or replace a message it did not create?"""
    if is_reader:
        return None
    after = visible_messages(fs, layout)
    for ino, where in before.items():
        node = fs.inodes[ino]
        if ino not in after and node.creator != actor:
            return Violation(
                "P3", f"{actor} removed or replaced {where}, created by {node.creator}"
            )
    for ino, where in after.items():
        node = fs.inodes[ino]
        if ino in before and node.creator != actor and node.data not in messages:
            return Violation("P3", f"{actor} overwrote {where}, created by {node.creator}")
    return None


def check_unique_names(records: Iterable[DeliveryRecord]) -> Violation | None:
    """P3: two successful deliveries never report the same name."""
    seen: dict[str, str] = {}
    for rec in records:
        if isinstance(rec.outcome, Delivered):
            if rec.outcome.name in seen and seen[rec.outcome.name] != rec.label:
                return Violation(
                    "P3",
                    f"{seen[rec.outcome.name]} and {rec.label} both reported "
                    f"new/{rec.outcome.name}",
                )
            seen[rec.outcome.name] = rec.label
    return None


def check_honest_failure(
    fs: FileSystem, layout: Layout, rec: DeliveryRecord, messages: Messages
) -> Violation | None:
    """P4 at the moment `rec` reports a failure; P5 for its class."""
    if rec.outcome is None or isinstance(rec.outcome, Delivered):
        return None
    for name, ino in sorted(fs.entries[layout.tmp].items()):
        path = f"{layout.root}/tmp/{name}"
        if fs.inodes[ino].creator == rec.label and path not in rec.refused_unlinks:
            return Violation("P4", f"{rec.label} reported failure but left tmp/{name}")
    for d in layout.visible:
        for name, ino in sorted(fs.entries[d].items()):
            node = fs.inodes[ino]
            if node.creator == rec.label and node.data not in messages:
                return Violation(
                    "P4",
                    f"{rec.label} reported failure but left {layout.dirname(d)}/{name} "
                    f"holding {describe_content(node.data, messages)}",
                )
    if isinstance(rec.outcome, PermanentFailure):
        return Violation(
            "P5",
            f"{rec.label} bounced {rec.message} ({rec.outcome.reason}) although the "
            "cause was transient",
        )
    return None


def find_duplicates(fs: FileSystem, layout: Layout, messages: Messages) -> Violation | None:
    """P6: one message under two names in new/ and cur/."""
    where: dict[str, list[str]] = {}
    for ino, path in sorted(visible_messages(fs, layout).items()):
        mid = messages.get(fs.inodes[ino].data)
        if mid is not None:
            where.setdefault(mid, []).append(path)
    for mid, paths in sorted(where.items()):
        if len(paths) > 1:
            return Violation("P6", f"{mid} is delivered twice: {' and '.join(sorted(paths))}")
    return None


def moves_the_message(request: Syscall[Any], reply: object) -> bool:
    """P7: did this syscall carry the message forward - a read of standard input that got
    bytes, or a write that wrote some? Those do not count toward the bound: an agent that
    copies a line or a byte at a time is slow, not stuck."""
    if isinstance(request, ReadInput):
        return isinstance(reply, bytes) and len(reply) > 0
    return isinstance(request, Write) and isinstance(reply, int) and reply > 0


def collided(fs: FileSystem, request: Syscall[Any], reply: object, label: str) -> str | None:
    """P7: the name this syscall found taken by another's file - an exclusive create or a
    link answered EEXIST where the file at that name is not `label`'s own (a clash source,
    X13-X16, or a weak name). A collision is a fault that hit the delivery; the name is
    returned so that it counts once (a retry of the same name for ever still loops, B16)."""
    if not (isinstance(reply, OSError) and reply.errno == errno.EEXIST):
        return None
    if isinstance(request, Open) and OpenFlag.EXCL in request.flags:
        path = request.path
    elif isinstance(request, Link):
        path = request.dst
    else:
        return None
    ino = fs.find(path)
    return path if ino is not None and fs.inodes[ino].creator != label else None


def check_progress(rec: DeliveryRecord, budget: int) -> Violation | None:
    """P7, while `rec` runs: no more than `budget` syscalls that moved no data since the
    last fault that hit it without a report (an agent that loops once the faults have
    stopped)."""
    if rec.outcome is None and rec.ended is None and rec.since_fault > budget:
        since = "its last fault" if rec.faults else "it started (no fault hit it)"
        return Violation(
            "P7",
            f"{rec.label} has made {rec.since_fault} syscalls that moved no data since {since} "
            f"without "
            f"reporting on {rec.message}; the bound is {budget}",
        )
    return None


def check_deferral(fs: FileSystem, layout: Layout, rec: DeliveryRecord) -> Violation | None:
    """P7, when `rec` reports: a temporary failure needs a fault that hit this attempt -
    without one, every retry of the MTA would defer alike until the queue lifetime
    bounces the message. A deferral whose message is in new/ or cur/ all the same made
    progress (its retry can only duplicate it, which is P6's to judge)."""
    if isinstance(rec.outcome, TemporaryFailure) and rec.faults == 0:
        live = visible_messages(fs, layout)
        if any(fs.inodes[ino].data == rec.content for ino in live):
            return None
        return Violation(
            "P7",
            f"{rec.label} deferred {rec.message} ({rec.outcome.reason}) although no fault "
            "hit it: each retry would defer alike until the MTA bounces the message",
        )
    return None
