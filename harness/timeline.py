"""A counterexample as a timeline a person can read, and as JSON.

The checker appends one `Line` per syscall (numbered, with the process, the request, the
reply, any injected fault and the lifecycle transition it made) and one per event (a
process started or ended, the clock moved, the power failed and what survived). `render`
lays them out as aligned text; `as_json` gives the same data for tools.
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


@dataclass
class Timeline:
    lines: list[Line] = field(default_factory=list)
    syscalls: int = 0

    def syscall(self, actor: str, text: str, reply: str, fault: str = "") -> Line:
        self.syscalls += 1
        line = Line(self.syscalls, actor, text, reply, fault)
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
            reply = f"= {ln.reply}"
            if ln.fault:
                reply += f"   [fault: {ln.fault}]"
            row = f"{ln.n:4d}  {ln.actor:<5} {ln.text:<{width}}  {reply}"
            if ln.transition:
                row += f"   ({ln.transition})"
            out.append(row)
            out.extend(f"        {d}" for d in ln.detail)
        return "\n".join(out)

    def as_json(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in asdict(ln).items() if v not in ("", [])} for ln in self.lines]
