"""What a file holds in the model: contents as runs of bytes, never copied per step.

A `Content` is an immutable sequence of runs. A run is a slice of a source `bytes` object
(shared, never copied) or a stretch of zeros. Writing into a file, truncating it, tearing a
write in a crash state, copying a durable view: each builds a new `Content` out of
references to the old runs, so its cost grows with the number of runs, not with the bytes
(issue 11: a 1 MiB message costs the checker about what a 20-byte one does).

Equality is exact and compares run by run: two runs over the same source at the same place
are equal without reading a byte; zeros against zeros likewise; only a stretch over two
different sources is compared byte for byte, first its head (a difference is almost always
there), then the rest. Two contents found equal over different runs are made to share the
shorter run list, so the next comparison of the same pair is structural.

`Messages` indexes the messages of a run by content, for the properties' "which message
is this file?" (a `Content` hashes by its size alone: its runs may change, its bytes not).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

HEAD = 64  # bytes compared first when two different sources meet


class Run(NamedTuple):
    """`source[start:stop]`, or `stop - start` zero bytes when `source` is None."""

    source: bytes | None
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def cut(self, start: int, stop: int) -> Run:
        """The part of this run from `start` to `stop`, counted from the run's beginning."""
        return Run(self.source, self.start + start, self.start + stop)

    def bytes_at(self, start: int, size: int) -> bytes:
        if self.source is None:
            return bytes(size)
        return self.source[self.start + start : self.start + start + size]


class Content:
    __slots__ = ("runs", "size")

    def __init__(self, runs: Iterable[Run] = ()) -> None:
        self.runs: tuple[Run, ...] = _merged(runs)
        self.size = sum(r.size for r in self.runs)

    # --- building -----------------------------------------------------------------------
    @classmethod
    def of(cls, data: bytes | bytearray | Content) -> Content:
        """`data` as content: a Content as it is; bytes as one run over them (not copied)."""
        if isinstance(data, Content):
            return data
        source = data if type(data) is bytes else bytes(data)
        return cls((Run(source, 0, len(source)),))

    @classmethod
    def slice_of(cls, source: bytes, start: int, stop: int) -> Content:
        """`source[start:stop]` as a run over `source` (what a copy of stdin writes)."""
        return cls((Run(source, start, stop),))

    @classmethod
    def zeros(cls, size: int) -> Content:
        return cls((Run(None, 0, size),))

    @classmethod
    def repeat(cls, pattern: bytes, size: int) -> Content:
        """`pattern` repeated to `size` bytes (a stale block's old data)."""
        return cls.slice_of(_tiled(pattern, size), 0, size)

    def write(self, offset: int, data: bytes | Content) -> Content:
        """This content with `data` written at `offset` (a gap before it reads as zeros)."""
        new = Content.of(data)
        if offset > self.size:
            head = (*self.runs, Run(None, 0, offset - self.size))
        else:
            head = self._runs_between(0, offset)
        tail = self._runs_between(offset + new.size, self.size)
        return Content((*head, *new.runs, *tail))

    def slice(self, start: int, stop: int) -> Content:
        return Content(self._runs_between(max(0, start), min(stop, self.size)))

    # --- reading ------------------------------------------------------------------------
    def read(self, start: int, stop: int) -> bytes:
        """The bytes from `start` to `stop` (clipped to the content), copied out."""
        return b"".join(r.bytes_at(0, r.size) for r in self._runs_between(start, stop))

    def tobytes(self) -> bytes:
        """All of it, copied out (what bytes(content) gives)."""
        return self.read(0, self.size)

    def __bytes__(self) -> bytes:
        return self.tobytes()

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __repr__(self) -> str:
        return f"Content(<{self.size} bytes in {len(self.runs)} runs>)"

    # --- comparing ----------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, bytes | bytearray):
            other = Content.of(other)
        if not isinstance(other, Content):
            return NotImplemented
        if self is other or self.runs == other.runs:
            return True
        if self.size != other.size or not _same_bytes(self.runs, other.runs):
            return False
        shared = min(self.runs, other.runs, key=len)  # equal: share the shorter list
        self.runs = other.runs = shared
        return True

    def __hash__(self) -> int:  # equal contents have one size; sharing runs keeps it
        return hash(self.size)

    # --- internals ----------------------------------------------------------------------
    def _runs_between(self, start: int, stop: int) -> tuple[Run, ...]:
        out: list[Run] = []
        at = 0
        for run in self.runs:
            end = at + run.size
            if end > start and at < stop:
                out.append(run.cut(max(start, at) - at, min(stop, end) - at))
            if end >= stop:
                break
            at = end
        return tuple(out)


def _merged(runs: Iterable[Run]) -> tuple[Run, ...]:
    """Runs without empty ones, neighbours over the same place in one source joined."""
    out: list[Run] = []
    for run in runs:
        if run.size <= 0:
            continue
        if out:
            last = out[-1]
            if last.source is None and run.source is None:
                out[-1] = Run(None, 0, last.size + run.size)
                continue
            if last.source is run.source and last.stop == run.start:
                out[-1] = Run(last.source, last.start, run.stop)
                continue
        out.append(run)
    return tuple(out)


def _same_bytes(a: tuple[Run, ...], b: tuple[Run, ...]) -> bool:
    """Do two run lists of one size hold the same bytes? Stretch by stretch."""
    i = j = 0
    at_a = at_b = 0  # bytes of a[i] and b[j] already compared
    while i < len(a) and j < len(b):
        ra, rb = a[i], b[j]
        size = min(ra.size - at_a, rb.size - at_b)
        if not _stretch_equal(ra, at_a, rb, at_b, size):
            return False
        at_a, at_b = at_a + size, at_b + size
        if at_a == ra.size:
            i, at_a = i + 1, 0
        if at_b == rb.size:
            j, at_b = j + 1, 0
    return True


def _stretch_equal(ra: Run, at_a: int, rb: Run, at_b: int, size: int) -> bool:
    if ra.source is rb.source and (ra.source is None or ra.start + at_a == rb.start + at_b):
        return True
    head = min(size, HEAD)
    if ra.bytes_at(at_a, head) != rb.bytes_at(at_b, head):
        return False
    return ra.bytes_at(at_a, size) == rb.bytes_at(at_b, size)


_TILED: dict[bytes, bytes] = {}


def _tiled(pattern: bytes, size: int) -> bytes:
    """One shared source of `pattern` repeated to at least `size` bytes."""
    have = _TILED.get(pattern, b"")
    if len(have) < size:
        have = pattern * (max(size, 2 * len(have)) // len(pattern) + 1)
        _TILED[pattern] = have
    return have


EMPTY = Content()


class Messages:
    """The messages of one run by content: which message a file holds, if any."""

    def __init__(self, messages: dict[str, Content] | None = None) -> None:
        self.by_id: dict[str, Content] = {}
        self._by_size: dict[int, list[tuple[Content, str]]] = {}
        for mid, content in (messages or {}).items():
            self.add(mid, content)

    def add(self, mid: str, content: Content) -> str:
        """Know `content` as message `mid`; the id it is known by (an earlier one, if any)."""
        known = self.get(content)
        if known is not None:
            return known
        self.by_id.setdefault(mid, content)
        self._by_size.setdefault(content.size, []).append((content, mid))
        return mid

    def get(self, content: Content) -> str | None:
        for candidate, mid in self._by_size.get(content.size, ()):
            if candidate == content:
                return mid
        return None

    def __contains__(self, content: object) -> bool:
        return isinstance(content, Content) and self.get(content) is not None
