"""A counterexample as an SVG timeline diagram: one lane per process (prefixed with its
host on NFS), time flowing down, faults in red, power losses and crashes as bands across
every lane, the violated property at the bottom. Pure string building, no dependency; the
HTML matrix embeds it inline."""

from __future__ import annotations

from html import escape

from maildircheck.harness.timeline import Line, Timeline

LANE_WIDTH = 230
ROW = 18
TOP = 40
LEFT = 40
CHARS = 34


def _lane_of(line: Line) -> str | None:
    if line.kind == "syscall":
        return line.actor
    if line.actor in ("host", "server", "clock", "check") or line.actor.endswith(":"):
        return None  # drawn across every lane
    return line.actor


def _short(text: str) -> str:
    return text if len(text) <= CHARS else text[: CHARS - 1] + "\u2026"


def render_svg(timeline: Timeline) -> str:
    lanes: list[str] = []
    for line in timeline.lines:
        lane = _lane_of(line)
        if lane is not None and lane not in lanes:
            lanes.append(lane)
    width = LEFT + max(1, len(lanes)) * LANE_WIDTH + 20
    height = TOP + (len(timeline.lines) + 1) * ROW + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11" role="img">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for i, lane in enumerate(lanes):
        x = LEFT + i * LANE_WIDTH
        parts.append(f'<line x1="{x}" y1="{TOP - 8}" x2="{x}" y2="{height - 10}" stroke="#bbb"/>')
        parts.append(
            f'<text x="{x + 4}" y="{TOP - 14}" font-weight="bold" '
            f'class="lane">{escape(lane)}</text>'
        )
    for row, line in enumerate(timeline.lines):
        y = TOP + row * ROW + 12
        lane = _lane_of(line)
        if lane is None:
            colour = (
                "#c00"
                if line.actor in ("host", "server", "check") or line.actor.endswith(":")
                else "#555"
            )
            parts.append(
                f'<rect x="{LEFT}" y="{y - 11}" width="{width - LEFT - 20}" '
                f'height="{ROW - 2}" fill="{colour}" fill-opacity="0.12"/>'
            )
            label = f"{line.actor} {line.text}".strip()
            parts.append(
                f'<text x="{LEFT + 4}" y="{y}" fill="{colour}" class="event">'
                f"<title>{escape(label)}</title>{escape(label[:120])}</text>"
            )
            continue
        x = LEFT + lanes.index(lane) * LANE_WIDTH + 6
        full = f"{line.n} {line.text} = {line.reply}" if line.kind == "syscall" else line.text
        fill = "#c00" if line.fault else "#000"
        parts.append(
            f'<text x="{x}" y="{y}" fill="{fill}" class="call">'
            f"<title>{escape(full + (' [fault: ' + line.fault + ']' if line.fault else ''))}"
            f"</title>{escape(_short(full))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
