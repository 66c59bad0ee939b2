"""B1 - writes the message straight into new/: no tmp/ file, no fsync (vpopmail 4.10.14).

Source: vpopmail 4.10.3-4.10.14, vdelivermail.c deliver_mail (ChangeLog; the seed report,
shared/seed/vpopmail-maildir-nfs-report.txt): the file is created in new/ and written there,
dropping the tmp/ file and its link, and it is never fsynced.

This entry is the one that differs from the correct algorithm in two ways, both from the
report: the file is created in new/ (steps A3 and A8-A9: written in new/, so there is no
tmp/ file and nothing to link), and neither it nor new/ is ever fsynced (A5, A10).
Everything else is the correct algorithm: the name, the exclusive create, the checked
writes and close, the 24-hour timer, and on failure the file is removed and a temporary
failure reported.

Expected to break P1 no-partial on every persistence profile: a reader listing new/ while
the message is being written sees part of it, and a kill -9 or power loss mid-write leaves a
partial message in new/. Expected to break P2 no-early-success under ext4-ordered,
ext4-writeback and posix: success is reported with neither the data nor the entry durable.
"""

from __future__ import annotations

from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import SyscallGen


def already_in_new(request: DeliveryRequest, written: str, name: str) -> SyscallGen[str]:
    """The flaw, A8-A9: no link - the file was created in new/, and its name there is the
    one it was created under (the size of D5 would take a rename)."""
    yield from ()  # no call: there is nothing to place
    return written.rpartition("/")[2]


STEPS = Steps(
    write_in="new",  # the flaw: the file is created and written in new/, visible at once
    sync=None,  # the flaw: the file is never fsynced ...
    place=already_in_new,
    place_consumes_tmp=True,  # the written file is the message: no tmp/NAME to unlink
    sync_new=None,  # ... and neither is new/
)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """Create new/NAME, write the message into it, close it: visible from the first byte."""
    return (yield from run(request, STEPS))
