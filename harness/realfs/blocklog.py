"""The block log: what a real file system sent to its disk, as the recorder saw it.

A `BlockLog` is the image as it was when recording began (`base`, a sparse copy) and the
records since, in completion order: `Write` (offset and bytes), `Flush` (a cache flush: every
write completed before it is on stable storage), `Fail` (a write the recorder refused with an
errno, so nothing of it reached the image) and `Mark` (a point the parent named - before a
workload's step, at the program's exit). Saved as one file: a JSON line per record, the
written bytes in a second file beside it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Write:
    offset: int
    data: bytes = field(repr=False)

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


@dataclass(frozen=True)
class Flush:
    pass


@dataclass(frozen=True)
class Fail:
    offset: int
    length: int
    errno: int


@dataclass(frozen=True)
class Mark:
    label: str


Record = Write | Flush | Fail | Mark


@dataclass
class BlockLog:
    base: str  # the image when recording began (holes kept)
    size: int
    records: list[Record] = field(default_factory=list)

    def save(self, path: str) -> None:
        with open(path + ".data", "wb") as data, open(path, "w") as index:
            index.write(json.dumps({"base": self.base, "size": self.size}) + "\n")
            for rec in self.records:
                if isinstance(rec, Write):
                    entry: dict[str, object] = {"w": rec.offset, "n": len(rec.data)}
                    data.write(rec.data)
                elif isinstance(rec, Flush):
                    entry = {"f": 1}
                elif isinstance(rec, Fail):
                    entry = {"x": rec.offset, "n": rec.length, "errno": rec.errno}
                else:
                    entry = {"m": rec.label}
                index.write(json.dumps(entry) + "\n")

    @classmethod
    def load(cls, path: str) -> BlockLog:
        with open(path) as index, open(path + ".data", "rb") as data:
            head = json.loads(index.readline())
            log = cls(head["base"], head["size"])
            for line in index:
                entry = json.loads(line)
                if "w" in entry:
                    log.records.append(Write(entry["w"], data.read(entry["n"])))
                elif "f" in entry:
                    log.records.append(Flush())
                elif "x" in entry:
                    log.records.append(Fail(entry["x"], entry["n"], entry["errno"]))
                else:
                    log.records.append(Mark(entry["m"]))
        return log

    @property
    def writes(self) -> list[Write]:
        return [r for r in self.records if isinstance(r, Write)]

    @property
    def marks(self) -> list[str]:
        return [r.label for r in self.records if isinstance(r, Mark)]


def _extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of each run of data in a sparse file."""
    at = 0
    while at < size:
        try:
            start = os.lseek(fd, at, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end - start
        at = end


def copy_sparse(src: str, dst: str) -> None:
    """Copy `src` to `dst` keeping its holes (an image is mostly holes)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        fout.truncate(size)
        for start, length in _extents(fin.fileno(), size):
            done = 0
            while done < length:
                at = start + done
                copied = os.copy_file_range(fin.fileno(), fout.fileno(), length - done, at, at)
                if copied == 0:
                    raise OSError(f"{src}: short copy at byte {at}")
                done += copied
