"""B10 - a failed fsync or close abandons the delivery without removing tmp/NAME.

Source: Python Lib/mailbox.py Maildir.add: when the sync or close of the new file raises,
the exception propagates past the cleanup and the tmp/ file stays (only the link failure
path removes it).

The correct algorithm except step A13 for the stages fsync and close: the file is closed if
still open and a temporary failure reported, but tmp/NAME is left behind.

Expected to break P4 honest-failure on every persistence profile under a fault at fsync or
close (EIO, ENOSPC, EDQUOT): a failure is reported while the maildir keeps residue of the
message in tmp/.
"""

from __future__ import annotations

from maildircheck.impl.deliver import Steps, give_up, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import Interrupted, SyscallGen

LEAKING_STAGES = frozenset({"fsync", "close"})


def fail_leaving_tmp(
    stage: str, err: OSError | Interrupted, fd: int, tmp: str
) -> SyscallGen[Outcome]:
    """The flaw: after a failed fsync or close, forget tmp/NAME instead of removing it."""
    if stage in LEAKING_STAGES:
        tmp = ""
    return (yield from give_up(stage, err, fd, tmp))


STEPS = Steps(fail=fail_leaving_tmp)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, except that a failed fsync or close leaks tmp/NAME."""
    return (yield from run(request, STEPS))
