"""`maildir-deliver --lmtp SOCKET --maildir TEMPLATE`: the server's command line.

This module owns the server mode's options, its manual (`--help`) and its exit codes,
which are sysexits (spec M9): 0 after SIGTERM or SIGINT once the batches in flight are
answered, 64 (EX_USAGE) for a bad command line, 75 (EX_TEMPFAIL) when the socket cannot be
listened on - each failure one line on standard error. `impl/cli.py` hands it every command
line that holds `--lmtp`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence

from maildircheck.impl.cli import EXIT_CODES, UsageParser
from maildircheck.impl.lmtp.mailboxes import TemplateError, check_template
from maildircheck.impl.lmtp.server import Server, parse_listen, serve

PROG = "maildir-deliver"
CODES = EXIT_CODES["sysexits"]

MANUAL = f"""\
NAME
    {PROG} --lmtp - an LMTP server delivering into Maildirs, with group commit

SYNOPSIS
    {PROG} --lmtp SOCKET --maildir TEMPLATE [--recipient-delimiter C]
        [--create] [--max-size BYTES] [--idle-timeout SECONDS]
        [--socket-mode OCTAL] [--hostname NAME]

DESCRIPTION
    Listens on SOCKET (an absolute path: a UNIX socket; or 127.0.0.1:PORT) for
    LMTP (RFC 2033) and delivers each accepted recipient's copy into the Maildir
    TEMPLATE names, as {PROG} does for one message: written to tmp/, fsynced,
    linked into new/, new/ fsynced. Messages that arrive while a batch is being
    made durable form the next batch, so one journal commit serves many; no
    recipient is answered 250 before its message and its entry in new/ are
    durable, and a failure is answered 4xx for that recipient alone. Each copy
    gets Return-Path and Delivered-To headers, and LF line endings.

    It runs as one mail user (a vmail uid) for every mailbox; Postfix reaches it
    with virtual_transport = lmtp:unix:SOCKET (or lmtp:inet:127.0.0.1:PORT).

OPTIONS
    --maildir TEMPLATE
        The recipient's Maildir: %d its domain, %n its local part, %u both
        (local@domain), %% a percent sign; lowercased, the extension after the
        delimiter removed, e.g. /srv/mail/%d/%n/Maildir. An address that
        would leave the mail root (/, NUL, control characters, a leading dot)
        is refused 553 5.1.3; one whose Maildir does not exist 550 5.1.1.
    --recipient-delimiter C
        Where the extension starts (default +; "" for none). user+lists@d goes
        to the folder .lists of user's Maildir when that folder exists.
    --create
        Create a missing Maildir (with tmp/ new/ cur/) instead of refusing it.
    --max-size BYTES
        The largest message taken (default 10240000, Postfix's default
        message_size_limit); advertised as SIZE, a larger one is refused 552.
    --idle-timeout SECONDS
        Close a session that sends nothing for this long (default 300, RFC 5321
        4.5.3.2.7), with 421 4.4.2.
    --socket-mode OCTAL
        The UNIX socket's permissions (default 660).
    --hostname NAME
        The name in the greeting (default: this host's name).
    --help
        Print this manual and exit 0.

EXIT STATUS
    0 stopped by SIGTERM or SIGINT, after answering every batch in flight;
    64 a bad command line; 75 the socket could not be listened on.
"""


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: `kind` of the text, above 0 (argparse names `kind` in its error)."""

    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise ValueError(text)
        return value

    parse.__name__ = getattr(kind, "__name__", "number")
    return parse


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = UsageParser(prog=PROG, add_help=False, allow_abbrev=False)
    parser.usage_code = CODES.usage
    parser.add_argument("--lmtp", required=True, metavar="SOCKET")
    parser.add_argument("--maildir", required=True, metavar="TEMPLATE")
    parser.add_argument("--recipient-delimiter", default="+")
    parser.add_argument("--create", action="store_true")
    parser.add_argument("--max-size", type=_positive(int), default=10_240_000)
    parser.add_argument("--idle-timeout", type=_positive(float), default=300.0)
    parser.add_argument("--socket-mode", type=lambda text: int(text, 8), default=0o660)
    parser.add_argument("--hostname", default=os.uname().nodename)
    return parser.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(MANUAL, end="")
        return 0
    try:
        args = parse_args(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else CODES.usage
    try:
        check_template(args.maildir)
        listen = parse_listen(args.lmtp)
        if len(args.recipient_delimiter) > 1:
            raise ValueError("--recipient-delimiter is one character (or empty)")
        server = Server(
            args.maildir,
            args.hostname,
            delimiter=args.recipient_delimiter,
            create=args.create,
            max_size=args.max_size,
            idle_timeout=args.idle_timeout,
            log=lambda line: print(f"{PROG}: {line}", file=sys.stderr, flush=True),
        )
    except (TemplateError, ValueError) as err:
        print(f"{PROG}: usage error: {err}", file=sys.stderr)
        return CODES.usage

    def ready(where: str) -> None:
        print(f"{PROG}: LMTP on {where}", file=sys.stderr, flush=True)

    try:
        asyncio.run(serve(server, listen, args.socket_mode, ready))
    except OSError as err:
        print(f"{PROG}: cannot listen on {args.lmtp}: {err.strerror or err}", file=sys.stderr)
        return CODES.temporary
    batcher = server.batcher
    batches, jobs = (batcher.batches, batcher.jobs) if batcher else (0, 0)
    print(
        f"{PROG}: stopped after {server.sessions} sessions, {jobs} deliveries in {batches} batches",
        file=sys.stderr,
    )
    return 0
