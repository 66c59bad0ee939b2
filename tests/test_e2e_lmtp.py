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

from pathlib import Path

from tests.mta_servers import RECIPIENT, SENDER, mail_system
from tests.test_e2e_mta import (
    DELIVERY_SECONDS,
    check_arrived,
    check_received,
    leading_fields,
    messages,
)


def split_headers(data: bytes, eol: bytes) -> tuple[list[bytes], bytes]:
    """The server's two envelope headers and Postfix's Received, and the message below."""
    return leading_fields(data, eol, (b"Return-Path", b"Delivered-To", b"Received"))


def check_headers(fields: list[bytes], queue_id: str) -> None:
    assert fields[0] == f"Return-Path: <{SENDER}>".encode()
    assert fields[1] == f"Delivered-To: {RECIPIENT}".encode()
    check_received(fields[2], queue_id)


def test_postfix_lmtp_to_maildir_deliver_to_dovecot_byte_for_byte(tmp_path: Path) -> None:
    sent = messages()
    with mail_system(tmp_path, imap=True, lmtp=True) as mail:
        assert mail.lmtp is not None
        queue_ids = mail.postfix.submit([(m.wire, m.eightbit) for m in sent])
        mail.postfix.wait_for(queue_ids, "sent", DELIVERY_SECONDS)
        why = "through maildir-deliver --lmtp"
        check_arrived(mail, sent, queue_ids, split_headers, check_headers, why)
    log = mail.lmtp.log()  # stopped by now: SIGTERM, exit 0 (else the clean-up failed)
    assert "stopped after" in log and "5 deliveries" in log, log
