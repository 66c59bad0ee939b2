"""B18 - a message longer than one read buffer is never fsynced: a step only large mail skips.

Source: the bug class of a branch taken only for large mail. An agent that holds a small
message in one buffer and streams a longer one through a second write path (its own loop,
sendfile(2) or splice(2)) has two copies of the write-and-sync code, and a step dropped from
the second one is never run by tests that deliver small messages. No agent is attributed
here; the entry is the class, with the threshold at the agent's read size (64 KiB, the
default capacity of a Linux pipe, pipe(7)).

The correct algorithm except step A5: before the fsync the agent asks fstat(2) for the
file's size, and fsyncs only a message that fit in one read (at most CHUNK = 65536 bytes);
a longer one is closed and linked without it. new/ is still fsynced.

Expected to break P1 no-partial and P2 no-early-success after a power loss under the
ext4-ordered, ext4-writeback, btrfs and posix profiles, as B2 no-fsync does, and only for a
message of more than 65536 bytes: the checker's shrunk counterexample delivers a message
of 65537 bytes. Safe under sync and ext4-journal (S5), and for every smaller message.
"""

from __future__ import annotations

from maildircheck.impl.deliver import CHUNK, Steps, fsync_file, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import Fstat, SyscallGen, call

LARGE = CHUNK  # more than one read of standard input takes the large-mail path


def sync_small_only(fd: int) -> SyscallGen[None]:
    """A5 with the flaw: the size picks the path, and the large-mail path has no fsync."""
    st = yield from call(Fstat(fd))
    if st.size <= LARGE:
        yield from fsync_file(fd)


STEPS = Steps(sync=sync_small_only)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, except that a message longer than LARGE is not fsynced."""
    return (yield from run(request, STEPS))
