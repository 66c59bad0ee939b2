"""`maildircheck trace`: one traced run judged under each profile, as a report and JSON.

This module owns joining the run (`trace.runner`), the translation (`trace.translator`)
and the replay (`trace.replay`), the facts a reader wants about the agent's own calls (does
it fsync the file, the directory; link or rename; what it added to the message), the
stable JSON, and the plain-text report with the replay command. The CLI (`harness.cli`)
maps the verdicts to exit codes.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from maildircheck.harness.trace.messages import MessageResult
from maildircheck.harness.trace.reader import parse
from maildircheck.harness.trace.replay import (
    TEMPORARY_EXIT,
    ReplayResult,
    outcome_of,
    replay,
    unexplored,
)
from maildircheck.harness.trace.runner import TracedRun
from maildircheck.harness.trace.translator import Event, Step, Unmodeled, translate
from maildircheck.harness.vocabulary import (
    DELIVERED_NOTHING,
    ENVIRONMENT_CANNOT,
    HOLDS,
    INCOMPLETE,
    VIOLATED,
    not_checked,
    result_verdict,
)
from maildircheck.model.environments import ENVIRONMENTS, LOCAL
from maildircheck.model.outcome import Delivered, Outcome
from maildircheck.model.properties import Violation
from maildircheck.model.syscalls import (
    Fdatasync,
    Fsync,
    Link,
    Open,
    OpenFlag,
    Rename,
    Sync,
    Write,
)

LOCAL_ENVS = tuple(e.name for e in LOCAL)


def environment_cannot(env: str) -> bool:
    """No agent can make a message durable before reporting success here (R2)."""
    return not ENVIRONMENTS[env].durable_success_possible


@dataclass
class TraceReport:
    run: TracedRun
    events: list[Event]
    outcome: Outcome | None
    results: list[ReplayResult]
    facts: list[str]
    unexplored: list[str]
    replay_command: str
    notes: list[str] = field(default_factory=list)
    messages: list[MessageResult] = field(default_factory=list)  # the message set's runs
    fault_rows: list[Any] = field(default_factory=list)  # trace --faults (trace.faults.FaultRow)

    @property
    def not_checked(self) -> str | None:
        """Why this run cannot be judged at all, or None. A program that never touched the
        Maildir, or one stopped at the time limit, would otherwise pass or be blamed for a
        report it never made."""
        if self.run.timed_out:
            return "the run was stopped at the time limit and never finished (see --timeout)"
        if not any(isinstance(e, Step) for e in self.events):
            return "the program made no call on the Maildir"
        return None

    @property
    def delivered_nothing(self) -> bool:
        """It reported delivery (exit 0) and left nothing in new/ or cur/."""
        return isinstance(self.outcome, Delivered) and not self.run.delivered()

    def verdicts(self) -> list[str]:
        """Each profile's verdict, in the vocabulary (harness/vocabulary.py)."""
        return [result_verdict(r.env, r.violation, r.stopped) for r in self.results]

    @property
    def holds(self) -> bool:
        return (
            not self.violated
            and self.not_checked is None
            and all(v in (HOLDS, ENVIRONMENT_CANNOT) for v in self.verdicts())
        )

    @property
    def violated(self) -> bool:
        flagged = any(m.flagged for m in self.messages)  # a content change is the agent's
        faulted = any(r.report is not None and r.report.violated for r in self.fault_rows)
        return self.not_checked is None and (
            self.delivered_nothing or flagged or faulted or VIOLATED in self.verdicts()
        )

    @property
    def verdict(self) -> str:
        """One of: holds, violated, delivered nothing, incomplete, not checked: why."""
        if self.not_checked is not None:
            return not_checked(self.not_checked)
        if self.delivered_nothing:
            return DELIVERED_NOTHING
        if self.violated:
            return VIOLATED
        return HOLDS if self.holds else INCOMPLETE

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "not_checked": self.not_checked,
            "command": self.run.command,
            "exit_status": self.run.status,
            "killed_by": self.run.signal_name,
            "outcome": None if self.outcome is None else str(self.outcome),
            "inject": list(self.run.inject),
            "maildir_calls": sum(1 for e in self.events if isinstance(e, Step)),
            "delivered": {path: len(data) for path, data in self.run.delivered().items()},
            "facts": self.facts,
            "results": [
                {
                    "env": r.env,
                    "verdict": result_verdict(r.env, r.violation, r.stopped),
                    "environment_cannot": environment_cannot(r.env),
                    "property": r.violation.prop if r.violation else None,
                    "why": r.violation.why if r.violation else None,
                    "stopped": r.stopped,
                    "counterexample": r.timeline.as_json() if r.violation else [],
                }
                for r in self.results
            ],
            "messages": [
                {
                    "name": m.name,
                    "bytes": m.size,
                    "exit_status": m.status,
                    "delivered": m.delivered,
                    "kept": m.kept,
                    "change": m.change,
                    "flagged": m.flagged,
                }
                for m in self.messages
            ],
            "stderr": said_on_stderr(self.run),
            "unexplored": self.unexplored,
            "notes": self.notes,
            "replay": self.replay_command,
        }


def _failing(events: Sequence[Event], kind: type[Any] | tuple[type[Any], ...]) -> list[str]:
    return [
        f"-1 {e.errno}" + (" (injected)" if e.injected else "")
        for e in events
        if isinstance(e, Step) and isinstance(e.request, kind) and e.errno is not None
    ]


def facts_of(events: Sequence[Event], run: TracedRun) -> list[str]:
    """What the agent did to the Maildir, in words, from its own trace; a call that failed
    is said to have been made and to have failed."""
    steps = [e.request for e in events if isinstance(e, Step) and e.errno is None]
    creates = [r for r in steps if isinstance(r, Open) and OpenFlag.CREAT in r.flags]
    facts = []
    if creates:
        exclusive = all(OpenFlag.EXCL in r.flags for r in creates)
        where = sorted({r.path.rsplit("/", 2)[-2] + "/" for r in creates})
        facts.append(
            f"creates its file in {', '.join(where)} "
            + ("with O_EXCL" if exclusive else "without O_EXCL (an existing file is reused)")
        )
    writes = [r for r in steps if isinstance(r, Write)]
    failed_writes = _failing(events, Write)
    facts.append(
        f"writes {sum(len(w.data) for w in writes)} bytes in {len(writes)} calls"
        + (
            f"; {len(failed_writes)} write failed ({', '.join(failed_writes)})"
            if failed_writes
            else ""
        )
    )
    syncs = [r for r in steps if isinstance(r, Fsync | Fdatasync)]
    failed_syncs = _failing(events, (Fsync, Fdatasync))
    if syncs or failed_syncs:
        calls = len(syncs) + len(failed_syncs)
        text = f"calls fsync/fdatasync {'once' if calls == 1 else f'{calls} times'}"
        if failed_syncs:
            text += f"; {len(failed_syncs)} failed ({', '.join(failed_syncs)})"
        facts.append(text)
    else:
        facts.append("never calls fsync")
    if any(isinstance(r, Sync) for r in steps):
        facts.append("calls sync(2)/syncfs(2)")
    placing = [r for r in steps if isinstance(r, Link | Rename) and "/new/" in r.touches()[1] + "/"]
    for r in placing:
        kind = "links" if isinstance(r, Link) else "renames"
        facts.append(f"{kind} {r.touches()[0].rsplit('/', 2)[-2]}/... into new/")
    if not placing:
        facts.append("never links or renames a file into new/")
    delivered = run.delivered()
    for path, data in delivered.items():
        if data == run.message:
            facts.append(f"delivered {path}: the message byte for byte")
        elif data.endswith(run.message):
            added = data[: len(data) - len(run.message)].decode("utf-8", "replace")
            names = [line.split(":", 1)[0] for line in added.splitlines() if ":" in line]
            facts.append(f"delivered {path}: the message with {', '.join(names)} prepended")
        else:
            facts.append(f"delivered {path}: {len(data)} bytes that differ from the input")
    if not delivered:
        facts.append("left nothing in new/ or cur/")
    return facts


def complete_message(delivered: Mapping[str, bytes], message: bytes) -> bytes:
    """The complete message a run is judged against: what it left in new/ or cur/ when that
    is the input with at most some headers put before it; otherwise the input itself."""
    whole = [data for data in delivered.values() if data.endswith(message)]
    return whole[0] if whole else message


def check_run(
    run: TracedRun,
    envs: Sequence[str] = LOCAL_ENVS,
    temporary: Sequence[int] = TEMPORARY_EXIT,
    replay_command: str = "",
    messages: Sequence[MessageResult] = (),
) -> TraceReport:
    """Judge one traced run under each of `envs`, and the message set's runs: a message
    delivered with exit 0 but not as it was handed over breaks P1 under every profile."""
    events = translate(parse(run.trace), run.root, run.cwd)
    outcome = outcome_of(run.status, run.signal_name, temporary)
    delivered = run.delivered()
    content = complete_message(delivered, run.message)
    results = [replay(events, env, content, run.before, outcome) for env in envs]
    notes = list(run.notes)
    if len(delivered) > 1:
        notes.append(f"the run left {len(delivered)} new files in new/ and cur/")
    unmodeled = [e for e in events if isinstance(e, Unmodeled)]
    for e in unmodeled[:3]:
        notes.append(f"line {e.line}: {e.call} is not modelled ({e.why})")
    report = TraceReport(
        run,
        events,
        outcome,
        results,
        facts_of(events, run),
        unexplored(events, outcome),
        replay_command,
        notes,
    )
    add_messages(report, messages)
    return report


def add_messages(report: TraceReport, messages: Sequence[MessageResult]) -> None:
    """The message set's runs joined to `report`: one delivered with exit 0 but changed
    breaks P1 under every profile where the traced run held."""
    report.messages = list(messages)
    flagged = [m for m in messages if m.flagged]
    if not flagged:
        return
    why = "; ".join(f"the {m.name} message: {m.change}" for m in flagged)
    for r in report.results:
        if r.violation is None and not r.stopped:
            r.violated(
                Violation("P1", f"exit 0, but not the message handed over ({why})"),
                [f"{m.name} ({m.size} bytes): {m.change}" for m in flagged],
            )


def replay_command_for(
    command: Sequence[str],
    envs: Sequence[str],
    inject: Sequence[str],
    user: str | None,
    *,
    message_file: str | None = None,
    temporary: Sequence[int] = TEMPORARY_EXIT,
    timeout: float = 60.0,
    message_set: bool = True,
    faults: bool = False,
) -> str:
    """The `maildircheck trace` command line that repeats this check, every option that
    changes its verdict included (the message file by its absolute path)."""
    parts = ["maildircheck", "trace"]
    for env in envs:
        parts += ["--env", env]
    for spec in inject:
        parts += ["--inject", spec]
    if user:
        parts += ["--user", user]
    if message_file:
        parts += ["--message", os.path.abspath(message_file)]
    if tuple(temporary) != tuple(TEMPORARY_EXIT):
        parts += ["--temporary-exits", ",".join(map(str, temporary))]
    if timeout != 60.0:
        parts += ["--timeout", f"{timeout:g}"]
    if not message_set:
        parts.append("--no-message-set")
    if faults:
        parts.append("--faults")
    return shlex.join([*parts, "--", *command])


STDERR_SHOWN = 2000  # characters of the agent's standard error a report keeps


def said_on_stderr(run: TracedRun) -> str:
    """What the agent wrote on standard error, at most STDERR_SHOWN characters."""
    text = run.stderr
    if len(text) > STDERR_SHOWN:
        text = text[:STDERR_SHOWN] + f"... ({len(run.stderr) - STDERR_SHOWN} more characters)"
    return text


def exit_line(status: int, signal_name: str | None, said: object | None) -> str:
    """`exit status 75 (killed by SIGTERM): deferred` - how a program ended, and its report."""
    killed = f" (killed by {signal_name})" if signal_name else ""
    return f"exit status {status}{killed}: {said if said is not None else 'no report'}"


def render(report: TraceReport) -> list[str]:
    """The report as plain text lines (the CLI prints them)."""
    run = report.run
    lines = [
        f"traced: {shlex.join(run.command)}",
        f"verdict: {report.verdict.upper() if report.verdict == VIOLATED else report.verdict}",
        exit_line(run.status, run.signal_name, report.outcome),
        f"{sum(1 for e in report.events if isinstance(e, Step))} calls touched the Maildir",
        "what it does:",
        *(f"  - {fact}" for fact in report.facts),
        "verdicts (a crash or kill at every point, every crash state the profile allows):",
    ]
    for r in report.results:
        detail = str(r.violation) if r.violation else (r.stopped or "every property holds")
        shown = result_verdict(r.env, r.violation, r.stopped).upper()
        lines.append(f"  {r.env:<18} {shown:<10} {detail}")
        if environment_cannot(r.env):
            lines.append(
                f"  {'':<18} {'':<10} (no agent can keep P1/P2 here: the export acknowledges "
                "writes before they are stable, R2)"
            )
    for r in report.results:
        if r.violation is None:
            continue
        lines.append(f"counterexample under {r.env} ({r.violation.prop}):")
        lines += r.timeline.render().splitlines()
        break  # one counterexample is enough to read; the JSON has them all
    said = said_on_stderr(run)
    if said:
        lines.append("what it said on standard error:")
        lines += [f"  | {line}" for line in said.splitlines()]
    if report.messages:
        lines.append("the message set (each delivered once more, on a fresh Maildir):")
        for m in report.messages:
            said = f"exit {m.status}" if m.status >= 0 else f"killed by signal {-m.status}"
            what = f"CHANGED: {m.change}" if m.flagged else (m.change or m.kept)
            lines.append(f"  {m.name:<17} {m.size:>6} bytes  {said}: {what}")
    lines.append("what this replay cannot explore:")
    lines += [f"  - {note}" for note in report.unexplored]
    lines += [f"note: {note}" for note in report.notes]
    lines.append(f"replay: {report.replay_command}")
    return lines
