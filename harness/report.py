"""What `maildircheck` shows a person: the verdict report and the catalogue listing.

This module owns the human renderings, made with rich: `print_verdict` (a header naming
the strategy, profile and faults, a table of the properties and their status, and on a
violation the reason, the counterexample's timeline, the figures and the replay command)
and `print_catalogue` (the strategies, profiles, faults and properties). The timeline and
the replay command are written as plain text, never wrapped, so they align and can be
copied when piped; colour is rich's to decide (none when piped or under NO_COLOR). The
command line and the JSON output are `maildircheck.harness.cli`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from maildircheck.harness.verify import ENVIRONMENT_WHY, Verdict
from maildircheck.harness.vocabulary import ENVIRONMENT_CANNOT
from maildircheck.model.properties import PROPERTIES

STATUS_STYLE = {
    "holds": "green",
    "violated": "bold red",
    "observed": "yellow",
    "not checked": "dim",
}


def _console() -> Console:
    # Made per call, so it writes to whatever sys.stdout is now (pytest swaps it).
    return Console(highlight=False)


def strategy_summary(bug_class: str | None, summary: str) -> str:
    """ "B1: what it does", whether or not the summary already starts with "B1 - "."""
    if not bug_class:
        return summary
    rest = summary.removeprefix(bug_class).lstrip(" -:")
    return f"{bug_class}: {rest}" if rest else bug_class


def _header(verdict: Verdict, max_examples: int) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    check, info = verdict.check, verdict.check.info
    strategy = check.strategy
    if info.bug_class or info.summary:
        strategy += f"  ({strategy_summary(info.bug_class, info.summary)})"
    grid.add_row("strategy", Text(strategy))
    if info.expected:
        grid.add_row("expected to break", Text(", ".join(info.expected)))
    grid.add_row("env", Text(f"{check.env.name}  ({check.env.summary})"))
    grid.add_row("faults", Text(", ".join(f.name for f in check.faults) or "none"))
    seed = "derandomized" if check.seed is None else f"seed {check.seed}"
    if verdict.spread is None:
        grid.add_row("budget", Text(f"{max_examples} examples, {seed}"))
    else:  # the search shown is the one its replay repeats; the others apart
        spread = verdict.spread
        grid.add_row("budget", Text(f"{check.max_examples} examples, {seed}"))
        grid.add_row(
            "searches",
            Text(
                f"{spread.searches} workers, seeds {spread.first_seed}..{spread.last_seed}, "
                f"{spread.examples} examples in all; shown: seed {check.seed}'s"
            ),
        )
    return grid


def _property_table(verdict: Verdict) -> Table:
    table = Table(title="Properties", title_justify="left")
    table.add_column("ID")
    table.add_column("property")
    table.add_column("kind")
    table.add_column("status")
    for pid, prop in PROPERTIES.items():
        status = verdict.status(pid)
        table.add_row(
            pid,
            prop.name,
            prop.kind,
            Text(status, style=STATUS_STYLE.get(status, "")),
        )
    return table


def _figures(verdict: Verdict) -> str:
    return (
        f"{verdict.examples} examples, {verdict.syscalls} syscalls, {verdict.seconds:.2f} seconds"
    )


def print_verdict(verdict: Verdict, max_examples: int, console: Console | None = None) -> None:
    """The human report of one `verify` run of `max_examples` examples (the verdict's own
    Check is one worker's share when the run was spread)."""
    out = console or _console()
    out.print(Text("maildircheck verify", style="bold"))
    out.print(_header(verdict, max_examples))
    out.print()
    out.print(_property_table(verdict))
    violation = verdict.violation
    if violation is None:
        out.print(Text(f"Every checked property holds ({_figures(verdict)}).", style="green"))
    else:
        name = PROPERTIES[violation.prop].name if violation.prop in PROPERTIES else "lifecycle"
        out.print(Text(f"VIOLATED {violation.prop} {name}", style="bold red"))
        out.print(Text(f"  {violation.why}"))
        if verdict.timeline is not None:
            out.print()
            out.print(Text(f"Counterexample ({verdict.timeline.syscalls} syscalls):", "bold"))
            out.out(verdict.timeline.render(), highlight=False)
        out.print()
        out.print(Text(f"Found after {_figures(verdict)}."))
    for pid, first in verdict.observed.items():
        if verdict.status(pid) == "observed":
            out.print(Text(f"Observed, not checked: {first}", style="yellow"))
    out.print()
    if verdict.environment is not None and verdict.environment.violation is not None:
        out.print(Text(f"Verdict on the environment: {ENVIRONMENT_CANNOT}", style="bold red"))
        out.out(f"  {ENVIRONMENT_WHY}", highlight=False)
        out.out(f"  even the correct strategy: {verdict.environment.violation}", highlight=False)
        if verdict.environment.timeline is not None:
            out.out(verdict.environment.timeline.render(), highlight=False)
    out.print(Text("Replay:", style="bold"))
    out.out("  " + verdict.replay_command(), highlight=False)


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def print_catalogue(data: Mapping[str, Any], console: Console | None = None) -> None:
    """The human rendering of `maildircheck list` (`data` as the CLI's `catalogue()`)."""
    out = console or _console()
    out.print(
        _table(
            "Strategies",
            ("name", "breaks", "summary"),
            [
                (
                    s["name"],
                    ", ".join(s["expected"]) or "-",
                    strategy_summary(s["bug_class"], s["summary"]),
                )
                for s in data["strategies"]
            ],
        )
    )
    out.print(
        _table(
            "Profiles (--env)",
            ("name", "summary", "spec"),
            [(p["name"], p["summary"], ", ".join(p["specs"])) for p in data["profiles"]],
        )
    )
    out.print(
        _table(
            "Faults (--faults)",
            ("name", "summary", "spec"),
            [(f["name"], f["summary"], f["spec"]) for f in data["faults"]],
        )
    )
    out.print(
        _table(
            "Properties",
            ("ID", "name", "kind", "statement"),
            [(p["id"], p["name"], p["kind"], p["statement"]) for p in data["properties"]],
        )
    )
    out.out(
        "Strategies may also be given as path/to/file.py:function. "
        "Default faults: " + ", ".join(data["default_faults"]) + ".",
        highlight=False,
    )
