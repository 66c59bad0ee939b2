"""B15 - a short write is taken for the whole chunk: the count write(2) returns is ignored.

Source: the C idiom `if (write(fd, buf, n) < 0) fail;` - only -1 is treated as an error, and
a non-negative return is taken to mean all n bytes were written. write(2) says the count
"may be less than count if, for example, there is insufficient space on the underlying
physical medium, or the RLIMIT_FSIZE resource limit is encountered, or the call was
interrupted by a signal handler after having written less than count bytes"; POSIX write()
likewise returns the bytes transferred when a signal interrupts it after some data was
written. Loops that finish the transfer exist for this reason (gnulib full-write.c, qmail's
substdio allwrite); this entry is that idiom, not a bug attributed to one agent.

The correct algorithm except step A4: each chunk of standard input is written with one
write(2), whose error is still checked, but whose count is not: the rest of a short write
is never written.

Expected to break P1 no-partial when a write returns a short count (fault short-write,
X11): the file linked into new/ holds only the first bytes of the message, and success is
reported - on every profile and on NFS, with no crash needed. The correct algorithm's
`write_all` writes the rest and holds.
"""

from __future__ import annotations

from maildircheck.impl.deliver import CHUNK, Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import ReadInput, SyscallGen, Write, call


def copy_ignoring_count(fd: int, first: bytes, room: int | None = None) -> SyscallGen[int]:
    """The flaw: one write per chunk, errors checked, the returned count ignored.
    `first` is the input already read (b"" only at its end), as for `copy_input`; `room`
    (maildir-deliver's --max-size, D9) is not kept: no catalogue run sets it."""
    total = 0
    chunk = first
    while chunk:
        yield from call(Write(fd, chunk))  # an OSError propagates; a short count does not
        total += len(chunk)
        chunk = yield from call(ReadInput(CHUNK))
    return total


STEPS = Steps(copy=copy_ignoring_count)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, except that a short write is taken for the whole chunk."""
    return (yield from run(request, STEPS))
