"""B3 - the result of close() is ignored; the message is linked into new/ anyway.

Source: Courier deliverquota.c (close not checked) and fdm deliver-maildir.c (close not
checked). On NFS with close-to-open consistency, write errors (ENOSPC, EDQUOT, EIO) are
reported at close(2) or fsync(2), not at write(2) (nfs(5)); maildir(5) insists on checking
close for that reason.

The correct algorithm except step A6: a failed close is treated as a successful one.

Expected to break P1 no-partial and P2 no-early-success when close reports ENOSPC, EDQUOT or
EIO (a fault injected at close, standing for the NFS client's delayed write error): the file
whose data was refused is linked into new/ and success is reported. Without a fault at
close it is the correct algorithm (the fsync before it is still checked).
"""

from __future__ import annotations

import contextlib

from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import Close, SyscallGen, call


def close_unchecked(fd: int) -> SyscallGen[None]:
    """The flaw: close(fd) with its error dropped."""
    with contextlib.suppress(OSError):
        yield from call(Close(fd))


STEPS = Steps(close=close_unchecked)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, except that a failed close counts as success."""
    return (yield from run(request, STEPS))
