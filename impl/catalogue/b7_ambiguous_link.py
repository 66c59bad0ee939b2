"""B7 - any link() failure is a temporary failure: no dev+ino check of what happened.

Source: qmail-local.c maildir_child (any link failure: tempfail, exit 111), Python
Lib/mailbox.py Maildir.add (EEXIST -> ExternalClashError, tmp removed), getmail6
utilities.py deliver_maildir (failure) and safecat.c (failure, exit 111). Postfix
util/sane_link.c and procmail exopen.c rlink compare dev+ino instead.

The correct algorithm except step A9: a link whose reply is an error is not resolved by
comparing tmp/NAME and new/NAME; the delivery removes tmp/NAME and reports a temporary
failure (so a true EEXIST is not retried under a fresh name either, as in these agents).

Safe on the local persistence profiles, where a failed link did not happen. Expected to break
P6 at-most-once (a quality property: checked with --quality) under a lost-reply fault at
link (NFS: the server linked, the reply was lost, the retransmitted LINK answers EEXIST):
the message is in new/ but a temporary failure is reported, and the MTA's retry delivers it
a second time. (The failure report itself is not a P4 breach: nothing partial and no tmp/
file is left; the correct algorithm's dev+ino check is what avoids the duplicate.)
"""

from __future__ import annotations

from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import Link, SyscallGen, call


def link_or_fail(request: DeliveryRequest, tmp: str, name: str) -> SyscallGen[str]:
    """The flaw: link(tmp/NAME, new/NAME), taking its error reply at face value."""
    yield from call(Link(tmp, f"{request.maildir.rstrip('/')}/new/{name}"))
    return name


STEPS = Steps(place=link_or_fail)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, except that every link error means a temporary failure."""
    return (yield from run(request, STEPS))
