"""A counterexample as a timeline a person can read, and as JSON: the one record of a
violation, whether the checker's search found it or a traced run's replay did.

The checker appends one `Line` per syscall (numbered, with the process, the request, the
reply, any injected fault and the lifecycle transition it made) and one per event (a
process started or ended, the clock moved, the power failed and what survived); a traced
replay (harness/trace/replay.py) appends its calls with `source`, the strace line each came
from, and its exit. `render` lays them out as aligned text; `as_json` gives the same data
for tools; harness/svg.py draws it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Line:
    n: int
    actor: str
    text: str
    reply: str = ""
    fault: str = ""
    transition: str = ""
    detail: list[str] = field(default_factory=list)
    kind: str = "syscall"  # or "event"
    source: str = ""  # where a replayed call came from: "strace line 12"

    def reply_text(self) -> str:
        """The reply as every rendering shows it: with the fault and the source."""
        reply = self.reply
        if self.fault:
            reply += f"   [fault: {self.fault}]"
        if self.source:
            reply += f"   [{self.source}]"
        return reply


@dataclass
class Timeline:
    lines: list[Line] = field(default_factory=list)
    syscalls: int = 0

    def syscall(
        self, actor: str, text: str, reply: str, fault: str = "", source: str = ""
    ) -> Line:
        self.syscalls += 1
        line = Line(self.syscalls, actor, text, reply, fault, source=source)
        self.lines.append(line)
        return line

    def event(self, actor: str, text: str, detail: list[str] | None = None) -> Line:
        line = Line(0, actor, text, kind="event", detail=detail or [])
        self.lines.append(line)
        return line

    def render(self) -> str:
        # align the replies of the short calls; a long one (a path with a Maildir name)
        # simply pushes its reply to the right
        width = max(
            (len(ln.text) for ln in self.lines if ln.kind == "syscall" and len(ln.text) <= 48),
            default=20,
        )
        out = []
        for ln in self.lines:
            if ln.kind == "event":
                out.append(f"  --- {ln.actor}: {ln.text}")
                out.extend(f"        {d}" for d in ln.detail)
                continue
            row = f"{ln.n:4d}  {ln.actor:<5} {ln.text:<{width}}  = {ln.reply_text()}"
            if ln.transition:
                row += f"   ({ln.transition})"
            out.append(row)
            out.extend(f"        {d}" for d in ln.detail)
        return "\n".join(out)

    def as_json(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in asdict(ln).items() if v not in ("", [])} for ln in self.lines]
