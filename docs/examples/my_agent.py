"""A qmail-style Maildir delivery agent, checked with maildircheck (docs/own-agent.md).

It follows maildir(5) the way qmail-local does: find a free name in tmp/ (stat it, wait
2 s while it exists), create the file exclusively, write the message checking every write,
fsync and close it (both checked), link it into new/, remove the tmp/ name and report
success. Any failure removes the tmp/ file and is a temporary failure, so the MTA retries.

What it leaves out, like qmail-local and most real agents: it never fsyncs new/, so the
new/ entry may not be durable yet when success is reported.

Written against the syscall vocabulary of maildircheck.model.syscalls: every request is
`yield from call(...)`, which returns the reply, or raises the OSError (or `Interrupted`,
on SIGTERM) sent back by whatever runs the generator - the checker's model kernel or the
real OS driver.
"""

from __future__ import annotations

import errno

from maildircheck.model.outcome import Delivered, DeliveryRequest, Outcome, TemporaryFailure
from maildircheck.model.syscalls import (
    Close,
    Fsync,
    GetHostname,
    GetPid,
    GetTime,
    Interrupted,
    Link,
    Open,
    OpenFlag,
    ReadInput,
    Sleep,
    Stat,
    Syscall,
    SyscallGen,
    Unlink,
    Write,
    call,
)

CREATE = OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.EXCL


def quietly(request: Syscall[None]) -> SyscallGen[None]:
    """A clean-up call: its errors are ignored, and a SIGTERM arriving now does not stop it."""
    for _ in range(2):
        try:
            yield from call(request)
            return
        except Interrupted:
            continue
        except OSError:
            return


def pick_name(root: str) -> SyscallGen[str | None]:
    """`seconds.M<usec>P<pid>.<host>`, free in tmp/ (stat it; wait 2 s while it is taken)."""
    pid = yield from call(GetPid())
    host = yield from call(GetHostname())
    host = (host or "localhost").replace("/", "\\057").replace(":", "\\072")
    for _ in range(3):
        now = yield from call(GetTime())
        name = f"{now.seconds}.M{now.microseconds}P{pid}.{host}"
        try:
            yield from call(Stat(f"{root}/tmp/{name}"))
        except OSError as err:
            if err.errno == errno.ENOENT:
                return name
            raise
        yield from call(Sleep(2))
    return None


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """qmail-style delivery: tmp/, fsync, close, link into new/ - and no fsync of new/."""
    root = request.maildir.rstrip("/")
    tmp = ""
    fd = -1
    try:
        name = yield from pick_name(root)
        if name is None:
            return TemporaryFailure("no free name in tmp/")
        tmp = f"{root}/tmp/{name}"
        fd = yield from call(Open(tmp, CREATE, 0o600))
        while chunk := (yield from call(ReadInput(65536))):
            while chunk:
                written = yield from call(Write(fd, chunk))
                if written <= 0:
                    raise OSError(errno.EIO, "write wrote nothing")
                chunk = chunk[written:]
        yield from call(Fsync(fd))
        fd, closing = -1, fd
        yield from call(Close(closing))
        yield from call(Link(tmp, f"{root}/new/{name}"))
    except (OSError, Interrupted) as err:
        if fd >= 0:
            yield from quietly(Close(fd))
        if tmp:
            yield from quietly(Unlink(tmp))
        return TemporaryFailure(f"delivery failed: {err}")
    yield from quietly(Unlink(tmp))
    return Delivered(name)
