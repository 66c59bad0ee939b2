"""Weak unique names, as older agents build them (for the catalogue entries that need them).

`time_pid_host` is the qmail-era `seconds.pid.host`: with no microseconds, counter or random
part, two deliveries that draw the same pid within one second get the same name.
`time_usec_pid_host` is the modern `seconds.M<usec>P<pid>.host` of Dovecot and Courier,
unique by the classic rules but not under the clash sources (X13-X16).
"""

from __future__ import annotations

from maildircheck.impl.naming import escape_host
from maildircheck.model.syscalls import GetHostname, GetPid, GetTime, Sleep, SyscallGen, call


def time_pid_host(attempt: int) -> SyscallGen[str]:
    """The qmail-era name `seconds.pid.host`: no microseconds, counter or random part.

    Two deliveries that draw the same pid within one second get the same name (pid reuse
    after a process ends; two PID namespaces or two NFS clients with one host name). After a
    collision in tmp/ it waits 2 s before the next try, as maildir(5) says.
    """
    if attempt:
        yield from call(Sleep(2))
    now = yield from call(GetTime())
    pid = yield from call(GetPid())
    host = yield from call(GetHostname())
    return f"{now.seconds}.{pid}.{escape_host(host or 'localhost')}"


def time_pid(attempt: int) -> SyscallGen[str]:
    """`seconds.pid`, with no host part: unique on one host at best, so two NFS clients
    whose processes share a pid in the same second pick the same name."""
    if attempt:
        yield from call(Sleep(2))
    now = yield from call(GetTime())
    pid = yield from call(GetPid())
    return f"{now.seconds}.{pid}"


def time_usec_pid_host(attempt: int) -> SyscallGen[str]:
    """`seconds.M<usec>P<pid>.host`, the name of Dovecot's maildir_filename_generate
    (maildir-filename.c) and of Courier's tmp/ files (maildircreate.c): no counter, no
    random part.

    One host never gives it twice while its clock only moves forward, pids are unique
    among its running processes and no other host has its name; a clock that comes back
    to readings it already gave - a step back (X13), a reboot with no clock kept (X14) -
    or a second host of the same name (X15) repeats it. After a clash in tmp/ it takes
    the time again, as Dovecot does (its next name is a later reading).
    """
    now = yield from call(GetTime())
    pid = yield from call(GetPid())
    host = yield from call(GetHostname())
    return f"{now.seconds}.M{now.microseconds}P{pid}.{escape_host(host or 'localhost')}"
