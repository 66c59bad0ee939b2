"""Benchmark: LMTP delivery servers under concurrent load - Dovecot's LMTP server now,
`maildir-deliver --lmtp` (group commit) once it exists, and any other LMTP endpoint.

This module owns the LMTP benchmark. In one run, into Maildirs on one file system (a
fresh directory under --dir, its df and mount options reported), it prints one JSON
document:
  - servers: for each server, for each load (SESSIONS concurrent connections x K
    recipients per message; default 1, 8, 32 x 1, 10), N messages of SIZE bytes sent by
    bench/lmtp_client.py (asyncio; PIPELINING when offered): messages/s (N / the time from
    every session connected to the last reply), deliveries/s, latency p50/p90/p99/max ms
    (MAIL sent to the last recipient's reply), replies by code (the per-recipient replies
    after the dot; MAIL/RCPT/DATA's apart), the client's CPU seconds (one Python process:
    if it nears the elapsed time the client is the bottleneck), and every message looked
    for byte for byte in each recipient's Maildir afterwards (below the trace fields the
    server adds): expected/complete/missing/corrupt/duplicates/unexpected, left in tmp/.
    Every server runs at once; each load goes to its own recipient domain (its own
    Maildirs), after a warm-up of one message per session on each server to the same
    recipients (Dovecot forks its lmtp processes on demand; the Maildirs and Dovecot's
    index files exist when the clock starts), then runs --rounds times (default 1) on
    each server in turn, the order rotated every round and load, so load on the machine
    falls on all alike (rates and latencies pooled over the rounds; each round's rate
    listed too);
  - fsyncs: per server, one more server instance started under `strace -f -ttt -y` runs
    each load again with --trace-messages messages (after the same warm-up); the fsync/
    fdatasync/syncfs/sync_file_range calls made while that load ran, per message and per
    delivery (message x recipient), by call, by program (the executable each process ran,
    from execve and clone) and by file (a message in tmp/, directory new/, an index...);
    not for a server already running, which the bench did not start;
  - ratios: per load, each server's messages/s over the first server's;
  - with --smtp-source, per load, the same load from Postfix's smtp-source(1) -L -d
    (no pipelining; its own message of SIZE payload bytes plus headers), timed, and the
    files counted in its recipients' Maildirs (it names them user, 2user, ..., Kuser).
Servers (default: dovecot, maildir-deliver): the Dovecot variants of DOVECOT_VARIANTS
(bench/lmtp_rig.py; `dovecot`: mail_fsync=optimized; `dovecot-fsync-always`;
`dovecot-index-memory`: optimized, Dovecot's indexes in memory), `maildir-deliver` (started as
MAILDIR_DELIVER_LMTP when `maildir-deliver --help` shows --lmtp, else reported "not
available"), and --endpoint NAME=unix:PATH | NAME=tcp:HOST:PORT (a server already running;
not traced; give --endpoint-maildir NAME=TEMPLATE to have its Maildirs checked) or
NAME=cmd:COMMAND (started here in its own process group, {socket}, {maildir} and {root}
in COMMAND replaced: the unix socket it must listen on, the Maildir template ROOT/mail/%d/
%n/Maildir - %d the recipient's domain, %n its local part - and its directory).

Usage: python bench/lmtp_perf.py [--messages 400] [--rounds 1] [--size 4096] [--sessions 1,8,32]
           [--recipients 1,10] [--servers dovecot,dovecot-fsync-always,maildir-deliver]
           [--endpoint NAME=unix:PATH|NAME=tcp:HOST:PORT|NAME=cmd:COMMAND ...]
           [--endpoint-maildir NAME=TEMPLATE] [--transport unix|tcp]
           [--trace-messages 40] [--no-strace] [--smtp-source] [--no-pipelining]
           [--dir /var/tmp] [--json-only] [--keep]
Without --json-only a summary table also goes to standard error. Run as root with the
venv's interpreter (Dovecot's master runs as root; maildir-deliver is looked up next to
the interpreter).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deliver_perf import filesystem, machine
from lmtp_client import SENDER, Endpoint, Load, check_maildirs, combine, measure_load
from lmtp_per_process import run_per_process
from lmtp_rig import (
    RigError,
    dovecot_lmtp,
    dovecot_program,
    dovecot_version,
    effective_config,
    greets,
    process_group,
    unavailable,
)

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_MESSAGES = 20_000
MAX_SIZE = 10 << 20
MAX_SESSIONS = 256
MAX_RECIPIENTS = 100
SYNC_CALLS = ("fsync", "fdatasync", "syncfs", "sync_file_range")
TRACED = ",".join((*SYNC_CALLS, "execve", "clone", "clone3", "fork", "vfork"))
TRACE_PAUSE = 0.3  # seconds between traced loads, so late calls are not the next load's

# name -> (mail_fsync, Dovecot's indexes in memory)
DOVECOT_VARIANTS = {
    "dovecot": ("optimized", False),
    "dovecot-fsync-always": ("always", False),
    "dovecot-index-memory": ("optimized", True),
}

# The hook for `maildir-deliver --lmtp SOCKET --maildir TEMPLATE`: the command the bench
# starts (in its own process group, as root) once `maildir-deliver --help` mentions --lmtp.
# {socket} is the unix socket to listen on, {maildir} the Maildir template
# ROOT/mail/%d/%n/Maildir (%d domain, %n local part, as Dovecot's and its manual's);
# --create, since every load's Maildirs are new (Dovecot creates them too).
MAILDIR_DELIVER_LMTP = [
    "{program}",
    "--lmtp",
    "{socket}",
    "--maildir",
    "{maildir}",
    "--create",
]
MAILDIR_TEMPLATE = "{root}/mail/%d/%n/Maildir"


@dataclass
class Server:
    """One server the bench measures: how to have it running (a context manager that
    yields its Endpoint, given a fresh directory and a command prefix such as strace), and
    whether it can be traced (only servers the bench starts)."""

    name: str
    kind: str
    about: dict[str, Any]
    start: Callable[[Path, Sequence[str]], contextlib.AbstractContextManager[Endpoint]]
    traceable: bool = True
    notes: list[str] = field(default_factory=list)


def dovecot_server(name: str) -> Server:
    fsync, memory_index = DOVECOT_VARIANTS[name]
    program = dovecot_program() or "dovecot"

    def start(root: Path, wrap: Sequence[str]) -> contextlib.AbstractContextManager[Endpoint]:
        return dovecot_lmtp(root, fsync, memory_index=memory_index, wrap=wrap)

    about = {
        "version": dovecot_version(program),
        "mail_fsync": fsync,
        "indexes": "in memory (:INDEX=MEMORY)" if memory_index else "in the Maildir (default)",
        "runs_as": "master root; mail stored as nobody (userdb static)",
    }
    return Server(name, "dovecot", about, start)


@contextlib.contextmanager
def command_server(
    name: str, argv: Sequence[str], root: Path, wrap: Sequence[str]
) -> Iterator[Endpoint]:
    """Run `argv` ({socket}, {maildir}, {root} replaced) until the block ends; its endpoint
    is ROOT/lmtp.sock, its Maildirs ROOT/mail/%d/%n/Maildir."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "mail").mkdir(exist_ok=True)
    sock = root / "lmtp.sock"
    template = MAILDIR_TEMPLATE.replace("{root}", str(root))
    values = {"{socket}": str(sock), "{maildir}": template, "{root}": str(root)}
    command = []
    for part in argv:
        for key, value in values.items():
            part = part.replace(key, value)
        command.append(part)
    endpoint = Endpoint(unix=str(sock), maildir=template)
    env = {"PATH": SYSTEM_PATH, "LANG": "C", "HOME": str(root)}
    with process_group([*wrap, *command], root / "server.out", lambda: greets(endpoint), name, env):
        yield endpoint


def cmd_server(name: str, argv: list[str], kind: str = "command") -> Server:
    def start(root: Path, wrap: Sequence[str]) -> contextlib.AbstractContextManager[Endpoint]:
        return command_server(name, argv, root, wrap)

    return Server(name, kind, {"command": shlex.join(argv)}, start)


def running_server(name: str, endpoint: Endpoint) -> Server:
    def start(root: Path, wrap: Sequence[str]) -> contextlib.AbstractContextManager[Endpoint]:
        return contextlib.nullcontext(endpoint)

    about = {"endpoint": endpoint.address(), "maildir_template": endpoint.maildir}
    notes = ["already running: not traced (no fsync count)"]
    if endpoint.maildir is None:
        notes.append("no --endpoint-maildir: deliveries not checked")
    return Server(name, "running", about, start, traceable=False, notes=notes)


def maildir_deliver() -> tuple[Server | None, str]:
    """The `maildir-deliver --lmtp` server if the installed one has the option; else why."""
    script = Path(sys.executable).with_name("maildir-deliver")
    if not script.exists():
        found = shutil.which("maildir-deliver")
        if found is None:
            return None, f"not available: no maildir-deliver beside {sys.executable} or on PATH"
        script = Path(found)
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    if "--lmtp" not in done.stdout + done.stderr:
        return None, f"not available: `{script} --help` shows no --lmtp option"
    argv = [part.replace("{program}", str(script)) for part in MAILDIR_DELIVER_LMTP]
    return cmd_server("maildir-deliver", argv, "maildir-deliver"), "available"


# --- one server, every load ---------------------------------------------------------------


def label(sessions: int, recipients: int) -> str:
    return f"s{sessions}-r{recipients}"


def run_loads(
    servers: list[Server],
    loads: list[tuple[int, int]],
    args: argparse.Namespace,
    work: Path,
    results: dict[str, dict[str, Any]],
) -> None:
    """Start every server (each in WORK/NAME), then run each load on each in turn: a
    warm-up per server, then --rounds rounds, the servers' order rotated each round and
    each load, so load on the machine falls on all alike; each server's rounds are then
    checked in its Maildirs. Results go into `results` as they come (kept when a later
    step fails); a server that does not start gets its `error` and is left out."""
    with contextlib.ExitStack() as stack:
        running: dict[str, Endpoint] = {}
        for server in servers:
            row = results[server.name]
            try:
                endpoint = stack.enter_context(server.start(work / server.name, ()))
            except (RigError, OSError) as err:
                row["error"] = f"{type(err).__name__}: {err}"
                continue
            if args.transport == "tcp" and endpoint.port is not None:
                endpoint = endpoint.over_tcp()
            row |= {"endpoint": endpoint.address(), "maildir_template": endpoint.maildir}
            row["loads"] = {}
            running[server.name] = endpoint
        for number, (sessions, k) in enumerate(loads):
            name = label(sessions, k)
            domain = f"{name}.{args.run_id}.example.org"
            warm = {  # the same Maildirs: the load finds them made
                who: measure_load(
                    endpoint, sessions, k, sessions, args.size, domain=domain, tag=f"{name}w"
                )
                for who, endpoint in running.items()
            }
            rounds: dict[str, list[Load]] = {who: [] for who in running}
            for round_ in range(args.rounds):
                order = list(running)
                shift = (round_ + number) % len(order) if order else 0
                for who in order[shift:] + order[:shift]:
                    rounds[who].append(
                        measure_load(
                            running[who],
                            sessions,
                            k,
                            args.messages,
                            args.size,
                            domain=domain,
                            tag=f"{name}x{round_}",
                            pipelining=not args.no_pipelining,
                        )
                    )
            for who, endpoint in running.items():
                done = rounds[who]
                row = combine(done).report()
                row["messages"] = args.messages  # per round
                row["rounds_messages_per_second"] = [
                    d.report()["messages_per_second"] for d in done
                ]
                row["warm_up_errors"] = warm[who].error_count
                row["delivered"] = check_maildirs(endpoint, done)
                errors = sum(d.error_count for d in done)
                checked = row["delivered"]["checked"]
                row["ok"] = (row["delivered"]["ok"] and not errors) if checked else None
                if args.smtp_source:
                    row["smtp_source"] = smtp_source(endpoint, sessions, k, args, f"ss-{domain}")
                results[who]["loads"][name] = row
                progress(args, f"{who} {name}: {row['messages_per_second']} msg/s")


def smtp_source(
    endpoint: Endpoint, sessions: int, k: int, args: argparse.Namespace, domain: str
) -> dict[str, Any]:
    """The same load from smtp-source -L -d, timed; its deliveries counted."""
    program = shutil.which("smtp-source", path=SYSTEM_PATH)
    if program is None:
        return {"error": "not installed: smtp-source (postfix)"}
    argv = [program, "-L", "-d", "-s", str(sessions), "-m", str(args.messages), "-r", str(k)]
    argv += ["-l", str(args.size), "-f", SENDER, "-t", f"user@{domain}"]
    argv += ["-M", "smtp-source.maildircheck.test", endpoint.address()]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    seconds = time.perf_counter() - started
    row: dict[str, Any] = {
        "command": shlex.join(argv),
        "exit": done.returncode,
        "stderr": done.stderr.strip()[-500:],
        "elapsed_seconds": round(seconds, 4),
        "messages_per_second": round(args.messages / seconds, 1),
    }
    names = [f"user@{domain}"] + [f"{i}user@{domain}" for i in range(2, k + 1)]
    files = []
    for rcpt in names:
        maildir = endpoint.maildir_of(rcpt)
        if maildir is None:
            return row | {"files_in_maildirs": None}
        count = 0
        for sub in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError):
                count += len(os.listdir(maildir / sub))
        files.append(count)
    row["files_in_maildirs"] = sum(files)
    row["expected_files"] = args.messages * k
    row["ok"] = done.returncode == 0 and files == [args.messages] * k
    return row


# --- fsyncs, counted by strace ------------------------------------------------------------

_START = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(\w+)\((.*)$")
_RESUMED = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+<\.\.\. (\w+) resumed>(.*)$")
_RESULT = re.compile(r"\)\s+=\s+(-?\d+)")


_FD_PATH = re.compile(r"^\d+<([^>]*)>")


def file_kind(path: str) -> str:
    """What a synced file is, from the path strace -y shows: a message file in tmp/, new/
    or cur/, one of those directories, or the file's name (digits and hex made N)."""
    parent, _, name = path.rstrip("/").rpartition("/")
    parent = parent.rpartition("/")[2]
    if parent in ("tmp", "new", "cur"):
        return f"file in {parent}/"
    if name in ("tmp", "new", "cur"):
        return f"directory {name}/"
    return re.sub(r"[0-9a-f]{8,}|\d+", "N", name) or "?"


@dataclass
class Trace:
    # (time, pid, call, file kind)
    syncs: list[tuple[float, int, str, str]] = field(default_factory=list)
    program: dict[int, str] = field(default_factory=dict)  # pid -> executable it ran
    parent: dict[int, int] = field(default_factory=dict)

    def program_of(self, pid: int) -> str:
        seen = set()
        while pid not in self.program and pid in self.parent and pid not in seen:
            seen.add(pid)
            pid = self.parent[pid]
        return os.path.basename(self.program.get(pid, "?"))


def parse_trace(text: str) -> Trace:
    """strace -f -ttt -y output: the sync calls (on what), and which program each pid
    ran."""
    trace = Trace()
    for line in text.splitlines():
        start = _START.match(line)
        resumed = None if start else _RESUMED.match(line)
        found = start or resumed
        if found is None:
            continue
        pid, when, call, rest = int(found[1]), float(found[2]), found[3], found[4]
        if start and call in SYNC_CALLS:
            path = _FD_PATH.match(rest)
            trace.syncs.append((when, pid, call, file_kind(path.group(1)) if path else "?"))
        elif start and call == "execve":
            path = re.match(r'"((?:[^"\\]|\\.)*)"', rest)
            if path:
                trace.program[pid] = path.group(1)
        elif call in ("clone", "clone3", "fork", "vfork"):
            result = _RESULT.search(rest)
            if result and int(result.group(1)) > 0:
                trace.parent[int(result.group(1))] = pid
    return trace


def traced_loads(
    server: Server, loads: list[tuple[int, int]], args: argparse.Namespace, root: Path
) -> dict[str, Any]:
    """A server instance started under strace, each load run with --trace-messages
    messages; the sync calls in each load's time window."""
    strace = shutil.which("strace", path=SYSTEM_PATH)
    if strace is None:
        return {"error": "not installed: strace"}
    out_file = root.parent / f"{root.name}.strace"
    wrap = [strace, "-f", "-qq", "-ttt", "-y", "-e", f"trace={TRACED}", "-o", str(out_file)]
    n = args.trace_messages
    windows: dict[str, tuple[float, float, int, int]] = {}
    errors: dict[str, int] = {}
    with server.start(root, wrap) as endpoint:
        if args.transport == "tcp" and endpoint.port is not None:
            endpoint = endpoint.over_tcp()
        for sessions, k in loads:
            name = label(sessions, k)
            domain = f"trace-{name}.{args.run_id}.example.org"
            measure_load(endpoint, sessions, k, sessions, args.size, domain=domain, tag="w")
            time.sleep(TRACE_PAUSE)
            began = time.time()
            load = measure_load(endpoint, sessions, k, n, args.size, domain=domain, tag=name)
            ended = time.time()
            time.sleep(TRACE_PAUSE)
            delivered = sum(len(rs) for rs in load.accepted.values())
            windows[name] = (began, ended, len(load.latencies), delivered)
            errors[name] = load.error_count + check_maildirs(endpoint, load).get("missing", 0)
    trace = parse_trace(out_file.read_text(encoding="utf-8", errors="replace"))
    if not args.keep:
        out_file.unlink()
    result: dict[str, Any] = {"messages_per_load": n, "traced": TRACED, "loads": {}}
    inside = set()
    for name, (began, ended, messages, deliveries) in windows.items():
        calls: Counter[str] = Counter()
        programs: Counter[str] = Counter()
        files: Counter[str] = Counter()
        for i, (when, pid, call, kind) in enumerate(trace.syncs):
            if began <= when <= ended:
                inside.add(i)
                calls[call] += 1
                programs[trace.program_of(pid)] += 1
                files[f"{call} {kind}"] += 1
        total = sum(calls.values())
        result["loads"][name] = {
            "syncs": total,
            "per_message": round(total / messages, 3) if messages else None,
            "per_delivery": round(total / deliveries, 3) if deliveries else None,
            "by_call": dict(calls),
            "by_program": dict(programs),
            "by_file": dict(files.most_common()),
            "messages": messages,
            "deliveries": deliveries,
            "errors": errors[name],
        }
    result["syncs_outside_loads"] = len(trace.syncs) - len(inside)
    return result


# --- the run -------------------------------------------------------------------------------


def progress(args: argparse.Namespace, text: str) -> None:
    if not args.json_only:
        print(text, file=sys.stderr, flush=True)


def choose_servers(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[list[Server], dict[str, str]]:
    """The servers to measure, and those that cannot be, with the reason."""
    servers: list[Server] = []
    missing: dict[str, str] = {}
    why_not_dovecot = unavailable()
    for name in [n for part in args.servers for n in part.split(",") if n]:
        if name in DOVECOT_VARIANTS:
            if why_not_dovecot is not None:
                missing[name] = f"not available: {why_not_dovecot}"
            else:
                servers.append(dovecot_server(name))
        elif name == "maildir-deliver":
            server, why = maildir_deliver()
            if server is None:
                missing[name] = why
            else:
                servers.append(server)
        else:
            parser.error(f"unknown server {name!r}: {[*DOVECOT_VARIANTS, 'maildir-deliver']}")
    maildirs = dict(pair.split("=", 1) for pair in args.endpoint_maildir)
    for spec in args.endpoint:
        name, _, where = spec.partition("=")
        if not name or not where or name in {s.name for s in servers}:
            parser.error(f"--endpoint NAME=...: bad or repeated name in {spec!r}")
        if where.startswith("cmd:"):
            servers.append(cmd_server(name, shlex.split(where[4:])))
            continue
        try:
            endpoint = Endpoint.parse(where, maildirs.get(name))
        except ValueError as err:
            parser.error(str(err))
        servers.append(running_server(name, endpoint))
    return servers, missing


def ratios(servers: dict[str, Any], labels: list[str]) -> dict[str, dict[str, float]]:
    measured = [n for n, s in servers.items() if s.get("loads")]
    out: dict[str, dict[str, float]] = {}
    if len(measured) < 2:
        return out
    base = measured[0]
    for name in labels:
        reference = servers[base]["loads"].get(name, {}).get("messages_per_second")
        row = {}
        for other in measured[1:]:
            value = servers[other]["loads"].get(name, {}).get("messages_per_second")
            if reference and value is not None:
                row[f"{other}/{base}"] = round(value / reference, 3)
        out[name] = row
    return out


def summary(result: dict[str, Any]) -> str:
    head = f"{'server':<22}{'load':<9}{'msg/s':>8}{'p50 ms':>9}{'p90':>8}{'p99':>8}"
    lines = [head + f"{'max':>8}{'fsync/msg':>10}  delivered  replies"]
    for name, server in result["servers"].items():
        if "loads" not in server or "error" in server:
            lines.append(f"{name:<22}{server.get('error') or server.get('available')}")
        traced = server.get("fsyncs", {}).get("loads", {})
        for load, row in server.get("loads", {}).items():
            lat = row["latency_ms"] or dict.fromkeys(("p50", "p90", "p99", "max"), float("nan"))
            fs = traced.get(load, {}).get("per_message")
            got = row["delivered"]
            done = f"{got['complete']}/{got['expected']}" if got.get("checked") else "unchecked"
            lines.append(
                f"{name:<22}{load:<9}{row['messages_per_second']:>8.1f}{lat['p50']:>9.2f}"
                f"{lat['p90']:>8.2f}{lat['p99']:>8.2f}{lat['max']:>8.2f}"
                f"{'-' if fs is None else f'{fs:.2f}':>10}  {done:<9}  {row['replies_by_code']}"
            )
            source = row.get("smtp_source")
            if source:
                lines.append(
                    f"{'':<22}{'':<9}{source.get('messages_per_second', 0):>8.1f}  "
                    f"(smtp-source; {source.get('files_in_maildirs')} files)"
                )
    for load, row in result["ratios"].items():
        lines.append(f"ratio {load}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    return "\n".join(lines)


def csv_ints(text: str, low: int, high: int, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: comma-separated integers") from None
    if not values or any(not low <= v <= high for v in values):
        raise argparse.ArgumentTypeError(f"{what}: each between {low} and {high}")
    return values


def parse_args() -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=400, help="messages per load")
    parser.add_argument("--size", type=int, default=4096, help="message size in bytes")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each load (1..20)")
    parser.add_argument(
        "--sessions",
        type=lambda t: csv_ints(t, 1, MAX_SESSIONS, "--sessions"),
        default=[1, 8, 32],
    )
    parser.add_argument(
        "--recipients",
        type=lambda t: csv_ints(t, 1, MAX_RECIPIENTS, "--recipients"),
        default=[1, 10],
    )
    parser.add_argument("--servers", action="append", help="default: dovecot,maildir-deliver")
    parser.add_argument("--endpoint", action="append", default=[], metavar="NAME=WHERE")
    parser.add_argument("--endpoint-maildir", action="append", default=[], metavar="NAME=T")
    parser.add_argument("--transport", choices=("unix", "tcp"), default="unix")
    parser.add_argument("--trace-messages", type=int, default=40)
    parser.add_argument("--no-strace", action="store_true", help="no fsync count")
    parser.add_argument("--smtp-source", action="store_true", help="also time smtp-source -L")
    parser.add_argument("--no-pipelining", action="store_true")
    parser.add_argument(
        "--per-process-messages",
        type=int,
        default=100,
        metavar="N",
        help="also run each load as maildir-deliver once per recipient, N messages "
        "(0: not; bench/lmtp_per_process.py)",
    )
    parser.add_argument("--dir", default="/var/tmp", help="where the Maildirs are made")
    parser.add_argument("--json-only", action="store_true", help="no summary on stderr")
    parser.add_argument("--keep", action="store_true", help="keep the directory")
    args = parser.parse_args()
    args.servers = args.servers or ["dovecot,maildir-deliver"]
    if not 1 <= args.messages <= MAX_MESSAGES or not 256 <= args.size <= MAX_SIZE:
        parser.error(f"--messages 1..{MAX_MESSAGES}, --size 256..{MAX_SIZE}")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds 1..20")
    if not 1 <= args.trace_messages <= MAX_MESSAGES:
        parser.error(f"--trace-messages 1..{MAX_MESSAGES}")
    if any("=" not in pair for pair in args.endpoint_maildir):
        parser.error("--endpoint-maildir NAME=TEMPLATE")
    return args, parser


def main() -> None:
    args, parser = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill too
    servers, missing = choose_servers(args, parser)
    loads = [(s, k) for s in args.sessions for k in args.recipients]
    labels = [label(s, k) for s, k in loads]
    work = Path(tempfile.mkdtemp(prefix="lmtp-perf-", dir=args.dir))
    work.chmod(0o755)  # Dovecot stores mail as nobody, who must pass through
    args.run_id = work.name.rpartition("-")[2].lower()
    load_before = os.getloadavg()
    results: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    try:
        for server in servers:
            results[server.name] = {"kind": server.kind, **server.about, "notes": server.notes}
        try:
            run_loads(servers, loads, args, work, results)
        except (RigError, OSError) as err:  # from stopping a server, say
            errors.append(f"{type(err).__name__}: {err}")
        for server in servers:
            row = results[server.name]
            if server.traceable and not args.no_strace and "error" not in row:
                progress(args, f"{server.name}: traced run")
                try:
                    row["fsyncs"] = traced_loads(server, loads, args, work / f"{server.name}-t")
                except (RigError, OSError) as err:
                    row["fsyncs"] = {"error": f"{type(err).__name__}: {err}"}
            conf = work / server.name / "dovecot.conf"
            if server.kind == "dovecot" and conf.exists():
                with contextlib.suppress(RigError):
                    said = effective_config(dovecot_program() or "dovecot", conf).splitlines()
                    row["doveconf_n"] = [line for line in said if not line.startswith("#")]
        if args.per_process_messages:
            row = results["maildir-deliver-per-process"] = {"kind": "per-process", "loads": {}}
            for sessions, k in loads:
                name = label(sessions, k)
                row["loads"][name] = run_per_process(
                    work / "per-process" / name, sessions, k, args.per_process_messages,
                    args.size, tag=name,
                )  # fmt: skip
                progress(args, f"per-process {name}: {row['loads'][name]['messages_per_second']}")
        for name, why in missing.items():
            results[name] = {"available": why}
        fs = filesystem(work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "machine": machine(),
        "filesystem": fs,
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "config": {
            "messages": args.messages,
            "rounds": args.rounds,
            "order": "every server running at once; per load a warm-up on each, then each "
            "round runs the load on each server in turn, the order rotated",
            "size": args.size,
            "loads": labels,
            "transport": args.transport,
            "pipelining": not args.no_pipelining,
            "trace_messages": None if args.no_strace else args.trace_messages,
            "client": "bench/lmtp_client.py, one asyncio process",
            "work_dir": str(work) + ("" if args.keep else " (removed)"),
        },
        "servers": results,
        "errors": errors,
        "ratios": ratios(results, labels),
        "all_delivered": all(  # every load checked, and complete
            load["ok"] is True for row in results.values() for load in row.get("loads", {}).values()
        ),
    }
    print(json.dumps(result, indent=2))
    if not args.json_only:
        print(summary(result), file=sys.stderr)


if __name__ == "__main__":
    main()
