"""B1 - writes the message straight into new/: no tmp/ file, no fsync (vpopmail 4.10.14).

Source: vpopmail 4.10.3-4.10.14, vdelivermail.c deliver_mail (ChangeLog; the seed report,
shared/seed/vpopmail-maildir-nfs-report.txt): the file is created in new/ and written there,
dropping the tmp/ file and its link, and it is never fsynced.

This entry is the one that differs from the correct algorithm in two ways, both from the
report: the file is created in new/ (so there is no tmp/ file and no link), and neither it
nor new/ is ever fsynced. Everything else is the correct algorithm: the name, the exclusive
create, the checked writes and close, the 24-hour timer, and on failure the file is removed
and a temporary failure reported.

Expected to break P1 no-partial on every persistence profile: a reader listing new/ while
the message is being written sees part of it, and a kill -9 or power loss mid-write leaves a
partial message in new/. Expected to break P2 no-early-success under ext4-ordered,
ext4-writeback and posix: success is reported with neither the data nor the entry durable.
"""

from __future__ import annotations

import errno

from maildircheck.impl.deliver import (
    CREATE_FLAGS,
    _abandon,
    check_maildir,
    copy_input,
    describe,
    fresh_name,
    read_head,
)
from maildircheck.model.outcome import Delivered, DeliveryRequest, Outcome, TemporaryFailure
from maildircheck.model.syscalls import Close, GetTime, Interrupted, Open, SyscallGen, call


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """Create new/NAME, write the message into it, close it: visible from the first byte."""
    refused = yield from check_maildir(request)
    if refused is not None:
        return refused
    root = request.maildir.rstrip("/")
    start = yield from call(GetTime())
    deadline = start.seconds + request.timeout_seconds
    path = ""
    fd = -1
    stage = "create"
    try:
        for counter in range(request.max_name_attempts):
            name = yield from fresh_name(counter)
            path = f"{root}/new/{name}"  # the flaw: new/, not tmp/
            try:
                fd = yield from call(Open(path, CREATE_FLAGS, 0o600))
                break
            except OSError as err:
                if err.errno != errno.EEXIST:
                    path = ""
                    raise
        else:
            return TemporaryFailure("no free name in new/")
        stage = "write"
        head = yield from read_head(request)
        yield from copy_input(fd, head.data)
        stage = "close"
        fd, closing = -1, fd
        yield from call(Close(closing))
        now = yield from call(GetTime())
        if now.seconds > deadline:
            raise Interrupted("24-hour delivery timer expired")
    except (OSError, Interrupted) as err:
        yield from _abandon(fd, path)
        why = describe(err) if isinstance(err, OSError) else str(err)
        return TemporaryFailure(f"{stage}: {why}")
    return Delivered(name)
