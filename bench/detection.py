"""Benchmark: how fast the checker catches each flawed strategy, and how fast it runs.

Prints one JSON document:
  - detection: for each catalogue flaw, on one local profile where it is unsafe and with the
    faults that expose it (nfs_detection: the NFS rows of issue 3), the search is run with
    seeds 1..N; caught count, the property named,
    median and worst seconds to a shrunk counterexample, median and worst counterexample
    length (syscalls), and beside them the explorer's shortest counterexample within
    EXPLORED (harness/explore.py: two deliveries, one preemption, as many faults as the row
    names up to two, messages of 1, 2 and 65537 bytes, the reader where READER_ROWS says,
    up to the worst shrunk length): `explored_length` (None: none that short in that
    bound), its states and seconds;
  - simulator: syscalls per second of the bare model (the correct delivery on the model
    kernel, no checks);
  - checker: syscalls per second of the full checker running the correct strategy (every
    property checked after every syscall), under each profile, with drawn messages (E6);
  - checker_by_message_size: the same on ext4-ordered with every message 20 bytes and
    with every message 1 MiB (through a full pipe), to show the cost is flat in size.

Usage: python bench/detection.py [--seeds 20] [--only NAME] [--max-examples 1000]
Targets: every flaw caught 20 of 20, median under 1 s on a 2-core machine (issue 2); every
NFS flaw 20 of 20, median under 2 s (issue 3).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from typing import Any

from maildircheck.harness.check import Check
from maildircheck.harness.explore import Bound, explore
from maildircheck.harness.host import ROOT, Host
from maildircheck.harness.messages import MIB, PIPE_CHUNKS, SIZES
from maildircheck.harness.verify import verify
from maildircheck.impl.deliver import deliver
from maildircheck.impl.strategies import CATALOGUE
from maildircheck.model.environments import ENVIRONMENTS, LOCAL
from maildircheck.model.faults import Fault
from maildircheck.model.outcome import DeliveryRequest

# The NFS rows (issue 3): a flaw, the NFS environment and the faults that expose it there.
NFS_ROWS = (
    ("vpopmail-4.10.14", "nfs3-sync", ()),
    ("close-unchecked", "nfs3-sync", ("enospc",)),
    ("no-fsync", "nfs3-nocto", ("client-crash",)),
    ("ambiguous-link-fails", "nfs3-nodrc", ("lost-reply",)),
    ("pid-only-name", "nfs3-sync", ()),
    ("stale-nlink", "nfs3-sync", ()),
    ("short-write-ignored", "nfs3-sync", ("short-write",)),
    ("no-random-name", "nfs3-sync", ("cloned-hostnames",)),  # B19 under X15 (issue 11)
)
EXPLORED = Bound(deliveries=2, preemptions=1, sizes=(1, 2, 65537))
READER_ROWS = {"non-exclusive-create": 6}  # B5's clash needs D1's mail moved to cur/ first
# (or D2's link fails EEXIST): one reader pass over one message is 6 syscalls. Elsewhere the
# reader is left out: each placement of each of its syscalls is a state of its own.
EXPLORE_WORKERS = 2


def detection(
    name: str,
    seeds: int,
    max_examples: int,
    env: str = "",
    faults: tuple[str | Fault, ...] | None = None,
) -> dict[str, Any]:
    info = CATALOGUE[name]
    local = [e for e in info.unsafe_on if not ENVIRONMENTS[e].is_nfs]
    env = env or ("ext4-ordered" if "ext4-ordered" in local else (local or info.unsafe_on)[0])
    faults = info.exposed_by if faults is None else faults
    quality = "P6" in info.expected
    runs = []
    for s in range(1, seeds + 1):
        v = verify(Check.of(name, env, faults, max_examples=max_examples, seed=s, quality=quality))
        runs.append(v)
    check = Check.of(name, env, faults, quality=quality)
    caught = [v for v in runs if v.violation is not None and v.violation.prop in info.expected]
    secs = [v.seconds for v in caught]
    lengths = [v.timeline.syscalls for v in caught if v.timeline is not None]
    return {
        "strategy": name,
        "bug_class": info.bug_class,
        "env": env,
        "faults": [str(f) for f in faults],
        "caught": len(caught),
        "seeds": seeds,
        "properties": sorted({v.violation.prop for v in caught if v.violation}),
        "median_seconds": round(statistics.median(secs), 3) if secs else None,
        "worst_seconds": round(max(secs), 3) if secs else None,
        "median_length": statistics.median(lengths) if lengths else None,
        "worst_length": max(lengths) if lengths else None,
        **explored(check, max(lengths, default=EXPLORED.syscalls)),
    }


def explored(check: Check, depth: int) -> dict[str, Any]:
    """The explorer's shortest counterexample for `check`, no deeper than `depth`."""
    bound = dataclasses.replace(
        EXPLORED,
        syscalls=depth,
        faults=min(2, len(check.faults)),
        reader=READER_ROWS.get(check.strategy, 0),
    )
    found = explore(check, bound, workers=EXPLORE_WORKERS)
    return {
        "explored_length": found.timeline.syscalls if found.timeline else None,
        "explored_property": found.violation.prop if found.violation else None,
        "explored_states": found.states,
        "explored_seconds": round(found.seconds, 1),
        "explored_complete": found.complete,
    }


def simulator_rate(seconds: float = 2.0) -> float:
    """Syscalls per second of the bare model: the correct delivery, repeated."""
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        host = Host(ENVIRONMENTS["posix"])
        proc, _ = host.spawn_delivery("D1", 100, "m1")
        gen = deliver(DeliveryRequest(ROOT))
        request = next(gen)
        try:
            while True:
                request = gen.send(host.kernel_of(proc).execute(proc, request))
                count += 1
        except StopIteration:
            count += 1
    return count / (time.perf_counter() - started)


def checker_rates(max_examples: int) -> dict[str, float]:
    rates = {}
    for env in LOCAL:
        v = verify(Check.of("correct", env, max_examples=max_examples, seed=1))
        assert v.holds, v.violation
        rates[env.name] = round(v.syscalls / v.seconds)
    return rates


def rates_by_size(max_examples: int, sizes: tuple[int, ...] = (20, MIB)) -> dict[str, Any]:
    """The checker's syscalls per second with every message of one size (ext4-ordered)."""
    found: dict[str, Any] = {}
    for size in sizes:
        v = verify(
            Check.of(
                "correct", "ext4-ordered", max_examples=max_examples, seed=1, message_size=size
            )
        )
        assert v.holds, v.violation
        found[str(size)] = {
            "syscalls": v.syscalls,
            "seconds": round(v.seconds, 3),
            "syscalls_per_second": round(v.syscalls / v.seconds),
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--only", action="append")
    parser.add_argument("--max-examples", type=int, default=1000)
    parser.add_argument("--no-nfs", action="store_true", help="skip the NFS rows")
    args = parser.parse_args()
    names = args.only or [
        n for n, i in CATALOGUE.items() if i.bug_class and not ENVIRONMENTS[i.unsafe_on[0]].is_nfs
    ]
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "message_sizes_drawn": list(SIZES),
        "pipe_chunks_drawn": list(PIPE_CHUNKS),
        "detection": [detection(n, args.seeds, args.max_examples) for n in names],
        "nfs_detection": []
        if args.no_nfs or args.only
        else [detection(n, args.seeds, args.max_examples, e, f) for n, e, f in NFS_ROWS],
        "simulator_syscalls_per_second": round(simulator_rate()),
        "checker_syscalls_per_second_correct": checker_rates(200),
        "checker_by_message_size": rates_by_size(200),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
