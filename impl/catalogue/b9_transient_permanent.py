"""B9 - a transient error (EIO, ENOSPC, EEXIST) is reported as a permanent failure.

Source: Postfix src/local/maildir.c (local bounces with 5.2.0 on EIO, or on an EEXIST in
tmp/) and Courier deliverquota.c (exits EX_IOERR 74, which Postfix and most MTAs bounce).

The correct algorithm except the report of step A13: the cleanup is the same (the file is
closed, tmp/NAME removed), but a failure whose errno is EIO, ENOSPC or EEXIST is reported
permanent - the MTA bounces the message instead of retrying it.

Expected to break P5 no-false-bounce on every persistence profile under an `eio` or
`enospc` fault at write, fsync, close or link (`eio` also at the fsync of new/), and on any
EEXIST that escapes the name retries (the strong names make that unlikely).
"""

from __future__ import annotations

import errno

from maildircheck.impl.deliver import Steps, give_up, run
from maildircheck.model.outcome import DeliveryRequest, Outcome, PermanentFailure
from maildircheck.model.syscalls import Interrupted, SyscallGen

BOUNCED = frozenset({errno.EIO, errno.ENOSPC, errno.EEXIST})


def bounce_on_io_error(
    stage: str, err: OSError | Interrupted, fd: int, tmp: str
) -> SyscallGen[Outcome]:
    """The flaw: the correct cleanup, then EIO/ENOSPC/EEXIST reported as permanent."""
    outcome = yield from give_up(stage, err, fd, tmp)
    if isinstance(err, OSError) and err.errno in BOUNCED:
        return PermanentFailure(outcome.reason)
    return outcome


STEPS = Steps(fail=bounce_on_io_error)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, except that EIO, ENOSPC and EEXIST bounce the message."""
    return (yield from run(request, STEPS))
