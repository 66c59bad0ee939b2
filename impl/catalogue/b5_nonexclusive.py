"""B5 - the tmp/ file is opened with O_CREAT|O_TRUNC, without O_EXCL.

Source: vpopmail vdelivermail.c deliver_to_maildir (O_CREAT without O_EXCL) and Courier
maildrop maildircreate.C (stat, then an O_TRUNC open without O_EXCL). Both use names that a
reused pid can repeat within one second.

The correct algorithm except step A3: tmp/NAME is opened O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW,
so an existing file of that name is truncated and shared instead of refused. The name is
qmail's `seconds.pid.host` (`weak_names.time_pid_host`) so that a clash is reachable; new/ is
still reached by link, with the dev+ino check and a fresh name on a true EEXIST.

Expected to break P1 no-partial and P3 no-clobber on every persistence profile, given two
deliveries with the same pid in the same second: run concurrently (two PID namespaces, two
NFS clients with one host name) they write into one file, so new/ gets mixed or foreign
content and both report success for one message. One after the other, it takes only a
tmp/NAME left linked to new/NAME (the first delivery killed between link and unlink, or its
tolerated unlink failed): the second truncates and rewrites the message already in new/.
"""

from __future__ import annotations

from maildircheck.impl.catalogue.weak_names import time_pid_host
from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import OpenFlag, SyscallGen

NON_EXCLUSIVE = OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.TRUNC | OpenFlag.NOFOLLOW

STEPS = Steps(name=time_pid_host, create_flags=NON_EXCLUSIVE)  # the flaw: no O_EXCL


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery with time.pid.host names and a truncating, shared tmp/ create."""
    return (yield from run(request, STEPS))
