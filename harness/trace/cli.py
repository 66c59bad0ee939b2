"""The `maildircheck trace` subcommand: its options and the report they ask for.

    maildircheck trace [--env PROFILE]... [--inject CALL:ERRNO[:N]]... [--user USER]
                       [--message FILE] [--temporary-exits 71,75,111] [--timeout S]
                       [--keep] [--faults] [--no-message-set] [--json] -- COMMAND [ARGS...]

`{maildir}` in ARGS stands for the scratch Maildir (appended when no argument has it).
This module owns the options, checking their values (`TraceUsageError`), running the check
they ask for and the report's text on stdout; a check that could not run raises
`trace.runner.TraceSetupError`. The exit code and the error line are `harness.cli`'s.
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import TYPE_CHECKING, Any, NoReturn

from maildircheck.model.environments import ENVIRONMENTS

if TYPE_CHECKING:
    from maildircheck.harness.trace.verdicts import TraceReport


class TraceUsageError(Exception):
    """A bad option value; one line."""


def _exits(text: str) -> tuple[int, ...]:
    try:
        codes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of exit codes: {text!r}") from None
    if not codes or any(not 0 < c < 256 for c in codes):
        raise argparse.ArgumentTypeError(f"exit codes must be 1-255: {text!r}")
    return codes


def add_parser(commands: Any) -> None:
    """Register `trace` on the main parser's subcommands."""
    trace = commands.add_parser(
        "trace",
        help="check any delivery program: run it under strace, replay it in the model",
        description="Run COMMAND on a scratch Maildir with a message on standard input "
        "under strace, replay what it did to the Maildir in the model with a crash and a "
        "kill at every point, and judge it under each profile. `{maildir}` in ARGS is the "
        "scratch Maildir's path (appended when no argument contains it); its exit status "
        "is its report (0 delivered, --temporary-exits temporary, anything else a bounce).",
        allow_abbrev=False,
    )
    every = ", ".join(ENVIRONMENTS)
    trace.add_argument(
        "--env",
        action="append",
        metavar="PROFILE",
        help=f"judge under this profile (repeatable; default: every local one). One of: {every}",
    )
    trace.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="CALL:ERRNO[:N]",
        help="make the Nth CALL fail with ERRNO (strace -e inject), e.g. fsync:EIO",
    )
    trace.add_argument("--keep", action="store_true", help="keep the scratch directory")
    trace.add_argument(
        "--faults",
        action="store_true",
        help="then make each Maildir call of the run fail, one run per call and errno, and "
        "tabulate call -> exit -> verdict (a fault that hits no Maildir call: 'fault missed')",
    )
    trace.add_argument(
        "--no-message-set",
        action="store_true",
        help="deliver only the traced message (by default the agent also delivers each "
        "message of the set - CRLF, NUL, 8-bit, no final newline, a long line, From lines, "
        "past 64 KiB - once more, and a change to one breaks P1)",
    )
    add_program_options(trace)


def add_program_options(parser: Any) -> None:
    """The options every command that runs a delivery program shares (`trace`, `realfs`):
    --user, --message, --temporary-exits, --timeout, --json and the command after --."""
    parser.add_argument("--user", help="run the command as this user (its uid, gid and groups)")
    parser.add_argument(
        "--message", metavar="FILE", help="the message to deliver (default: built in)"
    )
    parser.add_argument(
        "--temporary-exits",
        type=_exits,
        default=(71, 75, 111),
        metavar="LIST",
        help="exit codes that mean 'try again later' (default: 71,75,111 - Postfix's soft "
        "EX_OSERR and EX_TEMPFAIL, qmail's 111; Exim's temp_errors are 73-75)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("program", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")


def command_and_message(args: argparse.Namespace) -> tuple[list[str], bytes]:
    """The command after -- and the message to deliver (--message, or the built-in one);
    `TraceUsageError` when there is no command or the file cannot be read."""
    from maildircheck.harness.trace.runner import DEFAULT_MESSAGE

    command = list(args.program)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise TraceUsageError(f"{args.command} needs a command after --")
    message = DEFAULT_MESSAGE
    if args.message:
        try:
            with open(args.message, "rb") as f:
                message = f.read()
        except OSError as err:
            raise TraceUsageError(f"cannot read --message {args.message}: {err.strerror}") from None
    return command, message


def report_for(args: argparse.Namespace) -> TraceReport:
    """Run and judge the check the parsed options ask for; `TraceUsageError` for a bad
    option value, `TraceSetupError` when the check could not run."""
    from maildircheck.harness.trace.messages import run_message_set
    from maildircheck.harness.trace.runner import run_traced
    from maildircheck.harness.trace.verdicts import (
        LOCAL_ENVS,
        add_messages,
        check_run,
        replay_command_for,
    )

    envs = args.env or list(LOCAL_ENVS)
    for env in envs:
        if env not in ENVIRONMENTS:
            raise TraceUsageError(f"unknown profile {env!r}")
    command, message = command_and_message(args)
    run = run_traced(
        command,
        message,
        inject=args.inject,
        user=args.user,
        timeout=args.timeout,
        keep=args.keep,
    )
    replay = replay_command_for(
        command,
        args.env or [],
        args.inject,
        args.user,
        message_file=args.message,
        temporary=args.temporary_exits,
        timeout=args.timeout,
        message_set=not args.no_message_set,
        faults=args.faults,
    )
    report = check_run(run, envs, args.temporary_exits, replay)
    if report.not_checked is not None:  # nothing to judge: no more runs (each could hang too)
        return report
    if not args.no_message_set:
        add_messages(report, run_message_set(command, user=args.user, timeout=args.timeout))
    if args.faults:
        from maildircheck.harness.trace.faults import fault_table

        report.fault_rows = fault_table(
            report, command, envs, args.temporary_exits, user=args.user, timeout=args.timeout
        )
    return report


class _RowParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise TraceUsageError(message)


def row_report(text: str, envs: list[str]) -> TraceReport:
    """A `matrix --trace` row, `[TRACE OPTIONS --] COMMAND ARGS`: the command run and
    judged as `trace` would, under `envs`, with the options `trace` takes for a program
    (--user, --message, --inject, --temporary-exits, --timeout, --no-message-set,
    --faults); `TraceUsageError` for a bad one."""
    parser = _RowParser(prog="matrix --trace", add_help=False, allow_abbrev=False)
    parser.add_argument("--inject", action="append", default=[])
    parser.add_argument("--no-message-set", action="store_true")
    parser.add_argument("--faults", action="store_true")
    add_program_options(parser)
    words = shlex.split(text)
    if "--" not in words:
        words = ["--", *words]
    args = parser.parse_args(words)
    args.env, args.keep, args.command = envs, False, "matrix --trace"
    return report_for(args)


def report_text(report: TraceReport, as_json: bool) -> str:
    """What `trace` prints on stdout: the JSON, or the plain report and where the kept
    scratch directory is."""
    from maildircheck.harness.trace.faults import faults_json, render_faults
    from maildircheck.harness.trace.verdicts import render

    if as_json:
        found = report.as_json()
        if report.fault_rows:
            found["faults"] = faults_json(report.fault_rows)
        return json.dumps(found, indent=2, sort_keys=True)
    lines = render(report)
    if report.fault_rows:
        lines += render_faults(report.fault_rows)
    if report.run.scratch:
        lines.append(f"scratch directory kept: {report.run.scratch}")
    return "\n".join(lines)
