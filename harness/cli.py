"""`maildircheck`: the checker's command line.

This module owns parsing the command line into a `Check` (harness/check.py: `check_from`,
and `parse_check`, the inverse of `Check.argv`), the exit codes, the JSON output and the
demo; the human reports are `maildircheck.harness.report`'s, running a check is
`maildircheck.harness.verify.verify`.

    maildircheck verify --strategy NAME|path/to/file.py:function --env PROFILE
                        [--faults LIST] [--max-examples N] [--seed S] [--quality]
                        [--strict-lifecycle] [--workers N] [--message-size BYTES]
                        [--no-shrink] [--json] [--[no-]progress]
    maildircheck explore --strategy NAME --env PROFILE [--faults LIST] [--syscalls N]
                         [--deliveries N] [--fault-steps N] [--jumps N] [--preemptions N]
                         [--sizes N,N...] [--reader N] [--cleaner N] [--max-states N]
                         [--workers N] [--quality] [--json] [--[no-]progress]
    maildircheck list [--json]
    maildircheck matrix [--strategies A,B] [--envs X,Y] [--max-examples N] [--seed S]
                        [--workers N] [--format md|json|html] [--output FILE]
                        [--[no-]progress]
    maildircheck trace [--env PROFILE]... [--inject CALL:ERRNO[:N]]... [--json] -- COMMAND...
    maildircheck fidelity [--fs A,B] [--workload W,V] [--profiles claimed,posix]
                          [--fsync-failure] [--format text|md|json] [--json]
    maildircheck realfs --fs FS [--user U] [--json] -- COMMAND...   (root, FUSE)
    maildircheck demo

Exit codes:
    0  verify: every checked property holds within the budget; explore: within the bound;
       list; demo: the bug was found;
       fidelity: every profile compared allows every outcome measured
       realfs: P1 and P2 hold in every crash state of the real file system; trace: every
       property holds; matrix: the table was written; verify and trace: also when only the
       environment cannot keep P1/P2 (an async NFS export)
    1  verify, explore: a checked property is violated; demo: the bug was not found; fidelity: a
       profile is unsound; realfs: P1 or P2 is violated on the real file system; trace: a
       property is violated, a message of the set was changed, or it delivered nothing
    2  usage error (unknown strategy, profile or fault, a bad number, a strategy file that
       does not load), reported as one line `maildircheck: error: ...` on stderr
    3  the check could not complete (the strategy raised when called, or a checker bug),
       reported as one line on stderr; explore: the bound was not exhausted; trace: not
       checked (strace missing, the program not found, no Maildir call, the time limit);
       fidelity: the rig cannot run here

Hypothesis and rich are imported only when a command needs them, so `--help` stays quick.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from maildircheck.harness import batch_cli, explore_cli
from maildircheck.harness.check import Check, CheckError
from maildircheck.harness.machine import NotASyscall
from maildircheck.harness.realfs import cli as realfs_cli
from maildircheck.harness.trace import cli as trace_cli
from maildircheck.impl.strategies import CATALOGUE
from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.environments import LOCAL as LOCAL_ENVS
from maildircheck.model.faults import DEFAULT_FAULTS, FAULTS, names
from maildircheck.model.properties import PROPERTIES

if TYPE_CHECKING:
    from maildircheck.harness.verify import Verdict

PROG = "maildircheck"
USAGE_ERROR = 2
CHECK_ERROR = 3
DEMO_STRATEGY = "vpopmail-4.10.14"
DEMO_ENV = "ext4-ordered"
DEMO_SEED = 1


class UsageError(Exception):
    """A command line that names nothing usable; the message is one line."""


def _complain(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {' '.join(message.split())}\n")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def _progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr (default: a live bar when stderr is a terminal, else "
        "none; --progress off a terminal: a line per finished cell or search)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Check Maildir delivery strategies against crashes, faults and "
        "concurrency in an executable file-system model.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "verify",
        help="check one strategy under one persistence profile and fault set",
        description="Search for a violation of the safety properties P1-P5 and of progress, "
        "P7 (and P6 with --quality). Exit 0 when they hold within the budget, 1 on a "
        "violation, 2 on a usage error.",
        allow_abbrev=False,
    )
    check.add_argument(
        "--strategy",
        required=True,
        metavar="NAME|FILE.py:FUNCTION",
        help="a catalogue name (see `maildircheck list`) or path/to/file.py:function",
    )
    check.add_argument(
        "--env",
        required=True,
        metavar="PROFILE",
        help=f"persistence profile or NFS environment: {', '.join(ENVIRONMENTS)}",
    )
    check.add_argument(
        "--faults",
        default=names(DEFAULT_FAULTS),
        metavar="LIST",
        help="comma-separated faults, 'none' or 'all' (default: %(default)s)",
    )
    check.add_argument(
        "--max-examples",
        type=_int,
        default=200,
        metavar="N",
        help="how many runs Hypothesis generates (default: %(default)s)",
    )
    check.add_argument(
        "--seed",
        type=_int,
        default=None,
        metavar="S",
        help="random seed (default: a fixed derandomized search)",
    )
    check.add_argument(
        "--quality", action="store_true", help="also fail on P6 (at-most-once delivery)"
    )
    check.add_argument(
        "--message-size",
        type=_int,
        default=None,
        metavar="BYTES",
        help="deliver messages of exactly this size (default: sizes and contents drawn)",
    )
    check.add_argument(
        "--no-shrink",
        action="store_true",
        help="report the first violation found, as found (faster; not the shortest run)",
    )
    check.add_argument(
        "--workers",
        type=_int,
        default=1,
        metavar="N",
        help="spread the search over N processes (seeds S..S+N-1, the budget shared)",
    )
    check.add_argument(
        "--strict-lifecycle",
        action="store_true",
        help="also fail on L1: a step that is not an edge of the lifecycle table",
    )
    check.add_argument(
        "--json", action="store_true", help="print the verdict as JSON on stdout, nothing else"
    )
    _progress_flag(check)

    _progress_flag(explore_cli.add_parser(commands, _int))
    batch_cli.add_parser(commands, _int)

    listing = commands.add_parser(
        "list",
        help="list strategies, profiles, faults and properties",
        description="List the strategy catalogue, persistence profiles, faults and properties.",
        allow_abbrev=False,
    )
    listing.add_argument("--json", action="store_true", help="print the listing as JSON")

    matrix = commands.add_parser(
        "matrix",
        help="strategies x environments: which property each breaks",
        description="Check strategies under environments (default: the whole catalogue under "
        "every profile and NFS environment, each with its environment's faults) and print "
        "the matrix with links to each counterexample.",
        allow_abbrev=False,
    )
    matrix.add_argument("--strategies", type=_names, help="comma-separated (default: all)")
    matrix.add_argument("--envs", type=_names, help="comma-separated (default: all)")
    matrix.add_argument("--max-examples", type=_int, default=200, metavar="N")
    matrix.add_argument("--seed", type=_int, default=1, metavar="S")
    matrix.add_argument("--workers", type=_int, default=1, metavar="N")
    matrix.add_argument("--format", choices=("md", "json", "html"), default="md")
    matrix.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    matrix.add_argument(
        "--trace",
        action="append",
        default=[],
        metavar="'NAME=[TRACE OPTIONS --] COMMAND ARGS'",
        help="add a row for a program checked with `maildircheck trace` (repeatable; "
        "{maildir} in ARGS is the scratch Maildir; before -- the options trace takes for a "
        "program: --user, --message, --inject, --temporary-exits, --timeout, "
        "--no-message-set, --faults)",
    )
    _progress_flag(matrix)

    trace_cli.add_parser(commands)
    realfs_cli.add_parser(commands)

    fidelity = commands.add_parser(
        "fidelity",
        help="measure the litmus workloads on real file systems (root, FUSE, loop devices) "
        "and check that each profile allows every outcome seen",
        description="Run each litmus workload on each real file system under the block "
        "recorder, mount every crash state, and compare the Maildir outcomes with those the "
        "model's profiles allow (G4). Exit 0 when every profile is sound, 1 when one is not.",
        allow_abbrev=False,
    )
    fidelity.add_argument(
        "--fs", type=_names, default=None, help="real file systems, comma-separated (default: all)"
    )
    fidelity.add_argument(
        "--workload",
        type=_names,
        default=None,
        help="litmus workloads, comma-separated (default: all)",
    )
    fidelity.add_argument(
        "--profiles",
        type=_names,
        default=["claimed", "posix"],
        help="profiles to compare with; 'claimed' is the one each file "
        "system's table entry names (default: claimed,posix)",
    )
    fidelity.add_argument(
        "--fsync-failure",
        action="store_true",
        help="measure instead what a failed fsync leaves (EIO and ENOSPC "
        "from the disk, F9) and compare it with each claimed profile",
    )
    fidelity.add_argument("--format", choices=("text", "md", "json"), default="text")
    fidelity.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )

    commands.add_parser(
        "demo",
        help=f"find the {DEMO_STRATEGY} bug under {DEMO_ENV} and explain it",
        description=f"Run verify on {DEMO_STRATEGY} under {DEMO_ENV} with the default "
        f"faults and seed {DEMO_SEED}; exit 0 when the violation is found.",
        allow_abbrev=False,
    )
    return parser


def catalogue() -> dict[str, Any]:
    """What `maildircheck list --json` prints (and `list` renders)."""
    return {
        "strategies": [
            {
                "name": info.name,
                "bug_class": info.bug_class,
                "summary": info.summary,
                "source": info.source,
                "expected": list(info.expected),
            }
            for info in CATALOGUE.values()
        ],
        "profiles": [
            {"name": e.name, "summary": e.summary, "specs": list(e.specs), "nfs": e.is_nfs}
            for e in ENVIRONMENTS.values()
        ],
        "faults": [
            {
                "name": f.name,
                "summary": f.summary,
                "spec": f.spec,
                "family": f.family.value,
                "nfs_only": f.nfs_only,
            }
            for f in FAULTS.values()
        ],
        "properties": [
            {
                "id": p.id,
                "name": p.name,
                "statement": p.statement,
                "safety": p.safety,
                "kind": p.kind,
            }
            for p in PROPERTIES.values()
        ],
        "default_faults": [f.name for f in DEFAULT_FAULTS],
    }


def check_from(args: argparse.Namespace) -> Check:
    """The Check a parsed `verify` command line names (validated there, once)."""
    try:
        return Check.of(
            args.strategy,
            args.env,
            args.faults,
            max_examples=args.max_examples,
            seed=args.seed,
            quality=args.quality,
            strict_lifecycle=args.strict_lifecycle,
            workers=args.workers,
            message_size=args.message_size,
            shrink=not args.no_shrink,
        )
    except CheckError as err:
        raise UsageError(str(err)) from None


def parse_check(argv: Sequence[str]) -> Check:
    """`maildircheck` arguments (`check.argv()`) -> the Check; UsageError if they name none."""
    args = build_parser().parse_args(list(argv))
    if args.command != "verify":
        raise UsageError(f"not a verify command line: {' '.join(argv)}")
    return check_from(args)


def _verify(check: Check, progress: bool | None) -> Verdict:
    from maildircheck.harness.progress import for_stderr
    from maildircheck.harness.verify import verify

    return verify(check, for_stderr(progress))


def cmd_verify(args: argparse.Namespace) -> int:
    check = check_from(args)
    if args.json:
        with contextlib.redirect_stdout(sys.stderr):  # a chatty strategy must not corrupt it
            verdict = _verify(check, args.progress)
        print(json.dumps(verdict.as_json(), indent=2))
    else:
        verdict = _verify(check, args.progress)
        from maildircheck.harness.report import print_verdict

        print_verdict(verdict, check.max_examples)
    return 0 if verdict.holds else 1


def cmd_explore(args: argparse.Namespace) -> int:
    from maildircheck.harness.explore import explore
    from maildircheck.harness.progress import for_stderr

    try:
        check = Check.of(
            args.strategy,
            args.env,
            args.faults,
            quality=args.quality,
            strict_lifecycle=args.strict_lifecycle,
        )
    except CheckError as err:
        raise UsageError(str(err)) from None
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        found = explore(
            check,
            explore_cli.bound_from(args),
            args.max_states,
            workers=args.workers,
            progress=for_stderr(args.progress),
        )
    if args.json:
        print(json.dumps(explore_cli.as_json(found), indent=2))
    else:
        print(explore_cli.report(found))
    return explore_cli.exit_code(found)


def cmd_batch(args: argparse.Namespace) -> int:
    found = batch_cli.run(args)
    if args.json:
        print(json.dumps(batch_cli.as_json(found), indent=2))
    else:
        print(batch_cli.report(found))
    return batch_cli.exit_code(found)


def cmd_list(args: argparse.Namespace) -> int:
    data = catalogue()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        from maildircheck.harness.report import print_catalogue

        print_catalogue(data)
    return 0


def cmd_matrix(args: argparse.Namespace) -> int:
    from maildircheck.harness.matrix import cell_checks, run_matrix, trace_rows
    from maildircheck.harness.progress import for_stderr
    from maildircheck.harness.trace.runner import TraceSetupError

    strategies = args.strategies or ([] if args.trace else list(CATALOGUE))
    envs = args.envs or list(ENVIRONMENTS)
    if args.workers < 1:
        raise UsageError(f"--workers must be a positive integer, got {args.workers}")
    try:
        checks = cell_checks(strategies, envs, max_examples=args.max_examples, seed=args.seed)
    except CheckError as err:
        raise UsageError(str(err)) from None
    # a matrix runs for minutes: off a terminal too it says what it does, a line a cell,
    # unless --no-progress (issue 13)
    wanted = True if args.progress is None else args.progress
    result = run_matrix(checks, envs, progress=for_stderr(wanted), workers=args.workers)
    try:
        result.traced = trace_rows(args.trace, envs)
    except (TraceSetupError, trace_cli.TraceUsageError, ValueError) as err:
        raise UsageError(f"--trace: {err}") from None
    if args.format == "json":
        text = json.dumps(result.as_json(), indent=2)
    else:
        text = result.as_html() if args.format == "html" else result.as_markdown()
    if args.output:
        tmp = f"{args.output}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, args.output)  # never a half-written report
    else:
        print(text)
    return 0


DEMO = Check.of(DEMO_STRATEGY, DEMO_ENV, seed=DEMO_SEED)


def cmd_demo(args: argparse.Namespace) -> int:
    from maildircheck.harness.report import print_verdict

    print(
        f"Demo: checking {DEMO_STRATEGY} (vpopmail's maildir delivery) under {DEMO_ENV} "
        f"with the default faults, seed {DEMO_SEED}.\n"
    )
    verdict = _verify(DEMO, False)
    print_verdict(verdict, DEMO.max_examples)
    if verdict.holds:
        print("\nDemo FAILED: the known violation was not found.")
        return 1
    print("\nDemo succeeded: the checker found the violation above.")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    """0 every property holds under every profile; 1 one is violated under at least one,
    or it delivered nothing after exit 0; 3 the check could not complete (strace missing,
    the command not found, the replay stopped at a call the model cannot follow, or not
    checked: no call on the Maildir, the time limit)."""
    from maildircheck.harness.trace.runner import TraceSetupError

    return _checked_program(args, trace_cli.report_for, trace_cli.report_text, (TraceSetupError,))


def _checked_program(
    args: argparse.Namespace,
    report_for: Callable[[argparse.Namespace], Any],
    report_text: Callable[[Any, bool], str],
    cannot_run: tuple[type[Exception], ...],
) -> int:
    """What `trace` and `realfs` share: bad options are usage errors, a check that could not
    run is one line and 3, the report goes to stdout, and the code is its verdict."""
    try:
        report = report_for(args)
    except trace_cli.TraceUsageError as err:
        raise UsageError(str(err)) from None
    except cannot_run as err:
        _complain(str(err))
        return CHECK_ERROR
    print(report_text(report, args.json))
    if report.violated:
        return 1
    return 0 if report.holds else CHECK_ERROR


def cmd_fidelity(args: argparse.Namespace) -> int:
    """0 every profile compared is sound; 1 one is not; 3 the rig cannot run here."""
    from maildircheck.harness.realfs import fidelity, fidelity_report
    from maildircheck.harness.realfs.filesystems import FILESYSTEMS, real_fs
    from maildircheck.harness.realfs.litmus import WORKLOADS, workload
    from maildircheck.harness.realfs.measure import Measured
    from maildircheck.harness.realfs.rig import RigError, unavailable

    try:
        systems = [real_fs(n) for n in args.fs or FILESYSTEMS]
        workloads = [workload(n).name for n in args.workload or WORKLOADS]
        for name in args.profiles:
            if name != "claimed" and name not in {e.name for e in LOCAL_ENVS}:
                raise ValueError(
                    f"not a local profile: {name!r} (known: claimed, "
                    f"{', '.join(e.name for e in LOCAL_ENVS)})"
                )
    except ValueError as err:
        raise UsageError(str(err)) from None
    for fs in systems:
        why = unavailable(fs)
        if why is not None:
            _complain(f"cannot measure {fs.name}: {why}")
            return CHECK_ERROR

    if args.fsync_failure:
        return _fsync_failure([f.name for f in systems], args.format)

    def heard(m: Measured) -> None:
        sys.stderr.write(
            f"measured {m.fs.name} x {m.workload.name}: {m.states} crash states "
            f"in {m.seconds:.1f} s\n"
        )

    try:
        report = fidelity.check([f.name for f in systems], workloads, args.profiles, heard)
    except RigError as err:
        _complain(str(err))
        return CHECK_ERROR
    if args.format == "json":
        print(json.dumps(fidelity_report.as_json(report), indent=2))
    elif args.format == "md":
        print(fidelity_report.markdown(report))
    else:
        print(fidelity_report.render(report))
    return 0 if report.sound else 1


def cmd_realfs(args: argparse.Namespace) -> int:
    """0 P1 and P2 hold in every crash state on the disk; 1 one is violated there; 3 the
    check could not run (no root or FUSE, the command not found) or a crash state did not
    mount. Where the model's verdict differs the report says so; the code is the disk's."""
    from maildircheck.harness.realfs.rig import RigError
    from maildircheck.harness.trace.runner import TraceSetupError

    return _checked_program(
        args, realfs_cli.report_for, realfs_cli.report_text, (RigError, TraceSetupError)
    )


def _fsync_failure(systems: list[str], form: str) -> int:
    """`fidelity --fsync-failure`: the F9 table; 1 when a row disagrees with its profile."""
    import errno

    from maildircheck.harness.realfs import eio, eio_report
    from maildircheck.harness.realfs.rig import RigError

    try:
        rows = eio.measure_all(systems, (errno.EIO, errno.ENOSPC))
    except RigError as err:
        _complain(str(err))
        return CHECK_ERROR
    print(
        json.dumps(eio_report.as_json(rows), indent=2)
        if form == "json"
        else eio_report.render(rows)
    )
    return 1 if any(r.mismatches for r in rows) else 0


COMMANDS = {
    "verify": cmd_verify,
    "explore": cmd_explore,
    "batch": cmd_batch,
    "list": cmd_list,
    "matrix": cmd_matrix,
    "demo": cmd_demo,
    "trace": cmd_trace,
    "fidelity": cmd_fidelity,
    "realfs": cmd_realfs,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (the console script exits with it)."""
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
        return COMMANDS[args.command](args)
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except UsageError as err:
        _complain(str(err))
        return USAGE_ERROR
    except NotASyscall as err:  # the user's strategy is wrong, not the check
        _complain(str(err))
        return USAGE_ERROR
    except BrokenPipeError:  # e.g. `maildircheck list | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as err:
        _complain(f"the check did not complete: {type(err).__name__}: {err}")
        return CHECK_ERROR


if __name__ == "__main__":
    sys.exit(main())
