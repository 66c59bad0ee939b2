"""`maildir-deliver` given bad input and hit by faults: each ends in a defined exit code.

Owns the failure classes of spec family D that tests/test_deliver_os.py and
tests/test_deliver_pyfakefs.py do not already cover: the empty message (D6, a data error),
awkward bytes through the From_ and header paths (D1, D2, D6), a 100 MB message streamed
by the real console script with bounded memory (D6; peak RSS read from /proc), a maildir
that is a file or on a read-only mount (A1, A13), the 24-hour deadline passing while
copying and SIGTERM in the middle of a From_ line (D7, A7), and EINTR from a stream of
signals (D7). Every failure must give its exit code under both conventions (D3), exactly
one line on stderr, and leave nothing in new/ and nothing in tmp/.

Already covered elsewhere (not repeated here): a missing maildir, tmp/ a regular file,
tmp/ or new/ a symbolic link, EFBIG, SIGTERM and the alarm while reading
(tests/test_deliver_os.py); ENOSPC, EDQUOT and EACCES (tests/test_deliver_pyfakefs.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from maildircheck.impl import cli
from maildircheck.impl.deliver import CHUNK, deliver
from maildircheck.impl.drivers import run_on_os
from maildircheck.impl.naming import parse_name
from maildircheck.model.outcome import DeliveryRequest, TemporaryFailure

SCRIPT = Path(sys.executable).with_name("maildir-deliver")
# (convention flags, temporary, policy, data) - the table of impl/cli.py, restated (D3)
CONVENTIONS = [([], 111, 100, 100), (["--exit-codes", "sysexits"], 75, 77, 65)]


def entries(root: Path, sub: str) -> list[str]:
    return sorted(os.listdir(root / sub))


def assert_clean_failure(root: Path, out: bytes | str, err: bytes | str, kind: str) -> None:
    """No name printed, one stderr line of `kind`, nothing in new/ and nothing in tmp/."""
    text = err.decode() if isinstance(err, bytes) else err
    assert out in (b"", ""), out
    assert text.startswith(f"maildir-deliver: {kind} failure: "), text
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert entries(root, "new") == [], "a partial or refused message reached new/"
    assert entries(root, "tmp") == [], "the tmp/ file was left behind"


class FakeStdin:
    def __init__(self, buffer: Any) -> None:
        self.buffer = buffer


class Trickle:
    """Standard input handing out `data` `size` bytes at a time, optionally slowly."""

    def __init__(self, data: bytes, size: int, delay: float = 0.0) -> None:
        self.data = data
        self.size = size
        self.delay = delay

    def read1(self, size: int = -1) -> bytes:
        if self.delay:
            time.sleep(self.delay)
        piece, self.data = self.data[: self.size], self.data[self.size :]
        return piece


def run_main(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    data: bytes | Any,
) -> tuple[int, str, str]:
    buffer = io.BytesIO(data) if isinstance(data, bytes) else data
    monkeypatch.setattr(sys, "stdin", FakeStdin(buffer))
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def script() -> str:
    if not SCRIPT.exists():
        pytest.skip("the maildir-deliver console script is not installed beside this python")
    return str(SCRIPT)


# ---------------------------------------------------------------- D6: the empty message

ENVELOPE = b"From alice@example.org  Thu Jan  4 10:00:00 2024\n"


@pytest.mark.parametrize(("flags", "temporary", "policy", "data"), CONVENTIONS)
@pytest.mark.parametrize(
    "message",
    [b"", ENVELOPE, ENVELOPE.rstrip(b"\n"), ENVELOPE.replace(b"\n", b"\r\n")],
    ids=["nothing", "only-a-from-line", "from-line-without-newline", "from-line-crlf"],
)
def test_an_empty_message_is_a_permanent_data_error(
    maildir: Path,
    message: bytes,
    flags: list[str],
    temporary: int,
    policy: int,
    data: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # D6, D3: EX_DATAERR 65 under sysexits, 100 under qmail; the tmp/ file is removed
    stdin = Trickle(message, 3)
    code, out, err = run_main(monkeypatch, capsys, [*flags, str(maildir)], stdin)
    assert code == data
    assert_clean_failure(maildir, out, err, "permanent")
    assert "empty message" in err


def test_allow_empty_delivers_an_empty_file(
    maildir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(monkeypatch, capsys, ["--allow-empty", str(maildir)], ENVELOPE)
    assert (code, err) == (0, "")
    name = out.strip()
    assert entries(maildir, "new") == [name]
    assert (maildir / "new" / name).read_bytes() == b""
    parts = parse_name(name)
    assert parts is not None and parts.size == 0


# ---------------------------------------------------------------- D1, D2, D6: bytes kept

AWKWARD = {
    "no-final-newline": b"Subject: s\n\nno newline at the end",
    "crlf": b"Subject: s\r\n\r\nline\r\nFrom inside\r\n",
    "nul": b"Subject: \x00\n\n\x00\x00body\x00",
    "eight-bit": b"Subject: \xe9t\xe9\n\n" + bytes(range(256)),
    "lone-cr": b"\r",
    "one-byte": b"x",
}


@pytest.mark.parametrize("size", [1, 7, CHUNK])
@pytest.mark.parametrize("body", AWKWARD.values(), ids=AWKWARD.keys())
def test_awkward_bytes_survive_the_from_line_and_the_headers(
    maildir: Path,
    body: bytes,
    size: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # D1 removes exactly the envelope line, D2 prepends exactly the headers, and the rest
    # is the message byte for byte (D6), however the reads split it
    monkeypatch.setenv("SENDER", "bob@example.org")
    monkeypatch.setenv("RECIPIENT", "carol@example.net")
    argv = ["--return-path", "--delivered-to", str(maildir)]
    code, out, err = run_main(monkeypatch, capsys, argv, Trickle(ENVELOPE + body, size))
    assert (code, err) == (0, "")
    name = out.strip()
    expected = b"Return-Path: <bob@example.org>\nDelivered-To: carol@example.net\n" + body
    assert (maildir / "new" / name).read_bytes() == expected
    assert entries(maildir, "tmp") == []
    parts = parse_name(name)
    assert parts is not None and parts.size == len(expected)  # D5


@pytest.mark.parametrize(("flags", "temporary", "policy", "data"), CONVENTIONS)
@pytest.mark.parametrize(
    ("env", "flag"),
    [
        ({"SENDER": "a@b\nX-Forged: 1"}, "--return-path"),
        ({"SENDER": "a@b\r"}, "--return-path"),
        ({"RECIPIENT": "c@d\nBcc: e@f"}, "--delivered-to"),
        ({"ORIGINAL_RECIPIENT": "c@d\rX: y"}, "--delivered-to"),
    ],
)
def test_a_line_break_in_an_envelope_header_is_a_data_error(
    maildir: Path,
    env: dict[str, str],
    flag: str,
    flags: list[str],
    temporary: int,
    policy: int,
    data: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # D2: a header is never split or forged from the environment; D3: a data error
    for var in ("SENDER", "RECIPIENT", "ORIGINAL_RECIPIENT"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    code, out, err = run_main(monkeypatch, capsys, [*flags, flag, str(maildir)], b"S: s\n\nb\n")
    assert code == data
    assert_clean_failure(maildir, out, err, "permanent")
    assert "line break" in err


def test_a_line_break_in_sender_is_harmless_without_return_path(
    maildir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SENDER", "a@b\nX: y")
    code, out, _ = run_main(monkeypatch, capsys, [str(maildir)], b"S: s\n\nb\n")
    assert code == 0
    assert (maildir / "new" / out.strip()).read_bytes() == b"S: s\n\nb\n"


# ---------------------------------------------------------------- D6: 100 MB, bounded memory

BIG = 100 * 1024 * 1024
RSS_BOUND_MB = 60


def peak_rss_mb(pid: int) -> float:
    """The high-water mark of a live process's resident set (VmHWM), in megabytes.

    Not wait4's or RUSAGE_CHILDREN's ru_maxrss: Linux carries the peak of the image before
    exec(2) over into it, and subprocess forks (or vforks) from pytest's much larger
    process, so that figure is pytest's size, not the agent's."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def test_a_100_mb_message_is_streamed_with_bounded_memory(maildir: Path) -> None:
    # The real console script in its own process. Its peak RSS is read once the whole
    # message has gone into the pipe (only the last pipe-full can still be unread), so
    # an agent that held the message in memory would be over 100 MB by then.
    if shutil.disk_usage(maildir).free < 3 * BIG:
        pytest.skip("not enough free disk for a 100 MB message")
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    proc = subprocess.Popen(
        [script(), "--exit-codes", "sysexits", str(maildir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(ENVELOPE + b"Subject: big\n\n")
        for i in range(BIG // len(block)):
            piece = i.to_bytes(8, "big") + block[8:]  # no two megabytes alike
            proc.stdin.write(piece)
            digest.update(piece)
        proc.stdin.flush()
        peak_mb = peak_rss_mb(proc.pid)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"maildir-deliver peak RSS (VmHWM) for a 100 MB message: {peak_mb:.1f} MB")
    assert (proc.returncode, err) == (0, b""), err
    name = out.decode().strip()
    delivered = maildir / "new" / name
    assert delivered.stat().st_size == 14 + BIG  # "Subject: big\n\n" + the body
    parts = parse_name(name)
    assert parts is not None and parts.size == 14 + BIG
    check = hashlib.sha256()
    with delivered.open("rb") as f:
        assert f.read(14) == b"Subject: big\n\n"
        while chunk := f.read(1 << 20):
            check.update(chunk)
    assert check.hexdigest() == digest.hexdigest()
    assert peak_mb < RSS_BOUND_MB, f"peak RSS {peak_mb:.1f} MB: the message was buffered"


# ---------------------------------------------------------------- A1, A13: unusable maildirs


@pytest.mark.parametrize(("flags", "temporary", "policy", "data"), CONVENTIONS)
def test_a_maildir_that_is_a_regular_file_is_temporary(
    tmp_path: Path, flags: list[str], temporary: int, policy: int, data: int
) -> None:
    path = tmp_path / "Maildir"
    path.write_bytes(b"not a directory")
    proc = subprocess.run(
        [script(), *flags, str(path)], input=b"S: s\n\nb\n", capture_output=True, timeout=60
    )
    assert proc.returncode == temporary
    assert proc.stdout == b""
    assert proc.stderr.startswith(b"maildir-deliver: temporary failure: ")
    assert proc.stderr.count(b"\n") == 1
    assert b"ENOTDIR" in proc.stderr
    assert path.read_bytes() == b"not a directory"


def _read_only_mounts_work(tmp_path: Path) -> str | None:
    """None when `unshare -m` plus a read-only bind mount works here, else why not."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare or mount is missing"
    probe = tmp_path / "probe"
    probe.mkdir()
    shell = 'mount --bind -o ro "$1" "$1" && ! touch "$1/x"'
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", shell, "sh", str(probe)],
        capture_output=True,
        timeout=30,
    )
    if done.returncode != 0 or (probe / "x").exists():
        return f"a read-only bind mount in a private mount namespace failed: {done.stderr!r}"
    return None


@pytest.mark.parametrize(("flags", "temporary", "policy", "data"), CONVENTIONS)
@pytest.mark.parametrize("read_only", ["", "new"], ids=["whole-maildir", "new-only"])
def test_a_maildir_on_a_read_only_mount_is_temporary(
    maildir: Path,
    tmp_path: Path,
    read_only: str,
    flags: list[str],
    temporary: int,
    policy: int,
    data: int,
) -> None:
    # Root ignores permission bits, so "not writable" is made by the kernel: the child runs
    # in its own mount namespace (unshare -m; the host's mounts are untouched) with MAILDIR
    # or only MAILDIR/new bind-mounted read-only. With new/ read-only the message is
    # already written in tmp/ when the link fails: tmp/ must be emptied again (A13).
    why_not = _read_only_mounts_work(tmp_path)
    if why_not is not None:
        pytest.skip(why_not)
    target = maildir / read_only if read_only else maildir
    shell = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
    cmd = ["unshare", "-m", "sh", "-c", shell, "sh", str(target), script(), *flags, str(maildir)]
    proc = subprocess.run(cmd, input=b"S: s\n\nbody\n", capture_output=True, timeout=60)
    assert proc.returncode == temporary, proc.stderr
    assert_clean_failure(maildir, proc.stdout, proc.stderr, "temporary")
    assert b"EROFS" in proc.stderr or b"EXDEV" in proc.stderr, proc.stderr
    assert (b"link:" if read_only else b"create:") in proc.stderr


# ---------------------------------------------------------------- D7, A7: the timer, SIGTERM


def test_the_deadline_passing_while_copying_is_temporary(maildir: Path) -> None:
    # A7: the deadline is checked once the message is written; a slow input that outlasts
    # it (here a 1-second timer and 3 slow reads) ends in a temporary failure, tmp/ empty.
    stdin = Trickle(b"S: s\n\n" + b"x" * 30, 12, delay=0.7)
    request = DeliveryRequest(str(maildir), timeout_seconds=1)
    outcome = run_on_os(deliver(request), stdin)
    assert isinstance(outcome, TemporaryFailure)
    assert "24-hour delivery timer expired" in outcome.reason
    assert entries(maildir, "tmp") == entries(maildir, "new") == []


@pytest.mark.parametrize(("flags", "temporary", "policy", "data"), CONVENTIONS)
def test_sigterm_in_the_middle_of_a_from_line_removes_tmp(
    maildir: Path, flags: list[str], temporary: int, policy: int, data: int
) -> None:
    # D1, D7: the envelope line is still being read (no newline yet) when SIGTERM arrives
    proc = subprocess.Popen(
        [script(), *flags, str(maildir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"From alice@example.org  Thu Ja")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while not entries(maildir, "tmp") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(entries(maildir, "tmp")) == 1  # the file is open, the read blocks
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == temporary
    assert_clean_failure(maildir, out, err, "temporary")
    assert b"SIGTERM" in err


# ---------------------------------------------------------------- D7: EINTR

EINTR_CHILD = """\
import signal, sys
caught = 0
def count(signum, frame):
    global caught
    caught += 1
signal.signal(signal.SIGUSR1, count)
from maildircheck.impl.cli import main
code = main(sys.argv[1:])
sys.stderr.write(f"SIGUSR1 x{caught}\\n")
sys.exit(code)
"""


def test_a_stream_of_signals_does_not_disturb_a_slow_delivery(maildir: Path) -> None:
    # D7: a signal whose handler returns interrupts the blocking read (EINTR); the read is
    # retried (PEP 475), so the delivery succeeds with the message intact. The child counts
    # the signals its handler ran, so the test knows they arrived during the delivery.
    message = ENVELOPE + b"Subject: slow\n\n" + b"".join(b"line %d\n" % i for i in range(40))
    proc = subprocess.Popen(
        [sys.executable, "-c", EINTR_CHILD, str(maildir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stop = threading.Event()
    sent = 0

    def storm() -> None:
        nonlocal sent
        while not stop.is_set():
            try:
                os.kill(proc.pid, signal.SIGUSR1)
            except ProcessLookupError:
                return
            sent += 1
            time.sleep(0.002)

    try:
        assert proc.stdin is not None
        deadline = time.monotonic() + 30
        while not entries(maildir, "tmp") and time.monotonic() < deadline:
            time.sleep(0.01)  # tmp/NAME exists: the handler is installed, the read begins
        storm_thread = threading.Thread(target=storm)
        storm_thread.start()
        for i in range(0, len(message), 16):  # slowly, so reads block between pieces
            proc.stdin.write(message[i : i + 16])
            proc.stdin.flush()
            time.sleep(0.02)
        stop.set()
        storm_thread.join()
        out, err = proc.communicate(timeout=60)  # closes stdin: the end of the message
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = err.decode().splitlines()
    assert proc.returncode == 0, err
    assert len(lines) == 1 and lines[0].startswith("SIGUSR1 x"), err
    caught = int(lines[0].removeprefix("SIGUSR1 x"))
    assert caught > 20 and sent >= caught  # the handler really ran, many times
    name = out.decode().strip()
    expected = b"Subject: slow\n\n" + b"".join(b"line %d\n" % i for i in range(40))
    assert (maildir / "new" / name).read_bytes() == expected
    assert entries(maildir, "tmp") == []
