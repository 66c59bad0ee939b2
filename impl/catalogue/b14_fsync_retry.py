"""B14 - a failed fsync is retried, and the retry's success is taken for the data stored.

Source: PostgreSQL's checkpointer before 11.2, 10.7, 9.6.12, 9.5.16 and 9.4.21 (February
2019): when fsync failed it kept the request and retried it at the next checkpoint, whose
fsync succeeded, so the checkpoint completed with the data lost ("fsyncgate": Craig
Ringer, pgsql-hackers, "PostgreSQL's handling of fsync() errors is unsafe and risks data
loss at least on XFS", March 2018; the fix PANICs instead, setting `data_sync_retry`);
Rebello et al., "Can Applications Recover from fsync Failures?", USENIX ATC 2020 (the
same retry in other applications). The idiom "on EIO, try again" applied to a delivery.

The correct algorithm except step A5: when fsync of the tmp/ file fails, the delivery
calls fsync again and, if that answers 0, goes on to link the file into new/ and reports
success (a second failure is reported as the correct algorithm does).

Expected to break P1 no-partial and P2 no-early-success with a fault at fsync (eio;
enospc and edquot alike) and power loss in the threat model, under every local profile
whose failed fsync drops the data - ext4-ordered, ext4-writeback, btrfs, posix: Linux
marks the pages that failed to write clean and reports the error once per open file (F9,
measured by harness/realfs/eio.py on ext4, xfs and btrfs), so the retry answers 0 while
the data will never reach the disk, and the file linked into new/ holds zeros or nothing
after a crash. Reads still show the message from the page cache, so without a crash
nothing looks wrong on a local disk. On NFS it breaks P1 with no crash at all: the client
drops the pages the server refused (R5) and the retry commits nothing, so the server's
file in new/ is empty. It holds under `sync` (every write was durable when it returned)
and under ext4-journal, whose journal aborts: the retry answers EROFS and the delivery
fails honestly.
"""

from __future__ import annotations

from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import Fsync, SyscallGen, call


def fsync_retrying(fd: int) -> SyscallGen[None]:
    """The flaw: after a failed fsync, fsync again and trust its answer."""
    try:
        yield from call(Fsync(fd))
    except OSError:
        yield from call(Fsync(fd))  # answers 0: the error was reported once, the data dropped


STEPS = Steps(sync=fsync_retrying)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, except that a failed fsync is retried and its success trusted."""
    return (yield from run(request, STEPS))
