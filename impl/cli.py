"""`maildir-deliver`: deliver standard input into a Maildir, for an MTA to run.

This module owns the command line: parsing it, the SIGTERM handler and the 24-hour alarm,
and the one mapping from an outcome to an exit code. The delivery itself is
`maildircheck.impl.deliver.deliver`, run on the OS by `maildircheck.impl.drivers`.

    maildir-deliver [--exit-codes qmail|sysexits] [--create] MAILDIR

On success the name of the new file in MAILDIR/new/ is printed on standard output; on
failure one line `maildir-deliver: <temporary|permanent> failure: <reason>` goes to
standard error.

Exit codes:

    outcome                                  qmail (default)   sysexits
    delivered                                0                 0  (EX_OK)
    temporary failure (the MTA retries):     111               75 (EX_TEMPFAIL)
      any I/O error, missing or unusable
      maildir, SIGTERM, the 24-hour timer,
      an unexpected internal error
    permanent failure (the MTA bounces):     100               77 (EX_NOPERM)
      refused by policy (tmp/ or new/ is a
      symbolic link)
    usage error (bad command line):          100               64 (EX_USAGE)

A usage error is reported with the convention's code for "this invocation can never
succeed" (qmail has no separate usage code, so it is 100); the code is taken from a valid
`--exit-codes` anywhere on the command line, else qmail's. `--help` exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any, BinaryIO, NoReturn

from maildircheck.impl.deliver import deliver
from maildircheck.impl.drivers import StopFlag, run_on_os
from maildircheck.model.outcome import (
    Delivered,
    DeliveryRequest,
    Outcome,
    PermanentFailure,
    TemporaryFailure,
)
from maildircheck.model.syscalls import Interrupted

PROG = "maildir-deliver"

# convention -> (delivered, temporary, permanent, usage)
EXIT_CODES: dict[str, tuple[int, int, int, int]] = {
    "qmail": (0, 111, 100, 100),
    "sysexits": (0, 75, 77, 64),
}
DEFAULT_CONVENTION = "qmail"

EPILOG = """\
exit codes:             qmail  sysexits
  delivered                 0         0
  temporary failure       111        75 (EX_TEMPFAIL)  the MTA should retry
  permanent failure       100        77 (EX_NOPERM)    tmp/ or new/ is a symlink
  usage error             100        64 (EX_USAGE)     bad command line

Any I/O error, a missing maildir, SIGTERM and the 24-hour timer are temporary
failures: the file in tmp/ is removed and nothing is left in new/.
"""


def exit_code(outcome: Outcome, convention: str) -> int:
    """The exit code for `outcome` under `convention` (the only such mapping)."""
    ok, temporary, permanent, _ = EXIT_CODES[convention]
    if isinstance(outcome, Delivered):
        return ok
    if isinstance(outcome, PermanentFailure):
        return permanent
    return temporary


def one_line(text: str) -> str:
    """`text` with line breaks escaped, so a report is always exactly one line."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _complain(text: str) -> None:
    try:
        sys.stderr.write(f"{PROG}: {one_line(text)}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _report_name(name: str) -> None:
    """Print the delivered name; the mail is delivered, so no failure here may change the
    exit code (a closed stdout, a reader that went away, a full disk behind a redirect)."""
    out = sys.stdout
    if out is None:
        return
    try:
        out.write(name + "\n")
        out.flush()
    except (OSError, ValueError):
        sys.stdout = None  # nothing left for the interpreter to flush at exit


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits with the chosen convention's usage code."""

    usage_code = EXIT_CODES[DEFAULT_CONVENTION][3]

    def error(self, message: str) -> NoReturn:
        _complain(f"usage error: {message} (see --help)")
        raise SystemExit(self.usage_code)


def _convention_in(argv: Sequence[str]) -> str:
    """The convention a (possibly malformed) command line asks for, for usage errors."""
    chosen = DEFAULT_CONVENTION
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        value = None
        if arg == "--exit-codes" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--exit-codes="):
            value = arg.partition("=")[2]
        if value in EXIT_CODES:
            chosen = value
    return chosen


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(
        prog=PROG,
        description="Deliver the message on standard input into MAILDIR (write it in tmp/,\n"
        "fsync, link it into new/, fsync new/) and print the name of the file in new/.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.usage_code = EXIT_CODES[_convention_in(argv)][3]
    parser.add_argument(
        "--exit-codes",
        choices=sorted(EXIT_CODES),
        default=DEFAULT_CONVENTION,
        help="exit-code convention (default: %(default)s)",
    )
    parser.add_argument(
        "--create", action="store_true", help="create MAILDIR and its tmp/ new/ cur/ if missing"
    )
    parser.add_argument(
        "--keep-from-line",
        action="store_true",
        help="keep a leading mbox 'From sender  date' line (by default it is removed)",
    )
    parser.add_argument("maildir", metavar="MAILDIR", help="the Maildir to deliver into")
    args = parser.parse_args(list(argv))
    if not args.maildir:
        parser.error("MAILDIR must not be empty")
    return args


def deliver_stdin(request: DeliveryRequest, stdin: BinaryIO) -> Outcome:
    """Run `deliver` on the OS; SIGTERM, SIGINT and the alarm stop it with `Interrupted`."""
    stop = StopFlag()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGALRM:
            stop.stop("24-hour delivery timer expired")
        else:
            stop.stop("SIGINT received" if signum == signal.SIGINT else "SIGTERM received")

    previous: list[tuple[int, Any]] = []
    try:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
            previous.append((signum, signal.signal(signum, on_signal)))
        signal.alarm(request.timeout_seconds)
    except ValueError:  # not the main thread: run without the handlers
        pass
    try:
        return run_on_os(deliver(request), stdin, stop)
    except Interrupted as err:  # stopped before the algorithm had anything to clean up
        return TemporaryFailure(str(err))
    finally:
        if previous:
            signal.alarm(0)
        for signum, handler in reversed(previous):
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (the console script exits with it)."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse_args(args_list)
    except SystemExit as done:  # --help (0) or a usage error (the convention's code)
        return done.code if isinstance(done.code, int) else 0
    convention: str = args.exit_codes
    request = DeliveryRequest(
        maildir=args.maildir, create_dirs=args.create, strip_from_line=not args.keep_from_line
    )
    try:
        outcome = deliver_stdin(request, sys.stdin.buffer)
    except Exception as err:  # a bug, not a verdict on the mail: let the MTA retry
        outcome = TemporaryFailure(f"internal error: {type(err).__name__}: {err}")
    if isinstance(outcome, Delivered):
        _report_name(outcome.name)
    else:
        _complain(str(outcome))
    return exit_code(outcome, convention)


if __name__ == "__main__":
    sys.exit(main())
