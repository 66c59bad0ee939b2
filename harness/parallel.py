"""Running Checks in worker processes: `verify --workers N` and the matrix's cells.

`completed(checks, workers)` runs each Check (harness/check.py) with `verify` - in a pool of
`workers` processes, or one after the other in this one - and yields each Verdict as it is
ready. `verify_spread` is `verify --workers N`: the Check's shares (seed S+i, its part of
the budget) run side by side; the verdict keeps the shortest counterexample any share
found, and that share's Check, example count and syscalls are the verdict's, so what the
report says of the search is what its replay command reproduces in a single process; the
searches as a whole are its `Spread`. Seconds are wall-clock. A `Progress`
(harness/progress.py) hears of each search as it ends.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from maildircheck.harness.check import Check
from maildircheck.harness.progress import Progress
from maildircheck.harness.verify import Spread, Verdict, verify


def completed(
    checks: Sequence[Check], workers: int, starting: Callable[[Check], None] | None = None
) -> Iterator[tuple[int, Verdict]]:
    """(index, verdict) for each of `checks`, in the order they finish; `starting` hears
    of each check as it starts when they run in this process."""
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            running = {pool.submit(verify, check): i for i, check in enumerate(checks)}
            for future in as_completed(running):
                yield running[future], future.result()
        return
    for i, check in enumerate(checks):
        if starting is not None:
            starting(check)
        yield i, verify(check)


def verify_spread(check: Check, progress: Progress | None = None) -> Verdict:
    """`check` searched by its `workers` shares at once; `progress` hears of each share's
    search as it finishes."""
    shares = check.shares()
    first, last, budget = shares[0].seed, shares[-1].seed, shares[0].max_examples
    progress = progress or Progress()
    progress.start(check.label, len(shares), "searches")
    progress.now(f"{len(shares)} searches of {budget} examples, seeds {first}..{last}")
    started = time.perf_counter()
    done: dict[int, Verdict] = {}
    try:
        for i, v in completed(shares, check.workers):
            done[i] = v
            what = f"{v.violation.prop} violated" if v.violation else "no violation"
            progress.advance(f"seed {shares[i].seed}", f"{what} ({v.examples} examples)")
    finally:
        progress.stop(f"{len(done)} of {len(shares)} searches done")
    verdicts = [done[i] for i in range(len(shares))]
    found = [v for v in verdicts if v.violation is not None and v.timeline is not None]
    best = min(found, key=lambda v: v.timeline.syscalls if v.timeline else 0, default=verdicts[0])
    observed: dict[str, str] = {}
    for v in verdicts:
        for prop, why in v.observed.items():
            observed.setdefault(prop, why)
    return dataclasses.replace(
        best,
        observed=observed,
        seconds=time.perf_counter() - started,
        spread=Spread(len(shares), first, last, sum(v.examples for v in verdicts)),
    )
