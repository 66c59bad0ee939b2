"""The LMTP benchmark's reference without a server: maildir-deliver run once per recipient.

This module owns the per-process row of bench/lmtp_perf.py: the loads of that benchmark
(sessions x recipients) delivered the way an MTA delivers without LMTP - Postfix's
local(8) or pipe(8) running `maildir-deliver MAILDIR` once per recipient with the message
on a pipe, `sessions` deliveries at a time (Postfix's destination concurrency). Latency is
per message (all its recipients), as the LMTP client measures it; every file is then read
back and compared with what was sent, headers aside.

    python bench/lmtp_per_process.py [--sessions 8] [--recipients 1] [--messages 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

AGENT = Path(sys.executable).with_name("maildir-deliver")


def message(index: int, size: int, tag: str) -> bytes:
    head = f"Subject: per-process {tag} {index}\nMessage-ID: <{tag}.{index}@bench>\n\n"
    body = b"x" * max(0, size - len(head) - 1) + b"\n"
    return head.encode() + body


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run_per_process(
    root: Path, sessions: int, recipients: int, messages: int, size: int, tag: str = "p"
) -> dict[str, Any]:
    """Deliver `messages` to `recipients` Maildirs under `root`, `sessions` at a time."""
    maildirs = [root / f"user{r}" / "Maildir" for r in range(recipients)]
    for maildir in maildirs:
        maildir.parent.mkdir(parents=True, exist_ok=True)  # the agent's --create makes the rest
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    next_index = iter(range(messages))

    def worker() -> None:
        for index in next_index:
            data = message(index, size, tag)
            started = time.perf_counter()
            for maildir in maildirs:
                done = subprocess.run(
                    [str(AGENT), "--create", "--exit-codes", "sysexits", str(maildir)],
                    input=data,
                    capture_output=True,
                    check=False,
                )
                if done.returncode != 0:
                    with lock:
                        failures.append(done.stderr.decode(errors="replace").strip())
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=worker) for _ in range(sessions)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    sent = {message(i, size, tag) for i in range(messages)}
    complete = sum(
        1 for maildir in maildirs if (maildir / "new").is_dir()
        for path in (maildir / "new").iterdir() if path.read_bytes() in sent
    )  # fmt: skip
    return {
        "how": f"maildir-deliver --create MAILDIR, one process per recipient, {sessions} at a time",
        "sessions": sessions,
        "recipients": recipients,
        "messages": messages,
        "size": size,
        "elapsed_seconds": round(elapsed, 4),
        "messages_per_second": round(messages / elapsed, 1),
        "latency_ms": {
            "p50": round(statistics.median(latencies), 3),
            "p90": round(percentile(latencies, 0.9), 3),
            "p99": round(percentile(latencies, 0.99), 3),
            "max": round(max(latencies), 3),
        },
        "failures": len(failures),
        "first_failures": failures[:3],
        "replies_by_code": {"exit 0": messages * recipients - len(failures)},
        "delivered": {"checked": True, "expected": messages * recipients, "complete": complete},
        "ok": not failures and complete == messages * recipients,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--recipients", type=int, default=1)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="per-process-", dir=args.dir) as work:
        found = run_per_process(
            Path(work), args.sessions, args.recipients, args.messages, args.size
        )
    print(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
