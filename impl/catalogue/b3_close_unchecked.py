"""B3 - the result of close() is ignored; the message is linked into new/ anyway.

Source: Courier deliverquota.c (close not checked) and fdm deliver-maildir.c (close not
checked). On NFS with close-to-open consistency, write errors (ENOSPC, EDQUOT, EIO) are
reported at close(2) or fsync(2), not at write(2) (nfs(5)); maildir(5) insists on checking
close for that reason.

Modelled on deliverquota, the agent whose unchecked close does harm: it also never fsyncs,
so close() is where a write error would surface. (fdm's pattern - a checked fsync, then an
unchecked close - is harmless: once fsync succeeded the data is stored.) So this is the
correct algorithm except steps A5 and A6: no fsync, and a failed close is treated as a
successful one.

Expected to break P1 no-partial and P2 no-early-success when close reports ENOSPC, EDQUOT or
EIO (a fault at close: the model's deferred write error loses the data written since the
last successful fsync, spec X4-X6): the file whose data was refused is linked into new/ and
success is reported - with no power loss at all, where `no-fsync` alone reports the close
error honestly. Under `sync` there is nothing unsynced to lose, so it holds there.
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


STEPS = Steps(sync=None, close=close_unchecked)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery without the fsync, and with a failed close counted as success."""
    return (yield from run(request, STEPS))
