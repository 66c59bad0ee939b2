"""Maildir names: unique message names (building, escaping the host, parsing them back, the
`,S=<size>` field) and Maildir++ folder names.

Pure functions only (CrossHair checks their contracts, tests/test_crosshair.py).
Format, after cr.yp.to/proto/maildir.html (spec N1 in specs/requirements.md):

    <seconds>.M<usec>P<pid>Q<counter>R<random hex>.<escaped host>[,S=<size>][:2,<flags>]

The host is escaped so it can contain neither "/" (a path separator) nor ":" (the info
separator): "/" -> "\\057", ":" -> "\\072"; also "," -> "\\054" (the field separator of
",S=size", as Dovecot does) and "\\" -> "\\134" so the escape is invertible.
"""

from __future__ import annotations

import re

from maildircheck.model.record import Record

_ESCAPES = {"\\": "\\134", "/": "\\057", ":": "\\072", ",": "\\054"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}
_ESCAPED = re.compile(r"\\(134|057|072|054)")
_NAME = re.compile(
    r"^(?P<seconds>\d+)\.M(?P<usec>\d+)P(?P<pid>\d+)Q(?P<counter>\d+)R(?P<random>[0-9a-f]+)"
    r"\.(?P<host>[^/:,]+)(?:,S=(?P<size>\d+))?(?::2,(?P<flags>[A-Za-z]*))?$"
)


def escape_host(host: str) -> str:
    """Escape a host name for use inside a Maildir name.

    post: "/" not in __return__ and ":" not in __return__ and "," not in __return__
    post: unescape_host(__return__) == host
    """
    return "".join(_ESCAPES.get(ch, ch) for ch in host)


def unescape_host(escaped: str) -> str:
    """Invert `escape_host`."""
    return _ESCAPED.sub(lambda m: _UNESCAPES[m.group(0)], escaped)


class NameParts(Record):
    seconds: int
    microseconds: int
    pid: int
    counter: int
    random: int
    host: str
    size: int | None = None
    flags: str | None = None


def unique_name(parts: NameParts) -> str:
    """Build the Maildir name for `parts` (the host is given unescaped).

    pre: parts.seconds >= 0 and 0 <= parts.microseconds < 1000000
    pre: parts.pid >= 0 and parts.counter >= 0 and parts.random >= 0
    pre: parts.size is None or parts.size >= 0
    pre: parts.flags is None or parts.flags.isalpha() or parts.flags == ""
    pre: parts.flags is None or parts.flags.isascii()
    pre: parts.host != ""
    post: "/" not in __return__
    post: parse_name(__return__) == parts
    """
    name = (
        f"{parts.seconds}.M{parts.microseconds}P{parts.pid}Q{parts.counter}"
        f"R{parts.random:x}.{escape_host(parts.host)}"
    )
    if parts.size is not None:
        name += f",S={parts.size}"
    if parts.flags is not None:
        name += f":2,{parts.flags}"
    return name


def parse_name(name: str) -> NameParts | None:
    """Parse a name built by `unique_name`; None for any other name."""
    m = _NAME.match(name)
    if m is None or not m.group("host"):
        return None
    size = m.group("size")
    return NameParts(
        seconds=int(m.group("seconds")),
        microseconds=int(m.group("usec")),
        pid=int(m.group("pid")),
        counter=int(m.group("counter")),
        random=int(m.group("random"), 16),
        host=unescape_host(m.group("host")),
        size=int(size) if size is not None else None,
        flags=m.group("flags"),
    )


def base_name(name: str) -> str:
    """The part of a Maildir name before the info suffix (":2,..."), which cur/ adds.

    post: ":" not in __return__
    post: name.startswith(__return__)
    """
    return name.split(":", 1)[0]


_SIZE = re.compile(r",S=(\d+)$")


def with_size(name: str, size: int) -> str:
    """D5: `name` with the size of its file appended as `,S=<size>` (Courier, Dovecot)."""
    return f"{name},S={size}"


def size_of(name: str) -> int | None:
    """The `,S=<size>` of a name in new/ (no info suffix), None when it has none."""
    m = _SIZE.search(name)
    return int(m.group(1)) if m is not None else None


def folder_name_ok(name: str) -> bool:
    """D4: can `name` be a Maildir++ folder, MAILDIR/.name/?

    The folder is one directory entry below MAILDIR whose name starts with "."; "." also
    separates the levels of a nested folder ("a.b"), so no level may be empty (which also
    rules out ".." and "../x"), and "/" and control characters are never allowed."""
    if not name or "/" in name or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return False
    return all(name.split("."))
