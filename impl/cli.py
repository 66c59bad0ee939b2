"""`maildir-deliver`: deliver standard input into a Maildir, for an MTA to run.

This module owns the command line: the table of its options (`OPTIONS`, written once: the
fast path, argparse, the convention pre-scan and the manual's SYNOPSIS and OPTIONS derive
from it), parsing it (and the environment the MTA sets), the manual page `--help` prints,
the SIGTERM handler and the 24-hour alarm, and the one mapping from an outcome to an exit
code (`exit_code`). The delivery itself - From_ line, headers,
folders, sizes included - is `maildircheck.impl.deliver.deliver`, run on the OS by
`maildircheck.impl.drivers`; this module only fills in its `DeliveryRequest`.
docs/delivery-agent.md shows it behind Postfix, qmail and Exim (spec family D).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any, BinaryIO, Literal, NoReturn

from maildircheck.impl.deliver import deliver
from maildircheck.impl.drivers import StopFlag, run_on_os
from maildircheck.impl.naming import folder_name_ok
from maildircheck.model.outcome import (
    Delivered,
    DeliveryRequest,
    Outcome,
    PermanentFailure,
    TemporaryFailure,
)
from maildircheck.model.record import Record
from maildircheck.model.syscalls import Interrupted

PROG = "maildir-deliver"


class Codes(Record):
    """The exit code of each class of outcome under one convention (D3)."""

    delivered: int
    temporary: int  # the MTA retries
    policy: int  # permanent: refused by policy
    data: int  # permanent: the message or its envelope is unusable
    usage: int  # the command line is wrong


EXIT_CODES: dict[str, Codes] = {
    "qmail": Codes(delivered=0, temporary=111, policy=100, data=100, usage=100),
    "sysexits": Codes(delivered=0, temporary=75, policy=77, data=65, usage=64),
}
DEFAULT_CONVENTION = "qmail"

OptionKind = Literal["switch", "value", "manual"]


class Option(Record):
    """One option: what every reader of the command line takes from the table `OPTIONS`.

    It sets the attribute named after its flag (`--no-size`: no_size): a switch True, a
    value option its value (`default` without it); the manual option prints the manual."""

    flag: str
    manual: str  # its paragraph under OPTIONS, line by line as the manual shows it
    kind: OptionKind = "switch"
    metavar: str | None = None  # the value's name (a value option without `choices`)
    choices: tuple[str, ...] = ()  # the values a value option allows
    default: str | None = None
    exclusive: bool = False  # the exclusive options exclude one another
    accepts: Callable[[str], bool] | None = None  # a value check; `refusal` says why not
    refusal: str = ""
    short: str = ""  # a one-letter alias: -h

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")


OPTIONS = (
    Option(
        "--exit-codes",
        "Exit-code convention (default qmail); see EXIT STATUS. Postfix and Exim\n"
        "need sysexits: to them 111 and 100 are both bounces.",
        kind="value",
        choices=tuple(sorted(EXIT_CODES)),
        default=DEFAULT_CONVENTION,
    ),
    Option(
        "--create",
        "Create MAILDIR and its tmp/ new/ cur/ (and the --folder) if missing.\n"
        "Without it a missing maildir is a temporary failure.",
    ),
    Option(
        "--folder",
        "Deliver into the Maildir++ folder MAILDIR/.NAME/ (Courier, Dovecot);\n"
        '"a.b" is the folder b inside a. With --create it is made with its own\n'
        "tmp/ new/ cur/ and the empty file maildirfolder.",
        kind="value",
        metavar="NAME",
        exclusive=True,
        accepts=folder_name_ok,
        refusal="cannot be a Maildir++ folder name",
    ),
    Option(
        "--extension-folder",
        "Deliver into MAILDIR/.$EXTENSION/ when EXTENSION is set and that folder\n"
        "exists; otherwise into MAILDIR. The name comes from the sender of the\n"
        "mail, so this folder is never created and a name that cannot be a\n"
        'folder (empty, "/", "..", control characters) means MAILDIR.',
        exclusive=True,
    ),
    Option(
        "--return-path",
        'Prepend "Return-Path: <$SENDER>" (SENDER unset: the sender of the From_\n'
        "line; neither: no header). Not behind mailbox_command: Postfix adds it.",
    ),
    Option("--delivered-to", 'Prepend "Delivered-To: $RECIPIENT" (or $ORIGINAL_RECIPIENT).'),
    Option("--keep-from-line", "Keep a leading From_ line as part of the message."),
    Option("--no-size", 'Leave ",S=<size>" out of the name.'),
    Option(
        "--max-size",
        "Refuse a message longer than BYTES (after a removed From_ line) as a\n"
        "permanent data failure (RFC 3463 5.3.4), with nothing left behind;\n"
        "reading stops there. Without it any size is taken.",
        kind="value",
        metavar="BYTES",
        accepts=lambda value: value.isdigit() and int(value) > 0,
        refusal="is not a number of bytes (a whole number, at least 1)",
    ),
    Option(
        "--allow-empty",
        "Deliver an empty message (nothing after a From_ line) instead of\nrefusing it.",
    ),
    Option("--help", "Print this manual and exit 0.", kind="manual", short="-h"),
)
"""maildir-deliver's options, in the order of the manual."""
BY_FLAG = {option.flag: option for option in OPTIONS}
CONVENTION = BY_FLAG["--exit-codes"]


def _heading(option: Option) -> str:
    """An option as the manual names it: `--folder NAME`, `-h, --help`."""
    shown = f"{option.short}, {option.flag}" if option.short else option.flag
    if option.kind == "value":
        shown += " " + ("|".join(option.choices) or option.metavar or "")
    return shown


def _synopsis() -> str:
    """SYNOPSIS: the options but the manual one in brackets, the exclusive ones in one
    pair at the first one's place, then MAILDIR; wrapped within 79 columns."""
    group = " | ".join(_heading(option) for option in OPTIONS if option.exclusive)
    items: list[str] = []
    for option in OPTIONS:
        item = f"[{group}]" if option.exclusive else f"[{_heading(option)}]"
        if option.kind != "manual" and item not in items:
            items.append(item)
    lines, line = [], f"    {PROG}"
    for word in " ".join([*items, "[MAILDIR]"]).split(" "):
        if len(line) + 1 + len(word) > 79:
            lines.append(line)
            line = " " * (len(PROG) + 5) + word
        else:
            line += " " + word
    return "\n".join([*lines, line])


def _options_section() -> str:
    """OPTIONS: each option's heading, then its paragraph indented below it."""
    lines = []
    for option in OPTIONS:
        lines.append(f"    {_heading(option)}")
        lines.extend(f"        {text}" for text in option.manual.splitlines())
    return "\n".join(lines)


_NAME = """\
NAME
    maildir-deliver - deliver one message from standard input into a Maildir
"""

_DESCRIPTION = """\
DESCRIPTION
    Reads one message from standard input and delivers it into MAILDIR
    (default: $HOME/Maildir) the way maildir(5) prescribes: written to tmp/,
    fsynced and closed, linked into new/ (never renamed over a name), new/
    fsynced; only then is the delivery reported. The name of the file in new/
    is printed on standard output. A failure leaves nothing in tmp/ or new/
    and writes one line to standard error, which the MTA logs:
        maildir-deliver: temporary failure: REASON
        maildir-deliver: permanent failure: REASON

    A first line that starts with the five bytes "From " is an mbox envelope
    line (Postfix mailbox_command, pipe(8) flag F, Exim's message_prefix); no
    header can start that way, so it is removed, and its sender stands in for
    SENDER. Everything else is kept byte for byte: CRLF, NUL and 8-bit bytes,
    a missing final newline. The name in new/ ends with ",S=<size>", the size
    of the file as written (Maildir++ quota; Dovecot and Courier read it).

    With --lmtp SOCKET it is an LMTP server instead, delivering for many
    recipients with group commit; "maildir-deliver --lmtp --help" is its manual.
"""

_AFTER_OPTIONS = """\
ENVIRONMENT
    HOME                 MAILDIR defaults to $HOME/Maildir.
    SENDER               The envelope sender, for --return-path ("" for <>).
    RECIPIENT            The envelope recipient, for --delivered-to.
    ORIGINAL_RECIPIENT   Used by --delivered-to when RECIPIENT is unset.
    EXTENSION            The address extension, for --extension-folder.
    A line break or NUL in SENDER or RECIPIENT (when used) is a data error.

EXIT STATUS
    outcome                                      qmail   sysexits
    delivered                                        0   0
    temporary failure - the MTA retries:           111   75 EX_TEMPFAIL
      any I/O error (ENOSPC, EDQUOT, EIO, ...), a
      missing or unusable maildir or folder, no
      MAILDIR and no HOME, SIGTERM, the 24-hour
      timer, an internal error
    permanent failure, policy - the MTA bounces:   100   77 EX_NOPERM
      tmp/ or new/ is a symbolic link
    permanent failure, data - the MTA bounces:     100   65 EX_DATAERR
      an empty message, a message over
      --max-size, a line break in SENDER or
      RECIPIENT
    usage error (bad command line):                100   64 EX_USAGE
    A usage error takes the code of a valid --exit-codes anywhere on the
    command line, else qmail's.

EXAMPLES
    Postfix, main.cf (runs as the recipient; Postfix already adds
    Return-Path and Delivered-To):
        mailbox_command = /usr/local/bin/maildir-deliver --exit-codes sysexits
    Postfix, master.cf pipe(8) service (flags R and D add the headers):
        maildir unix - n n - - pipe flags=DRhu user=vmail argv=/usr/bin/env
          EXTENSION=${extension} /usr/local/bin/maildir-deliver --exit-codes
          sysexits --extension-folder /srv/mail/${domain}/${user}
    qmail, .qmail (qmail-local sets SENDER and RECIPIENT, adds no headers):
        |/usr/local/bin/maildir-deliver --return-path --delivered-to ./Maildir/
    Exim, a pipe transport (Exim sets SENDER and RECIPIENT):
        maildir_deliver:
          driver = pipe
          command = /usr/local/bin/maildir-deliver --exit-codes sysexits \\
                    --return-path --delivered-to $home/Maildir
          message_prefix =
          message_suffix =

SEE ALSO
    docs/delivery-agent.md; maildir(5); Postfix local(8), pipe(8);
    qmail-command(8); sysexits.h; Courier maildir(5), README.maildirquota.
"""

MANUAL = (
    f"{_NAME}\nSYNOPSIS\n{_synopsis()}\n\n{_DESCRIPTION}\n"
    f"OPTIONS\n{_options_section()}\n\n{_AFTER_OPTIONS}"
)
"""The manual page `--help` prints; SYNOPSIS and OPTIONS come from `OPTIONS`."""


def exit_code(outcome: Outcome, convention: str) -> int:
    """The exit code for `outcome` under `convention` (the only such mapping, D3)."""
    codes = EXIT_CODES[convention]
    if isinstance(outcome, Delivered):
        return codes.delivered
    if isinstance(outcome, PermanentFailure):
        return codes.data if outcome.cause == "data" else codes.policy
    return codes.temporary


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


class UsageParser(argparse.ArgumentParser):
    """argparse, but a usage error exits with the chosen convention's usage code."""

    usage_code = EXIT_CODES[DEFAULT_CONVENTION].usage

    def error(self, message: str) -> NoReturn:
        _complain(f"usage error: {message} (see --help)")
        raise SystemExit(self.usage_code)


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's formatter at a fixed width: the default asks `shutil` for the terminal's,
    3 ms of imports on every delivery, and argparse's own help is never shown (`--help`
    prints MANUAL, a usage error is one line)."""
    return argparse.HelpFormatter(prog, width=80)


def _convention_in(argv: Sequence[str]) -> str:
    """The convention a (possibly malformed) command line asks for, for usage errors."""
    chosen = DEFAULT_CONVENTION
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        value = None
        if arg == CONVENTION.flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(CONVENTION.flag + "="):
            value = arg.partition("=")[2]
        if value in CONVENTION.choices:
            chosen = value
    return chosen


def _refusal(option: Option, value: str | None) -> str | None:
    """Why the final `value` of `option` is a usage error (its `accepts` check), or None."""
    if value is None or option.accepts is None or option.accepts(value):
        return None
    return f"{option.flag} {value!r} {option.refusal}"


class _Manual(argparse.Action):
    """-h/--help: print the manual page and exit 0."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        sys.stdout.write(MANUAL)
        sys.stdout.flush()
        raise SystemExit(0)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line parsed by argparse, set up from `OPTIONS`; a usage error exits."""
    parser = UsageParser(prog=PROG, add_help=False, allow_abbrev=False, formatter_class=_formatter)
    parser.usage_code = EXIT_CODES[_convention_in(argv)].usage
    exclusive = parser.add_mutually_exclusive_group()
    for option in OPTIONS:
        add = exclusive.add_argument if option.exclusive else parser.add_argument
        flags = (option.short, option.flag) if option.short else (option.flag,)
        if option.kind == "manual":
            add(*flags, action=_Manual, nargs=0)
        elif option.kind == "switch":
            add(*flags, action="store_true")
        else:
            choices = option.choices or None
            add(*flags, choices=choices, default=option.default, metavar=option.metavar)
    parser.add_argument("maildir", metavar="MAILDIR", nargs="?")
    args = parser.parse_args(list(argv))
    if args.maildir == "":
        parser.error("MAILDIR must not be empty")
    for option in OPTIONS:
        refused = _refusal(option, getattr(args, option.dest))
        if refused is not None:
            parser.error(refused)
    return args


def parse_plain(argv: Sequence[str]) -> argparse.Namespace | None:
    """What `parse_args` returns for the command lines an MTA runs - the switches and the
    value options of `OPTIONS` (at most one exclusive one), one MAILDIR, each valid - found
    without building the argparse parser (about 3 ms at start-up: gettext's locale
    look-ups, regular expressions); None for anything else (--help, `--opt=value`, `--`, a
    value starting with "-", every usage error), which `parse_args` then parses."""
    values: dict[str, Any] = {
        option.dest: False if option.kind == "switch" else option.default for option in OPTIONS
    }
    values["maildir"] = None
    exclusive_seen = set()
    words = iter(argv)
    for word in words:
        option = BY_FLAG.get(word)
        if option is not None and option.kind == "switch":
            values[option.dest] = True
        elif option is not None and option.kind == "value":
            value = next(words, "-")
            if value.startswith("-") or (option.choices and value not in option.choices):
                return None
            values[option.dest] = value
        elif word.startswith("-") or not word or values["maildir"] is not None:
            return None
        else:
            values["maildir"] = word
        if option is not None and option.exclusive:
            exclusive_seen.add(option.flag)
    if len(exclusive_seen) > 1:
        return None
    if any(_refusal(option, values[option.dest]) for option in OPTIONS):
        return None
    return argparse.Namespace(**values)


def request_from(args: argparse.Namespace, env: dict[str, str]) -> DeliveryRequest | Outcome:
    """The `DeliveryRequest` the command line and the MTA's environment ask for, or the
    failure to report when there is no maildir to deliver to."""
    maildir: str | None = args.maildir
    if maildir is None:
        home = env.get("HOME", "")
        if not home:
            return TemporaryFailure("no MAILDIR given and HOME is not set")
        maildir = home.rstrip("/") + "/Maildir"
    folder = args.folder or ""
    if args.extension_folder:
        folder = env.get("EXTENSION", "")
    recipient = env.get("RECIPIENT") or env.get("ORIGINAL_RECIPIENT")
    return DeliveryRequest(
        maildir=maildir,
        create_dirs=args.create,
        strip_from_line=not args.keep_from_line,
        return_path=args.return_path,
        sender=env.get("SENDER"),
        delivered_to=recipient if args.delivered_to else None,
        folder=folder,
        folder_fallback=args.extension_folder,
        size_in_name=not args.no_size,
        refuse_empty=not args.allow_empty,
        max_size=int(args.max_size) if args.max_size else None,
    )


STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ)
"""D7: the signals that stop a delivery as a temporary failure with tmp/ emptied: the
MTA's SIGTERM, an operator's SIGINT, a hang-up, a reader gone from a pipe, and the file
size limit (RLIMIT_FSIZE) - each would otherwise end the process with its file in tmp/."""


def deliver_stdin(
    request: DeliveryRequest, stdin: BinaryIO | None, missing_why: str = "closed"
) -> Outcome:
    """Run `deliver` on the OS; the STOPPING signals and the alarm stop it with
    `Interrupted`. No standard input (fd 0 closed) is a temporary failure."""
    if stdin is None:
        return TemporaryFailure(f"standard input is {missing_why}: no message to read")
    stop = StopFlag()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGALRM:
            stop.stop("24-hour delivery timer expired")
        else:
            stop.stop(f"{signal.Signals(signum).name} received")

    previous: list[tuple[int, Any]] = []
    try:
        for signum in (*STOPPING, signal.SIGALRM):
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


def _why_no_stdin(environ: Mapping[str, str]) -> str:
    """Why fd 0 is closed: the launcher (impl/launcher/maildir-deliver) closes a directory
    stdin, which CPython would refuse to start with, and says so in the environment."""
    return "a directory" if environ.get("MAILDIR_DELIVER_STDIN") == "directory" else "closed"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (the console script exits with it)."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    if "--lmtp" in args_list:  # the server mode: its own options and manual
        from maildircheck.impl.lmtp.cli import main as serve

        return serve(args_list)
    try:
        args = parse_plain(args_list) or parse_args(args_list)
    except SystemExit as done:  # --help (0) or a usage error (the convention's code)
        return done.code if isinstance(done.code, int) else 0
    convention: str = args.exit_codes
    outcome: Outcome
    try:
        request = request_from(args, dict(os.environ))
        if isinstance(request, DeliveryRequest):
            stdin = sys.stdin.buffer if sys.stdin else None
            outcome = deliver_stdin(request, stdin, _why_no_stdin(os.environ))
        else:
            outcome = request
    except Exception as err:  # a bug, not a verdict on the mail: let the MTA retry
        outcome = TemporaryFailure(f"internal error: {type(err).__name__}: {err}")
    if isinstance(outcome, Delivered):
        _report_name(outcome.name)
    else:
        _complain(str(outcome))
    return exit_code(outcome, convention)


if __name__ == "__main__":
    sys.exit(main())
