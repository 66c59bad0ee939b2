"""B8 - a failed link() is reported as success, although the message may be nowhere.

Source: vpopmail vdelivermail.c, the DeleteMail path: an error carried as a positive errno
value is taken for success (the check only treats a negative result as failure).

The correct algorithm except step A9: when link(tmp/NAME, new/NAME) fails, the delivery
carries on as if it had succeeded - it fsyncs new/, removes tmp/NAME and reports delivered.

Expected to break P2 no-early-success on every persistence profile whenever the link fails:
a fault at link (ENOSPC, EDQUOT, EIO), or ENOENT after a tmp/ cleaner removed tmp/NAME. The
message is then in neither new/ nor tmp/, and success was reported.
"""

from __future__ import annotations

import contextlib

from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import Link, SyscallGen, call


def link_any_errno_is_success(request: DeliveryRequest, tmp: str, name: str) -> SyscallGen[str]:
    """The flaw: link(tmp/NAME, new/NAME); an error (errno is always positive) counts as done."""
    with contextlib.suppress(OSError):
        yield from call(Link(tmp, f"{request.maildir.rstrip('/')}/new/{name}"))
    return name


STEPS = Steps(place=link_any_errno_is_success)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, except that a failed link is reported as a delivery."""
    return (yield from run(request, STEPS))
