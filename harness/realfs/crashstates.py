"""Crash states from a block log (G2): what the disk may hold if the power is cut at a point.

A crash point is a place in the log - each `Mark` and the moment before each `Flush`
completes. At a point the disk holds every write completed before the last flush (the
drive promised those), plus any subset of the writes since, in log order (a drive with a
volatile cache may have written any of them, in any order; CrashMonkey builds its states
the same way). A state is named by the indices (into `log.writes`) it keeps.

The subsets are bounded: with at most `exhaustive` writes since the flush every subset is
tried; past that, every subset that keeps or drops at most one write, and `sample` more
drawn with `seed` - `CrashPoint.total` says how many there were, so a report can say how
many it explored. Failed writes (`Fail`) never reached the image and are in no state.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from maildircheck.harness.realfs.blocklog import BlockLog, Fail, Flush, Mark, Write

EXHAUSTIVE = 8
SAMPLE = 64


@dataclass(frozen=True)
class CrashPoint:
    label: str  # the mark's label, or "flush N" (1-based)
    after_mark: str | None  # the last mark at or before this point (None: before any)
    durable: tuple[int, ...]  # writes every state keeps
    volatile: tuple[int, ...]  # writes since the last flush: each state keeps a subset

    @property
    def total(self) -> int:
        return 1 << len(self.volatile)


def crash_points(log: BlockLog) -> list[CrashPoint]:
    points: list[CrashPoint] = []
    durable: list[int] = []
    volatile: list[int] = []
    flushes = 0
    last_mark: str | None = None
    index = 0
    for rec in log.records:
        if isinstance(rec, Write):
            volatile.append(index)
            index += 1
        elif isinstance(rec, Flush):
            flushes += 1
            if volatile:  # a flush with nothing new to keep adds no state
                points.append(
                    CrashPoint(f"flush {flushes}", last_mark, tuple(durable), tuple(volatile))
                )
            durable += volatile
            volatile = []
        elif isinstance(rec, Mark):
            last_mark = rec.label
            points.append(CrashPoint(rec.label, rec.label, tuple(durable), tuple(volatile)))
        else:
            assert isinstance(rec, Fail)
    return points


def subsets(point: CrashPoint, exhaustive: int = EXHAUSTIVE, sample: int = SAMPLE,
            seed: int = 0) -> Iterator[tuple[int, ...]]:
    """The kept subsets of `point.volatile` to try, each once, nothing kept first."""
    vol = point.volatile
    n = len(vol)
    if n <= exhaustive:
        for k in range(n + 1):
            yield from itertools.combinations(vol, k)
        return
    seen: set[tuple[int, ...]] = set()

    def once(keep: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
        if keep not in seen:
            seen.add(keep)
            yield keep

    yield from once(())
    for i in range(n):
        yield from once((vol[i],))
    for i in range(n):
        yield from once(vol[:i] + vol[i + 1 :])
    yield from once(vol)
    rng = random.Random(seed)
    for _ in range(sample):
        yield from once(tuple(w for w in vol if rng.random() < 0.5))


def state_writes(log: BlockLog, point: CrashPoint, kept: tuple[int, ...]) -> list[Write]:
    writes = log.writes
    return [writes[i] for i in (*point.durable, *kept)]
