"""B12 - the unique name has no host part, so two NFS clients can pick the same one.

Source: the agents fact sheet (cr.yp.to/proto/maildir.html gives `time.ID.host` so that
names from different hosts never meet; the host part is what makes a Maildir safe to
share over NFS) and the rename-based agents of B4 (Dovecot maildir-save.c, isync
drv_maildir.c, Exim appendfile.c), whose rename replaces a name that is already taken.

B4's algorithm (rename into new/) with a `seconds.pid` name: on one host a collision
needs a reused pid within one second, but two NFS clients run pid 100 at the same time as
a matter of course.

Expected to break P3 no-clobber under every NFS environment (nfs3-sync, nfs3-nocto,
nfs3-nodrc): deliveries on two hosts in the same second both report success and new/
keeps only one message. On a local disk it needs pid reuse, as B4 does - and, as with B4,
P2 no-early-success when the reader's rename into cur/ replaces the first message there.
"""

from __future__ import annotations

from maildircheck.impl.catalogue.b4_rename_clobber import rename_into_new
from maildircheck.impl.catalogue.weak_names import time_pid
from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import SyscallGen

STEPS = Steps(name=time_pid, place=rename_into_new, place_consumes_tmp=True)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """B4's rename delivery with host-less `seconds.pid` names."""
    return (yield from run(request, STEPS))
