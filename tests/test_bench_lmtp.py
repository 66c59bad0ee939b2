"""The LMTP benchmark, bench/lmtp_perf.py, in a tiny run against a private Dovecot LMTP.

Owns: the shape of the benchmark's JSON for a server it starts (bench/lmtp_rig.py), that
every message the load client (bench/lmtp_client.py) sent arrived complete in every
recipient's Maildir (the bench compares each file byte for byte; this test reads its
counts), that the server's processes are gone afterwards, and the client's dot-stuffing
and trace-field handling. No timing is asserted beyond being a positive number.

Without Dovecot's LMTP server (or root, or strace) the test is skipped with the reason;
with MAILDIRCHECK_REQUIRE_REALFS=1 (set by .ci/run, which installs dovecot-lmtpd and
strace) it fails with it instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SESSIONS, RECIPIENTS, MESSAGES = 2, 2, 10


def cannot_run(why: str) -> None:
    if os.environ.get("MAILDIRCHECK_REQUIRE_REALFS"):
        pytest.fail(f"the LMTP benchmark test cannot run: {why}")
    pytest.skip(why)


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def processes_under(path: Path) -> list[str]:
    """Command lines of running processes that mention `path`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(path) in line:
                found.append(f"{entry.name}: {line}")
    return found


def test_tiny_run_against_dovecot() -> None:
    if shutil.which("strace", path=SYSTEM_PATH) is None:
        cannot_run("not installed: strace (apt-get install strace)")
    # Dovecot stores mail as an unprivileged account, which must reach the directory:
    # pytest's temp dirs are 0700, so a world-traversable one is made and removed here.
    shared = Path(tempfile.mkdtemp(prefix="maildircheck-lmtp-"))
    try:
        shared.chmod(0o755)
        argv = [sys.executable, str(BENCH / "lmtp_perf.py"), "--dir", str(shared)]
        argv += ["--json-only", "--servers", "dovecot", "--sessions", str(SESSIONS)]
        argv += ["--recipients", str(RECIPIENTS), "--messages", str(MESSAGES)]
        done = subprocess.run(
            [*argv, "--trace-messages", "4", "--per-process-messages", "3"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        left = sorted(p.name for p in shared.iterdir())
        running = processes_under(shared)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --json-only
    result: dict[str, Any] = json.loads(done.stdout)
    server = result["servers"]["dovecot"]
    if "available" in server:
        cannot_run(server["available"])
    assert "error" not in server, server["error"]
    assert left == [] and running == []  # the work dir removed, every process gone

    assert server["kind"] == "dovecot" and server["mail_fsync"] == "optimized"
    assert server["version"].startswith("2.")
    assert "protocols = lmtp" in server["doveconf_n"]
    load = server["loads"][f"s{SESSIONS}-r{RECIPIENTS}"]
    deliveries = MESSAGES * RECIPIENTS
    delivered = load["delivered"]
    assert delivered["checked"] is True
    assert delivered["expected"] == delivered["complete"] == deliveries, delivered
    for key in ("missing", "corrupt", "duplicates", "unexpected", "left_in_tmp"):
        assert delivered[key] == 0, (key, delivered)
    assert delivered["ok"] is True and load["ok"] is True and result["all_delivered"] is True

    assert load["messages_completed"] == MESSAGES and load["errors"] == 0
    assert positive(load["messages_per_second"]) and positive(load["deliveries_per_second"])
    assert positive(load["elapsed_seconds"])
    latency = load["latency_ms"]
    assert {"p50", "p90", "p99", "max"} <= set(latency)
    assert all(positive(v) for v in latency.values()), latency
    assert latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert load["replies_by_code"] == {"250": deliveries}
    assert load["command_replies"] == {
        "MAIL": {"250": MESSAGES},
        "RCPT": {"250": deliveries},
        "DATA": {"354": MESSAGES},
    }

    traced = server["fsyncs"]["loads"][f"s{SESSIONS}-r{RECIPIENTS}"]
    per_message = traced["per_message"]
    assert isinstance(per_message, int | float) and not isinstance(per_message, bool)
    assert traced["errors"] == 0 and traced["messages"] == 4
    assert result["filesystem"]["type"]

    # the reference without a server: maildir-deliver run once per recipient
    alone = result["servers"]["maildir-deliver-per-process"]["loads"][f"s{SESSIONS}-r{RECIPIENTS}"]
    assert alone["ok"] is True and alone["failures"] == 0, alone
    assert alone["delivered"]["complete"] == 3 * RECIPIENTS
    assert positive(alone["messages_per_second"]) and positive(alone["latency_ms"]["p50"])
    ratio = result["ratios"][f"s{SESSIONS}-r{RECIPIENTS}"]["maildir-deliver-per-process/dovecot"]
    assert positive(ratio)


def test_client_dot_stuffing_and_trace_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from lmtp_client import dot_stuff, message, split_trace

    data = message(7, 1024, "t")
    assert len(data) == 1024 and data.endswith(b"\r\n")
    wire = dot_stuff(data)
    assert b"\r\n.\r\n" not in wire[:-3] and wire.endswith(b"\r\n.\r\n")
    assert b"\r\n..\r\n" in wire and b"\r\n...\r\n" in wire  # "." and ".." stuffed
    lines = wire[:-3].split(b"\r\n")
    assert b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines) == data
    names, rest = split_trace(
        b"Return-Path: <a@b>\nReceived: from x\n\tby y\nDelivered-To: c@d\n" + data
    )
    assert names == ["Return-Path", "Received", "Delivered-To"] and rest == data
