"""B4 - rename() moves tmp/NAME into new/NAME, replacing any message already there.

Source: Dovecot maildir-save.c (rename into new/ or cur/), isync/mbsync drv_maildir.c,
Exim appendfile.c, OpenSMTPD mail.maildir (all rename, which clobbers), and vpopmail
vdelivermail.c deliver_to_maildir, which falls back to rename on any link error.

The correct algorithm except step A8: rename(2) instead of link(2). To make a clash
reachable the name is qmail's `seconds.pid.host` (`weak_names.time_pid_host`), as in the
agents whose names collide when a pid is reused within one second; with a clash in tmp/ it
waits 2 s and draws again, as maildir(5) says. A rename whose reply says it failed is still
resolved as the correct algorithm resolves a link: if new/NAME is now the inode that was
tmp/NAME, the message was moved, so the clobber is the only flaw left.

Expected to break P3 no-clobber on every persistence profile: two deliveries with the same
pid in the same second (one after the other, or in two PID namespaces or on two NFS clients
with one host name) both report success and new/ keeps only the second message. When the
reader has already moved the first message to cur/ under the same name, its rename of the
second replaces it there, and the first delivery's report breaks P2 no-early-success.
"""

from __future__ import annotations

from maildircheck.impl.catalogue.weak_names import time_pid_host
from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import Lstat, Rename, SyscallGen, call


def rename_into_new(request: DeliveryRequest, tmp: str, name: str) -> SyscallGen[str]:
    """The flaw: rename(tmp/NAME, new/NAME), which silently replaces an existing new/NAME."""
    dst = f"{request.maildir.rstrip('/')}/new/{name}"
    before = yield from call(Lstat(tmp))
    try:
        yield from call(Rename(tmp, dst))
    except OSError:
        try:
            after = yield from call(Lstat(dst))
        except OSError:
            after = None
        if after is None or (after.dev, after.ino) != (before.dev, before.ino):
            raise
    return name


STEPS = Steps(name=time_pid_host, place=rename_into_new, place_consumes_tmp=True)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery with time.pid.host names, renaming into new/ instead of linking."""
    return (yield from run(request, STEPS))
