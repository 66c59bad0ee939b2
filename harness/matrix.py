"""The durability matrix: strategies x environments x properties.

Each cell is one `Check` (harness/check.py) with its environment's threat model
(`Environment.threat`: the default faults on a local disk; on NFS also server and client
crashes, lost replies and soft time-outs), built by `cell_checks` and run by `run_matrix`. A cell
says which property broke first, if any, and links to its shrunk counterexample and the
command that replays it. `as_markdown`, `as_json` and `as_html` render the same data; the
HTML page is self-contained (no script, no external file) and draws each counterexample as
an inline SVG timeline (harness/svg.py).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from maildircheck.harness.check import Check, CheckError
from maildircheck.harness.parallel import completed
from maildircheck.harness.progress import Progress
from maildircheck.harness.svg import render_svg
from maildircheck.harness.trace.replay import ReplayResult
from maildircheck.harness.verify import Verdict
from maildircheck.harness.vocabulary import (
    VIOLATED,
    not_checked,
    result_verdict,
)
from maildircheck.model.environments import ENVIRONMENTS, environment
from maildircheck.model.properties import ALWAYS

STYLE = (
    "body{font-family:sans-serif;margin:16px}td,th{border:1px solid #999;padding:4px 8px}"
    "table{border-collapse:collapse}.ok{background:#dfd}.bad{background:#fdd}"
    "pre{font-size:12px;background:#f6f6f6;padding:8px;overflow-x:auto}"
    ".diagram{overflow-x:auto;margin:8px 0}section{margin-top:28px}"
)


@dataclass
class TracedRow:
    """A program checked with `maildircheck trace`: one run, replayed under each column."""

    name: str
    results: dict[str, ReplayResult]
    replay: str
    not_checked: str | None = None  # why the run cannot be judged (TraceReport.not_checked)
    stderr: str = ""  # what the program said on standard error (bounded)

    def text(self, env: str) -> str:
        r = self.results[env]
        if self.not_checked is not None:
            return not_checked(self.not_checked)
        verdict = result_verdict(env, r.violation, r.stopped)
        if verdict == VIOLATED and r.violation is not None:
            return f"{r.violation.prop} violated"
        return verdict

    def counterexample(self, env: str) -> str:
        return self.results[env].timeline.render()


@dataclass
class Matrix:
    strategies: list[str]
    envs: list[str]
    cells: dict[tuple[str, str], Verdict]
    seconds: float
    traced: list[TracedRow] = field(default_factory=list)

    def anchor(self, strategy: str, env: str) -> str:
        return f"{strategy}--{env}"

    def cell_text(self, strategy: str, env: str) -> str:
        return result_text(self.cells[(strategy, env)])

    def as_json(self) -> dict[str, Any]:
        return {
            "strategies": self.strategies,
            "envs": self.envs,
            "faults": {env: [f.name for f in ENVIRONMENTS[env].threat] for env in self.envs},
            "seconds": round(self.seconds, 2),
            "cells": [
                {
                    "strategy": s,
                    "env": e,
                    "result": self.cell_text(s, e),
                    **self.cells[(s, e)].as_json(),
                }
                for s in self.strategies
                for e in self.envs
            ],
            "traced": [
                {
                    "program": row.name,
                    "replay": row.replay,
                    "stderr": row.stderr,
                    "cells": [
                        {
                            "env": e,
                            "result": row.text(e),
                            "property": r.violation.prop if r.violation else None,
                            "why": r.violation.why if r.violation else None,
                            "stopped": r.stopped,
                            "counterexample": row.counterexample(e) if r.violation else None,
                        }
                        for e in self.envs
                        for r in [row.results[e]]
                    ],
                }
                for row in self.traced
            ],
        }

    def as_markdown(self) -> str:
        head = "| strategy | " + " | ".join(self.envs) + " |"
        rule = "|---|" + "---|" * len(self.envs)
        rows = [
            f"| {s} | " + " | ".join(self._md_cell(s, e) for e in self.envs) + " |"
            for s in self.strategies
        ]
        rows += [
            f"| {row.name} (traced) | "
            + " | ".join(
                f"[{row.text(e)}](#{self.anchor(row.name, e)})"
                if row.results[e].violation
                else row.text(e)
                for e in self.envs
            )
            + " |"
            for row in self.traced
        ]
        out = [
            head,
            rule,
            *rows,
            "",
            f"Checked properties: {', '.join(ALWAYS)}; "
            f"{len(self.cells)} cells in {self.seconds:.1f} s.",
            "",
        ]
        for s in self.strategies:
            for e in self.envs:
                v = self.cells[(s, e)]
                if v.violation is None or v.timeline is None:
                    continue
                out += [
                    f"### {self.anchor(s, e)}",
                    "",
                    f"{v.violation}",
                    "",
                    "```text",
                    v.timeline.render(),
                    "```",
                    "",
                    f"Replay: `{v.replay_command()}`",
                    "",
                ]
        for row in self.traced:
            for e in self.envs:
                violation = row.results[e].violation
                if violation is None:
                    continue
                out += [f"### {self.anchor(row.name, e)}", "", f"{violation}", "", "```text"]
                out += [row.counterexample(e), "```", "", f"Replay: `{row.replay}`", ""]
        return "\n".join(out)

    def _md_cell(self, s: str, e: str) -> str:
        text = self.cell_text(s, e)
        if self.cells[(s, e)].violation is not None:
            return f"[{text}](#{self.anchor(s, e)})"
        return text

    def as_html(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(e)}</th>" for e in self.envs)
        rows = []
        for s in self.strategies:
            tds = []
            for e in self.envs:
                v = self.cells[(s, e)]
                text = esc(self.cell_text(s, e))
                cls = "bad" if v.violation is not None else "ok"
                link = f'<a href="#{esc(self.anchor(s, e))}">{text}</a>' if cls == "bad" else text
                tds.append(f'<td class="{cls}">{link}</td>')
            rows.append(f"<tr><th>{esc(s)}</th>{''.join(tds)}</tr>")
        for row in self.traced:
            tds = []
            for e in self.envs:
                text, bad = esc(row.text(e)), row.results[e].violation is not None
                link = f'<a href="#{esc(self.anchor(row.name, e))}">{text}</a>' if bad else text
                tds.append(f'<td class="{"bad" if bad else "ok"}">{link}</td>')
            rows.append(f"<tr><th>{esc(row.name)} (traced)</th>{''.join(tds)}</tr>")
        details = []
        for s in self.strategies:
            for e in self.envs:
                v = self.cells[(s, e)]
                if v.violation is None or v.timeline is None:
                    continue
                details.append(
                    f'<section id="{esc(self.anchor(s, e))}"><h3>{esc(s)} on {esc(e)}</h3>'
                    f"<p>{esc(str(v.violation))}</p>"
                    f'<div class="diagram">{render_svg(v.timeline)}</div>'
                    f"<details><summary>as text</summary><pre>{esc(v.timeline.render())}</pre>"
                    "</details>"
                    f"<p>Replay:</p><pre class='replay'>{esc(v.replay_command())}</pre></section>"
                )
        for row in self.traced:
            for e in self.envs:
                violation = row.results[e].violation
                if violation is not None:
                    details.append(
                        f'<section id="{esc(self.anchor(row.name, e))}"><h3>{esc(row.name)} '
                        f"(traced) on {esc(e)}</h3><p>{esc(str(violation))}</p>"
                        f'<div class="diagram">{render_svg(row.results[e].timeline)}</div>'
                        f"<details><summary>as text</summary>"
                        f"<pre>{esc(row.counterexample(e))}</pre></details>"
                        + (f"<p>Standard error:</p><pre>{esc(row.stderr)}</pre>" * bool(row.stderr))
                        + f"<p>Replay:</p><pre class='replay'>{esc(row.replay)}</pre></section>"
                    )
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>maildircheck matrix"
            f"</title><style>{STYLE}</style></head><body><h1>Durability matrix</h1>"
            f"<table><tr><th>strategy</th>{head}</tr>{''.join(rows)}</table>"
            f"<p>Checked: {esc(', '.join(ALWAYS))}. {len(self.cells)} cells in "
            f"{self.seconds:.1f} s.</p>{''.join(details)}</body></html>"
        )


def trace_rows(programs: Iterable[str], envs: list[str]) -> list[TracedRow]:
    """`NAME=[TRACE OPTIONS --] COMMAND ARGS` (or just a command) -> a traced row per
    program, run and judged as `maildircheck trace` would under every column, with the
    options it takes for a program (harness/trace/cli.py `row_report`)."""
    from maildircheck.harness.trace.cli import row_report
    from maildircheck.harness.trace.verdicts import said_on_stderr

    rows = []
    for spec in programs:
        name, sep, command_text = spec.partition("=")
        if not sep or " " in name:
            name, command_text = spec.split()[0].rsplit("/", 1)[-1], spec
        report = row_report(command_text, envs)
        results = {r.env: r for r in report.results}
        said = said_on_stderr(report.run)
        rows.append(TracedRow(name, results, report.replay_command, report.not_checked, said))
    return rows


def result_text(v: Verdict) -> str:
    """A cell's verdict in a few words."""
    if v.violation is not None:
        return f"{v.violation.prop} violated"
    return v.verdict


def cell_checks(
    strategies: Iterable[str],
    envs: Iterable[str] | None = None,
    *,
    max_examples: int = 200,
    seed: int = 1,
) -> list[Check]:
    """A Check per cell: every strategy under every environment (default: all of them),
    each with its environment's threat model. Raises CheckError for a bad name."""
    try:
        columns = [environment(e) for e in (ENVIRONMENTS if envs is None else envs)]
    except ValueError as err:
        raise CheckError(str(err)) from None
    return [
        Check.of(s, e, e.threat, max_examples=max_examples, seed=seed)
        for s in strategies
        for e in columns
    ]


def run_matrix(
    checks: Iterable[Check],
    envs: Iterable[str] | None = None,
    *,
    progress: Progress | None = None,
    workers: int = 1,
) -> Matrix:
    """Run every cell's check; the columns are `envs` (default: the checks'
    environments; a matrix of traced rows alone has columns and no checks). With `workers`
    > 1 the cells are spread over that many processes (same results). `progress` hears
    of each cell as it starts and finishes (harness/progress.py)."""
    jobs = list(checks)
    strategy_list = list(dict.fromkeys(c.strategy for c in jobs))
    env_list = list(dict.fromkeys(c.env.name for c in jobs) if envs is None else envs)
    progress = progress or Progress()
    progress.start("matrix", len(jobs), "cells")
    if workers > 1:
        progress.now(f"{len(jobs)} cells on {workers} processes")
    started = time.perf_counter()
    cells: dict[tuple[str, str], Verdict] = {}
    try:
        for i, verdict in completed(jobs, workers, lambda c: progress.now(c.label)):
            cells[(jobs[i].strategy, jobs[i].env.name)] = verdict
            progress.advance(jobs[i].label, result_text(verdict))
    finally:
        broken = sum(1 for v in cells.values() if v.violation is not None)
        progress.stop(f"{len(cells)} cells, {broken} with a violation")
    ordered = {(c.strategy, c.env.name): cells[(c.strategy, c.env.name)] for c in jobs}
    return Matrix(strategy_list, env_list, ordered, time.perf_counter() - started)
