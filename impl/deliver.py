"""The correct Maildir delivery algorithm, written once as a sans-IO generator.

It yields `model.syscalls` requests and receives their replies; `impl.drivers` runs it on
the real OS and the checker runs it on the model. The steps (docs/algorithm.md teaches them;
the spec IDs are in specs/requirements.md):

  A1  check the maildir: tmp/ and new/ are real directories (create them only when asked);
  A2  pick a unique name: seconds, M usec, P pid, Q counter, R random, escaped host;
  A3  open tmp/NAME with O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW, 0600; EEXIST -> a fresh name;
  A4  copy standard input, checking every write (short writes continue);
  A5  fsync the file, checked;  A6  close it, checked;
  A7  the 24-hour timer: past the deadline, give up (tmp removed, temporary failure);
  A8  link tmp/NAME to new/NAME - never rename over a name;
  A9  a failed link is resolved by comparing dev+ino of both paths: same inode = linked;
      a true EEXIST -> a fresh name for new/, link again;
  A10 fsync new/ so the new entry is durable;
  A11 unlink tmp/NAME (errors tolerated);  A12 only now report success;
  A13 on any failure remove tmp/NAME and report a temporary failure; a permanent failure
      only for a refusal by policy (tmp/ or new/ is a symlink).
"""

from __future__ import annotations

import errno
import os

from maildircheck.impl.naming import NameParts, unique_name
from maildircheck.model.outcome import (
    Delivered,
    DeliveryRequest,
    Outcome,
    PermanentFailure,
    TemporaryFailure,
)
from maildircheck.model.syscalls import (
    Close,
    FileKind,
    FsyncDir,
    Fsync,
    GetHostname,
    GetPid,
    GetRandom,
    GetTime,
    Interrupted,
    Link,
    Lstat,
    Mkdir,
    Open,
    OpenFlag,
    ReadInput,
    StatResult,
    SyscallGen,
    Unlink,
    Write,
    call,
)

CHUNK = 65536
CREATE_FLAGS = OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.EXCL | OpenFlag.NOFOLLOW


def describe(err: OSError) -> str:
    """`ENOSPC (No space left on device)` - the errno name first, for logs and reports."""
    code = err.errno if err.errno is not None else 0
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def check_maildir(request: DeliveryRequest) -> SyscallGen[Outcome | None]:
    """A1: None when tmp/ and new/ are usable directories, else the failure to report."""
    root = request.maildir.rstrip("/") or "/"
    if request.create_dirs:
        for path in (root, f"{root}/tmp", f"{root}/new", f"{root}/cur"):
            try:
                yield from call(Mkdir(path, 0o700))
            except OSError as err:
                if err.errno != errno.EEXIST:
                    return TemporaryFailure(f"mkdir {path}: {describe(err)}")
    for sub in ("tmp", "new"):
        path = f"{root}/{sub}"
        try:
            st = yield from call(Lstat(path))
        except OSError as err:
            return TemporaryFailure(f"maildir unusable: {path}: {describe(err)}")
        if st.kind is FileKind.SYMLINK:
            return PermanentFailure(f"refusing {path}: it is a symbolic link")
        if st.kind is not FileKind.DIRECTORY:
            return TemporaryFailure(f"maildir unusable: {path} is not a directory")
    return None


def fresh_name(counter: int) -> SyscallGen[str]:
    """A2: a name nobody else can be using, from clock, pid, counter, random and host."""
    now = yield from call(GetTime())
    pid = yield from call(GetPid())
    host = yield from call(GetHostname())
    rnd = yield from call(GetRandom(32))
    parts = NameParts(now.seconds, now.microseconds, pid, counter, rnd, host or "localhost")
    return unique_name(parts)


def copy_input(fd: int) -> SyscallGen[int]:
    """A4: copy standard input to fd, every write checked; returns the byte count."""
    total = 0
    while True:
        chunk = yield from call(ReadInput(CHUNK))
        if not chunk:
            return total
        view = memoryview(chunk)
        while view:
            written = yield from call(Write(fd, bytes(view)))
            if written <= 0:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            view = view[written:]
        total += len(chunk)


def same_inode(a: str, b: str) -> SyscallGen[bool]:
    """A9: do both paths name one inode? (False when either is missing.)"""
    try:
        sa: StatResult = yield from call(Lstat(a))
        sb: StatResult = yield from call(Lstat(b))
    except OSError:
        return False
    return (sa.dev, sa.ino) == (sb.dev, sb.ino)


def link_into_new(request: DeliveryRequest, tmp: str, name: str) -> SyscallGen[str]:
    """A8-A9: link tmp into new/, never replacing a name; returns the name in new/."""
    root = request.maildir.rstrip("/")
    for attempt in range(request.max_name_attempts):
        if attempt:
            name = yield from fresh_name(attempt)
        dst = f"{root}/new/{name}"
        try:
            yield from call(Link(tmp, dst))
            return name
        except OSError as err:
            if (yield from same_inode(tmp, dst)):
                return name  # the link happened although its reply said otherwise
            if err.errno != errno.EEXIST:
                raise
    raise OSError(errno.EEXIST, "no free name in new/")


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """Deliver standard input into the maildir; see the module docstring for the steps."""
    refused = yield from check_maildir(request)
    if refused is not None:
        return refused
    root = request.maildir.rstrip("/")
    start = yield from call(GetTime())
    deadline = start.seconds + request.timeout_seconds
    tmp = ""
    fd = -1
    stage = "create"
    try:
        for counter in range(request.max_name_attempts):  # A3
            name = yield from fresh_name(counter)
            tmp = f"{root}/tmp/{name}"
            try:
                fd = yield from call(Open(tmp, CREATE_FLAGS, 0o600))
                break
            except OSError as err:
                if err.errno != errno.EEXIST:
                    tmp = ""
                    raise
        else:
            tmp = ""
            return TemporaryFailure("no free name in tmp/")
        stage = "write"
        yield from copy_input(fd)
        stage = "fsync"
        yield from call(Fsync(fd))
        stage = "close"
        fd, closing = -1, fd
        yield from call(Close(closing))
        now = yield from call(GetTime())  # A7
        if now.seconds > deadline:
            raise Interrupted("24-hour delivery timer expired")
        stage = "link"
        final = yield from link_into_new(request, tmp, name)
        stage = "fsync new/"
        try:
            yield from call(FsyncDir(f"{root}/new"))  # A10
        except OSError:
            yield from _discard(f"{root}/new/{final}")
            raise
    except (OSError, Interrupted) as err:
        yield from _abandon(fd, tmp)
        why = describe(err) if isinstance(err, OSError) else str(err)
        return TemporaryFailure(f"{stage}: {why}")
    yield from _discard(tmp)  # A11
    return Delivered(final)  # A12


def _discard(path: str) -> SyscallGen[None]:
    try:
        yield from call(Unlink(path))
    except OSError:
        pass


def _abandon(fd: int, tmp: str) -> SyscallGen[None]:
    """A13: close what is open and remove the temporary file; errors here change nothing."""
    if fd >= 0:
        try:
            yield from call(Close(fd))
        except OSError:
            pass
    if tmp:
        yield from _discard(tmp)
