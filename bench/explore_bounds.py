"""Benchmark table: what the explorer can say for certain about the correct strategy.

For each local persistence profile, `explore(Check.of("correct", env), bound)` with the
default faults (kill, power-loss, sigterm, enospc, edquot, eio): every run of one delivery
with at most FAULT_STEPS faults (each injected reply at each syscall it can hit, a kill or
SIGTERM at every point, a power loss at every point in every crash state the profile
allows), up to SYSCALLS syscalls. A cell says whether a violation exists within that bound,
how many states were explored, the deepest run and the seconds it took on one core.

Prints the Markdown table docs/explore.md quotes (`--format md`, the default) or JSON.
Usage: python bench/explore_bounds.py [--fault-steps 2] [--syscalls 24] [--format md|json]
           [--env NAME]...
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from maildircheck.harness.check import Check
from maildircheck.harness.explore import Bound, explore
from maildircheck.model.environments import LOCAL

SYSCALLS = 24
FAULT_STEPS = 2


def row(env: str, bound: Bound) -> dict[str, Any]:
    found = explore(Check.of("correct", env), bound)
    return {
        "env": env,
        "verdict": "violated"
        if found.violation
        else ("holds within the bound" if found.complete else "not exhausted"),
        "violation": str(found.violation) if found.violation else None,
        "states": found.states,
        "depth": found.depth,
        "seconds": round(found.seconds, 1),
        "states_per_second": round(found.states / found.seconds) if found.seconds else None,
    }


def markdown(rows: list[dict[str, Any]], bound: Bound) -> str:
    head = (
        f"| profile | one delivery, at most {bound.faults} faults, up to {bound.syscalls} "
        "syscalls | states | deepest run (syscalls) | seconds | states/s |"
    )
    lines = [head, "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['verdict']} | {r['states']} | {r['depth']} | {r['seconds']} "
            f"| {r['states_per_second']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault-steps", type=int, default=FAULT_STEPS)
    parser.add_argument("--syscalls", type=int, default=SYSCALLS)
    parser.add_argument("--format", choices=("md", "json"), default="md")
    parser.add_argument("--env", action="append")
    args = parser.parse_args()
    bound = Bound(syscalls=args.syscalls, deliveries=1, faults=args.fault_steps)
    rows = [row(env, bound) for env in (args.env or [e.name for e in LOCAL])]
    print(markdown(rows, bound) if args.format == "md" else json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
