"""B11 - the message is copied line by line, which alters it: cut at NUL, final newline added.

Source: OpenSMTPD mail.maildir (its maildir delivery program): the copy into tmp/ is
line-based, which alters NUL bytes and gives a message without a final newline one (fact
sheet). Here the alteration is the one a C-string write makes: a line ends at its first NUL.

The correct algorithm except step A4: what is written to tmp/NAME is the message with every
line cut at its first NUL byte (the newline kept) and a newline added after a last line that
had none. Every write is still checked.

Expected to break P1 no-partial (delivered content differs from the message) on every
persistence profile and with no fault at all, whenever the message contains a NUL byte or
does not end with a newline (the empty message is left as it is).
"""

from __future__ import annotations

from maildircheck.impl.deliver import CHUNK, Steps, run, write_all
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import ReadInput, SyscallGen, call


def as_c_string_line(line: bytes) -> bytes:
    """A line (without its newline) as a C string plus a newline: cut at its first NUL."""
    return line.split(b"\0", 1)[0] + b"\n"


def copy_by_lines(fd: int, first: bytes, room: int | None = None) -> SyscallGen[int]:
    """The flaw: standard input copied one line at a time, each line rewritten as above.
    `first` is the input already read (b"" only at its end), as for `copy_input`; `room`
    (maildir-deliver's --max-size, D9) is not kept: no catalogue run sets it."""
    total = 0
    pending = b""
    chunk = first
    while chunk:
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            out = as_c_string_line(line)
            yield from write_all(fd, out)
            total += len(out)
        chunk = yield from call(ReadInput(CHUNK))
    if pending:
        out = as_c_string_line(pending)
        yield from write_all(fd, out)
        total += len(out)
    return total


STEPS = Steps(copy=copy_by_lines)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """The correct delivery, except that the message is copied as lines of C strings."""
    return (yield from run(request, STEPS))
