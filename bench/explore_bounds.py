"""Benchmark table: what the explorer can say for certain about the correct strategy.

For each local persistence profile, `explore(Check.of("correct", env), bound)` with the
default faults (kill, power-loss, sigterm, enospc, edquot, eio): every run of `--deliveries`
deliveries with at most `--fault-steps` faults (each injected reply at each syscall it can
hit, a kill or SIGTERM at every point, a power loss at every point in every crash state the
profile allows) and at most `--preemptions` switches between running processes, up to
`--syscalls` syscalls. A cell says whether a violation exists within that bound, how many
states were explored, the deepest run and the seconds it took in `--workers` processes.

The two tables docs/explore.md quotes are the defaults (one delivery, three faults, 30
syscalls, one process) and `--deliveries 2 --fault-steps 1 --syscalls 40 --workers 2`.

Prints the Markdown table (`--format md`, the default) or JSON.
Usage: python bench/explore_bounds.py [--deliveries 1] [--fault-steps 3] [--preemptions 1]
           [--syscalls 30] [--workers 1] [--format md|json] [--env NAME]...
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from maildircheck.harness.check import Check
from maildircheck.harness.explore import Bound, explore
from maildircheck.model.environments import LOCAL

SYSCALLS = 30
FAULT_STEPS = 3


def row(env: str, bound: Bound, workers: int = 1) -> dict[str, Any]:
    found = explore(Check.of("correct", env), bound, workers=workers)
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
    deliveries = "one delivery" if bound.deliveries == 1 else f"{bound.deliveries} deliveries"
    switches = f", at most {bound.preemptions} preemption" if bound.deliveries > 1 else ""
    head = (
        f"| profile | {deliveries}, at most {bound.faults} faults{switches}, up to "
        f"{bound.syscalls} syscalls | states | deepest run (syscalls) | seconds | states/s |"
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
    parser.add_argument("--deliveries", type=int, default=1)
    parser.add_argument("--fault-steps", type=int, default=FAULT_STEPS)
    parser.add_argument("--preemptions", type=int, default=1)
    parser.add_argument("--syscalls", type=int, default=SYSCALLS)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--format", choices=("md", "json"), default="md")
    parser.add_argument("--env", action="append")
    args = parser.parse_args()
    bound = Bound(
        syscalls=args.syscalls,
        deliveries=args.deliveries,
        faults=args.fault_steps,
        preemptions=args.preemptions,
    )
    rows = [row(env, bound, args.workers) for env in (args.env or [e.name for e in LOCAL])]
    print(markdown(rows, bound) if args.format == "md" else json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
