"""Benchmark table: what the checker finds for every catalogue entry on every local profile.

For each entry (the correct strategy first) and each local persistence profile, one search
`verify(Check.of(name, env, faults, max_examples=N, seed=S, quality=...))`, where `faults`
is the entry's `exposed_by` faults (impl/strategies.py) or the default set when it has
none, and `quality` is on for the entries expected to break P6. A cell is the property
the search found violated, or "holds" when it found nothing within the budget.

Prints the Markdown table docs/algorithm.md quotes (`--format md`, the default) or JSON.
Usage: python bench/catalogue_table.py [--max-examples 300] [--seed 1] [--format md|json]
           [--only NAME]...
"""

from __future__ import annotations

import argparse
import json

from maildircheck.harness.check import Check
from maildircheck.harness.verify import verify
from maildircheck.impl.strategies import CATALOGUE
from maildircheck.model.environments import LOCAL
from maildircheck.model.faults import DEFAULT_FAULTS, Fault, names


def searched(name: str) -> tuple[tuple[Fault, ...], bool]:
    """The faults an entry's row is searched with, and whether P6 is checked."""
    info = CATALOGUE[name]
    return (info.exposed_by or DEFAULT_FAULTS), "P6" in info.expected


def cell(name: str, env: str, max_examples: int = 300, seed: int = 1) -> str:
    """One search: the property found violated, or "holds"."""
    faults, quality = searched(name)
    v = verify(Check.of(name, env, faults, max_examples=max_examples, seed=seed, quality=quality))
    return "holds" if v.violation is None else v.violation.prop


def row(name: str, max_examples: int, seed: int) -> dict[str, str]:
    """One entry's cells: its faults, then each local profile's verdict."""
    info = CATALOGUE[name]
    faults, quality = searched(name)
    cells = {"entry": f"{name} ({info.bug_class})" if info.bug_class else name}
    shown = "default" if faults == DEFAULT_FAULTS else names(faults).replace(",", ", ")
    cells["faults"] = shown + (", `--quality`" if quality else "")
    for env in LOCAL:
        cells[env.name] = cell(name, env.name, max_examples, seed)
    return cells


def markdown(rows: list[dict[str, str]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r[h] for h in head) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=("md", "json"), default="md")
    parser.add_argument("--only", action="append", help="entries to run (default: all)")
    args = parser.parse_args()
    unknown = [n for n in args.only or [] if n not in CATALOGUE]
    if unknown:
        parser.error(f"no catalogue entry named {unknown[0]!r}")
    rows = [row(n, args.max_examples, args.seed) for n in args.only or CATALOGUE]
    print(markdown(rows) if args.format == "md" else json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
