"""`maildir-deliver --lmtp` behind a real Postfix, read back through a real Dovecot (M9).

Owns the end-to-end check of the LMTP server: the messages of tests/test_e2e_mta.py (plain,
8-bit with every non-NUL byte value, long lines, From_ lines in the body, about 1 MB) sent
over SMTP to a private Postfix on loopback, which hands them to its own lmtp(8) client
(mailbox_transport = lmtp:unix:...), reach `maildir-deliver --lmtp` running as the
recipient account; each lands in the Maildir once, as the recipient, with the server's two
envelope headers and Postfix's Received header above the message exactly as sent (CRLF
made LF), and Dovecot's IMAP serves it back byte for byte (LF made CRLF). The server is
stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.mta_servers import HELO, MYHOSTNAME, RECIPIENT, SENDER, mail_system
from tests.test_e2e_mta import DELIVERY_SECONDS, delivered_files, fetch_all, message_id, messages


def split_headers(data: bytes, eol: bytes) -> tuple[list[bytes], bytes]:
    """The three header fields above the message (folded lines joined by LF) and the rest."""
    fields, rest = [], data
    for name in (b"Return-Path", b"Delivered-To", b"Received"):
        assert rest.startswith(name + b": "), f"expected {name!r} next, found {rest[:80]!r}"
        end = rest.index(eol) + len(eol)
        while rest[end : end + 1] in (b" ", b"\t"):
            end = rest.index(eol, end) + len(eol)
        fields.append(rest[:end].replace(eol, b"\n").rstrip(b"\n"))
        rest = rest[end:]
    return fields, rest


def check_headers(fields: list[bytes], queue_id: str) -> None:
    assert fields[0] == f"Return-Path: <{SENDER}>".encode()
    assert fields[1] == f"Delivered-To: {RECIPIENT}".encode()
    received = (
        rf"Received: from {re.escape(HELO)} \([^\n]*\[127\.0\.0\.1\]\)\n"
        rf"\tby {re.escape(MYHOSTNAME)} \(Postfix\) with ESMTP id {queue_id}\n"
        rf"\tfor <{re.escape(RECIPIENT)}>; [^\n]+"
    )
    assert re.fullmatch(received.encode(), fields[2]), fields[2]


def test_postfix_lmtp_to_maildir_deliver_to_dovecot_byte_for_byte(tmp_path: Path) -> None:
    sent = messages()
    with mail_system(tmp_path, imap=True, lmtp=True) as mail:
        assert mail.lmtp is not None
        queue_ids = mail.postfix.submit([(m.wire, m.eightbit) for m in sent])
        mail.postfix.wait_for(queue_ids, "sent", DELIVERY_SECONDS)
        files = delivered_files(mail.maildir)
        assert len(files) == len(sent), (files, mail.postfix.log(), mail.lmtp.log())
        assert os.listdir(mail.maildir / "tmp") == []
        by_id = {message_id(m.wire): (m, q) for m, q in zip(sent, queue_ids, strict=True)}
        on_disk: dict[bytes, bytes] = {}
        for path in files:
            assert path.stat().st_uid == mail.account.uid, f"{path} not written as the recipient"
            data = path.read_bytes()
            assert re.search(rf",S={len(data)}(:|$)", path.name), (path.name, len(data))
            assert b"\r" not in data, f"{path}: the Maildir file should hold LF line ends"
            fields, rest = split_headers(data, b"\n")
            original, queue_id = by_id[message_id(rest)]
            check_headers(fields, queue_id)
            assert rest == original.stored, f"{original.name}: altered on the way"
            on_disk[message_id(rest)] = data
        assert set(on_disk) == set(by_id)

        served = fetch_all(mail)
        assert len(served) == len(sent)
        for data in served:
            fields, rest = split_headers(data, b"\r\n")
            original, queue_id = by_id[message_id(rest)]
            check_headers(fields, queue_id)
            assert rest == original.wire, f"{original.name}: IMAP differs from what was sent"
            assert data == on_disk[message_id(rest)].replace(b"\n", b"\r\n")
    log = mail.lmtp.log()  # stopped by now: SIGTERM, exit 0 (else the clean-up failed)
    assert "stopped after" in log and "5 deliveries" in log, log
