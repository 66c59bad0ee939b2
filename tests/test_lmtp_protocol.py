"""The LMTP session (impl/lmtp/protocol.py, spec M8), driven as a client would drive it.

Each test feeds client bytes to a `Session` and reads back its events; `run` plays the I/O
layer and the delivery batcher (it answers each Deliver at once). The Hypothesis tests check
that data survives dot-stuffing byte for byte, and that how the bytes are split never
changes what the session does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maildircheck.impl.lmtp.protocol import (
    Closed,
    Deliver,
    Event,
    MisuseError,
    NeedData,
    Phase,
    RecipientResult,
    Refusal,
    Send,
    Session,
    Transaction,
)

Answerer = Callable[[Transaction], Sequence[RecipientResult]]
HELLO = b"LHLO client.example\r\n"
BODY_SYNTAX = "501 5.5.4 Syntax: BODY=7BIT or BODY=8BITMIME"


def delivered(transaction: Transaction) -> list[RecipientResult]:
    return [RecipientResult.delivered(r, f"name{i}") for i, r in enumerate(transaction.recipients)]


def drain(session: Session, events: list[Event], answer: Answerer) -> None:
    """Take events until the session needs bytes, answering each Deliver at once."""
    while True:
        event = session.next_event()
        if isinstance(event, NeedData):
            return
        events.append(event)
        if isinstance(event, Deliver):
            assert session.next_event() == NeedData()  # nothing more until the answer
            session.answer(answer(event.transaction))
        if isinstance(event, Closed):
            return


def run(session: Session, chunks: Sequence[bytes], answer: Answerer = delivered) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        session.receive(chunk)
        drain(session, events, answer)
        if events and isinstance(events[-1], Closed):
            break
    return events


def canonical(events: list[Event]) -> list[Event]:
    """The events with consecutive Sends joined: what a client sees, whatever the splits."""
    joined: list[Event] = []
    for event in events:
        if isinstance(event, Send) and joined and isinstance(joined[-1], Send):
            joined[-1] = Send(joined[-1].data + event.data)
        else:
            joined.append(event)
    return joined


def sent(events: Sequence[Event]) -> bytes:
    return b"".join(event.data for event in events if isinstance(event, Send))


def replies(events: Sequence[Event]) -> list[str]:
    """The last line of every reply (a multi-line reply counts once)."""
    lines = sent(events).decode().split("\r\n")
    assert lines.pop() == ""
    return [line for line in lines if line[3:4] != "-"]


def transactions(events: Sequence[Event]) -> list[Transaction]:
    return [event.transaction for event in events if isinstance(event, Deliver)]


def stuff(message: bytes) -> bytes:
    """The message as a client sends it after the 354 (RFC 5321 4.5.2, 4.1.1.4)."""
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    lines = message.split(b"\r\n")[:-1] if message else []
    return b"".join((b"." if line.startswith(b".") else b"") + line + b"\r\n" for line in lines)


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    """`stream` cut at `cuts`, without empty pieces (b"" would mean end of input)."""
    ends = sorted(cuts)
    pieces = [stream[a:b] for a, b in zip([0, *ends], [*ends, len(stream)], strict=True)]
    return [piece for piece in pieces if piece]


def envelope(*recipients: str, mail: bytes = b"MAIL FROM:<sender@example.org>\r\n") -> bytes:
    rcpts = b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in recipients)
    return mail + rcpts + b"DATA\r\n"


def one_message(message: bytes, *recipients: str) -> bytes:
    return HELLO + envelope(*(recipients or ("a@example.org",))) + stuff(message) + b".\r\n"


# --- a whole session ---------------------------------------------------------------------


def test_greeting_and_lhlo_advertise_the_extensions() -> None:
    session = Session("mx.example", max_size=5000)
    assert session.greeting() == b"220 mx.example LMTP ready\r\n"
    events = run(session, [HELLO])
    assert sent(events) == (
        b"250-mx.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
        b"250 SIZE 5000\r\n"
    )
    assert session.phase is Phase.READY


def test_three_recipients_one_refused_gives_two_replies_after_data_in_order() -> None:
    def check(address: str) -> Refusal | None:
        return Refusal(550, "5.1.1", "No such user") if address.startswith("nobody") else None

    def answer(transaction: Transaction) -> list[RecipientResult]:
        first, second = transaction.recipients
        return [
            RecipientResult.delivered(first, "1.M1P1.host"),
            RecipientResult.deferred(second, "disk full"),
        ]

    session = Session("mx.example", check_recipient=check)
    message = b"Subject: hi\r\n\r\nbody\r\n"
    stream = one_message(message, "ann@x.org", "nobody@x.org", "bob@x.org")
    events = run(session, [stream], answer)
    assert replies(events) == [
        "250 SIZE 10240000",  # the last line of the LHLO reply
        "250 2.1.0 <sender@example.org> sender OK",
        "250 2.1.5 <ann@x.org> recipient OK",
        "550 5.1.1 No such user",
        "250 2.1.5 <bob@x.org> recipient OK",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 <ann@x.org> delivered as 1.M1P1.host",
        "451 4.3.0 <bob@x.org> not delivered, try again later: disk full",
    ]
    assert transactions(events) == [
        Transaction("sender@example.org", ("ann@x.org", "bob@x.org"), message, "7BIT", None)
    ]
    assert session.phase is Phase.READY


def test_pipelined_client_sends_the_next_mail_before_the_replies() -> None:
    session = Session("mx.example")
    second = b"MAIL FROM:<>\r\nRCPT TO:<c@x.org>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n"
    session.receive(one_message(b"first\r\n", "a@x.org", "b@x.org") + second)
    events = []
    while not isinstance(event := session.next_event(), Deliver):
        events.append(event)
    assert replies(events)[-1].startswith("354")
    # the second MAIL is buffered, unanswered, while the Deliver is out
    assert [session.next_event(), session.next_event()] == [NeedData(), NeedData()]
    assert event.transaction.data == b"first\r\n"
    session.answer(delivered(event.transaction))
    after = [session.next_event()]
    assert replies(after) == [
        "250 2.0.0 <a@x.org> delivered as name0",
        "250 2.0.0 <b@x.org> delivered as name1",
        "250 2.1.0 <> sender OK",
        "250 2.1.5 <c@x.org> recipient OK",
        "354 End data with <CR><LF>.<CR><LF>",
    ]
    drained: list[Event] = []
    drain(session, drained, delivered)
    assert transactions(drained) == [Transaction("", ("c@x.org",), b"second\r\n", "7BIT", None)]
    assert replies(drained) == [
        "250 2.0.0 <c@x.org> delivered as name0",
        "221 2.0.0 mx.example closing connection",
    ]
    assert drained[-1] == Closed("the client sent QUIT")


def test_byte_at_a_time_gives_the_same_events() -> None:
    stream = one_message(b"a\r\n..b\r\n.\r\n", "a@x.org") + b"NOOP\r\nBOGUS\r\nQUIT\r\n"
    whole = canonical(run(Session("h"), [stream]))
    single = canonical(run(Session("h"), [stream[i : i + 1] for i in range(len(stream))]))
    assert single == whole
    assert isinstance(whole[-1], Closed) and len(transactions(whole)) == 1


# --- the message data ----------------------------------------------------------------------


def test_dot_unstuffing_and_a_line_that_is_only_a_dot() -> None:
    wire = b"..\r\n...x\r\n..\r\nend\r\n.\r\n"
    [transaction] = transactions(run(Session("h"), [HELLO + envelope("a@x.org") + wire]))
    assert transaction.data == b".\r\n..x\r\n.\r\nend\r\n"


def test_a_leading_dot_is_dropped_even_when_the_client_did_not_stuff() -> None:
    wire = b".x\r\n.\r\n"  # RFC 5321 4.5.2: the first "." of a line is deleted
    [transaction] = transactions(run(Session("h"), [HELLO + envelope("a@x.org") + wire]))
    assert transaction.data == b"x\r\n"


def test_an_empty_message() -> None:
    [transaction] = transactions(run(Session("h"), [HELLO + envelope("a@x.org") + b".\r\n"]))
    assert transaction.data == b""


@pytest.mark.parametrize(
    "message",
    [
        b"crlf\r\nlines\r\n",
        b"bare\nlf\nlines\n\r\n",
        b"mixed\r\nbare\ncr\ronly\r\n",
        b"\x00\xff binary \x80\r\n",
    ],
)
def test_line_endings_are_kept_byte_for_byte(message: bytes) -> None:
    [transaction] = transactions(run(Session("h"), [one_message(message)]))
    assert transaction.data == message


def test_lf_dot_lf_does_not_end_data() -> None:
    """No smuggling: a bare-LF "." line is data, and what follows it is not a command."""
    wire = b"one\n.\nMAIL FROM:<evil@x.org>\nRCPT TO:<b@x.org>\r\n.\r\n"
    events = run(Session("h"), [HELLO + envelope("a@x.org") + wire])
    [transaction] = transactions(events)
    assert transaction.data == b"one\n.\nMAIL FROM:<evil@x.org>\nRCPT TO:<b@x.org>\r\n"
    assert replies(events)[-1] == "250 2.0.0 <a@x.org> delivered as name0"


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from([b"", b".", b"..", b".\r", b"\n.", b"From "]),
            st.binary(max_size=12),
            st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"\n\r"]),
        ),
        max_size=12,
    ),
    data=st.data(),
)
def test_dot_stuffed_messages_come_back_exactly_in_any_chunking(
    lines: list[tuple[bytes, bytes, bytes]], data: st.DataObject
) -> None:
    message = b"".join(start + middle + end for start, middle, end in lines)
    stream = one_message(message, "a@x.org") + b"QUIT\r\n"
    chunks = split(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    events = canonical(run(Session("h"), chunks))
    expected = message + (b"\r\n" if message and not message.endswith(b"\r\n") else b"")
    assert [t.data for t in transactions(events)] == [expected]
    assert events == canonical(run(Session("h"), [stream]))


CLIENT_LINES = [
    b"LHLO c\r\n", b"MAIL FROM:<s@x.org> SIZE=10\r\n", b"RCPT TO:<a@x.org>\r\n",
    b"RCPT TO:<bad\x00@x.org>\r\n", b"DATA\r\n", b"hello\r\n", b".\r\n", b"..\r\n",
    b"RSET\r\n", b"NOOP\n", b"x" * 1200 + b"\r\n", b"helo c\r\n", b"\r", b"\n", b"QUIT\r\n",
]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(CLIENT_LINES), max_size=30),
    eof=st.booleans(),
    data=st.data(),
)
def test_any_chunking_of_any_client_gives_the_same_events(
    pieces: list[bytes], eof: bool, data: st.DataObject
) -> None:
    stream = b"".join(pieces)
    chunks = split(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    tail = [b""] if eof else []
    whole = canonical(run(Session("h", max_size=100), [*split(stream, []), *tail]))
    assert canonical(run(Session("h", max_size=100), [*chunks, *tail])) == whole
    if eof:
        assert isinstance(whole[-1], Closed)


# --- limits ------------------------------------------------------------------------------------


def test_size_refused_at_mail() -> None:
    session = Session("h", max_size=1000)
    events = run(session, [HELLO + b"MAIL FROM:<s@x.org> SIZE=1001\r\nRCPT TO:<a@x.org>\r\n"])
    assert replies(events)[1:] == [
        "552 5.3.4 Message too big (max 1000)",
        "503 5.5.1 Need MAIL before RCPT",
    ]
    mails = b"MAIL FROM:<s@x.org> SIZE=1000\r\nRSET\r\nMAIL FROM:<s@x.org> SIZE=x\r\n"
    events = run(session, [mails])
    assert replies(events) == [
        "250 2.1.0 <s@x.org> sender OK",
        "250 2.0.0 OK",
        "501 5.5.4 Syntax: SIZE=number-of-bytes",
    ]


def test_size_declared_and_body_reach_the_transaction() -> None:
    mail = b"MAIL FROM:<s@x.org> SIZE=6 BODY=8BITMIME\r\n"
    wire = HELLO + envelope("a@x.org", mail=mail) + b"caf\xc3\xa9\r\n.\r\n"
    [transaction] = transactions(run(Session("h"), [wire]))
    assert (transaction.body, transaction.size_declared) == ("8BITMIME", 6)


def test_a_message_past_max_size_is_read_to_its_end_then_refused_per_recipient() -> None:
    session = Session("h", max_size=100)
    big = b"x" * 70 + b"\r\n" + b"y" * 70 + b"\r\n"
    events = run(session, [one_message(big, "a@x.org", "b@x.org") + b"NOOP\r\n"])
    assert transactions(events) == []
    assert replies(events)[-3:] == [
        "552 5.3.4 <a@x.org> Message too big for this server",
        "552 5.3.4 <b@x.org> Message too big for this server",
        "250 2.0.0 OK",
    ]
    assert session.phase is Phase.READY
    exact = b"z" * 98 + b"\r\n"  # exactly max_size: delivered
    events = run(session, [envelope("a@x.org") + exact + b".\r\n"])
    assert [t.data for t in transactions(events)] == [exact]


def test_the_recipient_limit() -> None:
    session = Session("h")
    rcpts = b"".join(b"RCPT TO:<u%d@x.org>\r\n" % i for i in range(1001))
    events = run(session, [HELLO + b"MAIL FROM:<s@x.org>\r\n" + rcpts + b"DATA\r\n.\r\n"])
    assert replies(events)[1001:1004] == [
        "250 2.1.5 <u999@x.org> recipient OK",
        "452 4.5.3 Too many recipients",
        "354 End data with <CR><LF>.<CR><LF>",
    ]
    [transaction] = transactions(events)
    assert len(transaction.recipients) == 1000


def test_a_command_line_over_max_line_is_refused_and_skipped() -> None:
    session = Session("h")
    longest = b"NOOP " + b"x" * 993 + b"\r\n"  # 1000 bytes with CRLF: allowed
    events = run(session, [HELLO + longest + b"NOOP " + b"x" * 994 + b"\r\nNOOP\r\n"])
    assert replies(events)[1:] == [
        "250 2.0.0 OK",
        "500 5.5.6 Line too long (limit 1000 bytes with CRLF)",
        "250 2.0.0 OK",
    ]
    events = run(session, [b"y" * 5000])  # the second one: closed
    assert replies(events) == ["421 4.5.0 h Too many overlong command lines; closing connection"]
    assert events[-1] == Closed("Too many overlong command lines")


def test_a_line_with_no_end_closes_the_session() -> None:
    session = Session("h", max_size=10_000)
    events = run(session, [b"z" * 4000] * 3)
    assert replies(events)[0].startswith("500 5.5.6")
    assert events[-1] == Closed("A command line with no end")


# --- commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "reply"),
    [
        (b"MAIL FROM:<s@x.org>\r\n", "503 5.5.1 Send LHLO first"),
        (HELLO + b"RCPT TO:<a@x.org>\r\n", "503 5.5.1 Need MAIL before RCPT"),
        (HELLO + b"DATA\r\n", "503 5.5.1 Need MAIL before DATA"),
        (HELLO + b"MAIL FROM:<s@x.org>\r\nDATA\r\n", "503 5.5.1 No valid recipients"),
        (
            HELLO + b"MAIL FROM:<s@x.org>\r\nRCPT TO:<a@x.org>\r\nMAIL FROM:<t@x.org>\r\n",
            "503 5.5.1 Nested MAIL: a transaction is open (RSET ends it)",
        ),
        (b"HELO c\r\n", "500 5.5.1 This is LMTP: send LHLO, not HELO or EHLO"),
        (b"EHLO c\r\n", "500 5.5.1 This is LMTP: send LHLO, not HELO or EHLO"),
        (b"BDAT 10 LAST\r\n", "500 5.5.2 Command not recognized"),
        (b"NOOP\n", "500 5.5.2 Bare LF or CR in a command line: end lines with CRLF"),
        (b"NO\rOP\r\n", "500 5.5.2 Bare LF or CR in a command line: end lines with CRLF"),
        (b"LHLO\r\n", "501 5.5.4 Syntax: LHLO domain"),
        (HELLO + b"MAIL FROM:s@x.org\r\n", "501 5.5.4 The address must be in angle brackets"),
        (HELLO + b"MAIL TO:<s@x.org>\r\n", "501 5.5.4 Syntax: FROM:<address>"),
        (HELLO + b"MAIL FROM:<s@x.org> X=1\r\n", "555 5.5.4 MAIL parameter X not recognized"),
        (HELLO + b"MAIL FROM:<s@x.org> BODY=BINARY\r\n", BODY_SYNTAX),
        (HELLO + b"MAIL FROM:<s@@x.org>\r\n", "501 5.1.7 Syntax: <local-part@domain>"),
        (b"VRFY a\r\n", "252 2.0.0 Cannot VRFY; send RCPT to try the address"),
        (b"HELP\r\n", "214 2.0.0 Commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP"),
        (b"RSET\r\n", "250 2.0.0 OK"),
        (b"DATA now\r\n", "503 5.5.1 Send LHLO first"),
        (
            HELLO + b"MAIL FROM:<s@x.org>\r\nRCPT TO:<a@x.org>\r\nDATA now\r\n",
            "501 5.5.4 Syntax: DATA (no argument)",
        ),
    ],
)
def test_replies(stream: bytes, reply: str) -> None:
    assert replies(run(Session("h"), [stream]))[-1] == reply


@pytest.mark.parametrize(
    ("address", "reply"),
    [
        (b"a@x.org", "250 2.1.5 <a@x.org> recipient OK"),
        (b"Postmaster", "250 2.1.5 <Postmaster> recipient OK"),
        (b"@relay.org,@r2.org:a@x.org", "250 2.1.5 <a@x.org> recipient OK"),
        (b'"john doe"@x.org', '250 2.1.5 <"john doe"@x.org> recipient OK'),
        (b"a@[192.0.2.1]", "250 2.1.5 <a@[192.0.2.1]> recipient OK"),
        (b"", "501 5.1.3 An empty address cannot be a recipient"),
        (b"a\x00b@x.org", "501 5.1.3 Control character in the address"),
        (b"a\tb@x.org", "501 5.1.3 Control character in the address"),
        (b"j\xc3\xb6rg@x.org", "501 5.1.3 Addresses must be ASCII (SMTPUTF8 is not offered)"),
        (b"a@", "501 5.1.3 Syntax: <local-part@domain>"),
        (b"a b@x.org", "501 5.1.3 Syntax: <local-part@domain>"),
        (b"a..b@x.org", "501 5.1.3 Syntax: <local-part@domain>"),
        (b"a@x.org> NOTIFY=NEVER", "555 5.5.4 RCPT parameters not recognized"),
        (b"a" * 250 + b"@x.org", "501 5.1.3 Address longer than 256 with its brackets"),
    ],
)
def test_recipient_addresses(address: bytes, reply: str) -> None:
    stream = HELLO + b"MAIL FROM:<s@x.org>\r\nRCPT TO:<" + address + b">\r\n"
    assert replies(run(Session("h"), [stream]))[-1] == reply


def test_commands_are_case_insensitive_and_a_space_after_the_colon_is_tolerated() -> None:
    stream = b"lhlo c\r\nmail from: <s@x.org> body=7bit\r\nRcpt To:<a@x.org>\r\ndata\r\n.\r\n"
    [transaction] = transactions(run(Session("h"), [stream]))
    assert (transaction.sender, transaction.recipients) == ("s@x.org", ("a@x.org",))


def test_rset_and_lhlo_clear_the_transaction() -> None:
    session = Session("h")
    events = run(session, [HELLO + b"MAIL FROM:<s@x.org>\r\nRCPT TO:<a@x.org>\r\nRSET\r\nDATA\r\n"])
    assert replies(events)[-2:] == ["250 2.0.0 OK", "503 5.5.1 Need MAIL before DATA"]
    assert session.phase is Phase.READY
    events = run(session, [b"MAIL FROM:<s@x.org>\r\nRCPT TO:<a@x.org>\r\n" + HELLO + b"DATA\r\n"])
    assert replies(events)[-1] == "503 5.5.1 Need MAIL before DATA"
    events = run(session, [envelope("b@x.org") + b"m\r\n.\r\n"])
    assert [t.recipients for t in transactions(events)] == [("b@x.org",)]


# --- the end of a session ------------------------------------------------------------------


def test_quit_replies_221_then_closes_and_ignores_what_follows() -> None:
    session = Session("h")
    events = run(session, [HELLO + b"QUIT\r\nNOOP\r\n"])
    assert replies(events)[-1] == "221 2.0.0 h closing connection"
    assert events[-1] == Closed("the client sent QUIT")
    session.receive(b"NOOP\r\n")
    assert session.next_event() == Closed("the client sent QUIT")


def test_client_eof_mid_data_closes_without_a_deliver() -> None:
    session = Session("h")
    events = run(session, [HELLO + envelope("a@x.org") + b"half a mess", b""])
    assert transactions(events) == []
    why = "the client closed the connection during DATA; the message is dropped"
    assert events[-1] == Closed(why)


def test_client_eof_between_commands() -> None:
    events = run(Session("h"), [HELLO + b"NOOP", b""])
    assert events[-1] == Closed("the client closed the connection")
    assert replies(events)[-1].startswith("250 SIZE")


def test_client_eof_while_a_deliver_is_out_waits_for_the_answer() -> None:
    session = Session("h")
    session.receive(one_message(b"m\r\n", "a@x.org"))
    session.receive(b"")
    assert isinstance(session.next_event(), Send)
    event = session.next_event()
    assert isinstance(event, Deliver)
    assert session.next_event() == NeedData()
    session.answer([RecipientResult.failed("a@x.org", "over quota")])
    assert session.next_event() == Send(b"550 5.2.0 <a@x.org> not delivered: over quota\r\n")
    assert session.next_event() == Closed("the client closed the connection")


def test_answer_misuse_is_refused() -> None:
    session = Session("h")
    with pytest.raises(MisuseError):
        session.answer([])
    session.receive(one_message(b"m\r\n", "a@x.org", "b@x.org"))
    assert isinstance(session.next_event(), Send)
    with pytest.raises(MisuseError):  # the Deliver is not out yet
        session.answer([])
    event = session.next_event()
    assert isinstance(event, Deliver)
    with pytest.raises(MisuseError):
        session.answer([RecipientResult.delivered("a@x.org", "n")])
    with pytest.raises(MisuseError):
        session.answer([RecipientResult(250, "5.0.0", "no"), RecipientResult(250, "2.0.0", "x")])
    with pytest.raises(MisuseError):
        session.answer([RecipientResult(250, "2.0.0", "a\r\n250 b")] * 2)
    session.answer(delivered(event.transaction))
    assert session.phase is Phase.READY
    session.receive(b"")
    with pytest.raises(MisuseError):
        session.receive(b"NOOP\r\n")


def test_a_bad_refusal_from_check_recipient_is_refused() -> None:
    session = Session("h", check_recipient=lambda address: Refusal(250, "2.0.0", "yes"))
    session.receive(HELLO + b"MAIL FROM:<s@x.org>\r\nRCPT TO:<a@x.org>\r\n")
    with pytest.raises(MisuseError):
        session.next_event()
