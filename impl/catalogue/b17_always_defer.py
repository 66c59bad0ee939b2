"""B17 - every delivery is answered with a temporary failure.

Source: the quota check of Courier deliverquota (README.maildirquota: a message that would
exceed the quota is deferred, exit EX_TEMPFAIL 75) with a quota it can never meet - a
quota of 0 read from a broken `maildirsize`, a lock that is never released - so that the
answer is "try again later" whatever the message. The MTA retries a deferral - qmail-send
on its retry schedule until `queuelifetime` (one week by default, qmail-send(8)), Postfix
until `maximal_queue_lifetime` (5 days by default, postconf(5)) - and then bounces the
message: a deferral that no fault caused becomes a bounce days later.

The correct algorithm except at A8: before the link into new/ the delivery decides that
the mailbox is over quota (EDQUOT); the correct cleanup follows (the tmp/ file is closed
and removed, A13) and a temporary failure is reported - for every delivery, faults or not.

Expected to break P7 progress on every local profile with no fault at all: the first
delivery the MTA starts defers although nothing went wrong.
"""

from __future__ import annotations

import errno
import os

from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import SyscallGen


def over_quota(request: DeliveryRequest, tmp: str, name: str) -> SyscallGen[str]:
    """The flaw: the mailbox is always found over quota, so nothing is linked into new/."""
    raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    yield  # pragma: no cover - makes this a generator


STEPS = Steps(place=over_quota)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, except that every message is deferred as over quota."""
    return (yield from run(request, STEPS))
