"""An asyncio LMTP load client for the LMTP benchmark (bench/lmtp_perf.py).

Owns: how the benchmark reaches an LMTP server (`Endpoint`: a unix socket or host/port,
and the Maildir template the server delivers to, for checking afterwards), the messages
it sends (`message`: SIZE bytes, CRLF, unique by tag and index, with lines that need
dot-stuffing), and the LMTP conversation itself (RFC 2033): read the 220, LHLO, then per
message MAIL FROM, one RCPT TO per recipient, DATA, the dot-stuffed message, and exactly
one reply per accepted recipient after the final dot. Python's smtplib.LMTP reads a
single reply after DATA (cpython gh-76984), so it cannot drive an LMTP server with more
than one recipient; this client is that small correct one. When the server advertises
PIPELINING, MAIL, the RCPTs and DATA go out in one write (RFC 2920); the message itself
only after the 354, never when DATA was refused.

`run_load` (and `measure_load`, which also keeps which recipient accepted which message,
for the byte-for-byte check) runs SESSIONS concurrent connections, each sending its share
of MESSAGES, every message to the same K recipients (user0..user{K-1}@DOMAIN unless named).
All sessions connect and say LHLO first; the clock starts when they all have. Latency of
a message: from its MAIL sent to its last recipient's reply. Replies are counted by code:
the per-recipient replies after the dot (`replies_by_code`), and MAIL, RCPT and DATA's.

Usage: python bench/lmtp_client.py unix:/path/to/socket|tcp:HOST:PORT [--sessions 1]
           [--recipients 1] [--messages 10] [--size 4096] [--domain example.org]
prints run_load's dict as JSON (no check of the Maildirs: bench/lmtp_perf.py does that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deliver_perf import percentile

SENDER = "perf@example.org"
DOMAIN = "example.org"
LHLO_NAME = "lmtp-client.maildircheck.test"
REPLY_SECONDS = 120.0  # for any one reply; a server slower than that is reported failed
CONNECT_SECONDS = 30.0
LINE_LIMIT = 1 << 16  # longest reply line read (RFC 5321 says 512)
ERRORS_KEPT = 10
CRLF = b"\r\n"


@dataclass(frozen=True)
class Endpoint:
    """How to reach one LMTP server: a unix socket path, or host and TCP port (the unix
    socket is used when both are set; `over_tcp` drops it), and the Maildir it delivers
    a recipient's mail to, a template in Dovecot's variables: %u the address, %n its local
    part, %d its domain (None: unknown, nothing can be checked)."""

    unix: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    maildir: str | None = None

    def __post_init__(self) -> None:
        if self.unix is None and self.port is None:
            raise ValueError("an endpoint needs a unix socket path or a TCP port")

    @classmethod
    def parse(cls, spec: str, maildir: str | None = None) -> Endpoint:
        """`unix:/path` or `tcp:HOST:PORT` (also `inet:`, as smtp-source spells it)."""
        kind, _, rest = spec.partition(":")
        if kind == "unix" and rest:
            return cls(unix=rest, maildir=maildir)
        host, _, port = rest.rpartition(":")
        if kind in ("tcp", "inet") and host and port.isdigit():
            return cls(host=host, port=int(port), maildir=maildir)
        raise ValueError(f"not unix:/PATH or tcp:HOST:PORT: {spec!r}")

    def address(self) -> str:
        """As smtp-source(1) takes it: unix:PATH or inet:HOST:PORT."""
        return f"unix:{self.unix}" if self.unix else f"inet:{self.host}:{self.port}"

    def over_tcp(self) -> Endpoint:
        if self.port is None:
            raise ValueError(f"{self.address()} has no TCP port")
        return replace(self, unix=None)

    def maildir_of(self, address: str) -> Path | None:
        return None if self.maildir is None else Path(expand(self.maildir, address))


def expand(template: str, address: str) -> str:
    """`template` with %u, %n, %d (and %%) replaced for the recipient `address`."""
    local, _, domain = address.rpartition("@")
    values = {"u": address, "n": local, "d": domain, "%": "%"}

    def one(found: re.Match[str]) -> str:
        if found.group(1) not in values:
            raise ValueError(f"unknown variable %{found.group(1)} in {template!r}")
        return values[found.group(1)]

    return re.sub(r"%(.)", one, template)


def recipient_names(count: int, domain: str = DOMAIN) -> list[str]:
    return [f"user{i}@{domain}" for i in range(count)]


def message_id(index: int, tag: str) -> str:
    return f"<lmtp-perf-{tag}.{index}@example.org>"


MESSAGE_ID = re.compile(rb"^Message-ID: <lmtp-perf-([^.>]*)\.(\d+)@example\.org>\r?$", re.M)


def message(index: int, size: int, tag: str = "") -> bytes:
    """SIZE bytes (at least 256), CRLF line ends, unique by (tag, index). The body has
    lines that LMTP must dot-stuff: one starting with a dot, one that is a lone dot (a
    client that forgets to stuff it ends the message there) and one of two dots."""
    head = (
        f"From: perf@example.org\r\nTo: undisclosed-recipients:;\r\n"
        f"Subject: maildircheck LMTP benchmark {index}\r\n"
        f"Message-ID: {message_id(index, tag)}\r\n\r\n"
        ".starts with a dot\r\n.\r\n..\r\n"
    ).encode()
    if size < 256 or len(head) > size - 16:
        raise ValueError(f"message size {size} too small (at least 256)")
    line = (f"{index:08d} " + "abcdefghijklmnopqrstuvwxyz0123456789" * 2 + "\r\n").encode()
    body = line * ((size - len(head)) // len(line) + 1)
    data = head + body[: size - len(head) - 2] + CRLF
    assert len(data) == size
    return data


def dot_stuff(data: bytes) -> bytes:
    """`data` (CRLF lines, ending in CRLF) as sent after DATA, the final dot included."""
    if not data.endswith(CRLF):
        data += CRLF
    return re.sub(rb"(?m)^\.", b"..", data) + b".\r\n"


class LmtpError(Exception):
    """The connection broke, or the server said something that is not a reply."""


@dataclass(frozen=True)
class Reply:
    code: int
    text: str  # every line, joined by newlines, codes included

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


class Connection:
    """One LMTP connection: read replies, send commands."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.extensions: set[str] = set()

    @classmethod
    async def open(cls, endpoint: Endpoint) -> Connection:
        if endpoint.unix:
            pair = asyncio.open_unix_connection(endpoint.unix, limit=LINE_LIMIT)
        else:
            pair = asyncio.open_connection(endpoint.host, endpoint.port, limit=LINE_LIMIT)
        reader, writer = await asyncio.wait_for(pair, CONNECT_SECONDS)
        return cls(reader, writer)

    async def reply(self) -> Reply:
        """One reply, all its lines (`250-...` continues, `250 ...` ends it)."""
        lines: list[str] = []
        while True:
            try:
                raw = await asyncio.wait_for(self.reader.readline(), REPLY_SECONDS)
            except (TimeoutError, ValueError) as err:  # ValueError: a line over LINE_LIMIT
                raise LmtpError(f"no complete reply line: {err!r}") from err
            if not raw.endswith(b"\n"):
                raise LmtpError(f"connection closed by the server after {[*lines, raw]!r}")
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in ("", " ", "-"):
                raise LmtpError(f"not a reply line: {line!r}")
            if lines and line[:3] != lines[0][:3]:
                raise LmtpError(f"reply code changed within one reply: {[*lines, line]!r}")
            lines.append(line)
            if line[3:4] != "-":
                return Reply(int(line[:3]), "\n".join(lines))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, line: str) -> Reply:
        await self.send(line.encode() + CRLF)
        return await self.reply()

    async def greet(self, name: str = LHLO_NAME) -> None:
        """Read the 220, say LHLO, note the extensions."""
        greeting = await self.reply()
        if greeting.code != 220:
            raise LmtpError(f"greeting: {greeting.text}")
        hello = await self.command(f"LHLO {name}")
        if hello.code != 250:
            raise LmtpError(f"LHLO: {hello.text}")
        self.extensions = {line[4:].split(" ")[0].upper() for line in hello.text.split("\n")[1:]}

    async def close(self, quit_first: bool = True) -> None:
        try:
            if quit_first:
                await self.command("QUIT")
        except (LmtpError, OSError):
            pass
        finally:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


@dataclass
class Transaction:
    """What one message's MAIL ... final replies got."""

    seconds: float = 0.0
    mail: Reply | None = None
    rcpt: list[Reply] = field(default_factory=list)
    data: Reply | None = None
    final: dict[str, Reply] = field(default_factory=dict)  # accepted recipient -> reply
    complete: bool = False  # every reply due was read


async def transaction(
    conn: Connection, sender: str, rcpts: Sequence[str], wire: bytes, pipelining: bool
) -> Transaction:
    """Deliver one message (`wire`: already dot-stuffed) to `rcpts`."""
    done = Transaction()
    commands = [f"MAIL FROM:<{sender}>", *(f"RCPT TO:<{r}>" for r in rcpts), "DATA"]
    started = time.perf_counter()
    if pipelining:
        await conn.send(b"".join(c.encode() + CRLF for c in commands))
        done.mail = await conn.reply()
        done.rcpt = [await conn.reply() for _ in rcpts]
        done.data = await conn.reply()
    else:
        done.mail = await conn.command(commands[0])
        if done.mail.ok:
            for command in commands[1:-1]:
                done.rcpt.append(await conn.command(command))
            if any(r.ok for r in done.rcpt):
                done.data = await conn.command("DATA")
    accepted = [r for r, reply in zip(rcpts, done.rcpt, strict=False) if reply.ok]
    if done.data is None or done.data.code != 354:
        done.seconds = time.perf_counter() - started
        done.complete = True
        if done.mail.ok:
            await conn.command("RSET")
        return done
    if not accepted:  # 354 with no recipient: a protocol error; end the message at once
        await conn.send(b".\r\n")
        await conn.reply()
        done.seconds = time.perf_counter() - started
        done.complete = True
        return done
    await conn.send(wire)
    for rcpt in accepted:
        done.final[rcpt] = await conn.reply()
    done.seconds = time.perf_counter() - started
    done.complete = True
    return done


@dataclass
class Load:
    """One run of `measure_load`."""

    address: str
    sessions: int
    recipients: list[str]
    messages: int
    size: int
    tag: str
    elapsed: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    connect: list[float] = field(default_factory=list)
    finals: Counter[str] = field(default_factory=Counter)
    commands: dict[str, Counter[str]] = field(
        default_factory=lambda: {"MAIL": Counter(), "RCPT": Counter(), "DATA": Counter()}
    )
    accepted: dict[int, list[str]] = field(default_factory=dict)  # index -> got 2xx final
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    not_sent: int = 0
    pipelined: list[bool] = field(default_factory=list)

    def failed(self, what: str) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(what)

    def report(self) -> dict[str, Any]:
        """The JSON-ready summary (without `accepted`)."""
        done = len(self.latencies)
        ms = [s * 1000 for s in self.latencies]
        per_second = done / self.elapsed if self.elapsed > 0 else 0.0
        ok = sum(self.finals[c] for c in self.finals if c.startswith("2"))
        return {
            "endpoint": self.address,
            "sessions": self.sessions,
            "recipients": len(self.recipients),
            "messages": self.messages,
            "size": self.size,
            "messages_completed": done,
            "messages_not_sent": self.not_sent,
            "elapsed_seconds": round(self.elapsed, 4),
            "messages_per_second": round(per_second, 1),
            "deliveries_per_second": round(ok / self.elapsed, 1) if self.elapsed > 0 else 0.0,
            "latency_ms": {
                "p50": round(percentile(ms, 0.5), 3),
                "p90": round(percentile(ms, 0.9), 3),
                "p99": round(percentile(ms, 0.99), 3),
                "max": round(max(ms), 3),
                "min": round(min(ms), 3),
                "mean": round(statistics.fmean(ms), 3),
            }
            if ms
            else None,
            "replies_by_code": dict(sorted(self.finals.items())),
            "command_replies": {k: dict(sorted(v.items())) for k, v in self.commands.items()},
            "pipelining": all(self.pipelined) if self.pipelined else None,
            "connect_ms_max": round(max(self.connect) * 1000, 3) if self.connect else None,
            "client_cpu_seconds": round(self.cpu, 3),
            "errors": self.error_count,
            "first_errors": self.errors,
        }


TRACE_FIELDS = ("return-path", "received", "delivered-to", "x-original-to")
_FIELD = re.compile(rb"([!-9;-~]+):[^\n]*\n(?:[ \t][^\n]*\n)*")


def split_trace(data: bytes) -> tuple[list[str], bytes]:
    """The trace fields a delivering server put above the message (Return-Path, Received,
    Delivered-To, X-Original-To, with their continuation lines), and the rest."""
    names: list[str] = []
    while True:
        found = _FIELD.match(data)
        if found is None or found.group(1).decode("ascii").lower() not in TRACE_FIELDS:
            return names, data
        names.append(found.group(1).decode("ascii"))
        data = data[found.end() :]


def check_maildirs(endpoint: Endpoint, loads: Load | Sequence[Load]) -> dict[str, Any]:
    """Every message each recipient accepted in `loads` (one load, or the rounds of one,
    to the same recipients, each with its own tag), looked for in that recipient's Maildir
    (new/ and cur/): below the server's trace fields it must be the bytes sent, with CRLF
    line ends or every CRLF made LF (which one is counted). `unexpected`: a copy of one of
    these messages whose final reply was not 2xx; `other_loads`: intact messages of
    another tag (a warm-up's), not counted otherwise; anything else is `corrupt`."""
    loads = [loads] if isinstance(loads, Load) else list(loads)
    by_tag = {load.tag: load for load in loads}
    rcpts = list(dict.fromkeys(r for load in loads for r in load.recipients))
    counts: Counter[str] = Counter()
    line_ends: Counter[str] = Counter()
    trace: Counter[str] = Counter()
    sent: dict[tuple[str, int], bytes] = {}
    for rcpt in rcpts:
        maildir = endpoint.maildir_of(rcpt)
        if maildir is None:
            return {
                "checked": False,
                "why": "the endpoint's Maildir template is unknown",
                "ok": None,
            }
        expected = {
            (load.tag, i) for load in loads for i, rs in load.accepted.items() if rcpt in rs
        }
        seen: Counter[tuple[str, int]] = Counter()
        for sub in ("new", "cur"):
            try:
                entries = list(os.scandir(maildir / sub))
            except FileNotFoundError:
                continue
            counts[f"in_{sub}"] += len(entries)
            for entry in entries:
                names, rest = split_trace(Path(entry.path).read_bytes())
                found = MESSAGE_ID.search(rest)
                if found is None:
                    counts["corrupt"] += 1  # not a message of this client's
                    continue
                key = (found.group(1).decode(), int(found.group(2)))
                load = by_tag.get(key[0])
                size = load.size if load else loads[0].size
                if key not in sent:
                    sent[key] = message(key[1], size, key[0])
                if rest == sent[key]:
                    ends = "CRLF"
                elif rest == sent[key].replace(CRLF, b"\n"):
                    ends = "LF"
                else:
                    counts["corrupt"] += 1
                    continue
                if load is None or key[1] >= load.messages:  # a warm-up's, say
                    counts["other_loads"] += 1
                    continue
                line_ends[ends] += 1
                seen[key] += 1
                trace.update(names)
        counts["expected"] += len(expected)
        counts["complete"] += len(expected & set(seen))
        counts["missing"] += len(expected - set(seen))
        counts["unexpected"] += len(set(seen) - expected)
        counts["duplicates"] += sum(n - 1 for n in seen.values())
        with contextlib.suppress(FileNotFoundError):
            counts["left_in_tmp"] += len(os.listdir(maildir / "tmp"))
    keys = ("expected", "complete", "missing", "corrupt", "duplicates", "unexpected")
    result: dict[str, Any] = {"checked": True} | {k: counts[k] for k in keys}
    result |= {k: counts[k] for k in ("other_loads", "left_in_tmp", "in_new", "in_cur")}
    result["line_ends"] = dict(line_ends)
    result["trace_fields"] = dict(trace)
    every = sum(load.messages * len(load.recipients) for load in loads)
    bad = ("corrupt", "duplicates", "unexpected", "left_in_tmp")
    result["ok"] = counts["complete"] == counts["expected"] == every and not any(
        counts[k] for k in bad
    )
    return result


def combine(loads: Sequence[Load]) -> Load:
    """The rounds of one load as one (for `report`): latencies pooled, times and counts
    summed; `accepted` is left empty (check the rounds with check_maildirs)."""
    first = loads[0]
    total = Load(first.address, first.sessions, first.recipients, 0, first.size, "+")
    for load in loads:
        total.messages += load.messages
        total.elapsed += load.elapsed
        total.cpu += load.cpu
        total.latencies += load.latencies
        total.connect += load.connect
        total.finals += load.finals
        for name, counter in load.commands.items():
            total.commands[name] += counter
        total.errors += load.errors[: ERRORS_KEPT - len(total.errors)]
        total.error_count += load.error_count
        total.not_sent += load.not_sent
        total.pipelined += load.pipelined
    return total


async def _session(
    load: Load,
    endpoint: Endpoint,
    wires: dict[int, bytes],
    mine: list[int],
    start: asyncio.Event,
    ready: list[int],
    sender: str,
    pipelining: bool,
) -> None:
    """One connection: connect, LHLO, wait for the start, send `mine`."""
    began = time.perf_counter()
    conn: Connection | None = None
    pipeline = False
    sent = 0
    try:
        conn = await Connection.open(endpoint)
        await conn.greet()
        load.connect.append(time.perf_counter() - began)
        pipeline = pipelining and "PIPELINING" in conn.extensions
        load.pipelined.append(pipeline)
    except (LmtpError, OSError, TimeoutError) as err:
        load.failed(f"connect/LHLO: {err!r}")
        conn = None
    finally:
        ready[0] -= 1
        if ready[0] == 0:
            start.set()
    await start.wait()
    if conn is None:
        load.not_sent += len(mine)
        return
    try:
        for index in mine:
            done = await transaction(conn, sender, load.recipients, wires[index], pipeline)
            sent += 1
            record(load, index, done)
    except (LmtpError, OSError) as err:
        load.failed(f"message {mine[sent]}: {err!r}")
        load.not_sent += len(mine) - sent - 1
        await conn.close(quit_first=False)
        return
    await conn.close()


def record(load: Load, index: int, done: Transaction) -> None:
    for name, got in (("MAIL", [done.mail]), ("RCPT", done.rcpt), ("DATA", [done.data])):
        for reply in got:
            if reply is not None:
                load.commands[name][str(reply.code)] += 1
    for reply in done.final.values():
        load.finals[str(reply.code)] += 1
    load.accepted[index] = [r for r, reply in done.final.items() if reply.ok]
    load.latencies.append(done.seconds)
    if len(load.accepted[index]) < len(load.recipients):
        replies = (done.mail, *done.rcpt, done.data, *done.final.values())
        codes = [str(r.code) for r in replies if r is not None]
        load.failed(f"message {index}: not delivered to every recipient: {codes}")


async def _load(
    endpoint: Endpoint, load: Load, pipelining: bool, sender: str, wires: dict[int, bytes]
) -> None:
    sessions = load.sessions
    shares = [list(range(s, load.messages, sessions)) for s in range(sessions)]
    start = asyncio.Event()
    ready = [sessions]
    tasks = [
        asyncio.create_task(_session(load, endpoint, wires, mine, start, ready, sender, pipelining))
        for mine in shares
    ]
    await start.wait()
    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*tasks)
    load.elapsed = time.perf_counter() - began
    load.cpu = time.process_time() - cpu


def measure_load(
    endpoint: Endpoint,
    sessions: int,
    recipients: int | Sequence[str],
    messages: int,
    size: int,
    *,
    domain: str = DOMAIN,
    tag: str = "",
    pipelining: bool = True,
    sender: str = SENDER,
) -> Load:
    """Run the load; the Load keeps which recipient accepted which message."""
    names = recipient_names(recipients, domain) if isinstance(recipients, int) else [*recipients]
    if sessions < 1 or messages < 0 or not names:
        raise ValueError("at least one session and one recipient")
    wires = {i: dot_stuff(message(i, size, tag)) for i in range(messages)}
    load = Load(endpoint.address(), sessions, names, messages, size, tag)
    asyncio.run(_load(endpoint, load, pipelining, sender, wires))
    return load


def run_load(
    endpoint: Endpoint,
    sessions: int,
    recipients: int | Sequence[str],
    messages: int,
    size: int,
    **options: Any,
) -> dict[str, Any]:
    """`measure_load(...).report()`: messages/s, latency percentiles, replies by code."""
    return measure_load(endpoint, sessions, recipients, messages, size, **options).report()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("endpoint", help="unix:/path or tcp:HOST:PORT")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--recipients", type=int, default=1)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--domain", default=DOMAIN)
    parser.add_argument("--no-pipelining", action="store_true")
    args = parser.parse_args()
    endpoint = Endpoint.parse(args.endpoint)
    print(
        json.dumps(
            run_load(
                endpoint,
                args.sessions,
                args.recipients,
                args.messages,
                args.size,
                domain=args.domain,
                pipelining=not args.no_pipelining,
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
