"""The block recorder (G1): a FUSE process serving a disk image, logging writes and flushes.

A loop device with direct I/O over the file this process serves (`MOUNT/disk`) passes each
block write of the file system above it to `write` and each cache flush (REQ_PREFLUSH, and
FUA, which the loop driver turns into a flush) to `fsync`. While recording is on, each write
is logged with its offset and bytes, each flush as a barrier, in the order they complete
here (one thread: requests are served one at a time, so the order is total).

The parent drives it over stdin/stdout, one command a line, one reply line each:
  `record BASE`   copy the image (holes kept) to BASE, then log from here on;
  `mark LABEL`    put a named point in the log (before a step, at the program's report);
  `fail HEX ERRNO COUNT`  the next COUNT writes whose bytes contain HEX fail with ERRNO
                  (EIO, ENOSPC): nothing of them reaches the image, as with a bad sector;
                  it replaces an earlier rule for HEX, so COUNT 0 disarms one;
  `guard PATH`    a mount point or loop device set up on this disk, torn down at exit;
  `state PATH`    serve `MOUNT/state`: the crash state PATH names (a saved BlockLog whose
                  writes are laid over its base); writes to it (recovery) stay in memory;
  `unguard PATH`  PATH was torn down by the parent;
  `dump PATH`     write the log (`BlockLog.save`) to PATH;
  `quit`          unmount and exit.
It answers `ok` or `error MESSAGE`. If the parent dies, the process tears down what sits on
its disk (the mounts and loop devices it was told to `guard`) before it unmounts
itself, so a killed test leaves no mount behind.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
import threading
import time
from typing import Any

import mfusepy as fuse  # type: ignore[import-untyped]

from maildircheck.harness.realfs.blocklog import BlockLog, Fail, Flush, Mark, Write, copy_sparse
from maildircheck.harness.realfs.release import release

DISK = "/disk"
STATE = "/state"
SECTOR = 512


class Recorder(fuse.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, image: str) -> None:
        self.image = image
        self.fd = os.open(image, os.O_RDWR)
        self.mutex = threading.Lock()
        self.log: BlockLog | None = None
        self.failing: list[list[Any]] = []  # [pattern, errno, remaining]
        self.guarded: list[str] = []  # mounts and loop devices on this disk
        self.state_base: int | None = None  # fd of the crash state's base image
        self.state: dict[int, bytes] = {}  # sector -> bytes over the base

    # --- the served file -------------------------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        now = time.time_ns()
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_mtime": now}
        if path == DISK:
            size = os.fstat(self.fd).st_size
            return {"st_mode": stat.S_IFREG | 0o600, "st_nlink": 1, "st_size": size,
                    "st_mtime": now}
        if path == STATE and self.state_base is not None:
            size = os.fstat(self.state_base).st_size
            return {"st_mode": stat.S_IFREG | 0o600, "st_nlink": 1, "st_size": size,
                    "st_mtime": now}
        raise fuse.FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", DISK[1:]] + ([STATE[1:]] if self.state_base is not None else [])

    def open(self, path: str, fi: Any) -> int:
        if path not in (DISK, STATE) or (path == STATE and self.state_base is None):
            raise fuse.FuseOSError(errno.ENOENT)
        fi.direct_io = 1  # no page cache here: every write reaches `write` when issued
        return 0

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        if path == STATE:
            return self._read_state(size, offset)
        return os.pread(self.fd, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: Any) -> int:
        if path == STATE:
            return self._write_state(data, offset)
        with self.mutex:
            for rule in self.failing:
                if rule[2] > 0 and rule[0] in data:
                    rule[2] -= 1
                    if self.log is not None:
                        self.log.records.append(Fail(offset, len(data), rule[1]))
                    raise fuse.FuseOSError(rule[1])
            os.pwrite(self.fd, data, offset)
            if self.log is not None:
                self.log.records.append(Write(offset, data))
        return len(data)

    def fsync(self, path: str, datasync: int, fh: Any) -> int:
        with self.mutex:
            os.fsync(self.fd)
            if self.log is not None:
                self.log.records.append(Flush())
        return 0

    def flush(self, path: str, fh: Any) -> int:
        return 0

    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        raise fuse.FuseOSError(errno.EPERM)

    # --- a crash state: the base image and the state's sectors over it ------------------------
    def _read_state(self, size: int, offset: int) -> bytes:
        assert self.state_base is not None
        out = bytearray(os.pread(self.state_base, size, offset))
        first, last = offset // SECTOR, (offset + len(out) - 1) // SECTOR
        for sector in range(first, last + 1):
            patch = self.state.get(sector)
            if patch is not None:
                lo = sector * SECTOR - offset
                src = max(0, -lo)
                dst = max(0, lo)
                n = min(SECTOR - src, len(out) - dst)
                out[dst : dst + n] = patch[src : src + n]
        return bytes(out)

    def _write_state(self, data: bytes, offset: int) -> int:
        """A write to the state (the file system's recovery): kept in memory, never in the
        base, so the next state starts clean."""
        if offset % SECTOR or len(data) % SECTOR:
            start = offset - offset % SECTOR
            end = -(-(offset + len(data)) // SECTOR) * SECTOR
            whole = bytearray(self._read_state(end - start, start).ljust(end - start, b"\0"))
            whole[offset - start : offset - start + len(data)] = data
            data, offset = bytes(whole), start
        for i in range(0, len(data), SECTOR):
            self.state[(offset + i) // SECTOR] = data[i : i + SECTOR]
        return len(data)

    def _load_state(self, path: str) -> None:
        """`path` is a saved BlockLog: its base, and the writes the crash state keeps."""
        state = BlockLog.load(path)
        if self.state_base is not None:
            os.close(self.state_base)
        self.state_base = os.open(state.base, os.O_RDONLY)
        self.state = {}
        for rec in state.writes:
            self._write_state(rec.data, rec.offset)

    # --- commands --------------------------------------------------------------------------
    def command(self, line: str) -> str:
        word, _, rest = line.strip().partition(" ")
        with self.mutex:
            if word == "record":
                copy_sparse(self.image, rest)
                self.log = BlockLog(base=rest, size=os.fstat(self.fd).st_size)
            elif word == "mark":
                if self.log is None:
                    return "error not recording"
                self.log.records.append(Mark(rest))
            elif word == "fail":
                pattern, code, count = rest.split()
                key = bytes.fromhex(pattern)
                self.failing = [r for r in self.failing if r[0] != key]
                self.failing.append([key, int(code), int(count)])
            elif word == "state":
                self._load_state(rest)
            elif word == "guard":
                self.guarded.insert(0, rest)  # torn down first: the last thing set up
            elif word == "unguard":
                self.guarded.remove(rest)
            elif word == "dump":
                if self.log is None:
                    return "error not recording"
                self.log.save(rest)
            else:
                return f"error unknown command {word!r}"
        return "ok"


def _serve_commands(rec: Recorder, mountpoint: str) -> None:
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        try:
            reply = rec.command(line)
        except Exception as err:  # a failed command is reported, the recorder goes on
            reply = f"error {type(err).__name__}: {err}"
        print(reply.replace("\n", " "), flush=True)
    # stdin closed or quit: the parent is gone or done - leave nothing mounted
    release(os.path.dirname(os.path.abspath(mountpoint)), rec.guarded)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="maildircheck-recorder")
    parser.add_argument("--image", required=True)
    parser.add_argument("--mount", required=True)
    args = parser.parse_args(argv)
    rec = Recorder(args.image)
    threading.Thread(target=_serve_commands, args=(rec, args.mount), daemon=True).start()
    fuse.FUSE(rec, args.mount, foreground=True, nothreads=True, raw_fi=True,
              attr_timeout=0, entry_timeout=0)


if __name__ == "__main__":
    main()
