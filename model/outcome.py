"""What a delivery reports when it ends, and what it is asked to do.

A strategy is a generator function `strategy(request) -> Outcome` written against
`model.syscalls`. Its outcome is its only report: the CLI maps it to an exit code, the
checker judges it against the file system (specs/requirements.md, P2 and P4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from maildircheck.model.syscalls import Syscall, SyscallGen


@dataclass(frozen=True)
class DeliveryRequest:
    """Where to deliver. The message itself is read with `ReadInput`."""

    maildir: str
    create_dirs: bool = False
    max_name_attempts: int = 8
    timeout_seconds: int = 24 * 3600


@dataclass(frozen=True)
class Delivered:
    name: str
    reason: str = "delivered"

    def __str__(self) -> str:
        return f"delivered {self.name}"


@dataclass(frozen=True)
class TemporaryFailure:
    reason: str

    def __str__(self) -> str:
        return f"temporary failure: {self.reason}"


@dataclass(frozen=True)
class PermanentFailure:
    reason: str

    def __str__(self) -> str:
        return f"permanent failure: {self.reason}"


Outcome = Delivered | TemporaryFailure | PermanentFailure
Strategy = Callable[[DeliveryRequest], SyscallGen[Outcome]]
AnySyscall = Syscall[Any]
