"""`maildir-deliver` behind a real Postfix, read back through a real Dovecot (issue 5).

Owns the end-to-end check: messages sent over SMTP to a private Postfix on loopback,
delivered by Postfix's local(8) running `maildir-deliver` as its mailbox_command (as the
recipient, an unprivileged account), arrive in the Maildir byte for byte, and read back
the same through Dovecot's IMAP and Python's mailbox.Maildir; and a temporary failure of
the agent (exit 75) makes Postfix defer the message, log the agent's one-line reason and
deliver it on the retry, with nothing left behind in between. The servers are set up by
tests/mta_servers.py (docs/end-to-end.md for doing it by hand).

Line ends, deliberately: SMTP carries CRLF and so does IMAP; Postfix stores and hands the
agent LF, so the Maildir file holds LF. The messages sent here contain CR only as part of
CRLF (SMTP cannot carry a bare CR or LF), which makes both conversions exact: the file is
the sent bytes with every CRLF made LF, and the IMAP literal is the file with every LF
made CRLF. Postfix adds exactly four trace headers above the message; they are checked
and removed, and the rest must match exactly.
"""

from __future__ import annotations

import imaplib
import mailbox
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from tests.mta_servers import (
    HELO,
    IMAP_PASSWORD,
    MYHOSTNAME,
    RECIPIENT,
    SENDER,
    MailSystem,
    mail_system,
)
from tests.mta_servers import run_as as run_as_recipient

DELIVERY_SECONDS = 60  # for all the messages of a test together


@dataclass(frozen=True)
class Sent:
    name: str
    wire: bytes  # as sent over SMTP, CRLF line ends
    eightbit: bool = False

    @property
    def stored(self) -> bytes:
        """The message as a Maildir file holds it below the trace headers."""
        return self.wire.replace(b"\r\n", b"\n")

    @property
    def body(self) -> bytes:
        return self.stored.partition(b"\n\n")[2]


def message(name: str, body_lines: list[bytes], extra: tuple[str, ...] = ()) -> bytes:
    headers = [
        f"From: Sender <{SENDER}>",
        f"To: <{RECIPIENT}>",
        f"Subject: maildircheck end-to-end: {name}",
        "Date: Thu, 01 Jan 2026 00:00:00 +0000",
        f"Message-ID: <{name}.{os.getpid()}@maildircheck.test>",
        *extra,
    ]
    lines = [h.encode("ascii") for h in headers] + [b"", *body_lines]
    return b"".join(line + b"\r\n" for line in lines)


def messages() -> list[Sent]:
    every_byte = bytes(b for b in range(1, 256) if b not in b"\r\n")  # no NUL, no CR, no LF
    binaryish = [every_byte[i : i + 40] for i in range(0, len(every_byte), 40)]
    octet = ("MIME-Version: 1.0", "Content-Type: application/octet-stream",
             "Content-Transfer-Encoding: 8bit")  # fmt: skip
    large = [b"%07d " % i + b"abcdefghijklmnopqrstuvwxyz0123456789" * 2 for i in range(13_000)]
    return [
        Sent("plain", message("plain", [b"Hello.", b"", b"A plain ASCII message.", b"-- ", b"x"])),
        Sent(
            "eight-bit",
            message(
                "eight-bit",
                [
                    "Grüße, señor: ½ € 漢字".encode(),
                    *binaryish,
                    b".a line that starts with a dot (SMTP dot-stuffs it)",
                    b".",
                    b"trailing blanks \t ",
                    b"\x7f\x80\xff",
                ],
                octet,
            ),
            eightbit=True,
        ),
        Sent(
            "long-lines",
            message("long-lines", [b"a" * 998, b"b" * 999, b"c" * 4096, b"d" * 100_000, b"end"]),
        ),
        Sent(
            "from-line",
            message(
                "from-line",
                [
                    b"From sender@example.org Thu Jan  1 00:00:00 2026",
                    b">From an already quoted line",
                    b"From the middle of the body",
                ],
            ),
        ),
        Sent("large", message("large", large)),
    ]


TRACE = (b"Return-Path", b"X-Original-To", b"Delivered-To", b"Received")


def leading_fields(data: bytes, eol: bytes, names: tuple[bytes, ...]) -> tuple[list[bytes], bytes]:
    """The header fields `names`, in that order, at the top of `data` (each with its folded
    lines, line ends made LF and the last removed) and the message below them."""
    fields, rest = [], data
    for name in names:
        assert rest.startswith(name + b": "), f"expected {name!r} next, found {rest[:80]!r}"
        end = rest.index(eol) + len(eol)
        while rest[end : end + 1] in (b" ", b"\t"):
            end = rest.index(eol, end) + len(eol)
        fields.append(rest[:end].replace(eol, b"\n").rstrip(b"\n"))
        rest = rest[end:]
    return fields, rest


def split_trace(data: bytes, eol: bytes) -> tuple[list[bytes], bytes]:
    """The four leading trace header fields Postfix adds and the message below them."""
    assert not data.startswith(b"From "), (
        "the delivered message still starts with the mbox From_ line Postfix puts first on "
        f"maildir-deliver's input: {data[:80]!r}"
    )
    return leading_fields(data, eol, TRACE)


def check_received(field: bytes, queue_id: str) -> None:
    """The Received field Postfix's smtpd adds for our client's message `queue_id`."""
    received = (
        rf"Received: from {re.escape(HELO)} \([^\n]*\[127\.0\.0\.1\]\)\n"
        rf"\tby {re.escape(MYHOSTNAME)} \(Postfix\) with ESMTP id {queue_id}\n"
        rf"\tfor <{re.escape(RECIPIENT)}>; [^\n]+"
    )
    assert re.fullmatch(received.encode(), field), field


def check_trace(fields: list[bytes], queue_id: str) -> None:
    assert fields[0] == f"Return-Path: <{SENDER}>".encode()
    assert fields[1] == f"X-Original-To: {RECIPIENT}".encode()
    assert fields[2] == f"Delivered-To: {RECIPIENT}".encode()
    check_received(fields[3], queue_id)


def delivered_files(maildir: Path) -> list[Path]:
    return sorted(p for sub in ("new", "cur") for p in (maildir / sub).iterdir())


def message_id(data: bytes) -> bytes:
    found = re.search(rb"^Message-ID: (\S+)\r?$", data, re.MULTILINE | re.IGNORECASE)
    assert found, data[:500]
    return found.group(1)


def fetch_all(mail: MailSystem) -> list[bytes]:
    """Every message of INBOX as Dovecot serves it (BODY.PEEK[], read-only)."""
    assert mail.dovecot is not None
    with imaplib.IMAP4("127.0.0.1", mail.dovecot.port, timeout=30) as imap:
        imap.login(mail.account.name, IMAP_PASSWORD)
        status, _ = imap.select("INBOX", readonly=True)
        assert status == "OK", mail.dovecot.log()
        status, data = imap.fetch("1:*", "(BODY.PEEK[])")
        assert status == "OK", data
        return [item[1] for item in data if isinstance(item, tuple)]


Split = Callable[[bytes, bytes], tuple[list[bytes], bytes]]
"""A delivered message's leading header fields and the rest, given its line end."""


def check_arrived(
    mail: MailSystem,
    sent: list[Sent],
    queue_ids: list[str],
    split: Split,
    check_fields: Callable[[list[bytes], str], None],
    why: str,
) -> tuple[dict[bytes, tuple[Sent, str]], dict[bytes, bytes]]:
    """Each sent message is in the Maildir once, as the recipient, with its size in its
    name and LF line ends, below the header fields `split` takes off and `check_fields`
    judges, exactly as sent; and Dovecot's IMAP serves each back with CRLF. The messages by
    Message-ID (with their queue ids), and the files' bytes by Message-ID."""
    files = delivered_files(mail.maildir)
    assert len(files) == len(sent), (why, files, mail.postfix.log())
    assert os.listdir(mail.maildir / "tmp") == []
    by_id = {message_id(m.wire): (m, q) for m, q in zip(sent, queue_ids, strict=True)}
    on_disk: dict[bytes, bytes] = {}
    for path in files:
        assert path.stat().st_uid == mail.account.uid, f"{path} not written as the recipient"
        data = path.read_bytes()
        # Dovecot takes a message's size from ,S= in its name without reading the file.
        assert re.search(rf",S={len(data)}(:|$)", path.name), (path.name, len(data))
        assert b"\r" not in data, f"{path}: the Maildir file should hold LF line ends"
        fields, rest = split(data, b"\n")
        original, queue_id = by_id[message_id(rest)]
        check_fields(fields, queue_id)
        assert rest == original.stored, f"{original.name}: altered on the way ({why})"
        on_disk[message_id(rest)] = data
    assert set(on_disk) == set(by_id)
    served = fetch_all(mail)
    assert len(served) == len(sent)
    for data in served:
        fields, rest = split(data, b"\r\n")
        original, queue_id = by_id[message_id(rest)]
        check_fields(fields, queue_id)
        assert rest == original.wire, f"{original.name}: IMAP differs from what was sent"
        assert data == on_disk[message_id(rest)].replace(b"\n", b"\r\n")
    return by_id, on_disk


def test_messages_arrive_intact_through_postfix_maildir_deliver_and_dovecot(
    tmp_path: Path,
) -> None:
    """Five messages (plain, 8-bit with every non-NUL byte value, long lines, a From_ line
    at the top of the body, about 1 MB) go through Postfix into the Maildir; each file is
    the recipient's, starts with Postfix's trace headers, never the mbox From_ line (D1),
    holds the sent message exactly (D6) and carries its size in its name (D5); Dovecot's
    IMAP and mailbox.Maildir read the same."""
    sent = messages()
    with mail_system(tmp_path, imap=True) as mail:
        why = f"maildir-deliver run as {mail.deliver_how}"
        queue_ids = mail.postfix.submit([(m.wire, m.eightbit) for m in sent])
        mail.postfix.wait_for(queue_ids, "sent", DELIVERY_SECONDS)
        by_id, on_disk = check_arrived(mail, sent, queue_ids, split_trace, check_trace, why)

        box = mailbox.Maildir(mail.maildir, factory=None, create=False)
        assert len(box) == len(sent)
        for key in box.iterkeys():
            raw = box.get_bytes(key)
            original, _ = by_id[message_id(raw)]
            assert raw == on_disk[message_id(raw)]
            parsed: Message = box.get_message(key)
            assert parsed.get_payload(decode=True) == original.body, original.name


def test_a_temporary_failure_is_deferred_logged_and_retried(tmp_path: Path) -> None:
    """With new/ read-only, maildir-deliver fails temporarily (exit 75, EX_TEMPFAIL under
    --exit-codes sysexits, D3) and removes its tmp/ file (A13, P4); Postfix defers the
    message (dsn 4.3.0) and logs the agent's one-line reason (D8); once new/ is writable
    again a flush delivers it, once, intact."""
    with mail_system(tmp_path, imap=False) as mail:
        account, maildir = mail.account, mail.maildir
        for sub, mode in (("tmp", 0o700), ("new", 0o500), ("cur", 0o700)):
            (maildir / sub).mkdir(parents=True)
            os.chown(maildir / sub, account.uid, account.gid)
            (maildir / sub).chmod(mode)
        os.chown(maildir, account.uid, account.gid)
        sent = Sent("deferred", message("deferred", [b"Delivered on the second try."]))

        # The agent alone, as the recipient: its exit code and its one line.
        alone = run_as_recipient(account, mail.mailbox_command, stdin=sent.stored)
        reason = alone.stderr.decode()
        assert alone.returncode == 75, (alone.returncode, reason)
        assert re.fullmatch(r"maildir-deliver: temporary failure: [^\n]+\n", reason), reason
        assert os.listdir(maildir / "tmp") == [] and os.listdir(maildir / "new") == []

        (queue_id,) = mail.postfix.submit([(sent.wire, False)])
        (line,) = mail.postfix.wait_for([queue_id], "deferred", DELIVERY_SECONDS)
        assert "dsn=4.3.0" in line, line
        assert f"Command output: {reason.strip()}" in line, (reason, line)
        assert os.listdir(maildir / "tmp") == [], "a partial file was left in tmp/"
        assert os.listdir(maildir / "new") == [], "a file reached new/ although it failed"

        (maildir / "new").chmod(0o700)
        mail.postfix.flush()
        mail.postfix.wait_for([queue_id], "sent", DELIVERY_SECONDS, attempt=2)
        (path,) = delivered_files(maildir)
        fields, rest = split_trace(path.read_bytes(), b"\n")
        check_trace(fields, queue_id)
        assert rest == sent.stored
        assert os.listdir(maildir / "tmp") == []
