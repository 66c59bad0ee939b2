"""B6 - success is reported before the new/ entry is durable: new/ is never fsynced.

Source: every agent in the fact sheet except Dovecot (maildir-save.c fsyncs new/ or cur/
before commit; strace shows dovecot-lda fdatasync new/) and Courier maildrop built
--with-dirsync: qmail-local.c maildir_child, Postfix src/local/maildir.c, Python
Lib/mailbox.py Maildir.add, getmail6, safecat, procmail, fdm, isync, Exim, OpenSMTPD.
maildir(5) says nothing about a directory fsync.

The correct algorithm minus step A10 (fsync of new/); the file is still fsynced and closed.

Expected to break P2 no-early-success after a power loss under the ext4-ordered,
ext4-writeback and posix persistence profiles: the link into new/ (and the unlink of tmp/)
may not survive, so a message reported delivered is gone, or survives only as tmp/NAME.
Safe under the sync profile and against a kill -9 of the delivering process.
"""

from __future__ import annotations

from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import SyscallGen

STEPS = Steps(sync_new=None)  # the flaw: no fsync of new/ before reporting success


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery without the fsync of new/."""
    return (yield from run(request, STEPS))
