"""The message set every trace delivers, and what an agent did to each message's bytes.

The traced run (trace.runner) delivers one message under strace; its durability is judged
by the replay. Content is judged here: the agent runs once more per message of MESSAGES -
the shapes MTAs hand over: plain, CRLF line ends, NUL bytes, 8-bit bytes, no final
newline, a line over RFC 5322's 998 bytes, a leading From_ line with a From line in the
body, and one past 64 KiB (the Linux pipe capacity) - on a fresh scratch Maildir, without
strace. `describe_change` says where a delivered file stops being the message and how:
"a NUL byte cut the line", "a final newline was added", "CRLF line ends became LF"... Not
a change: headers put before the message (Return-Path, Delivered-To), and a leading From_
line taken off (it is the mbox envelope line, no part of the message).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from maildircheck.harness.trace.runner import DEFAULT_MESSAGE, run_plain

_HEAD = b"From: Alice <alice@example.org>\nTo: bob@example.net\n"
MESSAGES: tuple[tuple[str, bytes], ...] = (
    ("plain", DEFAULT_MESSAGE),
    ("crlf", (_HEAD + b"Subject: crlf\n\nline one\nline two\n").replace(b"\n", b"\r\n")),
    ("nul", _HEAD + b"Subject: nul\n\nbefore \x00 after the NUL\nnext line\n"),
    ("8bit", _HEAD + b"Subject: 8bit\n\nd\xe9j\xe0 vu, \xff\xfe and \x80\n"),
    ("no-final-newline", _HEAD + b"Subject: no final newline\n\nthe last line has no end"),
    ("long-line", _HEAD + b"Subject: long line\n\n" + b"x" * 1200 + b"\nshort\n"),
    (
        "from-lines",
        b"From alice@example.org  Thu Dec  3 13:00:00 2026\n"
        + _HEAD
        + b"Subject: from lines\n\nFrom the start of a body line\nend\n",
    ),
    ("large", _HEAD + b"Subject: large\n\n" + b"a line of a long message\n" * 2800),
)


@dataclass
class MessageResult:
    name: str
    size: int
    status: int  # the agent's exit status (negative: killed by that signal)
    delivered: int  # files it left in new/ and cur/
    change: str | None  # how the delivered bytes differ from the message; None: kept
    kept: str  # what became of the message, in words

    @property
    def flagged(self) -> bool:
        """It exited 0 and did not deliver the message as it was handed over."""
        return self.status == 0 and self.change is not None


def describe_change(message: bytes, data: bytes) -> str | None:
    """None when `data` is `message`, with at most headers put before it or a leading
    From_ line taken off; otherwise where and how it differs."""
    body = message
    if message.startswith(b"From ") and b"\n" in message:
        body = message.split(b"\n", 1)[1]
    if data.endswith(message) or data.endswith(body):
        return None
    start = data.find(body[:40]) if body[:40] else -1
    if start < 0 and body is not message:
        start = data.find(message[:40])
        body = message if start >= 0 else body
    got = data[max(start, 0) :]
    where = max(start, 0)
    if got == body + b"\n" or got == body + b"\r\n":
        return f"a final newline was added (after byte {len(body)})"
    if b"\r\n" in body and got == body.replace(b"\r\n", b"\n"):
        return "CRLF line ends became LF"
    i = next((k for k, (a, b) in enumerate(zip(body, got, strict=False)) if a != b), None)
    if i is None:  # one is a prefix of the other
        if len(got) < len(body):
            return f"cut short: {len(got)} of the message's {len(body)} bytes"
        return f"{len(got) - len(body)} bytes added after the message's {len(body)}"
    at = f"at byte {i}" + (f" of the message (byte {where + i} of the file)" if where else "")
    line_end = body.find(b"\n", i)
    if body[i] == 0 and line_end >= 0 and got[i : i + 1] in (b"\n", b"\r"):
        rest = got[i + 1 + got.startswith(b"\r\n", i) :] == body[line_end + 1 :]
        return f"a NUL byte cut the line {at}" + ("" if rest else "; more differs after it")
    if body[i : i + 5] == b"From " and got[i : i + 6] == b">From ":
        return f"'>' put before a From line {at} (mbox quoting)"
    line_start = body.rfind(b"\n", 0, i) + 1
    if (line_end if line_end >= 0 else len(body)) - line_start > 998 and got[i : i + 1] in (
        b"\n",
        b"\r",
    ):
        return f"a line over 998 bytes was broken {at}"
    if body[i] >= 0x80:
        was, now = _show(body[i : i + 8]), _show(got[i : i + 8])
        return f"an 8-bit byte changed {at}: {was} became {now}"
    return f"differs {at}: {_show(body[i : i + 12])} became {_show(got[i : i + 12])}"


def _show(piece: bytes) -> str:
    return repr(piece)[1:]  # b'...' -> '...': escapes shown as they are


def run_message_set(
    command: Sequence[str],
    *,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    messages: Sequence[tuple[str, bytes]] = MESSAGES,
) -> list[MessageResult]:
    """Deliver each of `messages` with `command` once, each on a fresh scratch Maildir."""
    found = []
    for name, message in messages:
        run = run_plain(command, message, user=user, env=env, timeout=timeout)
        files = list(run.delivered.values())
        change: str | None
        if run.timed_out:
            change, kept = "the run was stopped at the time limit", "timed out"
        elif not files:
            change = "nothing delivered" if run.status == 0 else None
            kept = "delivered nothing"
        else:
            changes = [describe_change(message, data) for data in files]
            change = next((c for c in changes if c is not None), None)
            kept = "kept byte for byte" if change is None else "changed"
            if len(files) > 1:
                change = change or f"{len(files)} files delivered for one message"
        found.append(MessageResult(name, len(message), run.status, len(files), change, kept))
    return found
