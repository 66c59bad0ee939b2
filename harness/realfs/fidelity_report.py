"""The fidelity check's reports (G4): text for a person, a Markdown table for docs/, JSON.

`render` lists, per file system x workload x profile, whether the profile is sound there,
every unsound outcome with the crash point and the block writes of a state that showed it,
and what the profile allows that no crash state showed. `markdown` is the measured table of
docs/fidelity.md: one row per file system x workload - its outcomes and each profile's
verdict, and no timings, so rerunning it gives the same text. `as_json` has everything,
crash point by crash point, with the run time of each measurement.
"""

from __future__ import annotations

from typing import Any

from maildircheck.harness.realfs.fidelity import Comparison, Report
from maildircheck.harness.realfs.measure import Measured
from maildircheck.harness.realfs.outcomes import describe


def _verdict(report: Report) -> str:
    kernel = report.comparisons[0].measured.kernel if report.comparisons else "?"
    said = "every observed outcome is allowed" if report.sound else "UNSOUND profiles found"
    return f"{said} (Linux {kernel})"


def render(report: Report) -> str:
    lines = []
    for c in report.comparisons:
        m = c.measured
        lines.append(
            f"{m.fs.name} x {m.workload.name} under {c.profile}: "
            f"{'sound' if c.sound else 'UNSOUND'}; {len(m.observed)} outcomes observed in "
            f"{m.states} crash states at {len(m.points)} crash points ({m.seconds:.1f} s); "
            f"{len(c.never_seen)} allowed, never observed"
        )
        lines += [f"  unsound {u}" for u in c.unsound]
        lines += [f"  never observed: {describe(o)}" for o in c.never_seen]
    lines.append(_verdict(report))
    return "\n".join(lines)


def _by_measurement(report: Report) -> dict[int, list[Comparison]]:
    rows: dict[int, list[Comparison]] = {}
    for c in report.comparisons:
        rows.setdefault(id(c.measured), []).append(c)
    return rows


def _cell(c: Comparison) -> str:
    if c.sound:
        return f"sound ({len(c.never_seen)} never seen)"
    return "UNSOUND: " + "; ".join(sorted({describe(u.outcome) for u in c.unsound}))


def markdown(report: Report) -> str:
    profiles = list(
        dict.fromkeys(
            c.profile if c.profile != c.measured.fs.claimed_by else "claimed"
            for c in report.comparisons
        )
    )
    head = ["file system", "workload", "outcomes observed", *(f"{p} profile" for p in profiles)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group in _by_measurement(report).values():
        m: Measured = group[0].measured
        cells = [m.fs.name, m.workload.name, "; ".join(sorted(describe(o) for o in m.observed))]
        cells += [f"{c.profile}: {_cell(c)}" for c in group]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(_verdict(report) + ".")
    return "\n".join(lines)


def as_json(report: Report) -> dict[str, Any]:
    return {
        "sound": report.sound,
        "kernel": report.comparisons[0].measured.kernel if report.comparisons else None,
        "comparisons": [
            {
                "fs": c.measured.fs.name,
                "mount_options": c.measured.fs.options,
                "mkfs": " ".join(c.measured.fs.mkfs),
                "workload": c.measured.workload.name,
                "profile": c.profile,
                "claimed": c.profile == c.measured.fs.claimed_by,
                "sound": c.sound,
                "seconds": round(c.measured.seconds, 3),
                "block_writes": c.measured.writes,
                "flushes": c.measured.flushes,
                "crash_states": c.measured.states,
                "points": [
                    {
                        "label": p.label,
                        "model_steps": list(p.steps),
                        "explored": p.explored,
                        "total": p.total,
                        "outcomes": sorted(describe(o) for o in p.outcomes),
                    }
                    for p in c.measured.points
                ],
                "unsound": [
                    {"point": u.point, "outcome": describe(u.outcome), "kept_writes": list(u.kept)}
                    for u in c.unsound
                ],
                "never_observed": [describe(o) for o in c.never_seen],
            }
            for c in report.comparisons
        ],
    }
