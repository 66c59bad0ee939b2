"""B2 - the message file is never fsynced before it is linked into new/.

Source: vpopmail vdelivermail.c deliver_to_maildir (fsync only when built with FILE_SYNC, off
by default since 5.1.9); Courier deliverquota.c (never fsyncs, confirmed by strace of the
Debian 12 package); isync/mbsync drv_maildir.c with `FSync no`; Dovecot maildir-save.c with
mail_fsync=never; Exim appendfile.c built with disable_fsync.

The correct algorithm minus step A5 (fsync of the file); new/ is still fsynced.

Expected to break P1 no-partial and P2 no-early-success after a power loss under the
ext4-ordered, ext4-writeback and posix persistence profiles: the new/ entry is durable (its
directory was fsynced) but the data is not, so new/ can hold an empty, truncated or
NUL-filled file for a message reported delivered. Safe under the sync profile, under
ext4-journal (the fsync of new/ commits the journaled data with the entry, S5 - measured in
docs/fidelity.md) and against a kill -9 of the delivering process (the kernel keeps what it
accepted).
"""

from __future__ import annotations

from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import SyscallGen

STEPS = Steps(sync=None)  # the flaw: no fsync(fd) before close and link


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery without the file fsync."""
    return (yield from run(request, STEPS))
