"""The `maildircheck realfs` subcommand (G5): its options, the check they ask for, its report.

    maildircheck realfs --fs FS [--user USER] [--message FILE] [--temporary-exits 71,75,111]
                        [--timeout S] [--json] -- COMMAND [ARGS...]

`{maildir}` and the shared options mean what they mean for `maildircheck trace`
(`trace.cli.add_program_options`, `command_and_message`). This module owns `--fs`, running
the program on that real file system (`realfs.program`) and the same program through
`trace` under the profile that claims to describe the file system (`RealFs.claimed_by`),
the differences between the two verdicts, and the report's text and JSON. The exit code
and the error line are `harness.cli`'s.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from maildircheck.harness.realfs.filesystems import FILESYSTEMS, RealFs, real_fs
from maildircheck.harness.trace import cli as trace_cli
from maildircheck.harness.trace.verdicts import exit_line

if TYPE_CHECKING:
    from maildircheck.harness.realfs.program import RealRun, Verdict
    from maildircheck.harness.trace.replay import ReplayResult


def _fs(name: str) -> RealFs:
    try:
        return real_fs(name)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_parser(commands: Any) -> None:
    """Register `realfs` on the main parser's subcommands."""
    realfs = commands.add_parser(
        "realfs",
        help="check any delivery program on a real file system: a crash at every flush",
        description="Run COMMAND once on a real file system made under the block recorder "
        "(needs root and FUSE), mount every crash state its block writes allow - at each "
        "flush and the moment it exits - and check P1 (no partial message in new/ or cur/) "
        "and P2 (once it reported success, the message survives every crash). Then judge "
        "the same program with `maildircheck trace` under the profile that claims to "
        "describe that file system, and say where the two differ. Exit 0: both hold; 1: "
        "one is violated on the disk; 3: the check could not run.",
        allow_abbrev=False,
    )
    realfs.add_argument(
        "--fs",
        required=True,
        type=_fs,
        metavar="FS",
        help=f"the real file system: {', '.join(FILESYSTEMS)}",
    )
    trace_cli.add_program_options(realfs)


@dataclass
class RealfsReport:
    run: RealRun
    verdicts: list[Verdict]
    model: ReplayResult | None  # `trace` under run.fs.claimed_by; None when it could not run
    model_error: str = ""  # why the model did not run
    replay_command: str = ""
    differences: list[str] = field(default_factory=list)
    model_note: str = ""  # the traced run ended differently from the run on the disk

    @property
    def violated(self) -> bool:
        return any(v.verdict == "violated" for v in self.verdicts)

    @property
    def holds(self) -> bool:
        return all(v.verdict == "holds" for v in self.verdicts)

    def model_verdicts(self) -> dict[str, str]:
        from maildircheck.harness.realfs.program import model_verdict

        if self.model is None:
            return {v.prop: f"not run ({self.model_error})" for v in self.verdicts}
        return {v.prop: model_verdict(self.model, v.prop) for v in self.verdicts}

    def as_json(self) -> dict[str, Any]:
        run = self.run
        model = self.model_verdicts()
        return {
            "fs": run.fs.name,
            "command": run.argv,
            "exit_status": run.status,
            "killed_by": run.signal_name,
            "stderr": run.stderr,
            "outcome": None if run.report is None else str(run.report),
            "crash_points": run.points,
            "states_explored": len(run.states),
            "states_total": run.total,
            "states_mounted": run.mounted,
            "block_writes": run.writes,
            "flushes": run.flushes,
            "run_seconds": round(run.run_seconds, 3),
            "seconds": round(run.seconds, 3),
            "verdicts": [
                {
                    "property": v.prop,
                    "verdict": v.verdict,
                    "why": v.why,
                    "point": v.evidence.where() if v.evidence else None,
                    "state": v.evidence.writes() if v.evidence else None,
                    "durable_writes": len(v.evidence.point.durable) if v.evidence else None,
                    "kept_writes": list(v.evidence.kept) if v.evidence else None,
                    "model": model[v.prop],
                }
                for v in self.verdicts
            ],
            "model": {
                "env": run.fs.claimed_by,
                "verdict": self.model.verdict if self.model else None,
                "violation": str(self.model.violation)
                if self.model and self.model.violation
                else None,
                "error": self.model_error or None,
                "note": self.model_note or None,
                "replay": self.replay_command,
            },
            "differences": self.differences,
            "notes": list(run.notes),
        }


def differences(verdicts: list[Verdict], model: dict[str, str], env: str) -> list[str]:
    """Where the disk and the model judge a property differently, and what that means."""
    found = []
    for v in verdicts:
        said = model[v.prop]
        if v.verdict == said or said not in ("holds", "violated") or v.verdict == "unjudged":
            continue
        if said == "violated":
            meaning = (
                f"the {env} profile allows a crash state this run did not produce on the disk "
                "(the profile is weaker than this file system, or this run's timing missed it)"
            )
        else:
            meaning = (
                f"the disk produced a crash state the {env} profile does not allow: the "
                "profile is wrong about this file system for this program (G4)"
            )
        found.append(f"{v.prop}: the disk says {v.verdict}, the model says {said}: {meaning}")
    return found


def report_for(args: argparse.Namespace) -> RealfsReport:
    """Run the program on the real file system, then through `trace`; `TraceUsageError` for
    a bad option value, `RigError` or `TraceSetupError` when the real check could not run."""
    from maildircheck.harness.realfs.program import PROPERTIES, judge, model_verdict, run_program
    from maildircheck.harness.trace.runner import TraceSetupError, run_traced
    from maildircheck.harness.trace.verdicts import check_run, replay_command_for

    command, message = trace_cli.command_and_message(args)
    fs: RealFs = args.fs
    run = run_program(
        fs, command, message, user=args.user, timeout=args.timeout, temporary=args.temporary_exits
    )
    verdicts = [judge(run, prop) for prop in PROPERTIES]
    replay = replay_command_for(command, [fs.claimed_by], [], args.user)
    model: ReplayResult | None = None
    error = note = ""
    try:
        traced = run_traced(command, message, user=args.user, timeout=args.timeout)
    except TraceSetupError as err:
        error = str(err)
    else:
        model = check_run(traced, [fs.claimed_by], args.temporary_exits, replay).results[0]
        if traced.status != run.status:
            note = (
                f"the traced run exited {traced.status}, the run on the disk {run.status}: "
                "the two verdicts judge runs that went differently"
            )
    report = RealfsReport(run, verdicts, model, error, replay, model_note=note)
    if model is not None:
        said = {v.prop: model_verdict(model, v.prop) for v in verdicts}
        report.differences = differences(verdicts, said, fs.claimed_by)
    return report


def render(report: RealfsReport) -> list[str]:
    """The report as plain text lines."""
    from maildircheck.harness.realfs.outcomes import describe
    from maildircheck.harness.realfs.program import PROPERTIES

    run = report.run
    lines = [
        f"ran on {run.fs.name} ({run.fs.summary}): {shlex.join(run.command)}",
        exit_line(run.status, run.signal_name, run.report),
        f"{run.writes} block writes, {run.flushes} flushes; {run.points} crash points, "
        f"{len(run.states)} of {run.total} crash states explored, {run.mounted} mounted; "
        f"the program ran {run.run_seconds * 1000:.0f} ms, the check {run.seconds:.1f} s",
        f"verdicts on the disk (model: `trace` under {run.fs.claimed_by}):",
    ]
    model = report.model_verdicts()
    for v in report.verdicts:
        lines.append(f"  {v.prop} {PROPERTIES[v.prop]:<17} {v.verdict.upper():<9} {v.why}")
        if v.evidence is not None:
            lines.append(
                f"  {'':<20} at {v.evidence.where()}: a state keeping {v.evidence.writes()}"
            )
            lines.append(f"  {'':<20} its Maildir: {describe(v.evidence.outcome)}")
        lines.append(f"  {'':<20} model: {model[v.prop]}")
    if report.model is not None and report.model.violation is not None:
        lines.append(f"model's violation: {report.model.violation}")
    lines += [f"differs: {d}" for d in report.differences]
    if all(model[v.prop] == v.verdict for v in report.verdicts):
        lines.append("the disk and the model agree on " + " and ".join(model))
    elif report.model is not None and not report.differences:
        lines.append("no property both judged differs (see the model's verdicts above)")
    if run.stderr:
        lines.append(f"its stderr: {run.stderr.splitlines()[-1]}")
    lines += [f"note: {n}" for n in run.notes]
    if report.model_note:
        lines.append(f"note: {report.model_note}")
    lines.append(f"the model's replay: {report.replay_command}")
    return lines


def report_text(report: RealfsReport, as_json: bool) -> str:
    if as_json:
        return json.dumps(report.as_json(), indent=2, sort_keys=True)
    return "\n".join(render(report))
