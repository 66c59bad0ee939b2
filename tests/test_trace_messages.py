"""The message set every trace delivers (issue 13, item 1; harness/trace/messages.py).

An agent that cuts a line at a NUL byte and adds a final newline, yet exits 0 and delivers
durably, passed a default trace before: the traced message has neither a NUL byte nor a
missing final newline. Now every trace delivers each message of the set once more and says
where and how a delivered file differs from the message; a change breaks P1.

Spec IDs exercised: T7 (the message set), P1 (the delivered message is the one handed over).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from maildircheck.harness.cli import main
from maildircheck.harness.trace.messages import MESSAGES, describe_change, run_message_set

MESSAGE = b"From: a@example.org\r\nSubject: s\r\n\r\nbody \x00 rest\r\nFrom me\r\nend\r\n"

# Delivers correctly (tmp/, fsync, link, fsync new/), but rewrites the bytes first as the
# command line says: cut each line at a NUL byte, add a final newline, CRLF to LF.
REWRITER = """\
import os, sys, time
root, how = sys.argv[1], sys.argv[2:]
data = sys.stdin.buffer.read()
if "nul" in how:
    data = b"\\n".join(line.split(b"\\0")[0] for line in data.split(b"\\n"))
if "newline" in how and not data.endswith(b"\\n"):
    data += b"\\n"
if "crlf" in how:
    data = data.replace(b"\\r\\n", b"\\n")
name = f"{int(time.time())}.{os.getpid()}.rewriter"
fd = os.open(f"{root}/tmp/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, data)
os.fsync(fd)
os.close(fd)
os.link(f"{root}/tmp/{name}", f"{root}/new/{name}")
d = os.open(f"{root}/new", os.O_RDONLY)
os.fsync(d)
os.close(d)
os.unlink(f"{root}/tmp/{name}")
"""


def test_the_set_covers_what_mtas_hand_over() -> None:
    shapes = dict(MESSAGES)
    assert b"\r\n" in shapes["crlf"] and b"\x00" in shapes["nul"]
    assert any(b >= 0x80 for b in shapes["8bit"])
    assert not shapes["no-final-newline"].endswith(b"\n")
    assert max(len(line) for line in shapes["long-line"].split(b"\n")) > 998
    assert shapes["from-lines"].startswith(b"From ") and b"\nFrom " in shapes["from-lines"]
    assert len(shapes["large"]) > 65536


@pytest.mark.parametrize(
    ("data", "change"),
    [
        (MESSAGE, None),
        (b"Return-Path: <a@example.org>\nDelivered-To: b@example.net\n" + MESSAGE, None),
        (MESSAGE.replace(b"\x00 rest", b""), "a NUL byte cut the line at byte 40"),
        (MESSAGE + b"\n", "a final newline was added"),
        (MESSAGE.replace(b"\r\n", b"\n"), "CRLF line ends became LF"),
        (MESSAGE.replace(b"\r\nFrom me", b"\r\n>From me"), "'>' put before a From line"),
        (MESSAGE[:30], "cut short: 30 of the message's"),
        (MESSAGE.replace(b"body", b"BODY"), "differs at byte 35: 'body \\x00 rest\\r' became"),
    ],
)
def test_a_change_is_said_with_where_it_starts_and_what_it_is(
    data: bytes, change: str | None
) -> None:
    found = describe_change(MESSAGE, data)
    assert (found is None) if change is None else (found is not None and change in found), found


def test_a_nul_that_cut_the_line_is_all_that_changed() -> None:
    cut = MESSAGE.replace(b"\x00 rest", b"")
    assert describe_change(MESSAGE, cut) == "a NUL byte cut the line at byte 40"
    worse = cut.replace(b"From me", b"From you")
    assert describe_change(MESSAGE, worse) == (
        "a NUL byte cut the line at byte 40; more differs after it"
    )


def test_a_leading_from_line_is_the_envelope_not_the_message() -> None:
    message = dict(MESSAGES)["from-lines"]
    assert describe_change(message, message.split(b"\n", 1)[1]) is None
    long = dict(MESSAGES)["long-line"]
    broken = long.replace(b"x" * 1200, b"x" * 998 + b"\n" + b"x" * 202)
    assert "a line over 998 bytes was broken at byte" in str(describe_change(long, broken))


def test_a_trace_flags_an_agent_that_cuts_lines_at_nul(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The defect: without the message set the same trace holds (exit 0)."""
    if shutil.which("strace") is None:
        pytest.fail("strace is not installed (.ci/run installs it)")
    agent = tmp_path / "rewriter.py"
    agent.write_text(REWRITER)
    command = ["--", sys.executable, str(agent), "{maildir}", "nul", "newline"]
    assert main(["trace", "--no-message-set", *command]) == 0
    assert "--no-message-set" in capsys.readouterr().out.splitlines()[-1]  # its replay
    assert main(["trace", *command]) == 1
    out = capsys.readouterr().out
    said = {line.split()[0]: line for line in out.splitlines() if " bytes  exit " in line}
    assert "exit 0: CHANGED: a NUL byte cut the line at byte" in said["nul"]
    assert "exit 0: CHANGED: a final newline was added" in said["no-final-newline"]
    assert "exit 0: kept byte for byte" in said["crlf"]
    assert "VIOLATED P1 no-partial: exit 0, but not the message handed over" in out
    assert main(["trace", "--json", *command]) == 1
    report = json.loads(capsys.readouterr().out)
    flagged = {m["name"]: m["change"] for m in report["messages"] if m["flagged"]}
    assert set(flagged) == {"nul", "no-final-newline"}, flagged
    assert {r["property"] for r in report["results"]} == {"P1"}


def test_crlf_to_lf_is_caught_on_the_crlf_message_only(tmp_path: Path) -> None:
    agent = tmp_path / "rewriter.py"
    agent.write_text(REWRITER)
    found = run_message_set([sys.executable, str(agent), "{maildir}", "crlf"])
    assert {m.name: m.change for m in found if m.flagged} == {"crlf": "CRLF line ends became LF"}
    assert all(m.kept == "kept byte for byte" for m in found if m.name != "crlf")


def test_an_agent_that_keeps_every_message_is_not_flagged() -> None:
    """safecat stores the bytes it reads: every message of the set kept."""
    if shutil.which("safecat") is None:
        pytest.fail("safecat is not installed (.ci/run installs it)")
    found = run_message_set(["safecat", "{maildir}/tmp", "{maildir}/new"])
    assert [(m.name, m.status, m.delivered, m.change) for m in found] == [
        (name, 0, 1, None) for name, _ in MESSAGES
    ]
