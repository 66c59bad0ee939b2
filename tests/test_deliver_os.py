"""The OS driver and `maildir-deliver` on a real temporary directory.

Owns the end-to-end checks of impl/drivers.py and impl/cli.py: exact bytes, the file's
place and mode, the printed name, exit codes under both conventions (as a subprocess),
signals, and the driver's request-by-request mapping.
"""

from __future__ import annotations

import errno
import io
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from maildircheck.impl import cli
from maildircheck.impl.deliver import CHUNK, deliver, envelope_sender
from maildircheck.impl.drivers import StopFlag, os_flags, perform_on_os, run_on_os
from maildircheck.impl.naming import folder_name_ok, parse_name, size_of, with_size
from maildircheck.model.outcome import (
    Delivered,
    DeliveryRequest,
    Outcome,
    PermanentFailure,
    TemporaryFailure,
)
from maildircheck.model.syscalls import (
    Close,
    Fdatasync,
    FileKind,
    Fstat,
    Fsync,
    FsyncDir,
    GetPid,
    GetRandom,
    GetTime,
    Interrupted,
    Link,
    ListDir,
    Lstat,
    Mkdir,
    Open,
    OpenFlag,
    Read,
    ReadInput,
    Rename,
    Sleep,
    Stat,
    Syscall,
    Unlink,
    Write,
)

CREATE = OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.EXCL | OpenFlag.NOFOLLOW
NO_STDIN = io.BytesIO(b"")

# (convention flag, temporary, permanent)
CONVENTIONS = [([], 111, 100), (["--exit-codes", "sysexits"], 75, 77)]


def entries(root: Path, sub: str) -> list[str]:
    return sorted(os.listdir(root / sub))


class FakeStdin:
    """Stands in for sys.stdin: only `.buffer` is used."""

    def __init__(self, buffer: Any) -> None:
        self.buffer = buffer


def run_main(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    data: bytes | Any = b"",
) -> tuple[int, str, str]:
    buffer = io.BytesIO(data) if isinstance(data, bytes) else data
    monkeypatch.setattr(sys, "stdin", FakeStdin(buffer))
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(argv: list[str], data: bytes = b"", **kw: Any) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "maildircheck.impl.cli", *argv]
    return subprocess.run(cmd, input=data, capture_output=True, timeout=60, check=False, **kw)


def assert_one_line(err: str | bytes) -> None:
    text = err.decode() if isinstance(err, bytes) else err
    assert text.startswith("maildir-deliver: "), text
    assert text.endswith("\n") and text.count("\n") == 1, text


MESSAGES = {  # the empty message is refused by default: tests/test_bad_input.py (D6)
    "no-final-newline": b"Subject: x\n\nbody without newline",
    "nul": b"a\x00b\x00\x00c\n",
    "eight-bit": bytes(range(256)),
    "crlf": b"Subject: crlf\r\n\r\nline one\r\nline two\r\n",
    "lone-cr-and-from": b"X: 1\nFrom me\rx\n>From y\n",  # a From_ line only counts first (D1)
    "from-without-space": b"From:me\nFromage\n",
    "several-chunks": os.urandom(2 * CHUNK + 12345),
}


@pytest.mark.parametrize("data", MESSAGES.values(), ids=MESSAGES.keys())
def test_delivers_exact_bytes_into_new(
    maildir: Path,
    data: bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_main(monkeypatch, capsys, [str(maildir)], data)
    assert (code, err) == (0, "")
    name = out.removesuffix("\n")
    assert out == name + "\n" and name
    assert entries(maildir, "new") == [name]
    assert entries(maildir, "tmp") == []
    assert entries(maildir, "cur") == []
    delivered = maildir / "new" / name
    assert delivered.read_bytes() == data
    st = delivered.lstat()
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_nlink == 1  # the tmp/ name is gone, not just hidden
    parts = parse_name(name)
    assert parts is not None
    assert parts.pid == os.getpid()
    assert abs(parts.seconds - time.time()) < 600
    assert parts.size == len(data) == st.st_size  # D5: ,S=<size of the file as written>


def test_two_deliveries_get_two_names(
    maildir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run_main(monkeypatch, capsys, [str(maildir)], b"one\n")
    second = run_main(monkeypatch, capsys, [str(maildir)], b"two\n")
    assert first[0] == second[0] == 0
    names = [first[1].strip(), second[1].strip()]
    assert names[0] != names[1]
    assert entries(maildir, "new") == sorted(names)
    assert [(maildir / "new" / n).read_bytes() for n in names] == [b"one\n", b"two\n"]


def test_subprocess_delivers_and_prints_the_name(maildir: Path) -> None:
    data = b"From: a@b\r\n\r\n\x00\xff\xfe"
    proc = run_cli([str(maildir)], data)
    assert (proc.returncode, proc.stderr) == (0, b"")
    name = proc.stdout.decode().removesuffix("\n")
    assert entries(maildir, "new") == [name]
    assert (maildir / "new" / name).read_bytes() == data
    parts = parse_name(name)
    assert parts is not None and parts.pid != os.getpid()


def test_installed_script_delivers(maildir: Path) -> None:
    script = Path(sys.executable).with_name("maildir-deliver")
    if not script.exists():
        pytest.skip("the maildir-deliver script is not installed beside this interpreter")
    proc = subprocess.run(
        [str(script), "--exit-codes", "sysexits", str(maildir)],
        input=b"hi\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert entries(maildir, "new") == [proc.stdout.decode().strip()]


@pytest.mark.parametrize(("flags", "temporary", "permanent"), CONVENTIONS)
def test_missing_maildir_is_temporary(
    tmp_path: Path, flags: list[str], temporary: int, permanent: int
) -> None:
    missing = tmp_path / "nowhere"
    proc = run_cli([*flags, str(missing)], b"mail\n")
    assert proc.returncode == temporary
    assert proc.stdout == b""
    assert_one_line(proc.stderr)
    assert b"ENOENT" in proc.stderr
    assert not missing.exists()


@pytest.mark.parametrize(("flags", "temporary", "permanent"), CONVENTIONS)
@pytest.mark.parametrize("sub", ["tmp", "new"])
def test_symlinked_subdirectory_is_permanent(
    maildir: Path, tmp_path: Path, sub: str, flags: list[str], temporary: int, permanent: int
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (maildir / sub).rmdir()
    (maildir / sub).symlink_to(elsewhere)
    proc = run_cli([*flags, str(maildir)], b"mail\n")
    assert proc.returncode == permanent
    assert proc.stdout == b""
    assert_one_line(proc.stderr)
    assert b"symbolic link" in proc.stderr
    assert os.listdir(elsewhere) == []
    assert entries(maildir, "tmp" if sub == "new" else "new") == []


@pytest.mark.parametrize(("flags", "temporary", "permanent"), CONVENTIONS)
def test_tmp_that_is_a_regular_file_is_temporary(
    maildir: Path, flags: list[str], temporary: int, permanent: int
) -> None:
    (maildir / "tmp").rmdir()
    (maildir / "tmp").write_bytes(b"not a directory")
    proc = run_cli([*flags, str(maildir)], b"mail\n")
    assert proc.returncode == temporary
    assert proc.stdout == b""
    assert_one_line(proc.stderr)
    assert entries(maildir, "new") == []
    assert (maildir / "tmp").read_bytes() == b"not a directory"


def _small_file_limit() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))


@pytest.mark.parametrize(("flags", "temporary", "permanent"), CONVENTIONS)
def test_write_that_really_fails_is_temporary_and_cleans_up(
    maildir: Path, flags: list[str], temporary: int, permanent: int
) -> None:
    # Root ignores permission bits, so make the write itself fail: a file-size limit of
    # 1000 bytes gives a short write, then EFBIG (Python ignores SIGXFSZ).
    proc = run_cli([*flags, str(maildir)], b"x" * 5000, preexec_fn=_small_file_limit)
    assert proc.returncode == temporary
    assert proc.stdout == b""
    assert_one_line(proc.stderr)
    assert b"EFBIG" in proc.stderr
    assert entries(maildir, "tmp") == []
    assert entries(maildir, "new") == []


def test_create_makes_the_maildir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "fresh"
    code, out, err = run_main(monkeypatch, capsys, ["--create", str(root)], b"m")
    assert (code, err) == (0, "")
    assert entries(root, "new") == [out.strip()]
    assert entries(root, "cur") == entries(root, "tmp") == []


def test_without_create_a_missing_maildir_stays_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "fresh"
    code, out, err = run_main(monkeypatch, capsys, [str(root)], b"m")
    assert (code, out) == (111, "")
    assert_one_line(err)
    assert not root.exists()


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--folder", "../x", "m"], 100),
        (["--exit-codes", "sysexits", "--folder", "a/b", "m"], 64),
        (["--exit-codes=sysexits", "--folder", "", "m"], 64),
        (["--folder", "a", "--extension-folder", "m"], 100),
        (["--exit-codes=sysexits", "--return-path=x", "m"], 64),
        (["--exit-codes", "smtp", "x"], 100),
        (["--bogus", "x"], 100),
        (["--exit-codes", "sysexits", "a", "b"], 64),
        ([""], 100),
    ],
)
def test_usage_errors(
    argv: list[str], code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    got, out, err = run_main(monkeypatch, capsys, argv)
    assert (got, out) == (code, "")
    assert_one_line(err)
    assert "usage error" in err


def test_help_exits_zero_and_documents_the_codes() -> None:
    proc = run_cli(["--help"])
    assert proc.returncode == 0
    text = proc.stdout.decode()
    for word in ("qmail", "sysexits", "111", "100", "75", "77", "64"):
        assert word in text


def test_a_newline_in_the_reason_stays_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(monkeypatch, capsys, [str(tmp_path / "a\nb")], b"m")
    assert code == 111
    assert_one_line(err)
    assert "a\\nb" in err


# ---------------------------------------------------------------- signals and the timer


class SignallingStdin:
    """Hands out a message line by line and signals this process during the second read."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.reads = 0
        self.second_read_returned = False

    def read1(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads == 2:
            os.kill(os.getpid(), self.signum)  # the handler runs while the driver waits
            time.sleep(0.5)
            self.second_read_returned = True
        return b"part of a message\n" if self.reads < 5 else b""  # ends, even if not stopped


class TimerProbe:
    """A one-line message whose first read records how long the real-time timer has left."""

    def __init__(self) -> None:
        self.timer_left = 0.0
        self.reads = 0

    def read1(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            return b""
        self.timer_left = signal.getitimer(signal.ITIMER_REAL)[0]
        return b"m\n"


@pytest.mark.parametrize(
    ("signum", "reason"),
    [
        (signal.SIGTERM, "SIGTERM"),
        (signal.SIGALRM, "24-hour delivery timer expired"),
        (signal.SIGHUP, "SIGHUP"),  # these three ended the process with its file in tmp/
        (signal.SIGPIPE, "SIGPIPE"),
        (signal.SIGXFSZ, "SIGXFSZ"),
    ],
)
def test_signal_during_input_is_a_temporary_failure(
    maildir: Path,
    signum: int,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caught_here: list[int] = []

    def fallback(signo: int, frame: Any) -> None:  # so a missing CLI handler fails only this
        caught_here.append(signo)

    before = signal.signal(signum, fallback)
    try:
        stdin = SignallingStdin(signum)
        code, out, err = run_main(monkeypatch, capsys, [str(maildir)], stdin)
        restored = signal.getsignal(signum)
    finally:
        signal.signal(signum, before)
    assert caught_here == []
    assert restored is fallback
    assert (code, out) == (111, "")
    assert_one_line(err)
    assert reason in err
    assert stdin.reads == 2
    assert not stdin.second_read_returned  # the read in progress was abandoned at once
    assert entries(maildir, "tmp") == []
    assert entries(maildir, "new") == []


def test_the_24_hour_alarm_is_armed_during_delivery_and_disarmed_after(
    maildir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = TimerProbe()
    code, _, _ = run_main(monkeypatch, capsys, [str(maildir)], stdin)
    assert code == 0
    assert 24 * 3600 - 60 < stdin.timer_left <= 24 * 3600
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


@pytest.mark.parametrize(
    ("signum", "reason"),
    [(signal.SIGTERM, b"SIGTERM"), (signal.SIGALRM, b"timer expired"), (signal.SIGHUP, b"SIGHUP")],
)
def test_subprocess_stopped_while_reading_removes_tmp(
    maildir: Path, signum: int, reason: bytes
) -> None:
    cmd = [sys.executable, "-m", "maildircheck.impl.cli", "--exit-codes", "sysexits", str(maildir)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"Subject: half a message\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while not entries(maildir, "tmp") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(entries(maildir, "tmp")) == 1  # it is blocked reading, file open
        proc.send_signal(signum)  # stdin stays open: the read must be abandoned
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 75
    assert out == b""
    assert_one_line(err)
    assert reason in err
    assert entries(maildir, "tmp") == []
    assert entries(maildir, "new") == []


def _stop_before(
    gen: Generator[Syscall[Any], object, Outcome], stop: StopFlag, kind: type, nth: int
) -> Generator[Syscall[Any], object, Outcome]:
    """Pass `gen` through, asking `stop` to stop just before its nth request of `kind`."""
    seen = 0
    reply: object = None
    request = next(gen)
    while True:
        if type(request) is kind:
            seen += 1
            if seen == nth:
                stop.reason = "stopped by the test"
        reply = yield request
        try:
            request = gen.send(reply)
        except StopIteration as done:
            result: Outcome = done.value
            return result


@pytest.mark.parametrize(
    ("kind", "nth"),
    [
        (Lstat, 1),  # A1, before anything exists
        (GetTime, 1),
        (GetPid, 1),
        (Open, 1),
        (ReadInput, 1),
        (Write, 1),
        (ReadInput, 2),
        (Fsync, 1),
        (Close, 1),
        (GetTime, 2),
        (Link, 1),
        (FsyncDir, 1),  # A10: finished through the interruption, then delivered
        (Unlink, 1),  # A11, after the message is in new/
    ],
)
def test_a_stop_anywhere_leaves_a_truthful_outcome(maildir: Path, kind: type, nth: int) -> None:
    # The P2 contract, on the OS driver: the message is in new/ exactly when the outcome
    # says delivered, and tmp/ is left empty either way.
    stop = StopFlag()
    gen = _stop_before(deliver(DeliveryRequest(str(maildir))), stop, kind, nth)
    try:
        outcome: Outcome = run_on_os(gen, io.BytesIO(b"m\n"), stop)
    except Interrupted as err:  # what the CLI does with an escaped interruption
        outcome = TemporaryFailure(str(err))
    assert stop.reason is not None  # the stop really happened
    assert entries(maildir, "tmp") == []
    if isinstance(outcome, Delivered):
        assert entries(maildir, "new") == [outcome.name]
    else:
        assert entries(maildir, "new") == []


# ---------------------------------------------------------------- the driver, request by request


def test_stat_replies(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"12345")
    f.chmod(0o640)
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("f")
    st = perform_on_os(Stat(str(f)), NO_STDIN)
    real = os.stat(f)
    assert st == perform_on_os(Stat(str(tmp_path / "l")), NO_STDIN)
    assert (st.kind, st.mode, st.size, st.nlink) == (FileKind.REGULAR, 0o640, 5, 1)
    assert (st.dev, st.ino) == (real.st_dev, real.st_ino)
    assert (st.mtime_us, st.atime_us) == (real.st_mtime_ns // 1000, real.st_atime_ns // 1000)
    assert perform_on_os(Lstat(str(tmp_path / "l")), NO_STDIN).kind is FileKind.SYMLINK
    assert perform_on_os(Lstat(str(tmp_path / "d")), NO_STDIN).kind is FileKind.DIRECTORY


def test_open_maps_flags(tmp_path: Path) -> None:
    path = str(tmp_path / "m")
    fd = perform_on_os(Open(path, CREATE, 0o600), NO_STDIN)
    assert isinstance(fd, int)
    try:
        assert perform_on_os(Write(fd, b"abc"), NO_STDIN) == 3
    finally:
        os.close(fd)
    assert Path(path).read_bytes() == b"abc"
    with pytest.raises(FileExistsError):
        perform_on_os(Open(path, CREATE, 0o600), NO_STDIN)  # O_EXCL
    os.symlink(path, tmp_path / "s")
    with pytest.raises(OSError) as caught:
        perform_on_os(Open(str(tmp_path / "s"), OpenFlag.WRONLY | OpenFlag.NOFOLLOW), NO_STDIN)
    assert caught.value.errno == errno.ELOOP
    with pytest.raises(NotADirectoryError):
        perform_on_os(Open(path, OpenFlag.DIRECTORY), NO_STDIN)


def test_every_open_flag_maps_to_its_os_bit() -> None:
    # Python makes every fd non-inheritable anyway (PEP 446); the mapping still asks for it.
    expected = {
        OpenFlag.WRONLY: os.O_WRONLY,
        OpenFlag.RDWR: os.O_RDWR,
        OpenFlag.CREAT: os.O_CREAT,
        OpenFlag.EXCL: os.O_EXCL,
        OpenFlag.TRUNC: os.O_TRUNC,
        OpenFlag.APPEND: os.O_APPEND,
        OpenFlag.NOFOLLOW: os.O_NOFOLLOW,
        OpenFlag.DIRECTORY: os.O_DIRECTORY,
    }
    assert set(expected) == {f for f in OpenFlag if f}  # no flag forgotten
    assert os_flags(OpenFlag.RDONLY) == os.O_RDONLY | os.O_CLOEXEC
    for flag, bit in expected.items():
        assert os_flags(flag) == bit | os.O_CLOEXEC
    assert os_flags(CREATE) == (os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC)


def test_link_does_not_follow_a_symlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "s").symlink_to("f")
    perform_on_os(Link(str(tmp_path / "s"), str(tmp_path / "h")), NO_STDIN)
    assert (tmp_path / "h").is_symlink()
    # Linux link(2) never follows, so also check the driver asks for linkat without
    # AT_SYMLINK_FOLLOW, which matters where link(2) does follow.
    seen: list[dict[str, Any]] = []
    real_link = os.link

    def spy(*args: Any, **kwargs: Any) -> None:
        seen.append(kwargs)
        real_link(*args, **kwargs)

    monkeypatch.setattr(os, "link", spy)
    perform_on_os(Link(str(tmp_path / "s"), str(tmp_path / "h2")), NO_STDIN)
    assert seen == [{"follow_symlinks": False}]


def test_file_requests(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert perform_on_os(Mkdir(str(tmp_path / "d"), 0o710), NO_STDIN) is None
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o710 & ~_umask()
    fd = perform_on_os(Open(a, OpenFlag.RDWR | OpenFlag.CREAT, 0o644), NO_STDIN)
    perform_on_os(Write(fd, b"0123456789"), NO_STDIN)
    assert perform_on_os(Fdatasync(fd), NO_STDIN) is None
    assert perform_on_os(Fsync(fd), NO_STDIN) is None
    assert perform_on_os(Fstat(fd), NO_STDIN).size == 10
    os.lseek(fd, 0, os.SEEK_SET)
    assert perform_on_os(Read(fd, 4), NO_STDIN) == b"0123"
    assert perform_on_os(Close(fd), NO_STDIN) is None
    with pytest.raises(OSError) as caught:
        perform_on_os(Close(fd), NO_STDIN)
    assert caught.value.errno == errno.EBADF
    perform_on_os(Rename(a, b), NO_STDIN)
    assert sorted(os.listdir(tmp_path)) == ["b", "d"]
    perform_on_os(Unlink(b), NO_STDIN)
    assert sorted(os.listdir(tmp_path)) == ["d"]
    with pytest.raises(FileNotFoundError):
        perform_on_os(Unlink(b), NO_STDIN)
    with pytest.raises(TypeError):
        perform_on_os(Syscall(), NO_STDIN)


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_sleep_sleeps_and_a_stop_cuts_it_short() -> None:
    started = time.monotonic()
    perform_on_os(Sleep(0.2), NO_STDIN)
    assert time.monotonic() - started >= 0.2
    stop = StopFlag()
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: stop.stop("alarm"))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        started = time.monotonic()
        with pytest.raises(Interrupted):
            perform_on_os(Sleep(30), NO_STDIN, stop)
        assert 0.1 < time.monotonic() - started < 10
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert stop.reason == "alarm" and not stop.waiting
    with pytest.raises(Interrupted):  # a stop already asked for: the sleep is not started
        perform_on_os(Sleep(30), NO_STDIN, stop)


def test_a_stop_from_another_thread_only_sets_the_flag() -> None:
    stop = StopFlag()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            stop.stop("from a thread")
        except BaseException as err:
            errors.append(err)

    def blocking() -> str:
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
        return "finished"

    assert stop.wait(blocking) == "finished"
    assert errors == []
    assert stop.reason == "from a thread"


def test_listdir_fsyncdir_and_the_rest(tmp_path: Path) -> None:
    for name in ("b", "a", "c"):
        (tmp_path / name).write_bytes(b"")
    assert perform_on_os(ListDir(str(tmp_path)), NO_STDIN) == ("a", "b", "c")
    assert perform_on_os(FsyncDir(str(tmp_path)), NO_STDIN) is None
    with pytest.raises(NotADirectoryError):
        perform_on_os(FsyncDir(str(tmp_path / "a")), NO_STDIN)
    assert perform_on_os(GetPid(), NO_STDIN) == os.getpid()
    before = time.time_ns() // 1000
    now = perform_on_os(GetTime(), NO_STDIN)
    after = time.time_ns() // 1000
    assert 0 <= now.microseconds < 1_000_000
    assert before <= now.seconds * 1_000_000 + now.microseconds <= after
    values = {perform_on_os(GetRandom(3), NO_STDIN) for _ in range(400)}
    assert values == set(range(8))


def test_read_input_streams_from_a_pipe() -> None:
    rfd, wfd = os.pipe()
    os.write(wfd, b"abc")
    closer = threading.Timer(3.0, os.close, (wfd,))
    closer.start()
    try:
        with os.fdopen(rfd, "rb") as reader:
            started = time.monotonic()
            got = perform_on_os(ReadInput(CHUNK), reader)
            waited = time.monotonic() - started
    finally:
        closer.join()
    assert got == b"abc"
    assert waited < 2.0  # did not wait for a full chunk or the end of input


def _probe(requests: list[Syscall[Any]]) -> Generator[Syscall[Any], object, list[object]]:
    replies: list[object] = []
    for request in requests:
        replies.append((yield request))
    return replies


def test_run_on_os_sends_os_errors_back(tmp_path: Path) -> None:
    replies = run_on_os(_probe([Stat(str(tmp_path / "none")), GetPid()]), NO_STDIN)
    assert isinstance(replies[0], FileNotFoundError)
    assert replies[1] == os.getpid()


def test_a_stop_replaces_exactly_one_reply() -> None:
    stop = StopFlag()
    stop.stop("test stop")
    requests: list[Syscall[Any]] = [GetPid(), GetPid(), ReadInput(10), Sleep(0), GetPid()]
    replies = run_on_os(_probe(requests), io.BytesIO(b"clean-up"), stop)
    assert isinstance(replies[0], Interrupted) and str(replies[0]) == "test stop"
    assert replies[1:] == [os.getpid(), b"clean-up", None, os.getpid()]


# ---------------------------------------------------------------- D1: the mbox From_ line


class Trickle:
    """Standard input handing out `data` in pieces of `size` bytes (a pipe's short reads)."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data = data
        self.size = size
        self.reads = 0

    def read1(self, size: int = -1) -> bytes:
        self.reads += 1
        piece, self.data = self.data[: self.size], self.data[self.size :]
        return piece


ENVELOPE = b"From alice@example.org  Thu Jan  4 10:00:00 2024\n"
BODY = b"Return-Path: <alice@example.org>\nSubject: s\n\nFrom the start\n"


@pytest.mark.parametrize("size", [1, 2, 4, 5, 6, len(ENVELOPE) - 1, len(ENVELOPE), CHUNK])
def test_a_leading_from_line_is_removed_however_the_reads_split_it(
    maildir: Path, size: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # D1: only the first line, only when it starts with the 5 bytes "From "
    code, out, err = run_main(monkeypatch, capsys, [str(maildir)], Trickle(ENVELOPE + BODY, size))
    assert (code, err) == (0, "")
    assert (maildir / "new" / out.strip()).read_bytes() == BODY
    assert entries(maildir, "tmp") == []


@pytest.mark.parametrize(
    "data",
    [b"From:x\n", b"Fro", b"from a  date\nX\n", b" From a\n", b"Subject: s\nFrom a  d\nb\n", b"F"],
)
def test_only_a_first_line_starting_with_from_space_is_removed(
    maildir: Path,
    data: bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_main(monkeypatch, capsys, [str(maildir)], Trickle(data, 1))
    assert (code, err) == (0, "")
    assert (maildir / "new" / out.strip()).read_bytes() == data


def test_keep_from_line_keeps_it(
    maildir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(
        monkeypatch, capsys, ["--keep-from-line", str(maildir)], ENVELOPE + BODY
    )
    assert code == 0
    assert (maildir / "new" / out.strip()).read_bytes() == ENVELOPE + BODY


def test_a_long_from_line_is_dropped_with_bounded_buffering(maildir: Path) -> None:
    # D1: a From_ line longer than any buffer is still removed, a chunk at a time
    long_line = b"From " + b"x" * (5 * CHUNK) + b"  date\n"
    stdin = Trickle(long_line + BODY, CHUNK)
    request = DeliveryRequest(str(maildir), strip_from_line=True)
    outcome = run_on_os(deliver(request), stdin)
    assert isinstance(outcome, Delivered)
    assert (maildir / "new" / outcome.name).read_bytes() == BODY
    assert stdin.reads >= 6


def test_the_algorithm_keeps_a_from_line_by_default(maildir: Path) -> None:
    # the checker's requests (DeliveryRequest defaults) deliver the input byte for byte
    outcome = run_on_os(deliver(DeliveryRequest(str(maildir))), io.BytesIO(ENVELOPE + BODY))
    assert isinstance(outcome, Delivered)
    assert (maildir / "new" / outcome.name).read_bytes() == ENVELOPE + BODY


@pytest.mark.parametrize(
    ("line", "sender"),
    [
        (b"From alice@example.org  Thu Jan  4 10:00:00 2024", "alice@example.org"),
        (b"From MAILER-DAEMON  Thu Jan  4 10:00:00 2024", ""),
        (b"From bob Thu Jan  4 10:00:00 2024", "bob"),
        (b"From ", None),
        (b"From nodate", None),
        (b'From "a b"@x.org  Thu Jan  4 10:00:00 2024', '"a b"@x.org'),
        (b'From "a\\" b"@x.org  Thu Jan  4 10:00:00 2024', '"a\\" b"@x.org'),
        (b'From "unterminated  Thu Jan  4', None),
        (b"From a\x01b  Thu Jan  4 10:00:00 2024", None),
    ],
)
def test_envelope_sender_of_a_from_line(line: bytes, sender: str | None) -> None:
    assert envelope_sender(line) == sender


# ---------------------------------------------------------------- D2: envelope headers

ENVELOPE_VARS = ("SENDER", "RECIPIENT", "ORIGINAL_RECIPIENT", "EXTENSION")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ENVELOPE_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "stdin", "headers"),
    [
        (
            {"SENDER": "alice@example.org", "RECIPIENT": "bob@example.net"},
            BODY,
            b"Return-Path: <alice@example.org>\nDelivered-To: bob@example.net\n",
        ),
        ({"SENDER": "", "RECIPIENT": "b@x"}, BODY, b"Return-Path: <>\nDelivered-To: b@x\n"),
        (  # SENDER unset: the From_ line's sender; ORIGINAL_RECIPIENT when RECIPIENT is unset
            {"ORIGINAL_RECIPIENT": "orig@x"},
            ENVELOPE + BODY,
            b"Return-Path: <alice@example.org>\nDelivered-To: orig@x\n",
        ),
        (
            {},
            b"From MAILER-DAEMON  Thu Jan  4 10:00:00 2024\n" + BODY,
            b"Return-Path: <>\n",
        ),
        (
            {"RECIPIENT": "r@x", "ORIGINAL_RECIPIENT": "o@x"},
            b'From "a b"@example.org  Thu Jan  4 10:00:00 2024\n' + BODY,
            b'Return-Path: <"a b"@example.org>\nDelivered-To: r@x\n',
        ),
        ({}, BODY, b""),  # nothing known: no header rather than an invented one
    ],
)
def test_return_path_and_delivered_to_come_from_the_envelope(
    maildir: Path,
    env: dict[str, str],
    stdin: bytes,
    headers: bytes,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for var, value in env.items():
        clean_env.setenv(var, value)
    argv = ["--return-path", "--delivered-to", str(maildir)]
    code, out, err = run_main(clean_env, capsys, argv, stdin)
    assert (code, err) == (0, "")
    assert (maildir / "new" / out.strip()).read_bytes() == headers + BODY


def test_without_the_options_no_header_is_added(
    maildir: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("SENDER", "alice@example.org")
    clean_env.setenv("RECIPIENT", "bob@example.net")
    code, out, _ = run_main(clean_env, capsys, [str(maildir)], ENVELOPE + BODY)
    assert code == 0
    assert (maildir / "new" / out.strip()).read_bytes() == BODY


# ---------------------------------------------------------------- D4: Maildir++ folders


def test_folder_delivers_into_the_dot_folder(
    maildir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for sub in ("", "tmp", "new", "cur"):
        (maildir / ".Lists.python" / sub).mkdir()
    code, out, err = run_main(monkeypatch, capsys, ["--folder", "Lists.python", str(maildir)], BODY)
    assert (code, err) == (0, "")
    folder = maildir / ".Lists.python"
    assert entries(folder, "new") == [out.strip()]
    assert (folder / "new" / out.strip()).read_bytes() == BODY
    assert entries(folder, "tmp") == entries(maildir, "new") == entries(maildir, "tmp") == []
    assert not (folder / "maildirfolder").exists()  # only --create makes the marker


def test_create_makes_the_maildir_and_the_folder_with_its_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "Maildir"
    argv = ["--create", "--folder", "Sent", str(root)]
    code, out, err = run_main(monkeypatch, capsys, argv, BODY)
    assert (code, err) == (0, "")
    folder = root / ".Sent"
    for where in (root, folder):
        assert entries(where, "cur") == entries(where, "tmp") == []
        assert stat.S_IMODE(where.stat().st_mode) & 0o077 == 0
    assert entries(folder, "new") == [out.strip()]
    marker = folder / "maildirfolder"
    assert marker.is_file() and marker.stat().st_size == 0
    assert not (root / "maildirfolder").exists()
    code, out, _ = run_main(monkeypatch, capsys, argv, BODY)  # again: all already there
    assert code == 0 and len(entries(folder, "new")) == 2


@pytest.mark.parametrize(("flags", "temporary", "permanent"), CONVENTIONS)
def test_a_missing_folder_without_create_is_temporary(
    maildir: Path,
    flags: list[str],
    temporary: int,
    permanent: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [*flags, "--folder", "Nowhere", str(maildir)]
    code, out, err = run_main(monkeypatch, capsys, argv, BODY)
    assert (code, out) == (temporary, "")
    assert_one_line(err)
    assert "ENOENT" in err
    assert not (maildir / ".Nowhere").exists()
    assert entries(maildir, "new") == []


@pytest.mark.parametrize(
    ("extension", "into"),
    [
        ("lists", ".lists"),  # the folder exists
        ("missing", ""),  # no such folder: MAILDIR, and none is created
        ("..", ""),  # cannot be a folder name: MAILDIR
        ("../../etc", ""),
        (".lists", ""),
        ("", ""),  # set but empty
        (None, ""),  # not set
    ],
)
def test_extension_folder_only_when_it_exists(
    maildir: Path,
    extension: str | None,
    into: str,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for sub in ("", "tmp", "new", "cur"):
        (maildir / ".lists" / sub).mkdir()
    if extension is not None:
        clean_env.setenv("EXTENSION", extension)
    argv = ["--create", "--extension-folder", str(maildir)]
    code, out, err = run_main(clean_env, capsys, argv, BODY)
    assert (code, err) == (0, "")
    target = maildir / into if into else maildir
    assert entries(target, "new") == [out.strip()]
    other = maildir if into else maildir / ".lists"
    assert entries(other, "new") == []
    assert sorted(p.name for p in maildir.iterdir()) == [".lists", "cur", "new", "tmp"]


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("Sent", True),
        ("Lists.python", True),
        ("Entw&APw-rfe", True),
        ("", False),
        (".", False),
        ("..", False),
        (".x", False),
        ("x.", False),
        ("a..b", False),
        ("a/b", False),
        ("../x", False),
        ("a\nb", False),
        ("a\x7fb", False),
    ],
)
def test_folder_names(name: str, ok: bool) -> None:
    assert folder_name_ok(name) is ok


# ---------------------------------------------------------------- D5: the size in the name


def test_no_size_leaves_the_size_out(
    maildir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(monkeypatch, capsys, ["--no-size", str(maildir)], BODY)
    assert code == 0
    assert ",S=" not in out
    parts = parse_name(out.strip())
    assert parts is not None and parts.size is None


def test_the_size_counts_the_headers_and_not_the_from_line(
    maildir: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("RECIPIENT", "b@x")
    argv = ["--delivered-to", str(maildir)]
    code, out, _ = run_main(clean_env, capsys, argv, ENVELOPE + BODY)
    assert code == 0
    name = out.strip()
    size = len(b"Delivered-To: b@x\n" + BODY)
    assert name.endswith(f",S={size}")
    assert size_of(name) == (maildir / "new" / name).stat().st_size


def _answer_first_link_eexist(
    gen: Generator[Syscall[Any], object, Outcome],
) -> Generator[Syscall[Any], object, Outcome]:
    """Pass `gen` through, answering its first Link with EEXIST without performing it."""
    linked = False
    request = next(gen)
    while True:
        reply: object
        if isinstance(request, Link) and not linked:
            linked = True
            reply = FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
        else:
            reply = yield request
        try:
            request = gen.send(reply)
        except StopIteration as done:
            result: Outcome = done.value
            return result


def test_a_fresh_name_after_eexist_keeps_the_size(maildir: Path) -> None:
    # A9 + D5: a true EEXIST in new/ draws a fresh name, which must still carry ,S=<size>
    request = DeliveryRequest(str(maildir), size_in_name=True)
    outcome = run_on_os(_answer_first_link_eexist(deliver(request)), io.BytesIO(BODY))
    assert isinstance(outcome, Delivered)
    parts = parse_name(outcome.name)
    assert parts is not None and parts.size == len(BODY)
    assert parts.counter == 1  # the second name drawn
    assert entries(maildir, "new") == [outcome.name]
    assert entries(maildir, "tmp") == []


def test_with_size_and_size_of() -> None:
    assert with_size("1.M2P3Q4R5.host", 0) == "1.M2P3Q4R5.host,S=0"
    assert size_of(with_size("1.M2P3Q4R5.host", 1234)) == 1234
    assert size_of("1.M2P3Q4R5.host") is None
    assert size_of("1.M2P3Q4R5.h\\054S=9x") is None


# ---------------------------------------------------------------- D8: the invocation


def test_maildir_defaults_to_home_maildir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, err = run_main(monkeypatch, capsys, ["--create"], BODY)
    assert (code, err) == (0, "")
    assert entries(tmp_path / "Maildir", "new") == [out.strip()]


@pytest.mark.parametrize(("flags", "temporary", "permanent"), CONVENTIONS)
def test_no_maildir_and_no_home_is_temporary(
    flags: list[str],
    temporary: int,
    permanent: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("HOME", raising=False)
    code, out, err = run_main(monkeypatch, capsys, flags, BODY)
    assert (code, out) == (temporary, "")
    assert_one_line(err)
    assert "HOME" in err


SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT", "EXIT STATUS")


def test_help_is_a_manual_page_that_documents_every_option() -> None:
    proc = run_cli(["--help"])
    assert (proc.returncode, proc.stderr) == (0, b"")
    text = proc.stdout.decode()
    starts = [text.index(f"\n{s}\n" if s != "NAME" else f"{s}\n") for s in SECTIONS]
    assert starts == sorted(starts), "sections out of order"
    options = text[text.index("\nOPTIONS\n") : text.index("\nENVIRONMENT\n")]
    parser_options = {
        opt
        for action in cli_parser_actions()
        for opt in action.option_strings
        if opt.startswith("--")
    }
    assert parser_options, "no options found"
    for opt in parser_options:
        documented = re.search(rf"^    (-\w, )?{re.escape(opt)}\b", options, re.MULTILINE)
        assert documented, f"{opt} is not documented under OPTIONS"
    environment = text[text.index("\nENVIRONMENT\n") : text.index("\nEXIT STATUS\n")]
    for var in ("HOME", *ENVELOPE_VARS):
        assert var in environment
    examples = text[text.index("\nEXAMPLES\n") :]
    for needle in ("mailbox_command =", "pipe flags=", "|/", "driver = pipe"):
        assert needle in examples, needle


def cli_parser_actions() -> list[Any]:
    """The argparse actions of maildir-deliver's parser (parse a valid command line)."""
    captured: list[Any] = []
    original = cli.UsageParser.parse_args

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        captured.extend(self._actions)
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli.UsageParser, "parse_args", spy)
        cli.parse_args(["m"])
    return captured


def test_the_exit_status_table_in_the_manual_is_the_mapping() -> None:
    # D3: every row of EXIT STATUS is what exit_code returns for that class of outcome
    table = cli.MANUAL[cli.MANUAL.index("\nEXIT STATUS\n") : cli.MANUAL.index("\nEXAMPLES\n")]
    outcomes: dict[str, Outcome | None] = {
        "delivered": Delivered("n"),
        "temporary failure": TemporaryFailure("t"),
        "permanent failure, policy": PermanentFailure("p"),
        "permanent failure, data": PermanentFailure("d", "data"),
        "usage error": None,
    }
    for label, outcome in outcomes.items():
        row = next(line for line in table.splitlines() if line.strip().startswith(label))
        numbers = [int(word) for word in row.replace(":", " ").split() if word.isdigit()]
        assert len(numbers) == 2, row
        for convention, shown in zip(("qmail", "sysexits"), numbers, strict=True):
            if outcome is None:
                assert cli.EXIT_CODES[convention].usage == shown, row
            else:
                assert cli.exit_code(outcome, convention) == shown, row


@pytest.mark.parametrize(
    ("outcome", "qmail", "sysexits"),
    [
        (Delivered("n"), 0, 0),
        (TemporaryFailure("t"), 111, 75),
        (PermanentFailure("symlink"), 100, 77),
        (PermanentFailure("empty", "data"), 100, 65),
    ],
)
def test_exit_codes_per_failure_class(outcome: Outcome, qmail: int, sysexits: int) -> None:
    # D3: qmail-command(8) 0/100/111; sysexits.h EX_TEMPFAIL 75, EX_NOPERM 77, EX_DATAERR 65
    assert cli.exit_code(outcome, "qmail") == qmail
    assert cli.exit_code(outcome, "sysexits") == sysexits


# ---------------------------------------------------------------- odd standard inputs (D6, D9)


def _agent(*args: str) -> list[str]:
    return [sys.executable, "-m", "maildircheck.impl.cli", "--exit-codes", "sysexits", *args]


def test_a_closed_standard_input_is_a_defined_temporary_failure(maildir: Path) -> None:
    """Before: `internal error: AttributeError: 'NoneType' object has no attribute
    'buffer'` - a bug's report, not the agent's."""
    done = subprocess.run(
        _agent(str(maildir)), stdin=None, capture_output=True, preexec_fn=lambda: os.close(0)
    )
    assert done.returncode == 75, done.stderr
    assert done.stderr == (
        b"maildir-deliver: temporary failure: standard input is closed: no message to read\n"
    )
    assert entries(maildir, "tmp") == entries(maildir, "new") == []


LAUNCHER = Path(sys.executable).with_name("maildir-deliver")


@pytest.mark.parametrize("convention, code", [("qmail", 111), ("sysexits", 75)])
def test_a_directory_as_standard_input_is_a_defined_temporary_failure(
    maildir: Path, tmp_path: Path, convention: str, code: int
) -> None:
    """D7. Before: CPython itself stopped ("Fatal Python error: <stdin> is a directory"),
    exit 1, which Postfix takes for a bounce. The installed launcher looks first."""
    directory = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        done = subprocess.run(
            [str(LAUNCHER), "--exit-codes", convention, str(maildir)],
            stdin=directory,
            capture_output=True,
        )
    finally:
        os.close(directory)
    assert done.returncode == code, done.stderr
    assert done.stderr == (
        b"maildir-deliver: temporary failure: standard input is a directory: no message to read\n"
    )
    assert entries(maildir, "tmp") == entries(maildir, "new") == []


def test_the_launcher_never_runs_code_from_the_working_directory(
    maildir: Path, tmp_path: Path
) -> None:
    """An MTA runs the agent in the recipient's home; a `maildircheck` folder there must
    not join the import namespace (the launcher runs Python with -P)."""
    planted = tmp_path / "home"
    (planted / "maildircheck" / "impl").mkdir(parents=True)
    (planted / "maildircheck" / "impl" / "cli.py").write_text("raise SystemExit(42)\n")
    done = subprocess.run(
        [str(LAUNCHER), str(maildir)],
        input=b"Subject: s\n\nbody\n",
        cwd=planted,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr
    assert len(entries(maildir, "new")) == 1


def test_max_size_refuses_a_larger_message_for_good_and_stops_reading(maildir: Path) -> None:
    """D9: past --max-size the agent stops reading and bounces (RFC 3463 5.3.4) with
    nothing left behind; an endless input no longer fills the disk."""
    endless = subprocess.Popen(["yes", "a line of an endless message"], stdout=subprocess.PIPE)
    try:
        done = subprocess.run(
            _agent("--max-size", "100000", str(maildir)),
            stdin=endless.stdout,
            capture_output=True,
            timeout=60,
        )
    finally:
        endless.kill()
        endless.wait()
    assert done.returncode == 65, done.stderr
    assert done.stderr == (
        b"maildir-deliver: permanent failure: message larger than 100000 bytes (RFC 3463 5.3.4)\n"
    )
    assert entries(maildir, "tmp") == entries(maildir, "new") == []
    fits = subprocess.run(
        _agent("--max-size", "100000", str(maildir)), input=b"x" * 100_000, capture_output=True
    )
    assert fits.returncode == 0 and len(entries(maildir, "new")) == 1, fits.stderr
    bad = subprocess.run(_agent("--max-size", "1k", str(maildir)), input=b"m", capture_output=True)
    assert bad.returncode == 64 and b"--max-size '1k' is not a number of bytes" in bad.stderr
