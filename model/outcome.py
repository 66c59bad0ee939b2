"""What a delivery reports when it ends, and what it is asked to do.

A strategy is a generator function `strategy(request) -> Outcome` written against
`model.syscalls`. Its outcome is its only report: the CLI maps it to an exit code, the
checker judges it against the file system (specs/requirements.md, P2 and P4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from maildircheck.model.record import Record
from maildircheck.model.syscalls import SyscallGen


class DeliveryRequest(Record):
    """Where to deliver, and how. The message itself is read with `ReadInput`.

    The defaults deliver the input byte for byte into `maildir` (what the checker runs);
    the fields after `timeout_seconds` are the delivery-agent conventions of the `D` family
    in specs/requirements.md, which `maildir-deliver` turns on from its command line.
    """

    maildir: str
    create_dirs: bool = False
    max_name_attempts: int = 8
    timeout_seconds: int = 24 * 3600
    strip_from_line: bool = False  # D1: drop a leading mbox `From sender  date` line
    return_path: bool = False  # D2: prepend `Return-Path: <sender>`
    sender: str | None = None  # D2: the envelope sender (None: unknown, use the From_ line)
    delivered_to: str | None = None  # D2: prepend `Delivered-To: <this>` when set
    folder: str = ""  # D4: deliver into the Maildir++ folder MAILDIR/.folder/
    folder_fallback: bool = False  # D4: a missing or unusable folder name means MAILDIR
    size_in_name: bool = False  # D5: the name in new/ ends with `,S=<size>`
    refuse_empty: bool = False  # D6: an empty message is a permanent (data) failure
    max_size: int | None = None  # D9: a longer message is a permanent (data) failure


class Delivered(Record):
    name: str
    reason: str = "delivered"

    def __str__(self) -> str:
        return f"delivered {self.name}"


class TemporaryFailure(Record):
    reason: str

    def __str__(self) -> str:
        return f"temporary failure: {self.reason}"


PermanentCause = Literal["policy", "data"]
"""Why a failure is permanent: a refusal by policy (a symlinked tmp/), or the message or
its envelope is unusable (an empty message, a line break in SENDER) - D3."""


class PermanentFailure(Record):
    reason: str
    cause: PermanentCause = "policy"

    def __str__(self) -> str:
        return f"permanent failure: {self.reason}"


Outcome = Delivered | TemporaryFailure | PermanentFailure
Strategy = Callable[[DeliveryRequest], SyscallGen[Outcome]]
