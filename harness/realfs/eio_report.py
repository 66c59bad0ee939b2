"""The failed-fsync table (F9): `harness/realfs/eio.py`'s rows as Markdown or JSON, and the
command that measures and prints them:

    python -m maildircheck.harness.realfs.eio_report [--fs a,b] [--errno EIO,ENOSPC] [--json]

Exit status: 0 with the table printed, 2 for a bad option, 3 when this machine cannot run
the recorder (the line says why).
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Iterable

from maildircheck.harness.realfs.eio import Row, measure_all
from maildircheck.harness.realfs.filesystems import FILESYSTEMS
from maildircheck.harness.realfs.outcomes import describe
from maildircheck.harness.realfs.rig import unavailable

COLUMNS = (
    "fs",
    "injected",
    "refused",
    "fsync1",
    "fsync2",
    "fd_before",
    "fd_after",
    "cache",
    "on_disk",
    "dropped",
    "read_only",
    "later",
    "crash",
    "behaviour",
    "claimed",
    "model agrees",
)


def _cells(row: Row) -> dict[str, str]:
    behaviour = row.behaviour
    return {
        "fs": row.fs,
        "injected": row.injected,
        "refused": str(row.refused),
        "fsync1": row.fsync1,
        "fsync2": row.fsync2,
        "fd_before": row.fd_before,
        "fd_after": row.fd_after,
        "cache": row.cache.value,
        "on_disk": "yes" if row.on_disk else "no",
        "dropped": row.dropped.value,
        "read_only": "yes" if row.read_only else "no",
        "later": row.later,
        "crash": describe(row.crash),
        "behaviour": behaviour.name if behaviour else "none of the model's",
        "claimed": f"{row.claimed.name} ({row.profile.name})",
        "model agrees": "no" if row.mismatches else "yes",
    }


def render(rows: Iterable[Row]) -> str:
    """A Markdown table, one row per file system and errno."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r).values()) + " |" for r in rows]
    return "\n".join(lines)


def as_json(rows: Iterable[Row]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for row in rows:
        cells: dict[str, object] = dict(_cells(row))
        cells["refused"] = row.refused
        cells["on_disk"] = row.on_disk
        cells["read_only"] = row.read_only
        cells["crash"] = sorted(str(e) for e in row.crash)
        cells["kernel"] = row.kernel
        cells["mismatches"] = row.mismatches
        out.append(cells)
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table (Markdown, or JSON with --json)."""
    parser = argparse.ArgumentParser(prog="python -m maildircheck.harness.realfs.eio_report")
    parser.add_argument("--fs", default=",".join(FILESYSTEMS))
    parser.add_argument("--errno", default="EIO,ENOSPC")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in args.fs.split(",") if n]
    codes = [getattr(errno, c, None) for c in args.errno.split(",") if c]
    bad = [n for n in names if n not in FILESYSTEMS]
    if bad or not names or None in codes or not codes:
        what = (
            f"unknown file system {bad[0]!r} (known: {', '.join(FILESYSTEMS)})"
            if bad
            else f"bad --errno {args.errno!r} (errno names such as EIO,ENOSPC)"
        )
        print(f"eio: {what}", file=sys.stderr)
        return 2
    why = unavailable(FILESYSTEMS[names[0]])
    if why is not None:
        print(f"eio: cannot measure: {why}", file=sys.stderr)
        return 3
    rows = measure_all(names, [c for c in codes if c is not None])
    print(json.dumps(as_json(rows), indent=2) if args.json else render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
