"""Benchmark: what one delivery costs - maildir-deliver against the agents an MTA could run
instead, and against the floors no correct agent can go under (issue 5).

This module owns the delivery performance benchmark. In one run, into Maildirs on one file
system (a fresh directory under --dir, its df and mount options reported), it prints one
JSON document:
  - agents: each agent run N times in sequence the way an MTA runs it (a new process, the
    SIZE-byte message on a pipe as stdin, stdout and stderr captured, PATH=/usr/bin:/bin):
    latency median, p90 and max (ms) and throughput (messages/s = N / the time spent in
    those N runs). Every file in new/ is then compared byte for byte with the messages
    sent: complete, missing, corrupt and duplicate files, files left in tmp/ and failed
    runs are counted. With strace installed, one more delivery per agent is traced and its
    fsync/link/rename calls listed in order (what durability each agent pays for);
  - floors: `fsync`: open(O_CREAT|O_EXCL), write, fsync, close, link into new/, fsync new/,
    unlink, in this process with os calls (what a correct agent cannot avoid); `fork_exec`:
    /bin/true run the way the agents are;
  - startup: wall time of the bare interpreter (`python -c pass`: the interpreter
    the launcher runs; site runs, so the venv's .pth files - the editable
    install's finder among them - are processed), of maildir-deliver given empty input
    (EMPTY below) and of references, N_startup runs each;
    all of the above share one round-robin, the order rotated every round, so load on the
    machine falls on all of them alike;
  - beyond_startup_in_process: maildir-deliver's main() called N times in one process that
    has already started, alternating with the fsync floor in that process;
  - targets (issue 5): start-up (EMPTY) within 1.5x of `python -c pass`, and the time
    beyond start-up (main() in a started process) within 2x of the fsync floor, medians;
  - import_costs: `-X importtime` of maildircheck.impl.cli, the largest costs first.

Usage: python bench/deliver_perf.py [--messages 200] [--size 4096] [--startup-runs 50]
           [--agents maildir-deliver,safecat,...] [--dir /var/tmp] [--json-only]
           [--no-strace] [--keep]
Without --json-only a summary table also goes to standard error. Run it with the venv's
interpreter (the launcher is looked up next to it).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STARTUP_TARGET = 1.5
BEYOND_TARGET = 2.0
DIRECT_ENTRY = "import sys; from maildircheck.impl.cli import main; sys.exit(main())"
MAILBOX_SCRIPT = """\
# Deliver standard input with the standard library: mailbox.Maildir(path).add(bytes).
import mailbox
import sys

mailbox.Maildir(sys.argv[1], factory=None, create=False).add(sys.stdin.buffer.read())
"""
WARM_SCRIPT = """\
# Call maildir-deliver's main() N times in this one process (no start-up), each call
# followed or preceded by one fsync floor; print the seconds of both as JSON.
import io, json, sys, time
from pathlib import Path

bench, maildir, floor_dir, warm_dir, n, size = sys.argv[1:7]
sys.path.insert(0, bench)
from deliver_perf import fsync_floor, message
from maildircheck.impl.cli import main

out, times, floor, codes = sys.stdout, [], [], []
for i in range(-2, int(n)):
    data = message(i if i >= 0 else int(n) + 3 + i, int(size))
    sys.stdin, sys.stdout = io.TextIOWrapper(io.BytesIO(data)), io.StringIO()
    if i % 2:
        floored = fsync_floor(Path(floor_dir if i >= 0 else warm_dir), i, data)
    started = time.perf_counter()
    code = main([maildir if i >= 0 else warm_dir])
    seconds = time.perf_counter() - started
    if not i % 2:
        floored = fsync_floor(Path(floor_dir if i >= 0 else warm_dir), i, data)
    if i >= 0:
        times.append(seconds)
        floor.append(floored)
        codes.append(code)
sys.stdout = out
print(json.dumps({"main": times, "floor": floor, "codes": codes}))
"""
# The start-up the targets use: a delivery of empty input, which runs every import, the
# argument parsing and the algorithm up to reading stdin (it creates and removes its tmp/
# file, no fsync, no link) and is refused as an empty message.
EMPTY = "maildir-deliver MAILDIR < empty input"
TRACED = "fsync,fdatasync,syncfs,sync_file_range,link,linkat,rename,renameat,renameat2"


# name -> (invocation, note); PY is the interpreter the launcher runs,
# WORK the bench's temp dir. Each agent's own command line is built by `command`.
AGENTS = {
    "maildir-deliver": (
        "VENV/bin/maildir-deliver MAILDIR",
        "the launcher an MTA runs (sh, then python3 -P)",
    ),
    "maildir-deliver-direct": (
        f"PY -c '{DIRECT_ENTRY}' MAILDIR",
        "the same entry point without the launcher",
    ),
    "safecat": ("safecat MAILDIR/tmp MAILDIR/new", "safecat(1): tempdir destdir"),
    "deliverquota": ("deliverquota MAILDIR", "from the maildrop package"),
    "maildrop": (
        'maildrop FILTER, FILTER (mode 600): to "MAILDIR/"',
        "runs as root given an explicit filter file",
    ),
    "procmail": (
        "procmail -m RCFILE, RCFILE (mode 600): LOGFILE=WORK/procmail.log ORGMAIL=MAILDIR/ "
        "DEFAULT=MAILDIR/ MAILDIR=WORK",
        "runs as root; with -m and ORGMAIL/DEFAULT set it never opens /var/mail "
        "(see var_mail_unchanged)",
    ),
    "python-mailbox": (
        "PY WORK/mailbox_deliver.py MAILDIR",
        "mailbox.Maildir(MAILDIR, create=False).add(stdin bytes)",
    ),
}


def venv_programs() -> tuple[Path, Path]:
    """The launcher and the interpreter it runs (the python3 beside it, as it looks)."""
    script = Path(sys.executable).with_name("maildir-deliver")
    if not script.exists():
        found = shutil.which("maildir-deliver")
        script = Path(found) if found else script
    python = Path(sys.executable)
    beside = script.resolve().with_name("python3")
    if script.exists() and beside.exists():
        python = beside
    return script, python


def command(name: str, md: Path, work: Path, script: Path, python: Path) -> list[str]:
    """The command line that delivers into `md` (writing its config file into `work`);
    FileNotFoundError when the agent is not installed."""
    if name == "maildir-deliver":
        if not script.exists():
            raise FileNotFoundError(script)
        return [str(script), str(md)]
    if name == "maildir-deliver-direct":
        return [str(python), "-c", DIRECT_ENTRY, str(md)]
    if name == "python-mailbox":
        (work / "mailbox_deliver.py").write_text(MAILBOX_SCRIPT)
        return [str(python), str(work / "mailbox_deliver.py"), str(md)]
    if name == "safecat":
        return [which("safecat"), str(md / "tmp"), str(md / "new")]
    if name == "deliverquota":
        return [which("deliverquota"), str(md)]
    rc = work / f"{name}rc-{md.name}"
    if name == "maildrop":
        rc.write_text(f'to "{md}/"\n')
    else:
        log = work / f"procmail-{md.name}.log"
        rc.write_text(f"LOGFILE={log}\nORGMAIL={md}/\nDEFAULT={md}/\nMAILDIR={work}\n")
    rc.chmod(0o600)
    return [which(name), *(["-m"] if name == "procmail" else []), str(rc)]


def which(program: str) -> str:
    found = shutil.which(program, path=SYSTEM_PATH)
    if found is None:
        raise FileNotFoundError(program)
    return found


def make_maildir(path: Path) -> Path:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True)
    return path


def message(index: int, size: int) -> bytes:
    """A SIZE-byte message, unique by its index; LF line ends, no line starts with From."""
    head = (
        "Return-Path: <perf@example.invalid>\nFrom: perf@example.invalid\n"
        "To: user@example.invalid\nSubject: maildircheck delivery benchmark\n"
        f"Message-ID: <perf-{index}@example.invalid>\n\n"
    ).encode()
    line = (f"{index:08d} " + "abcdefghijklmnopqrstuvwxyz0123456789" * 2 + "\n").encode()
    body = line * ((size - len(head)) // len(line) + 1)
    data = head + body[: size - len(head) - 1] + b"\n"
    assert len(data) == size
    return data


def spawn(argv: list[str], data: bytes, env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    """Run one process as an MTA does; (wall seconds, exit code, stderr)."""
    started = time.perf_counter()
    done = subprocess.run(argv, input=data, capture_output=True, env=env, cwd=cwd, check=False)
    seconds = time.perf_counter() - started
    return seconds, done.returncode, done.stderr.decode(errors="replace").strip()


def fsync_floor(md: Path, index: int, data: bytes) -> float:
    """The unavoidable work of a correct delivery, in this process."""
    name = f"{time.time_ns()}.P{os.getpid()}_{index}.floor"
    tmp, new = md / "tmp" / name, md / "new" / name
    started = time.perf_counter()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.link(tmp, new)
    dfd = os.open(md / "new", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    os.unlink(tmp)
    return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (defined for any non-empty list)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * fraction) - 1)]


def latency(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "median_ms": round(statistics.median(ms), 3),
        "p90_ms": round(percentile(ms, 0.9), 3),
        "max_ms": round(max(ms), 3),
        "min_ms": round(min(ms), 3),
        "messages_per_second": round(len(ms) / sum(seconds), 1),
    }


def check_delivered(md: Path, sent: dict[bytes, int]) -> dict[str, int]:
    """Compare every file in new/ with the messages sent, byte for byte."""
    seen: Counter[int] = Counter()
    corrupt = 0
    for entry in os.scandir(md / "new"):
        index = sent.get(Path(entry.path).read_bytes())
        if index is None:
            corrupt += 1
        else:
            seen[index] += 1
    return {
        "complete": len(seen),
        "missing": len(sent) - len(seen),
        "corrupt": corrupt,
        "duplicates": sum(n - 1 for n in seen.values()),
        "left_in_tmp": len(os.listdir(md / "tmp")),
        "in_cur": len(os.listdir(md / "cur")),
    }


def traced_calls(argv: list[str], data: bytes, env: dict[str, str], work: Path) -> list[str]:
    """The sync/link/rename calls of one delivery, in order, as strace sees them."""
    out = work / "strace.out"
    strace = [which("strace"), "-f", "-qq", "-e", f"trace={TRACED}", "-o", str(out)]
    _, code, err = spawn([*strace, *argv], data, env, work)
    if code != 0:
        return [f"(exit {code}: {err[:200]})"]
    calls = re.findall(r"^(?:\d+\s+)?(\w+)\(", out.read_text(), re.M)
    out.unlink()
    return calls


def var_mail() -> dict[str, tuple[int, int]]:
    try:
        return {e.name: (e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir("/var/mail")}
    except OSError:
        return {}


def filesystem(path: Path) -> dict[str, Any]:
    df = subprocess.run(["df", "-T", "-P", str(path)], capture_output=True, text=True)
    fields = df.stdout.splitlines()[-1].split() if df.returncode == 0 else []
    info: dict[str, Any] = {"path": str(path), "df": df.stdout.strip()}
    if len(fields) >= 7:
        info |= {"device": fields[0], "type": fields[1], "mounted_on": fields[6]}
        for mount in Path("/proc/mounts").read_text().splitlines():
            parts = mount.split()
            if parts[1] == fields[6] and parts[0] == fields[0]:
                info["mount_options"] = parts[3]
    return info


def machine() -> dict[str, Any]:
    cpu = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu.group(1) if cpu else platform.processor(),
        "kernel": platform.release(),
        "bench_python": platform.python_version(),
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


Run = Callable[[int], tuple[float, int, str]]  # message index -> (seconds, exit code, stderr)


def round_robin(
    runs: dict[str, tuple[Run, int]],
) -> tuple[dict[str, list[float]], dict[str, list[str]], dict[str, set[int]]]:
    """Run each runner its count of times over R rounds (R the largest count), its runs
    spread evenly over them, the order rotated every round; (seconds, failures, exit
    codes) per runner."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    failures: dict[str, list[str]] = {name: [] for name in runs}
    codes: dict[str, set[int]] = {name: set() for name in runs}
    rounds = max(count for _, count in runs.values())
    for i in range(rounds):
        active = [name for name, (_, c) in runs.items() if i * c // rounds < (i + 1) * c // rounds]
        shift = i % len(active)
        for name in active[shift:] + active[:shift]:
            k = len(times[name])
            seconds, code, err = runs[name][0](k)
            times[name].append(seconds)
            codes[name].add(code)
            if code != 0:
                failures[name].append(f"run {k}: exit {code}: {err[:200]}")
    return times, failures, codes


def measure(
    chosen: list[str],
    build: Callable[[str, Path], list[str]],
    startup: dict[str, list[str]],
    args: argparse.Namespace,
    env: dict[str, str],
    work: Path,
) -> dict[str, Any]:
    """Deliver N messages with every agent and floor and run the start-up commands, all in
    one round-robin; verify what the agents delivered."""
    n, size = args.messages, args.size
    sent = {message(i, size): i for i in range(n)}
    order = list(sent)

    def spawner(argv: list[str], stdin: list[bytes] | None = None) -> Run:
        return lambda i: spawn(argv, stdin[i] if stdin else b"", env, work)

    runs: dict[str, tuple[Run, int]] = {}
    maildirs: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for agent in chosen:
        try:
            warm = build(agent, make_maildir(work / f"warm-{agent}"))
        except FileNotFoundError as missing:
            skipped[agent] = f"not installed: {missing} not found on {SYSTEM_PATH}"
            continue
        bad = [r for r in (spawn(warm, message(n + k, size), env, work) for k in range(2)) if r[1]]
        if bad:
            skipped[agent] = f"warm-up delivery failed: exit {bad[0][1]}: {bad[0][2][:300]}"
            continue
        maildirs[agent] = make_maildir(work / agent)
        runs[agent] = (spawner(build(agent, maildirs[agent]), order), n)
    floor_md = make_maildir(work / "floor-fsync")
    fsync_floor(make_maildir(work / "warm-floor"), n, message(n, size))
    runs["floor:fsync"] = (lambda i: (fsync_floor(floor_md, i, order[i]), 0, ""), n)
    runs["floor:fork_exec"] = (spawner(["/bin/true"], order), n)
    for name, argv in startup.items():
        for _ in range(2):
            spawn(argv, b"", env, work)
        runs[f"startup:{name}"] = (spawner(argv), args.startup_runs)
    spawn(["/bin/true"], b"", env, work)
    times, failures, codes = round_robin(runs)

    agents: dict[str, Any] = {}
    for agent in maildirs:
        checked = check_delivered(maildirs[agent], sent)
        failed = failures[agent]
        row: dict[str, Any] = {
            "invocation": AGENTS[agent][0],
            "note": AGENTS[agent][1],
            **latency(times[agent]),
            "delivered": checked,
            "failed_runs": len(failed),
            "first_failure": failed[0] if failed else None,
            "ok": not failed
            and checked["complete"] == n
            and not (checked["corrupt"] or checked["duplicates"] or checked["left_in_tmp"]),
        }
        if args.trace:
            argv = build(agent, make_maildir(work / f"trace-{agent}"))
            row["traced_calls"] = traced_calls(argv, message(n + 2, size), env, work)
        agents[agent] = row
    floors = {
        "fsync": {
            "what": "in-process os calls: open(tmp, O_CREAT|O_EXCL), write, fsync, close, "
            "link into new/, open new/ + fsync + close, unlink tmp",
            **latency(times["floor:fsync"]),
            "delivered": check_delivered(floor_md, sent),
        },
        "fork_exec": {
            "what": "/bin/true run as the agents are (subprocess.run, message on a stdin "
            "pipe, output captured)",
            **latency(times["floor:fork_exec"]),
            "failed_runs": len(failures["floor:fork_exec"]),
        },
    }
    starts = {
        name: {
            "command": " ".join(argv),
            "exit_codes": sorted(codes[f"startup:{name}"]),
            "median_ms": round(statistics.median(times[f"startup:{name}"]) * 1000, 3),
            "p90_ms": round(percentile(times[f"startup:{name}"], 0.9) * 1000, 3),
            "min_ms": round(min(times[f"startup:{name}"]) * 1000, 3),
        }
        for name, argv in startup.items()
    }
    if EMPTY in startup:  # the start-up figure is only that if nothing was delivered
        starts[EMPTY]["files_left_in_new_and_tmp"] = sum(
            len(os.listdir(Path(startup[EMPTY][-1]) / sub)) for sub in ("new", "tmp")
        )
    return {"agents": agents, "skipped": skipped, "floors": floors, "startup": starts}


def warm(python: Path, args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, Any]:
    """maildir-deliver's time beyond start-up, measured directly: main() called in one
    process that has already started, against the fsync floor in that same process."""
    n, size = args.messages, args.size
    script, md = work / "warm_main.py", make_maildir(work / "warm-main")
    floor_md = make_maildir(work / "warm-main-floor")
    script.write_text(WARM_SCRIPT)
    bench = str(Path(__file__).resolve().parent)
    warm_up = make_maildir(work / "warm-main-warm-up")
    argv = [str(python), str(script), bench, str(md), str(floor_md), str(warm_up), str(n)]
    done = subprocess.run([*argv, str(size)], capture_output=True, text=True, env=env, cwd=work)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-500:]}"}
    got = json.loads(done.stdout)
    sent = {message(i, size): i for i in range(n)}
    main, floor = latency(got["main"]), latency(got["floor"])
    return {
        "what": "maildircheck.impl.cli.main([MAILDIR]) called N times in one started "
        "process (stdin and stdout in-memory buffers), alternating with the fsync floor "
        "in that process",
        "main": {**main, "exit_codes": sorted(set(got["codes"]))},
        "main_delivered": check_delivered(md, sent),
        "floor": {**floor, "delivered": check_delivered(floor_md, sent)},
        "ratio": round(main["median_ms"] / floor["median_ms"], 2),
    }


def import_costs(python: Path, env: dict[str, str], work: Path, top: int = 15) -> dict[str, Any]:
    """`-X importtime` of the CLI module, the largest costs first; `in_bare_startup` marks
    what `python -c pass` imports too (site, the .pth hooks), which the CLI does not add."""

    def run(*argv: str) -> str:
        done = subprocess.run(
            [str(python), *argv], capture_output=True, text=True, env=env, cwd=work
        )
        return done.stderr + done.stdout

    def timed(code: str) -> list[tuple[int, int, int, str]]:
        found = re.findall(
            r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$",
            run("-X", "importtime", "-c", code),
            re.M,
        )
        return [(int(a), int(b), len(c) // 2, d) for a, b, c, d in found]

    rows, bare = timed("import maildircheck.impl.cli"), {r[3] for r in timed("pass")}

    def shown(row: tuple[int, int, int, str]) -> dict[str, Any]:
        return {
            "module": row[3],
            "self_ms": row[0] / 1000,
            "cumulative_ms": row[1] / 1000,
            "depth": row[2],
            "in_bare_startup": row[3] in bare,
        }

    code = "import sys; b = set(sys.modules); import maildircheck.impl.cli; "
    added = run("-c", code + "print(*sorted(set(sys.modules) - b))").split()
    return {
        "command": f"{python} -X importtime -c 'import maildircheck.impl.cli'",
        "top_cumulative": [shown(r) for r in sorted(rows, key=lambda r: -r[1])[:top]],
        "top_self": [shown(r) for r in sorted(rows, key=lambda r: -r[0])[:top]],
        "modules_added_by_cli": len(added),
        "first_party_added": [m for m in added if m.startswith("maildircheck")],
        "stdlib_added": [m for m in added if not m.startswith(("maildircheck", "_"))],
    }


def targets(measured: dict[str, Any]) -> dict[str, Any]:
    """The two targets of issue 5, from medians measured in the same round-robin."""
    startup, delivered = measured["startup"], measured["agents"]
    if EMPTY not in startup:
        return {"startup": "not measured: no maildir-deliver launcher"}
    bare = startup["python -c pass"]["median_ms"]
    cli = startup[EMPTY]["median_ms"]
    result: dict[str, Any] = {
        "startup": {
            "what": f"median({EMPTY}) / median(python -c pass)",
            "ratio": round(cli / bare, 2),
            "target": STARTUP_TARGET,
            "met": cli / bare <= STARTUP_TARGET,
            "ratio_of_minimums": round(
                startup[EMPTY]["min_ms"] / startup["python -c pass"]["min_ms"], 2
            ),
            "against_other_references": {
                name: round(cli / row["median_ms"], 2)
                for name, row in startup.items()
                if "-c pass" in name and name != "python -c pass"
            },
        },
        "beyond_startup": "not measured: maildir-deliver not among the agents run",
    }
    if "maildir-deliver" in delivered:
        warm = measured.get("beyond_startup_in_process", {})
        ratio = warm.get("ratio")
        beyond = delivered["maildir-deliver"]["median_ms"] - cli
        floor = measured["floors"]["fsync"]["median_ms"]
        result["beyond_startup"] = {
            "what": "median main() call in a started process / median fsync floor in that "
            "process (beyond_startup_in_process)",
            "ratio": ratio,
            "target": BEYOND_TARGET,
            "met": ratio is not None and ratio <= BEYOND_TARGET,
            "cross_check_by_subtraction": {
                "what": f"(median maildir-deliver latency - median {EMPTY}) "
                "/ median fsync floor: a small difference of two large noisy medians",
                "beyond_startup_ms": round(beyond, 3),
                "ratio": round(beyond / floor, 2),
                "by_minimums_ms": round(
                    delivered["maildir-deliver"]["min_ms"] - startup[EMPTY]["min_ms"],
                    3,
                ),
            },
        }
    return result


def summary(result: dict[str, Any]) -> str:
    lines = [f"{'agent':<24}{'median ms':>10}{'p90 ms':>9}{'max ms':>9}{'msg/s':>8}  ok"]
    rows = {**result["agents"], **{f"floor:{k}": v for k, v in result["floors"].items()}}
    for name, row in rows.items():
        lines.append(
            f"{name:<24}{row['median_ms']:>10.3f}{row['p90_ms']:>9.3f}{row['max_ms']:>9.3f}"
            f"{row['messages_per_second']:>8.1f}  {row.get('ok', '')}"
        )
    for name, why in result["skipped"].items():
        lines.append(f"{name:<24}skipped: {why}")
    for name, row in result["startup"].items():
        lines.append(f"start-up {name:<40}{row['median_ms']:>9.3f} ms")
    for name, row in result["targets"].items():
        if isinstance(row, dict):
            lines.append(f"target {name}: {row['ratio']} (<= {row['target']}): {row['met']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=200, help="deliveries per agent")
    parser.add_argument("--size", type=int, default=4096, help="message size in bytes (>= 256)")
    parser.add_argument("--startup-runs", type=int, default=50)
    parser.add_argument("--agents", action="append", help="comma-separated; default: all")
    parser.add_argument("--dir", default="/var/tmp", help="where the Maildirs are made")
    parser.add_argument("--json-only", action="store_true", help="no summary on stderr")
    parser.add_argument("--no-strace", action="store_true", help="skip the traced delivery")
    parser.add_argument("--keep", action="store_true", help="keep the Maildirs")
    args = parser.parse_args()
    script, python = venv_programs()
    wanted = [n for a in args.agents or [",".join(AGENTS)] for n in a.split(",") if n]
    unknown = [n for n in wanted if n not in AGENTS]
    if unknown or args.size < 256 or args.messages < 1 or args.startup_runs < 1:
        parser.error(
            f"unknown agents {unknown}; choose from {list(AGENTS)}"
            if unknown
            else "--size must be >= 256, --messages and --startup-runs >= 1"
        )
    work = Path(tempfile.mkdtemp(prefix="deliver-perf-", dir=args.dir))
    (work / "home").mkdir()
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "root"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work / "home"), "LOGNAME": user, "USER": user}
    mail_before, load_before = var_mail(), os.getloadavg()
    try:
        args.trace = not args.no_strace and shutil.which("strace", path=SYSTEM_PATH) is not None
        startup = {
            "python -c pass": [str(python), "-c", "pass"],
            "python -S -c pass (no site, no .pth)": [str(python), "-S", "-c", "pass"],
            "python -c 'import maildircheck.impl.cli'": [
                str(python),
                "-c",
                "import maildircheck.impl.cli",
            ],
        }
        if script.exists():
            empty = make_maildir(work / "startup-empty")
            startup[EMPTY] = [str(script), str(empty)]
            startup["maildir-deliver --help (prints its manual page)"] = [str(script), "--help"]
        if Path("/usr/bin/python3").exists():
            startup["/usr/bin/python3 -c pass (system)"] = ["/usr/bin/python3", "-c", "pass"]
        build = functools.partial(command, work=work, script=script, python=python)
        measured = measure(list(dict.fromkeys(wanted)), build, startup, args, env, work)
        if "maildir-deliver" in measured["agents"]:
            measured["beyond_startup_in_process"] = warm(python, args, env, work)
        imports = import_costs(python, env, work)
        fs = filesystem(work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    site = Path(python).parent.parent / "lib"
    result = {
        "machine": machine(),
        "filesystem": fs,
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "config": {
            "messages": args.messages,
            "size": args.size,
            "startup_runs": args.startup_runs,
            "stdin": "pipe",
            "order": "one round-robin over agents, floors and start-up commands (start-up runs "
            "spread evenly over the rounds), the order rotated each round",
            "env": {k: v if k != "HOME" else "WORK/home" for k, v in env.items()},
            "console_script": str(script),
            "interpreter": str(python),
            "pth_files_processed_at_startup": sorted(p.name for p in site.glob("*/*/*.pth")),
        },
        **measured,
        "targets": targets(measured),
        "import_costs": imports,
        "var_mail_unchanged": var_mail() == mail_before,
    }
    print(json.dumps(result, indent=2))
    if not args.json_only:
        print(summary(result), file=sys.stderr)


if __name__ == "__main__":
    main()
