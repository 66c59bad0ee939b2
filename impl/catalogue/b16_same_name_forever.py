"""B16 - on EEXIST the link into new/ is retried with the same name, without end.

Source: maildir(5) (qmail 1.03): when the name exists, the program "sleeps for two
seconds, updates time, and tries the stat() again, a limited number of times". The flaw
keeps the sleep and drops the rest: the name is computed once, so waiting never
changes it, and there is no limit. The MTA's side of the contract assumes an agent it starts
reports: qmail-send retries a deferral on its schedule until `queuelifetime` (one week by
default, qmail-send(8)), Postfix until `maximal_queue_lifetime` (5 days, postconf(5)); a
delivery that never exits holds its message outside that schedule for ever.

The correct algorithm except steps A8-A9: when link(2) into new/ fails with EEXIST, the
delivery sleeps two seconds and links again under the same name - it neither compares
dev+ino (A9) nor picks a fresh name - and keeps doing so for as long as EEXIST comes back.

Expected to break P7 progress on every local profile under `lost-reply` at link: the link
took effect and its retransmission answers EEXIST (X7), so new/NAME is the delivery's own
file and every further link answers EEXIST; after the one fault the delivery loops past
its syscall bound without reporting.
"""

from __future__ import annotations

import errno

from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import Link, Sleep, SyscallGen, call


def link_same_name(request: DeliveryRequest, tmp: str, name: str) -> SyscallGen[str]:
    """The flaw: on EEXIST wait two seconds and link the same name again, for ever."""
    dst = f"{request.maildir.rstrip('/')}/new/{name}"
    while True:
        try:
            yield from call(Link(tmp, dst))
            return name
        except OSError as err:
            if err.errno != errno.EEXIST:
                raise
        yield from call(Sleep(2))


STEPS = Steps(place=link_same_name)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, except that an EEXIST at link is retried under the same name."""
    return (yield from run(request, STEPS))
