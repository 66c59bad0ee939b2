"""A counterexample as an SVG timeline diagram: one lane per process (prefixed with its
host on NFS), time flowing down, the step numbers in a gutter on the left. Injected faults
(a faulted reply, kill -9, SIGTERM) are drawn in red; power losses and crashes are orange
bands across every lane and the violated property a red band, each with the detail the
text timeline prints under it (what a crash kept or lost, the maildir afterwards). Long
calls wrap inside their lane instead of being cut, so the reply and the fault stay in view;
every text's tooltip is its full line. Pure string building, no dependency; the HTML
matrix embeds it inline, and tests/test_html_browser.py looks for these colours in a
screenshot of it."""

from __future__ import annotations

import textwrap
from html import escape

from maildircheck.harness.timeline import Line, Timeline

FONT_SIZE = 11
CHAR_W = 6.7  # the advance of an 11 px monospace glyph (0.6 em), rounded up
ROW = 15
TOP = 30  # the lane headers
GUTTER = 34  # step numbers
PAD = 8
PAGE_CHARS = 150  # what the lanes share before the diagram grows wider than a page
LANE_CHARS = (16, 64)  # a lane's width in characters: at least, at most
MAX_ROWS = 4  # a line longer than this many rows is cut (its tooltip has it whole)

FAULT = "#c00000"  # an injected fault: a faulted reply, a kill, a SIGTERM
VIOLATION_FILL = "#f4b6b6"  # the band of the violated property
VIOLATION_TEXT = "#7a0000"
CRASH_FILL = "#fddcb0"  # power loss, NFS server or client crash
CRASH_TEXT = "#6b3300"
NOTE_FILL = "#ebebeb"  # the clock moving
NOTE_TEXT = "#444"
LANE_EVENT = "#555"  # a process starts, reports, dies
LANE_FAULTS = ("is killed", "receives SIGTERM")  # lane events that are injected faults


def _band(line: Line) -> str | None:
    """The band an event across every lane is drawn as, or None for a process's own line."""
    if line.kind == "syscall":
        return None
    if line.actor == "check":
        return "violation"
    if line.actor in ("host", "server") or line.actor.endswith(":"):
        return "crash"
    if line.actor == "clock":
        return "note"
    return None


BANDS = {
    "violation": (VIOLATION_FILL, VIOLATION_TEXT),
    "crash": (CRASH_FILL, CRASH_TEXT),
    "note": (NOTE_FILL, NOTE_TEXT),
}


def _wrap(text: str, chars: int, indent: int = 0) -> list[str]:
    """`text` in rows of at most `chars` characters (continuations indented two more),
    at most MAX_ROWS of them, the last cut with an ellipsis."""
    rows = textwrap.wrap(
        text,
        max(8, chars - indent),
        subsequent_indent="  ",
        break_on_hyphens=False,
    ) or [""]
    if len(rows) > MAX_ROWS:
        rows = rows[:MAX_ROWS]
        rows[-1] = rows[-1][: max(1, chars - indent - 1)] + "\u2026"
    return rows


def _lane_text(line: Line) -> str:
    if line.kind != "syscall":
        return line.text
    text = f"{line.text} = {line.reply}"
    text += f"  [fault:\u00a0{line.fault}]" if line.fault else ""  # one piece
    return text + (f"  [{line.source}]" if line.source else "")


def _text(x: float, y: float, rows: list[str], title: str, cls: str, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    spans = "".join(
        f'<tspan x="{x:.0f}" dy="{0 if i == 0 else ROW}">{escape(row)}</tspan>'
        for i, row in enumerate(rows)
    )
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" class="{cls}" style="white-space:pre"{extra}>'
        f"<title>{escape(title)}</title>{spans}</text>"
    )


def _layout(timeline: Timeline) -> tuple[list[str], dict[str, int], int]:
    """The lanes in order of appearance, each one's width in characters, and the width
    in characters the bands are wrapped at."""
    lanes: list[str] = []
    need: dict[str, int] = {}
    band_need = 0
    for line in timeline.lines:
        if _band(line) is not None:
            band_need = max(band_need, len(line.actor) + 1 + len(line.text))
            band_need = max([band_need, *(len(d) for d in line.detail)])
            continue
        if line.actor not in lanes:
            lanes.append(line.actor)
            need[line.actor] = len(line.actor) + 2
        need[line.actor] = max(need[line.actor], len(_lane_text(line)))
    cap = max(LANE_CHARS[0], min(LANE_CHARS[1], PAGE_CHARS // max(1, len(lanes))))
    chars = {lane: max(LANE_CHARS[0], min(need[lane], cap)) for lane in lanes}
    lanes_total = sum(chars.values()) + len(lanes)  # a character's gap between lanes
    return lanes, chars, max(lanes_total, min(band_need, PAGE_CHARS))


def render_svg(timeline: Timeline) -> str:
    lanes, chars, band_chars = _layout(timeline)
    x_of: dict[str, float] = {}
    x = float(GUTTER)
    for lane in lanes:
        x_of[lane] = x
        x += (chars[lane] + 1) * CHAR_W
    width = int(GUTTER + band_chars * CHAR_W + 2 * PAD)
    body: list[str] = []
    y = float(TOP)
    for line in timeline.lines:
        band = _band(line)
        if band is not None:
            fill, ink = BANDS[band]
            label = f"{line.actor} {line.text}" if line.actor.endswith(":") else line.text
            rows = _wrap(label, band_chars)
            for detail in line.detail:
                indent = len(detail) - len(detail.lstrip())
                rows += [" " * (indent + 2) + r for r in _wrap(detail.lstrip(), band_chars, indent)]
            height = len(rows) * ROW + 6
            body.append(
                f'<rect x="2" y="{y:.0f}" width="{width - 4}" height="{height}" '
                f'fill="{fill}" class="band {band}"/>'
            )
            title = "\n".join([label, *line.detail])
            body.append(
                _text(
                    GUTTER,
                    y + ROW - 1,
                    rows,
                    title,
                    "event",
                    fill=ink,
                    font_weight="bold" if band != "note" else "normal",
                )
            )
            y += height + 2
            continue
        full = _lane_text(line)
        rows = _wrap(full, chars[line.actor])
        title = full + (f"   ({line.transition})" if line.transition else "")
        if line.kind == "syscall":
            body.append(
                f'<text x="{GUTTER - 6}" y="{y + ROW - 4:.0f}" text-anchor="end" fill="#888" '
                f'class="step">{line.n}</text>'
            )
            colour = FAULT if line.fault else "#000"
            weight = "bold" if line.fault else "normal"
            body.append(
                _text(
                    x_of[line.actor] + 4,
                    y + ROW - 4,
                    rows,
                    title,
                    "call",
                    fill=colour,
                    font_weight=weight,
                )
            )
        else:
            fault = line.text.startswith(LANE_FAULTS)
            body.append(
                _text(
                    x_of[line.actor] + 4,
                    y + ROW - 4,
                    rows,
                    title,
                    "call fault" if fault else "lane-event",
                    fill=FAULT if fault else LANE_EVENT,
                    font_weight="bold" if fault else "normal",
                    font_style="normal" if fault else "italic",
                )
            )
        y += len(rows) * ROW
    height = int(y + PAD)
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="{FONT_SIZE}" xml:space="preserve" role="img">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for lane in lanes:
        lx = x_of[lane]
        head.append(
            f'<line x1="{lx:.0f}" y1="{TOP - 6}" x2="{lx:.0f}" y2="{height - PAD}" stroke="#bbb"/>'
        )
        head.append(
            f'<text x="{lx + 4:.0f}" y="{TOP - 10}" font-weight="bold" '
            f'class="lane">{escape(lane)}</text>'
        )
    return "".join([*head, *body, "</svg>"])
