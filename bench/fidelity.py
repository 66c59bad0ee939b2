"""Benchmark: the full fidelity table (G4) - every litmus workload on every real file system.

Prints JSON: per file system x workload the seconds the measurement took (set-up, workload,
the periodic-commit wait, mounting every crash state), block writes, flushes, crash points
and states mounted, and per profile whether it is sound; then the totals and the median
seconds per workload (CrashMonkey, OSDI 2018, reports about 2.2 s per workload). Needs root,
/dev/fuse and loop devices, like `maildircheck fidelity`, whose comparison it runs.
Usage: python bench/fidelity.py [--fs ext4-ordered,xfs] [--workload deliver,no-fsync]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from maildircheck.harness.realfs.fidelity import check
from maildircheck.harness.realfs.filesystems import FILESYSTEMS
from maildircheck.harness.realfs.litmus import WORKLOADS
from maildircheck.harness.realfs.rig import unavailable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fs", default=",".join(FILESYSTEMS))
    parser.add_argument("--workload", default=",".join(WORKLOADS))
    args = parser.parse_args()
    systems, workloads = args.fs.split(","), args.workload.split(",")
    why = unavailable()
    if why is not None:
        print(f"bench/fidelity.py: cannot run: {why}", file=sys.stderr)
        return 3
    started = time.monotonic()
    report = check(systems, workloads)
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for c in report.comparisons:
        m = c.measured
        row = rows.setdefault(
            (m.fs.name, m.workload.name),
            {
                "fs": m.fs.name,
                "workload": m.workload.name,
                "seconds": round(m.seconds, 2),
                "block_writes": m.writes,
                "flushes": m.flushes,
                "crash_points": len(m.points),
                "crash_states": m.states,
                "sound": {},
            },
        )
        sound = row["sound"]
        assert isinstance(sound, dict)
        sound[c.profile] = c.sound
    seconds = [float(str(r["seconds"])) for r in rows.values()]
    print(
        json.dumps(
            {
                "kernel": report.comparisons[0].measured.kernel if report.comparisons else None,
                "measurements": len(rows),
                "seconds_total": round(time.monotonic() - started, 1),
                "seconds_per_workload_median": round(statistics.median(seconds), 2)
                if seconds
                else None,
                "seconds_per_workload_max": max(seconds, default=None),
                "crashmonkey_seconds_per_workload": 2.2,
                "sound": report.sound,
                "rows": list(rows.values()),
            },
            indent=2,
        )
    )
    return 0 if report.sound else 1


if __name__ == "__main__":
    sys.exit(main())
