"""The traced-agent table: real agents' `maildircheck trace` reports as one Markdown table.

This module owns the table's text and its place in a document: one row per agent, with
what its trace shows it syncs and how it moves the file into new/, its verdict under each
profile for an ordinary delivery, and the verdict of a run with an injected fault; and the
table's place between START and END in docs/traced-agents.md. Making the runs is the
caller's job (tests/test_trace_agents.py makes them in CI and compares the table with the
document's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from maildircheck.harness.host import ROOT
from maildircheck.harness.trace.replay import ReplayResult
from maildircheck.harness.trace.translator import Dup, Step
from maildircheck.harness.trace.verdicts import TraceReport
from maildircheck.model.syscalls import Fdatasync, Fsync, Link, Open, Rename

START = "<!-- agent-table:start -->"
END = "<!-- agent-table:end -->"


@dataclass(frozen=True)
class AgentRow:
    agent: str
    report: TraceReport  # an ordinary delivery
    fault: TraceReport | None = None  # the same command with an injected fault


def verdict(result: ReplayResult) -> str:
    """`holds`, the violated property (`P2`) or `incomplete`."""
    if result.violation is not None:
        return result.violation.prop
    return result.verdict


def synced(report: TraceReport) -> list[str]:
    """What the agent's successful fsync/fdatasync calls flushed, in order: `file` for a
    file in tmp/ or new/, `new/` (or another directory) for a directory."""
    opened: dict[tuple[int, int], str] = {}
    found: list[str] = []
    for event in report.events:
        if isinstance(event, Dup) and (event.pid, event.old) in opened:
            opened[(event.pid, event.new)] = opened[(event.pid, event.old)]
        if not isinstance(event, Step) or event.errno is not None:
            continue
        request = event.request
        if isinstance(request, Open) and event.result is not None:
            opened[(event.pid, event.result)] = request.path
        elif isinstance(request, Fsync | Fdatasync):
            path = opened.get((event.pid, request.fd), "")
            rel = path[len(ROOT) + 1 :] if path.startswith(ROOT + "/") else path
            if not path:
                what = f"fd {request.fd}"
            else:
                what = "file" if "/" in rel else f"{rel or 'the Maildir'}/"
            if isinstance(request, Fdatasync):
                what += " (fdatasync)"
            if what not in found:
                found.append(what)
    return found


def placement(report: TraceReport) -> str:
    """How the file reached new/: `link`, `rename` or `-`."""
    ways = []
    for event in report.events:
        if isinstance(event, Step) and event.errno is None:
            request = event.request
            if isinstance(request, Link | Rename) and request.dst.startswith(f"{ROOT}/new/"):
                ways.append("link" if isinstance(request, Link) else "rename")
    return ", ".join(dict.fromkeys(ways)) or "-"


def _shown(text: str) -> str:
    return text if text in ("holds", "incomplete") else f"**{text}**"


def fault_cell(report: TraceReport, envs: Sequence[str]) -> str:
    """`fsync:EIO` -> exit 111: holds (one verdict when every profile agrees)."""
    spec = ", ".join(f"`{s}`" for s in report.run.inject) or "none"
    by_env = {r.env: verdict(r) for r in report.results if r.env in envs}
    kinds = set(by_env.values())
    if len(kinds) == 1:
        verdicts = _shown(kinds.pop())
    else:
        verdicts = ", ".join(f"{env} {_shown(v)}" for env, v in by_env.items())
    return f"{spec} → exit {report.run.status}: {verdicts}"


def render_table(rows: Sequence[AgentRow], envs: Sequence[str]) -> str:
    """The Markdown table, one row per agent, ending with a newline."""
    head = ["agent", "fsyncs", "into new/", *envs, "injected fault (every profile)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        by_env = {r.env: verdict(r) for r in row.report.results}
        cells = [
            row.agent,
            ", ".join(synced(row.report)) or "nothing",
            placement(row.report),
            *(_shown(by_env.get(env, "not run")) for env in envs),
            fault_cell(row.fault, envs) if row.fault is not None else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def embedded(document: str) -> str:
    """The text between START and END (exclusive, without the newline after START)."""
    if START not in document or END not in document:
        raise ValueError(f"the document has no {START} ... {END} block")
    inner = document.split(START, 1)[1].split(END, 1)[0]
    return inner.removeprefix("\n")


def with_table(document: str, table: str) -> str:
    """`document` with the block between START and END replaced by `table`."""
    head, rest = document.split(START, 1)
    return f"{head}{START}\n{table}{END}{rest.split(END, 1)[1]}"
