"""A Maildir outcome (G3): what a crash state holds, in terms the model and a disk share.

An outcome is the set of entries in tmp/, new/ and cur/, each with its content classed
against the messages the workload delivered: `complete` (exactly one of them), `a prefix`
(a proper, non-empty prefix of one), `empty`, `zeros` (only zero bytes) or `other`
(anything else: stale blocks, a prefix followed by zeros, garbage). The same value is made
from a mounted crash state (`read_maildir`) and from a model crash view (`from_view`), so
the two can be compared as sets. A state the file system refused to mount is the outcome
`UNMOUNTABLE` - never one the model allows.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from maildircheck.model import content as model_content

SUBDIRS = ("tmp", "new", "cur")


class Content(enum.Enum):
    COMPLETE = "complete"
    PREFIX = "a prefix"
    EMPTY = "empty"
    ZEROS = "zeros"
    OTHER = "other"


def classify(data: bytes, messages: Iterable[bytes]) -> Content:
    if not data:
        return Content.EMPTY
    messages = tuple(messages)
    if data in messages:
        return Content.COMPLETE
    if any(len(data) < len(m) and m.startswith(data) for m in messages):
        return Content.PREFIX
    if not data.strip(b"\0"):
        return Content.ZEROS
    return Content.OTHER


@dataclass(frozen=True)
class Entry:
    subdir: str
    name: str
    content: Content = Content.COMPLETE

    def __str__(self) -> str:
        return f"{self.subdir}/{self.name} ({self.content.value})"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return (self.subdir, self.name, self.content.value) < (
            other.subdir,
            other.name,
            other.content.value,
        )


Outcome = frozenset[Entry]
UNMOUNTABLE: Outcome = frozenset({Entry("!", "the file system did not mount", Content.OTHER)})


def describe(outcome: Outcome) -> str:
    """`new/m1 (complete), tmp/m1 (complete)`; "nothing" for an empty Maildir."""
    return ", ".join(str(e) for e in sorted(outcome)) or "nothing"


def read_maildir(maildir: str, messages: Iterable[bytes]) -> Outcome:
    """The outcome a mounted crash state shows at `maildir`."""
    messages = tuple(messages)
    found = set()
    for sub in SUBDIRS:
        where = os.path.join(maildir, sub)
        if not os.path.isdir(where):
            continue
        for name in os.listdir(where):
            with open(os.path.join(where, name), "rb") as f:
                found.add(Entry(sub, name, classify(f.read(), messages)))
    return frozenset(found)


def from_view(
    dirs: Mapping[str, Mapping[str, int]],
    data: Mapping[int, model_content.Content],
    messages: Iterable[bytes],
) -> Outcome:
    """The outcome of a model crash view: `dirs` maps tmp/new/cur to their entries."""
    messages = tuple(messages)
    return frozenset(
        Entry(sub, name, classify(bytes(data.get(ino, model_content.EMPTY)), messages))
        for sub, entries in dirs.items()
        for name, ino in entries.items()
    )
