"""The `maildircheck explore` subcommand: its options, its bound, its report (text and JSON).

    maildircheck explore --strategy NAME|FILE.py:FUNCTION --env PROFILE [--faults LIST]
                         [--syscalls N] [--deliveries N] [--fault-steps N] [--jumps N]
                         [--preemptions N] [--sizes N,N...] [--reader N] [--cleaner N]
                         [--max-states N] [--workers N] [--quality] [--strict-lifecycle]
                         [--json] [--[no-]progress]

Running the exploration is harness/explore.py's; the exit code and the error line are
`harness.cli`'s: 0 no violation within the bound, 1 a violation (the shortest), 3 the bound
was not exhausted (a state limit, or a crash with more states than are tried), so no
answer is given.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.faults import DEFAULT_FAULTS, names
from maildircheck.model.properties import PROPERTIES

if TYPE_CHECKING:
    from maildircheck.harness.explore import Bound, Exploration

DEFAULT_MAX_STATES = 200_000


def add_parser(commands: Any, number: Any) -> argparse.ArgumentParser:
    """Register `explore` on the main parser's subcommands (`number` parses a count)."""
    explore: argparse.ArgumentParser = commands.add_parser(
        "explore",
        help="search every run within a bound, breadth first: the shortest counterexample",
        description="Enumerate every run of the strategy within the bound, in order of "
        "syscalls, and print the first that violates a checked property - a shortest "
        "counterexample - or say that none exists within the bound. Exit 0: none within "
        "the bound; 1: a violation; 3: the bound was not exhausted.",
        allow_abbrev=False,
    )
    explore.add_argument("--strategy", required=True, metavar="NAME|FILE.py:FUNCTION")
    explore.add_argument("--env", required=True, metavar="PROFILE", help=", ".join(ENVIRONMENTS))
    explore.add_argument("--faults", default=names(DEFAULT_FAULTS), metavar="LIST")
    for flag, default, what in (
        ("--syscalls", 20, "the most syscalls a run makes"),
        ("--deliveries", 1, "the most deliveries a run starts"),
        ("--fault-steps", 1, "the most faults a run has: injected replies, kills, crashes"),
        ("--jumps", 0, "the most clock jumps a run has"),
        ("--preemptions", 1, "the most times a run switches from a live process to another"),
        ("--reader", 0, "the most syscalls the reader (new/ -> cur/) makes"),
        ("--cleaner", 0, "the most syscalls the tmp/ cleaner makes"),
        ("--max-states", DEFAULT_MAX_STATES, "stop (exit 3) after this many states"),
        ("--workers", 1, "expand each depth's states in this many processes"),
    ):
        explore.add_argument(
            flag, type=number, default=default, metavar="N", help=f"{what} (%(default)s)"
        )
    explore.add_argument(
        "--sizes",
        type=sizes,
        default=(1,),
        metavar="N,N...",
        help="the sizes in bytes a new message may have (1)",
    )
    explore.add_argument("--quality", action="store_true", help="also fail on P6")
    explore.add_argument("--strict-lifecycle", action="store_true", help="also fail on L1")
    explore.add_argument("--json", action="store_true", help="print the result as JSON")
    return explore


def sizes(text: str) -> tuple[int, ...]:
    """`--sizes 1,2,65537`: message sizes, each at least one byte."""
    try:
        found = tuple(int(part) for part in text.split(","))
    except ValueError:
        found = ()
    if not found or min(found) < 1:
        raise argparse.ArgumentTypeError(f"not a list of sizes of at least 1 byte: {text!r}")
    return found


def bound_from(args: argparse.Namespace) -> Bound:
    from maildircheck.harness.explore import Bound

    return Bound(
        syscalls=args.syscalls,
        deliveries=args.deliveries,
        faults=args.fault_steps,
        jumps=args.jumps,
        preemptions=args.preemptions,
        sizes=args.sizes,
        reader=args.reader,
        cleaner=args.cleaner,
    )


def verdict(found: Exploration) -> str:
    if found.violation is not None:
        return "violated"
    return "holds within the bound" if found.complete else "not exhausted"


def exit_code(found: Exploration) -> int:
    return {"violated": 1, "holds within the bound": 0}.get(verdict(found), 3)


def as_json(found: Exploration) -> dict[str, Any]:
    v = found.violation
    return {
        "verdict": verdict(found),
        "strategy": found.check.strategy,
        "env": found.check.env.name,
        "faults": [f.name for f in found.check.faults],
        "bound": {
            "syscalls": found.bound.syscalls,
            "deliveries": found.bound.deliveries,
            "fault_steps": found.bound.faults,
            "jumps": found.bound.jumps,
            "preemptions": found.bound.preemptions,
            "sizes": list(found.bound.sizes),
            "reader": found.bound.reader,
            "cleaner": found.bound.cleaner,
        },
        "violation": None
        if v is None
        else {"property": v.prop, "name": PROPERTIES[v.prop].name, "why": v.why},
        "counterexample": None
        if found.timeline is None
        else {"syscalls": found.timeline.syscalls, "steps": found.timeline.as_json()},
        "states": found.states,
        "depth": found.depth,
        "states_by_depth": {str(k): n for k, n in found.by_depth.items()},
        "complete": found.complete,
        "seconds": round(found.seconds, 3),
        "workers": found.workers,
    }


def report(found: Exploration) -> str:
    b = found.bound
    lines = [
        "maildircheck explore",
        f"strategy  {found.check.strategy}",
        f"env       {found.check.env.name}",
        f"faults    {names(found.check.faults) or 'none'}",
        f"bound     {b.syscalls} syscalls, {b.deliveries} deliveries, {b.faults} fault "
        f"steps, {b.jumps} clock jumps, {b.preemptions} preemptions, messages of "
        f"{', '.join(map(str, b.sizes))} bytes, {b.reader} reader syscalls, "
        f"{b.cleaner} cleaner syscalls",
        "",
    ]
    figures = f"{found.states} states, depth {found.depth}, {found.seconds:.2f} seconds"
    if found.violation is not None and found.timeline is not None:
        lines += [
            f"VIOLATED {found.violation}",
            "",
            f"Shortest counterexample ({found.timeline.syscalls} syscalls):",
            found.timeline.render(),
            "",
            f"Found after {figures}.",
        ]
    elif found.complete:
        lines.append(f"No violation within the bound ({figures}).")
    else:
        lines.append(
            f"Not exhausted: no violation in the {figures} explored, but the bound was not "
            "searched to the end (the state limit, or a crash with more states than are "
            "tried); no answer."
        )
    return "\n".join(lines)
