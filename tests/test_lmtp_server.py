"""`maildir-deliver --lmtp` as a running server: load, kill -9, bad input (spec M9, M10).

Owns: the server started as a process on a UNIX socket in a temp dir (stopped with SIGTERM,
which must end it with exit 0; killed on every path out); concurrent sessions with several
recipients each, every 250 naming a complete file and fewer batches than deliveries (the
group commit happened); kill -9 in the middle of a bounded load, after which every message
that was answered 250 is present and complete and no file in new/ is partial; protocol
abuse (an overlong line, a bare LF, commands out of order, 1,001 recipients, a client gone
mid-DATA, a message over SIZE, an idle session), each with its reply code and nothing left
behind; recipient names that would escape the mail root refused; the command line's errors.
Bounded: loopback only, at most a few hundred messages, every wait with a time-out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from maildircheck.impl.lmtp.mailboxes import BAD_ADDRESS, Mailbox, check_template, mailbox_for

AGENT = str(Path(sys.executable).with_name("maildir-deliver"))
DOMAIN = "example.org"


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    socket: Path
    root: Path  # the mail root: root/DOMAIN/USER/Maildir
    log: Path

    def maildir(self, user: str) -> Path:
        return self.root / DOMAIN / user / "Maildir"

    def files(self, sub: str = "new") -> dict[str, bytes]:
        found = {}
        for path in sorted(self.root.glob(f"*/*/Maildir/{sub}/*")):
            found[str(path.relative_to(self.root))] = path.read_bytes()
        return found

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)


@contextlib.contextmanager
def server(tmp_path: Path, *options: str) -> Iterator[Running]:
    sock, root, log = tmp_path / "lmtp.sock", tmp_path / "mail", tmp_path / "server.log"
    root.mkdir()
    argv = [AGENT, "--lmtp", str(sock), "--maildir", f"{root}/%d/%n/Maildir", *options]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    running = Running(process, sock, root, log)
    try:
        deadline = time.monotonic() + 15
        while not sock.exists():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no socket in 15 s"
            time.sleep(0.02)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class Client:
    """A plain LMTP client on a socket: send bytes, read whole replies."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(20)
        self.sock.connect(str(path))
        self.buffer = b""
        assert self.reply()[0].startswith("220")

    def reply(self) -> list[str]:
        """One reply's lines (a multi-line reply whole)."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed; had {self.buffer!r}")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line.decode())
            if line[3:4] != b"-":
                return lines

    def replies(self, count: int) -> list[str]:
        return [self.reply()[-1] for _ in range(count)]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def lhlo(self) -> None:
        self.send(b"LHLO test\r\n")
        assert self.reply()[-1].startswith("250 ")

    def deliver(self, data: bytes, recipients: list[str]) -> list[str]:
        """MAIL, RCPTs, DATA pipelined; the RCPT replies and then the per-recipient ones."""
        lines = [b"MAIL FROM:<s@example.net>\r\n"]
        lines += [f"RCPT TO:<{r}>\r\n".encode() for r in recipients]
        self.send(b"".join(lines) + b"DATA\r\n")
        head = self.replies(1 + len(recipients) + 1)
        assert head[0].startswith("250"), head
        accepted = sum(r.startswith("250") for r in head[1:-1])
        if not head[-1].startswith("354"):
            return head
        body = b"".join(
            (b"." + line if line.startswith(b".") else line) for line in data.splitlines(True)
        )
        self.send(body + b".\r\n")
        return head + self.replies(accepted)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send(b"QUIT\r\n")
        self.sock.close()


def message(n: int, size: int = 200) -> bytes:
    body = (b"line %d of the body\r\n" % n) * max(1, size // 20)
    return b"Subject: m%d\r\nMessage-ID: <%d@t>\r\n\r\n" % (n, n) + body


def stored(data: bytes, recipient: str) -> bytes:
    """The file a recipient's copy becomes: the two envelope headers, LF line ends."""
    head = f"Return-Path: <s@example.net>\nDelivered-To: {recipient}\n".encode()
    return head + data.replace(b"\r\n", b"\n")


# --- the mapping -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    ["../x@example.org", "a/b@example.org", "a\x00b@example.org", "x@../etc", "x@a/b", ".x@d",
     "\x01@example.org", "@example.org"],
)  # fmt: skip
def test_a_name_that_would_leave_the_mail_root_is_refused(address: str) -> None:
    assert mailbox_for("/srv/mail/%d/%n/Maildir", address) is BAD_ADDRESS


def test_an_address_maps_to_its_maildir_and_its_extension_to_a_folder() -> None:
    place = mailbox_for("/srv/mail/%d/%n/Maildir", "Alice+Lists@Example.ORG")
    assert isinstance(place, Mailbox)
    assert (place.maildir, place.folder) == ("/srv/mail/example.org/alice/Maildir", "lists")
    other = mailbox_for("/home/%u/M%%", "bob@d.example", delimiter="")
    assert isinstance(other, Mailbox) and other.maildir == "/home/bob@d.example/M%"


@pytest.mark.parametrize("template", ["relative/%n", "/srv/mail/Maildir", "/srv/%x/Maildir"])
def test_a_template_without_a_recipient_or_absolute_path_is_refused(template: str) -> None:
    with pytest.raises(ValueError):
        check_template(template)


# --- a running server ------------------------------------------------------------------------
def test_concurrent_sessions_are_delivered_in_batches_and_every_250_is_on_disk(
    tmp_path: Path,
) -> None:
    sessions, per_session, recipients = 8, 6, 3
    answers: dict[tuple[int, int], list[str]] = {}
    errors: list[BaseException] = []

    def one_session(s: int) -> None:
        try:
            client = Client(run.socket)
            client.lhlo()
            for i in range(per_session):
                to = [f"u{r}@{DOMAIN}" for r in range(recipients)]
                answers[(s, i)] = client.deliver(message(s * 100 + i), to)
            client.close()
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    with server(tmp_path, "--create") as run:
        threads = [threading.Thread(target=one_session, args=(s,)) for s in range(sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert run.stop() == 0
    log = run.log.read_text()
    files = run.files()
    total = sessions * per_session * recipients
    assert len(files) == total, log
    wanted = sorted(
        stored(message(s * 100 + i), f"u{r}@{DOMAIN}")
        for s in range(sessions)
        for i in range(per_session)
        for r in range(recipients)
    )
    assert sorted(files.values()) == wanted
    assert run.files("tmp") == {}
    for (s, i), lines in answers.items():
        finals = lines[-recipients:]
        assert all(line.startswith("250 2.0.0") for line in finals), lines
        for r, line in enumerate(finals):
            name = line.rsplit(" ", 1)[1]
            path = run.maildir(f"u{r}") / "new" / name
            assert path.read_bytes() == stored(message(s * 100 + i), f"u{r}@{DOMAIN}")
    summary = log.strip().splitlines()[-1]
    batches = int(summary.split(" in ")[1].split()[0])
    assert f"{total} deliveries" in summary and batches < total, summary


def test_a_message_for_a_thousand_recipients_is_delivered_in_bounded_batches(
    tmp_path: Path,
) -> None:
    """1,000 recipients of one message: each a job with an open file, so a batch holds at
    most MAX_BATCH of them (below the usual 1024-fd limit) and the rest wait their turn."""
    to = [f"many{n}@{DOMAIN}" for n in range(1000)]
    with server(tmp_path, "--create") as run:
        client = Client(run.socket)
        client.lhlo()
        lines = client.deliver(message(7), to)
        client.close()
        assert run.stop() == 0
    finals = lines[-1000:]
    assert all(line.startswith("250 2.0.0") for line in finals), [
        line for line in finals if not line.startswith("250")
    ][:3]
    assert len(run.files()) == 1000 and run.files("tmp") == {}
    summary = run.log.read_text().strip().splitlines()[-1]
    assert "1000 deliveries in 4 batches" in summary, summary  # 256 + 256 + 256 + 232


def test_kill_9_mid_load_loses_no_acknowledged_message(tmp_path: Path) -> None:
    """Four sessions deliver until the server is killed -9 after 40 answers; every message
    answered 250 is in new/, complete; no file in new/ is anything but a complete copy."""
    acknowledged: list[tuple[str, bytes]] = []  # (path under the root, expected bytes)
    lock = threading.Lock()
    enough = threading.Event()

    def one_session(s: int) -> None:
        with contextlib.suppress(OSError, ConnectionError, AssertionError):
            client = Client(run.socket)
            client.lhlo()
            for i in range(1000):
                to = [f"k{s}@{DOMAIN}", f"k{s + 10}@{DOMAIN}"]
                data = message(s * 10000 + i, 2000)
                for r, line in zip(to, client.deliver(data, to)[-2:], strict=True):
                    if line.startswith("250 2.0.0"):
                        user = r.split("@")[0]
                        where = f"{DOMAIN}/{user}/Maildir/new/{line.rsplit(' ', 1)[1]}"
                        with lock:
                            acknowledged.append((where, stored(data, r)))
                            if len(acknowledged) >= 40:
                                enough.set()

    with server(tmp_path, "--create") as run:
        threads = [threading.Thread(target=one_session, args=(s,)) for s in range(4)]
        for thread in threads:
            thread.start()
        assert enough.wait(60), run.log.read_text()
        os.kill(run.process.pid, signal.SIGKILL)
        run.process.wait(10)
        for thread in threads:
            thread.join(30)
    with lock:
        done = list(acknowledged)
    assert len(done) >= 40
    for where, data in done:
        assert (run.root / where).read_bytes() == data, where
    complete = {stored(message(s * 10000 + i, 2000), f"k{u}@{DOMAIN}")
                for s in range(4) for u in (s, s + 10) for i in range(1000)}  # fmt: skip
    for where, data in run.files().items():
        assert data in complete, f"{where} holds a partial or foreign message"


def test_protocol_abuse_gets_its_reply_and_leaves_nothing_behind(tmp_path: Path) -> None:
    with server(tmp_path, "--create", "--max-size", "5000", "--idle-timeout", "1") as run:
        client = Client(run.socket)
        client.send(b"MAIL FROM:<s@x>\r\n")  # before LHLO
        assert client.reply()[-1].startswith("503 5.5.1")
        client.lhlo()
        client.send(b"RCPT TO:<u@example.org>\r\n")  # before MAIL
        assert client.reply()[-1].startswith("503 5.5.1")
        client.send(b"NOOP " + b"x" * 2000 + b"\r\n")  # an overlong line
        assert client.reply()[-1].startswith("500")
        client.send(b"NOOP\n")  # a bare LF
        assert client.reply()[-1].startswith("500")
        client.send(b"RCPT TO:<../../etc@example.org>\r\n")
        assert client.reply()[-1].startswith("503")  # still no MAIL: order first
        lines = client.deliver(message(1), ["a/b@example.org", "ok@example.org"])
        assert lines[1].startswith("553 5.1.3") and lines[-1].startswith("250 2.0.0")
        too_big = client.deliver(message(2, 20000), ["big@example.org"])
        assert too_big[-1].startswith("552 5.3.4"), too_big
        many = [f"r{n}@example.org" for n in range(1001)]
        client.send(b"MAIL FROM:<s@x>\r\n" + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in many))
        got = client.replies(1 + len(many))
        assert got[1000].startswith("250") and got[1001].startswith("452 4.5.3"), got[-2:]
        client.send(b"RSET\r\n")
        assert client.reply()[-1].startswith("250")
        client.close()

        gone = Client(run.socket)  # vanishes in the middle of DATA
        gone.lhlo()
        gone.send(b"MAIL FROM:<s@x>\r\nRCPT TO:<gone@example.org>\r\nDATA\r\n")
        assert gone.replies(3)[-1].startswith("354")
        gone.send(b"Subject: half\r\n\r\nhalf a mess")
        gone.sock.close()

        idle = Client(run.socket)
        started = time.monotonic()
        assert idle.reply()[-1].startswith("421 4.4.2")  # --idle-timeout 1
        assert time.monotonic() - started < 10
        assert run.stop() == 0
    assert list(run.files()) == [f"{DOMAIN}/ok/Maildir/new/{lines[-1].rsplit(' ', 1)[1]}"]
    assert run.files("tmp") == {}
    assert not (run.root / DOMAIN / "gone").exists() and not (run.root / DOMAIN / "big").exists()


@pytest.mark.parametrize(
    "argv, code, said",
    [
        (["--lmtp", "/tmp/x.sock"], 64, "the following arguments are required: --maildir"),
        (["--lmtp", "relative.sock", "--maildir", "/m/%n"], 64, "absolute socket path"),
        (["--lmtp", "10.0.0.1:2525", "--maildir", "/m/%n"], 64, "loopback only"),
        (["--lmtp", "/tmp/x.sock", "--maildir", "/m/Maildir"], 64, "names no recipient"),
        (["--lmtp", "/nonexistent/dir/x.sock", "--maildir", "/m/%n"], 75, "cannot listen on"),
    ],
)
def test_a_bad_command_line_is_one_line_and_its_exit_code(
    argv: list[str], code: int, said: str
) -> None:
    done = subprocess.run([AGENT, *argv], capture_output=True, text=True, timeout=30)
    assert done.returncode == code, done.stderr
    assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
