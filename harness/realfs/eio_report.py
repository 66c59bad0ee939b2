"""The failed-fsync table (F9): `harness/realfs/eio.py`'s rows as Markdown or JSON, which
`maildircheck fidelity --fsync-failure` measures and prints (docs/fidelity.md quotes it).
"""

from __future__ import annotations

from collections.abc import Iterable

from maildircheck.harness.realfs.eio import Row
from maildircheck.harness.realfs.outcomes import describe

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
