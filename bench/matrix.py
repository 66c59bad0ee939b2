"""Benchmark: the durability matrix of the whole catalogue over every environment.

Prints JSON: cells, seconds, and the verdict of every cell. Target (issue 4): the
catalogue over all profiles in under 2 minutes on 2 cores.
Usage: python bench/matrix.py [--max-examples 200]
"""

from __future__ import annotations

import argparse
import json
import os

from maildircheck.harness.matrix import cell_checks, run_matrix
from maildircheck.impl.strategies import CATALOGUE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--envs", help="comma-separated (default: every environment)")
    args = parser.parse_args()
    envs = args.envs.split(",") if args.envs else None
    checks = cell_checks(list(CATALOGUE), envs, max_examples=args.max_examples, seed=1)
    m = run_matrix(checks, workers=args.workers)
    print(
        json.dumps(
            {
                "cpus": os.cpu_count(),
                "cells": len(m.cells),
                "max_examples": args.max_examples,
                "workers": args.workers,
                "seconds": round(m.seconds, 1),
                "verdicts": {f"{s} @ {e}": m.cell_text(s, e) for s in m.strategies for e in m.envs},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
