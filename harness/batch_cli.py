"""The `maildircheck batch` subcommand: the LMTP server's group commit checked in the model.

    maildircheck batch [--variant NAME,...] [--env PROFILE,...] [--max-examples N]
                       [--seed N] [--json]

It runs harness/batch_machine.py's search for the server's own algorithm (`group-commit`,
impl/batch.py) and for each flawed variant of impl/catalogue/batching.py, under each local
profile, and prints one line per (variant, profile) in the verdict vocabulary
(harness/vocabulary.py); with one variant and one profile, a violation's shrunk timeline
too (only then, and with --json, is a violation shrunk). Exit codes: 0 every check holds,
1 a violation found, 2 a usage error (harness.cli).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from maildircheck.harness.vocabulary import HOLDS, VIOLATED
from maildircheck.impl.batch import GROUP_COMMIT, BatchSteps
from maildircheck.impl.catalogue.batching import VARIANTS
from maildircheck.model.environments import ENVIRONMENTS

if TYPE_CHECKING:
    from maildircheck.harness.batch_machine import BatchVerdict

LOCAL = tuple(e.name for e in ENVIRONMENTS.values() if e.mount is None)
ALGORITHMS: dict[str, tuple[str, BatchSteps]] = {
    "group-commit": ("M1-M5", GROUP_COMMIT),
    **VARIANTS,
}
"""name -> (spec, steps): the server's algorithm first, then its flawed variants."""


def _listed(known: tuple[str, ...], what: str) -> Any:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if not names or unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or repr(text)} (known: {', '.join(known)})"
            )
        return names

    return parse


def add_parser(commands: Any, number: Any) -> argparse.ArgumentParser:
    batch: argparse.ArgumentParser = commands.add_parser(
        "batch",
        help="check the LMTP server's group commit (and its flawed variants) in the model",
        description="Search, per recipient, for a violation of P1, P2, P4, P5 and "
        "answered-exactly-once by the batch algorithm of maildir-deliver --lmtp, with "
        "messages for two mailboxes, reply faults, kill -9, power loss and client retries "
        "(spec M6). Exit 0 when every check holds, 1 on a violation.",
        allow_abbrev=False,
    )
    batch.add_argument(
        "--variant",
        type=_listed(tuple(ALGORITHMS), "variant"),
        default=list(ALGORITHMS),
        metavar="NAME,...",
        help=", ".join(ALGORITHMS) + " (default: all)",
    )
    batch.add_argument(
        "--env",
        type=_listed(LOCAL, "profile"),
        default=list(LOCAL),
        metavar="PROFILE,...",
        help=", ".join(LOCAL) + " (default: all)",
    )
    batch.add_argument("--max-examples", type=number, default=300, metavar="N")
    batch.add_argument("--seed", type=int, default=1, metavar="N")
    batch.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    return batch


def run(args: argparse.Namespace) -> list[tuple[str, BatchVerdict]]:
    from maildircheck.harness.batch_machine import check_batch  # Hypothesis: only when run

    shrink = args.json or len(args.variant) * len(args.env) == 1  # a timeline is shown
    return [
        (name, check_batch(ALGORITHMS[name][1], env, args.max_examples, args.seed, shrink))
        for name in args.variant
        for env in args.env
    ]


def verdict(found: BatchVerdict) -> str:
    return HOLDS if found.holds else VIOLATED


def as_json(found: list[tuple[str, BatchVerdict]]) -> dict[str, Any]:
    return {
        "checks": [
            {
                "variant": name,
                "spec": ALGORITHMS[name][0],
                "env": v.env,
                "verdict": verdict(v),
                "violation": None
                if v.violation is None
                else {"property": v.violation.prop, "why": v.violation.why},
                "examples": v.examples,
                "timeline": v.timeline,
            }
            for name, v in found
        ]
    }


def report(found: list[tuple[str, BatchVerdict]]) -> str:
    width = max(len(name) for name, _ in found)
    lines = []
    for name, v in found:
        said = verdict(v) if v.violation is None else f"{verdict(v)} {v.violation}"
        lines.append(f"{name:<{width}}  {v.env:<14}  {said}")
    if len(found) == 1 and found[0][1].timeline:
        lines += ["", "the shrunk run:", *(f"  {line}" for line in found[0][1].timeline)]
    return "\n".join(lines)


def exit_code(found: list[tuple[str, BatchVerdict]]) -> int:
    return 0 if all(v.holds for _, v in found) else 1
