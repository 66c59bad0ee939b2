"""The other processes of a mail host, written like strategies: sans-IO generators.

  reader  - a mail client: lists new/, reads each message, moves it to cur/ (adding
            ":2,S"), and deletes the messages it has already read from cur/ (spec E1);
  cleaner - the tmp/ cleaner of maildir(5): removes tmp/ files whose access time is more
            than 36 hours old on the simulated clock (spec E2).

The checker sees what they do through their syscalls, like any other process.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from maildircheck.model.syscalls import (
    Close,
    GetTime,
    ListDir,
    Lstat,
    Open,
    OpenFlag,
    Read,
    Rename,
    Syscall,
    Unlink,
    call,
)

CLEAN_AFTER_US = 36 * 3600 * 1_000_000


ActorGen = Generator[Syscall[Any], object, None]


def read_file(path: str) -> Generator[Syscall[Any], object, bytes | None]:
    try:
        fd = yield from call(Open(path, OpenFlag.RDONLY))
    except OSError:
        return None
    chunks: list[bytes] | None = []
    while chunks is not None:
        try:
            chunk = yield from call(Read(fd, 4096))
        except OSError:
            chunks = None
            break
        if not chunk:
            break
        chunks.append(chunk)
    try:
        yield from call(Close(fd))
    except OSError:
        pass
    return None if chunks is None else b"".join(chunks)


def reader(root: str, seen: set[str]) -> ActorGen:
    """One pass of a mail client over the maildir; `seen` persists between passes, so a
    message is deleted on the pass after the one that read it."""
    read_before = set(seen)
    try:
        names = yield from call(ListDir(f"{root}/new"))
    except OSError:
        return
    for name in names:
        content = yield from read_file(f"{root}/new/{name}")
        if content is None:
            continue
        try:
            yield from call(Rename(f"{root}/new/{name}", f"{root}/cur/{name}:2,S"))
        except OSError:
            continue
        seen.add(f"{name}:2,S")
    try:
        names = yield from call(ListDir(f"{root}/cur"))
    except OSError:
        return
    for name in names:
        if name in read_before:
            try:
                yield from call(Unlink(f"{root}/cur/{name}"))
            except OSError:
                pass
            seen.discard(name)


def cleaner(root: str) -> ActorGen:
    """One pass of the tmp/ cleaner (maildir(5): files not accessed for 36 hours)."""
    try:
        names = yield from call(ListDir(f"{root}/tmp"))
    except OSError:
        return
    for name in names:
        try:
            st = yield from call(Lstat(f"{root}/tmp/{name}"))
            now = yield from call(GetTime())
        except OSError:
            continue
        if now.seconds * 1_000_000 + now.microseconds - st.atime_us > CLEAN_AFTER_US:
            try:
                yield from call(Unlink(f"{root}/tmp/{name}"))
            except OSError:
                pass
