"""Reading strace output: lines of `strace -f -y -xx` into `TraceCall` values.

This module owns only the text format (strace(1), version 6): the optional pid prefix that
`-f` adds, calls split by `<unfinished ...>` / `<... NAME resumed>`, arguments with their
quoting and nesting, `-y` fd decorations (`3</path>`), and results (`= 3`, `= -1 ENOENT
(No such file or directory)`, the `(INJECTED)` mark of `-e inject`). Process events
(`+++ exited with 0 +++`, `+++ killed by SIGKILL +++`) become calls named `+++exit` and
`+++killed`. What the calls mean for a Maildir is the business of `trace.translator`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_PID = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(.*)$")
_CALL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\((.*)$", re.S)
_RESUMED = re.compile(r"^<\.\.\. ([A-Za-z_][A-Za-z0-9_]*) resumed>(.*)$", re.S)
_RESULT = re.compile(
    r"^(?P<value>-?\d+|0x[0-9a-fA-F]+|\?)(?:<(?P<fdpath>.*?)>)?"
    r"(?:\s+(?P<errno>E[A-Z0-9]+)\s+\((?P<desc>[^)]*)\))?(?P<rest>.*)$",
    re.S,
)
_EXITED = re.compile(r"^\+\+\+ exited with (\d+) \+\+\+$")
_KILLED = re.compile(r"^\+\+\+ killed by (SIG[A-Z0-9]+)(?: \(core dumped\))? \+\+\+$")
_UNFINISHED = " <unfinished ...>"
_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "v": b"\v", "f": b"\f", '"': b'"', "\\": b"\\"}


class TraceSyntaxError(ValueError):
    """A line strace would not have written; the message names the line."""


@dataclass(frozen=True)
class TraceCall:
    """One finished system call (or a process event) of one process."""

    line: int  # 1-based line of the trace where the call started
    pid: int
    name: str
    args: tuple[str, ...]  # raw argument texts, split at top-level commas
    result: int | None  # None for `?` (execve of an exiting process, exit events)
    errno: str | None = None  # "ENOENT" when the call failed
    injected: bool = False  # strace -e inject made it fail without running it
    result_path: str | None = None  # the -y path of a returned fd

    @property
    def failed(self) -> bool:
        return self.errno is not None


def decode_string(text: str) -> bytes:
    """The bytes of a C-quoted strace string (`"\\x41b\\n"`); a trailing `...` (strace cut
    the string at -s) is refused, since the bytes would be incomplete."""
    text = text.strip()
    if text.endswith("..."):
        raise TraceSyntaxError(f"string cut short by strace (raise -s): {text[:40]}")
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise TraceSyntaxError(f"not a quoted string: {text[:40]}")
    out = bytearray()
    body = text[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif nxt in _ESCAPES:
            out += _ESCAPES[nxt]
            i += 2
        elif nxt.isdigit():
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(int(body[i + 1 : j], 8))
            i = j
        else:
            raise TraceSyntaxError(f"unknown escape \\{nxt} in {text[:40]}")
    return bytes(out)


def split_args(text: str) -> tuple[str, ...]:
    """Split an argument list at commas outside quotes, (), [], {} and fd decorations <>."""
    args: list[str] = []
    depth = 0
    start = 0
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "<" and i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_"):
            close = text.find(">", i)  # -y decorations: digits or AT_FDCWD, then <path>
            if close < 0:
                raise TraceSyntaxError(f"unclosed <: {text[:60]}")
            i = close
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    if quoted or depth:
        raise TraceSyntaxError(f"unbalanced arguments: {text[:60]}")
    last = text[start:].strip()
    if last or args:
        args.append(last)
    return tuple(args)


def fd_of(arg: str) -> int:
    """The number in an fd argument (`3</tmp/x>`, `AT_FDCWD</tmp>` -> -100)."""
    head = arg.split("<", 1)[0].strip()
    if head == "AT_FDCWD":
        return -100
    return int(head, 0)


def fd_path(arg: str) -> str | None:
    """The -y path of an fd argument, decoded, or None."""
    if "<" not in arg or not arg.endswith(">"):
        return None
    inner = arg.split("<", 1)[1][:-1]
    return decode_string(f'"{inner}"').decode("utf-8", "surrogateescape")


def flags_of(arg: str) -> frozenset[str]:
    """`O_WRONLY|O_CREAT|0x80000` -> its names (unknown bits kept as written)."""
    return frozenset(part.strip() for part in arg.split("|") if part.strip())


_EQUALS = re.compile(r"\)\s+= ")


def _split_result(rest: str, line_no: int) -> tuple[str, str]:
    """`args...) = result` -> (args, result text); the last `) = ` ends the arguments
    (strace pads short calls with spaces before the `=`)."""
    found = list(_EQUALS.finditer(rest))
    if not found:
        raise TraceSyntaxError(f"line {line_no}: call without a result: {rest[:60]!r}")
    return rest[: found[-1].start()], rest[found[-1].end() :]


def _parse_result(text: str, line_no: int) -> tuple[int | None, str | None, bool, str | None]:
    m = _RESULT.match(text.strip())
    if m is None:
        raise TraceSyntaxError(f"line {line_no}: cannot read result {text[:60]!r}")
    raw = m.group("value")
    value = None if raw == "?" else int(raw, 0)
    path = m.group("fdpath")
    decoded = decode_string(f'"{path}"').decode("utf-8", "surrogateescape") if path else None
    return value, m.group("errno"), "(INJECTED)" in (m.group("rest") or ""), decoded


def parse(lines: Iterable[str]) -> Iterator[TraceCall]:
    """The calls of a trace, in the order they finished; resumed calls are joined to the
    line where they started."""
    pending: dict[int, tuple[int, str, str]] = {}  # pid -> (line, name, args so far)
    for line_no, raw in enumerate(lines, 1):
        text = raw.rstrip("\n")
        if not text.strip():
            continue
        m = _PID.match(text)
        pid, body = (int(m.group(1)), m.group(2)) if m else (0, text)
        if body.startswith("---"):  # a signal delivery: not a call
            continue
        if exited := _EXITED.match(body):
            yield TraceCall(line_no, pid, "+++exit", (), int(exited.group(1)))
            continue
        if killed := _KILLED.match(body):
            yield TraceCall(line_no, pid, "+++killed", (killed.group(1),), None)
            continue
        if resumed := _RESUMED.match(body):
            start, name, head = pending.pop(pid, (line_no, resumed.group(1), ""))
            body = f"{name}({head}{resumed.group(2)}"
            line_start = start
        else:
            line_start = line_no
        call = _CALL.match(body)
        if call is None:
            raise TraceSyntaxError(f"line {line_no}: not a system call: {text[:60]!r}")
        name, rest = call.group(1), call.group(2)
        if rest.endswith(_UNFINISHED):
            pending[pid] = (line_start, name, rest[: -len(_UNFINISHED)])
            continue
        args_text, result_text = _split_result(rest, line_no)
        value, err, injected, path = _parse_result(result_text, line_no)
        yield TraceCall(line_start, pid, name, split_args(args_text), value, err, injected, path)
