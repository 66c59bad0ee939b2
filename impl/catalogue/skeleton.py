"""The correct delivery of `impl/deliver.py`, with each step replaceable.

This module owns the one restatement of `impl.deliver.deliver` that the catalogue needs: the
same requests in the same order, with the same stage labels and outcomes, each step a field of
`Steps` whose default is the correct step (the helpers of `impl/deliver.py` wherever it has
one). A catalogue entry replaces exactly one field, so that everything else it does is the
correct algorithm. tests/test_catalogue_registry.py checks that `run(request, Steps())` yields
the same requests and reaches the same outcome as `impl.deliver.deliver`.

`time_pid_host` is the weak qmail-era name that the B4 and B5 entries need to make a name
collision reachable.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from maildircheck.impl.deliver import (
    CREATE_FLAGS,
    _abandon,
    _discard,
    check_maildir,
    copy_input,
    describe,
    fresh_name,
    link_into_new,
)
from maildircheck.impl.naming import escape_host
from maildircheck.model.outcome import (
    Delivered,
    DeliveryRequest,
    Outcome,
    TemporaryFailure,
)
from maildircheck.model.syscalls import (
    Close,
    Fsync,
    FsyncDir,
    GetHostname,
    GetPid,
    GetTime,
    Interrupted,
    Open,
    OpenFlag,
    Sleep,
    SyscallGen,
    call,
)

NameStep = Callable[[int], SyscallGen[str]]
"""A2: a name for tmp/ (and, by default, new/) given the attempt number."""
CopyStep = Callable[[int], SyscallGen[int]]
"""A4: copy standard input into the open file; returns the byte count."""
FdStep = Callable[[int], SyscallGen[None]]
"""A5 / A6: fsync or close the file."""
PlaceStep = Callable[[DeliveryRequest, str, str], SyscallGen[str]]
"""A8-A9: put tmp/NAME into new/ (request, tmp path, name); returns the name in new/."""
DirStep = Callable[[str, str], SyscallGen[None]]
"""A10: make the new/ entry durable (maildir root, name in new/)."""
FailStep = Callable[[str, "OSError | Interrupted", int, str], SyscallGen[Outcome]]
"""A13: clean up and report (stage, error, open fd or -1, tmp path or "")."""


def fsync_file(fd: int) -> SyscallGen[None]:
    """A5, correct: fsync, checked (an error propagates)."""
    yield from call(Fsync(fd))


def close_file(fd: int) -> SyscallGen[None]:
    """A6, correct: close, checked (an error propagates)."""
    yield from call(Close(fd))


def fsync_new(root: str, final: str) -> SyscallGen[None]:
    """A10, correct: fsync new/; if that fails, take the entry back out and fail."""
    try:
        yield from call(FsyncDir(f"{root}/new"))
    except OSError:
        yield from _discard(f"{root}/new/{final}")
        raise


def give_up(stage: str, err: OSError | Interrupted, fd: int, tmp: str) -> SyscallGen[Outcome]:
    """A13, correct: close the file, remove tmp/NAME, report a temporary failure."""
    yield from _abandon(fd, tmp)
    why = describe(err) if isinstance(err, OSError) else str(err)
    return TemporaryFailure(f"{stage}: {why}")


def time_pid_host(attempt: int) -> SyscallGen[str]:
    """The qmail-era name `seconds.pid.host`: no microseconds, counter or random part.

    Two deliveries that draw the same pid within one second get the same name (pid reuse
    after a process ends; two PID namespaces or two NFS clients with one host name). After a
    collision in tmp/ it waits 2 s before the next try, as maildir(5) says.
    """
    if attempt:
        yield from call(Sleep(2))
    now = yield from call(GetTime())
    pid = yield from call(GetPid())
    host = yield from call(GetHostname())
    return f"{now.seconds}.{pid}.{escape_host(host or 'localhost')}"


@dataclass(frozen=True)
class Steps:
    """The replaceable steps; the defaults are the correct algorithm. None skips a step."""

    name: NameStep = fresh_name
    create_flags: OpenFlag = CREATE_FLAGS
    copy: CopyStep = copy_input
    sync: FdStep | None = fsync_file
    close: FdStep = close_file
    place: PlaceStep = link_into_new
    place_consumes_tmp: bool = False  # True when placing moves tmp/NAME away (rename)
    sync_new: DirStep | None = fsync_new
    fail: FailStep = give_up


def run(request: DeliveryRequest, steps: Steps) -> SyscallGen[Outcome]:
    """`impl.deliver.deliver`, step for step, with `steps` in place of its steps."""
    refused = yield from check_maildir(request)  # A1
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
            name = yield from steps.name(counter)
            tmp = f"{root}/tmp/{name}"
            try:
                fd = yield from call(Open(tmp, steps.create_flags, 0o600))
                break
            except OSError as err:
                if err.errno != errno.EEXIST:
                    tmp = ""
                    raise
        else:
            tmp = ""
            return TemporaryFailure("no free name in tmp/")
        stage = "write"
        yield from steps.copy(fd)  # A4
        stage = "fsync"
        if steps.sync is not None:
            yield from steps.sync(fd)  # A5
        stage = "close"
        fd, closing = -1, fd
        yield from steps.close(closing)  # A6
        now = yield from call(GetTime())  # A7
        if now.seconds > deadline:
            raise Interrupted("24-hour delivery timer expired")
        stage = "link"
        final = yield from steps.place(request, tmp, name)  # A8-A9
        if steps.place_consumes_tmp:
            tmp = ""
        stage = "fsync new/"
        if steps.sync_new is not None:
            yield from steps.sync_new(root, final)  # A10
    except (OSError, Interrupted) as err:
        return (yield from steps.fail(stage, err, fd, tmp))  # A13
    if tmp:
        yield from _discard(tmp)  # A11
    return Delivered(final)  # A12
