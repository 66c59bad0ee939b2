"""Spread one check over worker processes (`maildircheck verify --workers N`).

Worker i runs the same search with seed S+i and its share of the example budget; the
verdict keeps the shortest counterexample any worker found, and its replay command is
that worker's own (seed and budget), so it reproduces in a single process. Counts add up;
seconds are wall-clock. A `Progress` (harness/progress.py) hears of each search as it ends.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from maildircheck.harness.progress import Progress
from maildircheck.harness.verify import Verdict, verify


def one_check(args: tuple[str, str, tuple[str, ...], int, int, bool, bool]) -> Verdict:
    """One verify run from a picklable tuple (strategy spec, env, faults, budget, seed,
    quality, strict lifecycle) - what a worker process runs."""
    strategy, env, faults, budget, seed, quality, strict = args
    return verify(
        strategy,
        env,
        faults,
        max_examples=budget,
        seed_value=seed,
        quality=quality,
        strict_lifecycle=strict,
    )


def verify_parallel(
    strategy: str,
    env: str,
    faults: tuple[str, ...],
    *,
    workers: int,
    max_examples: int = 200,
    seed_value: int | None = None,
    quality: bool = False,
    strict_lifecycle: bool = False,
    progress: Progress | None = None,
) -> Verdict:
    """`progress` hears of each worker's search as it finishes."""
    base = 1 if seed_value is None else seed_value
    budget = max(1, -(-max_examples // workers))
    jobs = [
        (strategy, env, faults, budget, base + i, quality, strict_lifecycle) for i in range(workers)
    ]
    report = progress or Progress()
    report.start(f"{strategy} on {env}", workers, "searches")
    report.now(f"{workers} searches of {budget} examples, seeds {base}..{base + workers - 1}")
    started = time.perf_counter()
    done: dict[int, Verdict] = {}
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            running = {pool.submit(one_check, job): i for i, job in enumerate(jobs)}
            for future in as_completed(running):
                v = done[running[future]] = future.result()
                what = f"{v.violation.prop} violated" if v.violation else "no violation"
                report.advance(f"seed {base + running[future]}", f"{what} ({v.examples} examples)")
    finally:
        report.stop(f"{len(done)} of {workers} searches done")
    verdicts = [done[i] for i in range(workers)]
    found = [v for v in verdicts if v.violation is not None and v.timeline is not None]
    best = (
        min(found, key=lambda v: v.timeline.syscalls if v.timeline else 0)
        if found
        else (verdicts[0])
    )
    observed: dict[str, str] = {}
    for v in verdicts:
        for prop, why in v.observed.items():
            observed.setdefault(prop, why)
    return dataclasses.replace(
        best,
        observed=observed,
        examples=sum(v.examples for v in verdicts),
        syscalls=sum(v.syscalls for v in verdicts),
        seconds=time.perf_counter() - started,
    )
