"""B13 - success decided from st_nlink after link(), which an NFS attribute cache can
report stale.

Source: the crash-and-nfs fact sheet (old Linux NFS clients did not refresh the cached
link count after link(), defeating st_nlink-based success checks; nfs(5) attribute cache,
acregmin 3 s) and the agents fact sheet, B7 (st_nlink checks are defeated by stale
attribute caches) - the lock-file idiom "link, then stat and look for st_nlink == 2"
applied to delivery.

The correct algorithm except step A9: after link(tmp/NAME, new/NAME), whatever it
answered, the delivery stats tmp/NAME and counts the link as done only when st_nlink is 2;
otherwise it removes tmp/NAME and fails temporarily.

Expected to break P6 at-most-once (checked with --quality) under every NFS environment,
with no fault at all: the link happened, but the client's attribute cache (filled at open,
fresh for 3 s; the model's client, like old Linux clients, does not refresh it after a
link) still says st_nlink = 1, so a temporary failure is reported and the MTA's retry
delivers the message again. On a local disk stat is never stale and it holds.
"""

from __future__ import annotations

import errno

from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import Link, Stat, SyscallGen, call


def link_then_count(request: DeliveryRequest, tmp: str, name: str) -> SyscallGen[str]:
    """The flaw: link, ignore its reply, and trust tmp/NAME's st_nlink instead."""
    try:
        yield from call(Link(tmp, f"{request.maildir.rstrip('/')}/new/{name}"))
    except OSError:
        pass  # the answer is taken from st_nlink below
    st = yield from call(Stat(tmp))
    if st.nlink != 2:
        raise OSError(errno.EEXIST, "link count is not 2 after link()")
    return name


STEPS = Steps(place=link_then_count)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, deciding the link's success from st_nlink."""
    return (yield from run(request, STEPS))
