"""One LMTP session (RFC 2033 over RFC 5321), server side, as a sans-IO state machine.

This module owns the protocol and nothing else: framing the client's bytes into command
lines and message data, the phases of a session and the moves between them (the table
`TRANSITIONS`), every reply the server sends, and the values that cross the boundary with
the I/O layer (`Send`, `Deliver`, `Closed`, `NeedData`) and with the delivery batcher
(`Transaction`, `RecipientResult`, `Refusal`). It has no sockets, threads, clock or random;
time-outs, and back-pressure while a `Deliver` is out, are the I/O layer's job.

The I/O layer writes `greeting()`, then loops: `receive(bytes)` (b"" when the client
closes), then `next_event()` until `NeedData`: it writes each `Send`, hands each `Deliver`
to the batcher, whose results go back through `answer()`, and closes on `Closed`.

Choices the RFCs leave open are made where the code makes them, each with its section:
bare LF (`_read_command`, `_read_data`), the end of the message data (`_read_data`),
overlong lines (`_overlong`), codes (`_on_lhlo`, `_command`), addresses (`_address_problem`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from typing import TypeAlias

from maildircheck.model.record import Record


class MisuseError(Exception):
    """The caller broke the session's contract (say, `answer` with no `Deliver` out)."""


class Refusal(Record):
    """`check_recipient`'s reason to refuse an address, sent as the RCPT reply."""

    code: int  # 4xx or 5xx, e.g. 550
    enhanced: str  # RFC 3463, agreeing with `code`: "5.1.1" unknown user, "5.1.3" bad address
    text: str


class RecipientResult(Record):
    """The outcome of one recipient's delivery, sent as its reply after the final "."."""

    code: int  # 250, 4xx or 5xx
    enhanced: str  # RFC 3463, agreeing with `code`
    text: str

    @classmethod
    def delivered(cls, address: str, name: str) -> RecipientResult:
        return cls(250, "2.0.0", f"<{address}> delivered as {name}")

    @classmethod
    def deferred(cls, address: str, reason: str) -> RecipientResult:
        return cls(451, "4.3.0", f"<{address}> not delivered, try again later: {reason}")

    @classmethod
    def failed(cls, address: str, reason: str) -> RecipientResult:
        return cls(550, "5.2.0", f"<{address}> not delivered: {reason}")


class Transaction(Record):
    """A complete message and its envelope, ready to deliver."""

    sender: str  # "" for the null reverse-path <>
    recipients: tuple[str, ...]  # the accepted RCPTs, in order
    data: bytes  # unstuffed; line endings as sent; the last line keeps its CRLF
    body: str  # "7BIT" or "8BITMIME", from MAIL's BODY= (RFC 6152)
    size_declared: int | None  # MAIL's SIZE= (RFC 1870)


class Send(Record):
    """Bytes for the I/O layer to write to the client: one reply or several."""

    data: bytes


class Deliver(Record):
    """A message to deliver; `answer` gives the results and lets the session go on."""

    transaction: Transaction


class Closed(Record):
    """Close the connection (after writing every earlier `Send`)."""

    why: str


class NeedData(Record):
    """Nothing to do until more bytes arrive, or until `answer` for an outstanding Deliver."""


Event: TypeAlias = Send | Deliver | Closed | NeedData


class Phase(enum.Enum):
    GREETED = "banner sent, no LHLO yet"
    READY = "between transactions"
    HAVE_SENDER = "MAIL accepted, no recipient yet"
    HAVE_RECIPIENTS = "MAIL and at least one RCPT accepted"
    RECEIVING_DATA = "reading the message after the 354"
    DELIVERING = "a Deliver is out, waiting for answer()"
    CLOSED = "finished; the connection is to be closed"


class Verb(enum.Enum):
    LHLO = "LHLO"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"
    VRFY = "VRFY"
    HELP = "HELP"


class Happening(enum.Enum):
    """What moves a session other than a command."""

    MESSAGE_ENDED = "the final '.' of a message within max_size"
    MESSAGE_TOO_BIG = "the final '.' of a message over max_size"
    ANSWERED = "answer() gave one result per recipient"
    CLIENT_CLOSED = "the client closed the connection"
    FATAL_ERROR = "input the session cannot carry on after"


Trigger: TypeAlias = Verb | Happening


def _command_phase(phase: Phase, moves: dict[Trigger, Phase]) -> dict[Trigger, Phase]:
    """The moves of a phase that reads commands: its own, plus those of every such phase.
    LHLO, like EHLO, ends any transaction (RFC 5321 4.1.4; RFC 2033 4.1); so does RSET."""
    anywhere: dict[Trigger, Phase] = {
        Verb.LHLO: Phase.READY,
        Verb.RSET: Phase.GREETED if phase is Phase.GREETED else Phase.READY,
        Verb.NOOP: phase,
        Verb.VRFY: phase,
        Verb.HELP: phase,
        Verb.QUIT: Phase.CLOSED,
        Happening.CLIENT_CLOSED: Phase.CLOSED,
        Happening.FATAL_ERROR: Phase.CLOSED,
    }
    return anywhere | moves


# Where each trigger leads from each phase. A command that fails (a 4xx or 5xx reply) does
# not move; a command with no entry for the phase is out of sequence: 503 5.5.1.
TRANSITIONS: dict[Phase, dict[Trigger, Phase]] = {
    Phase.GREETED: _command_phase(Phase.GREETED, {}),
    Phase.READY: _command_phase(Phase.READY, {Verb.MAIL: Phase.HAVE_SENDER}),
    Phase.HAVE_SENDER: _command_phase(Phase.HAVE_SENDER, {Verb.RCPT: Phase.HAVE_RECIPIENTS}),
    Phase.HAVE_RECIPIENTS: _command_phase(
        Phase.HAVE_RECIPIENTS,
        {Verb.RCPT: Phase.HAVE_RECIPIENTS, Verb.DATA: Phase.RECEIVING_DATA},
    ),
    Phase.RECEIVING_DATA: {
        Happening.MESSAGE_ENDED: Phase.DELIVERING,
        Happening.MESSAGE_TOO_BIG: Phase.READY,
        Happening.CLIENT_CLOSED: Phase.CLOSED,
    },
    Phase.DELIVERING: {Happening.ANSWERED: Phase.READY},
    Phase.CLOSED: {},
}

# The 503 text for a command out of sequence; anything else out of sequence is before LHLO.
_OUT_OF_SEQUENCE: dict[tuple[Verb, Phase], str] = {
    (Verb.MAIL, Phase.HAVE_SENDER): "Nested MAIL: a transaction is open (RSET ends it)",
    (Verb.MAIL, Phase.HAVE_RECIPIENTS): "Nested MAIL: a transaction is open (RSET ends it)",
    (Verb.RCPT, Phase.READY): "Need MAIL before RCPT",
    (Verb.DATA, Phase.READY): "Need MAIL before DATA",
    (Verb.DATA, Phase.HAVE_SENDER): "No valid recipients",  # RFC 2033 4.2: MUST be 503
}

_END_OF_DATA = b".\r\n"  # at the start of a line: the line "." that ends the message data
_OVERLONG_LINES_TOLERATED = 1  # the next one closes the session
_SIZE = re.compile(r"[0-9]{1,20}")
_ATOM = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_LOCAL_PART = re.compile(rf'{_ATOM}(?:\.{_ATOM})*|"(?:[ !#-\[\]-~]|\\[ -~])*"')
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*|\[[!-Z^-~]+\]")
_SOURCE_ROUTE = re.compile(r"@[^,:@]+(?:,@[^,:@]+)*:")
_PATH_LIMIT = 256  # RFC 5321 4.5.3.1.3, angle brackets included
_NO_ARGUMENT = (Verb.DATA, Verb.RSET, Verb.QUIT)
_HELP = "Commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP"


def _accept_any(address: str) -> Refusal | None:
    return None


class Session:
    """The server side of one LMTP connection; see the module docstring for the loop."""

    def __init__(
        self,
        hostname: str,
        max_size: int = 10_240_000,
        max_recipients: int = 1000,
        max_line: int = 1000,
        check_recipient: Callable[[str], Refusal | None] = _accept_any,
    ) -> None:
        if not hostname or not hostname.isascii() or not hostname.isprintable() or " " in hostname:
            raise ValueError(f"hostname must be printable ASCII without spaces: {hostname!r}")
        if max_size < 1 or max_recipients < 1 or max_line < len(b"DATA\r\n"):
            raise ValueError("max_size and max_recipients must be positive, max_line >= 6")
        self._hostname, self._max_size = hostname, max_size
        self._max_recipients, self._max_line = max_recipients, max_line
        self._check_recipient = check_recipient
        self._phase = Phase.GREETED
        self._inbox, self._outbox = bytearray(), bytearray()
        self._client_closed, self._why_closed = False, ""
        self._discarding, self._discarded, self._overlong_lines = False, 0, 0
        self._message, self._message_size, self._at_line_start = bytearray(), 0, True
        self._to_deliver: Transaction | None = None  # built; next_event has not returned it
        self._awaiting_answer: Transaction | None = None
        self._sender, self._recipients, self._body = "", list[str](), "7BIT"
        self._size_declared: int | None = None

    @property
    def phase(self) -> Phase:
        return self._phase

    def greeting(self) -> bytes:
        """The 220 banner; no enhanced code on the greeting (RFC 2034 section 3)."""
        return f"220 {self._hostname} LMTP ready\r\n".encode("ascii")

    def receive(self, data: bytes) -> None:
        """Bytes from the client, split anyhow; b"" when the client has closed."""
        if self._phase is Phase.CLOSED:
            return  # in flight after QUIT or a fatal error: nothing reads it
        if self._client_closed:
            raise MisuseError("receive() after receive(b'') said the client closed")
        if not data:
            self._client_closed = True
        self._inbox += data

    def next_event(self) -> Event:
        """What the I/O layer is to do next: replies first, then a Deliver or Closed."""
        if self._phase not in (Phase.DELIVERING, Phase.CLOSED):
            self._process()
        if self._outbox:
            data = bytes(self._outbox)
            self._outbox.clear()
            return Send(data)
        if self._to_deliver is not None:
            transaction, self._to_deliver = self._to_deliver, None
            return Deliver(transaction)
        if self._phase is Phase.CLOSED:
            return Closed(self._why_closed)
        return NeedData()

    def answer(self, results: Sequence[RecipientResult]) -> None:
        """One result per recipient of the outstanding Deliver, in RCPT order; each becomes
        that recipient's reply (RFC 2033 4.2), and the session is ready for the next MAIL."""
        transaction = self._awaiting_answer
        if transaction is None or self._to_deliver is not None:
            raise MisuseError("answer() with no Deliver outstanding")
        if len(results) != len(transaction.recipients):
            raise MisuseError(
                f"answer() needs {len(transaction.recipients)} results, got {len(results)}"
            )
        for result in results:
            _check_reply(result.code, result.enhanced, result.text, classes="245")
        for result in results:
            self._reply(result.code, result.enhanced, result.text)
        self._awaiting_answer = None
        self._reset_transaction()
        self._move(Happening.ANSWERED)

    # --- framing -------------------------------------------------------------------------

    def _process(self) -> None:
        """Work through the buffered input until it runs out or the session must wait."""
        while self._phase not in (Phase.DELIVERING, Phase.CLOSED):
            reading_data = self._phase is Phase.RECEIVING_DATA
            if not (self._read_data() if reading_data else self._read_command()):
                break
        if self._client_closed and self._phase not in (Phase.DELIVERING, Phase.CLOSED):
            in_data = self._phase is Phase.RECEIVING_DATA
            during = " during DATA; the message is dropped" if in_data else ""
            self._why_closed = f"the client closed the connection{during}"
            self._move(Happening.CLIENT_CLOSED)

    def _read_command(self) -> bool:
        """Handle one command line from the inbox; False when it needs more bytes.

        Only CRLF ends a command line well (RFC 5321 2.3.8). A bare LF still ends the line,
        so the session is back in step at once, but the line is refused with 500 5.5.2
        rather than guessed at: a client that sends LF gets an answer instead of a hang,
        and no line means two things to two servers. A CR inside a line is refused too."""
        inbox = self._inbox
        if self._discarding:  # the rest of an overlong line, up to and with its LF
            end = inbox.find(b"\n")
            self._discarded += end if end >= 0 else len(inbox)
            if self._discarded > max(self._max_size, self._max_line):
                self._fatal("A command line with no end")
                return False
            if end < 0:
                inbox.clear()
                return False
            del inbox[: end + 1]
            self._discarding, self._discarded = False, 0
            return True
        end = inbox.find(b"\n", 0, self._max_line)
        if end < 0:
            if len(inbox) < self._max_line:
                return False
            self._overlong()
            return True
        line = bytes(inbox[: end + 1])
        del inbox[: end + 1]
        if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
            self._reply(500, "5.5.2", "Bare LF or CR in a command line: end lines with CRLF")
        else:
            self._command(line[:-2].decode("ascii", "surrogateescape"))
        return True

    def _overlong(self) -> None:
        """A command line past max_line bytes with its CRLF (RFC 5321 4.5.3.1.4): 500 and
        the rest of the line dropped; the second such line ends the session with 421, as
        does a line still without an end after max_size bytes (RFC 5321 3.8: 421 closes)."""
        self._overlong_lines += 1
        if self._overlong_lines > _OVERLONG_LINES_TOLERATED:
            self._fatal("Too many overlong command lines")
            return
        self._reply(500, "5.5.6", f"Line too long (limit {self._max_line} bytes with CRLF)")
        self._discarding = True

    def _read_data(self) -> bool:
        """Take message data from the inbox; False when it needs more bytes.

        Lines are CRLF-terminated for dot-stuffing and for the end (RFC 5321 4.5.2, 4.1.1.4):
        a "." that starts a line after CRLF (or the data) is dropped, and the line "." ends
        the message; the CRLF before it is the last line's own and stays in the data. A bare
        LF or CR is message data, kept byte for byte (a maildir stores bytes), and LF.LF does
        not end DATA: ends that a relay in front reads as data would let one message carry
        a second one past it ("SMTP smuggling"). Data lines have no length limit here; the
        whole message has max_size."""
        inbox = self._inbox
        if self._at_line_start:
            if inbox.startswith(_END_OF_DATA):
                del inbox[: len(_END_OF_DATA)]
                self._end_of_message()
                return True
            if _END_OF_DATA.startswith(inbox):  # "", "." or ".\r": too soon to tell
                return False
            if inbox.startswith(b"."):
                del inbox[:1]
            self._at_line_start = False
        end = inbox.find(b"\r\n")
        if end < 0:
            take = len(inbox) - 1 if inbox.endswith(b"\r") else len(inbox)  # CR, then LF?
            self._keep(inbox[:take])
            del inbox[:take]
            return False
        self._keep(inbox[: end + 2])
        del inbox[: end + 2]
        self._at_line_start = True
        return True

    def _keep(self, data: bytearray) -> None:
        self._message_size += len(data)
        if self._message_size <= self._max_size:
            self._message += data
        else:
            self._message.clear()  # read on to the end, keep nothing

    def _end_of_message(self) -> None:
        if self._message_size > self._max_size:  # RFC 1870: 552, here once per recipient
            for address in self._recipients:
                self._reply(552, "5.3.4", f"<{address}> Message too big for this server")
            self._reset_transaction()
            self._move(Happening.MESSAGE_TOO_BIG)
            return
        envelope = (self._sender, tuple(self._recipients))
        transaction = Transaction(*envelope, bytes(self._message), self._body, self._size_declared)
        self._to_deliver = self._awaiting_answer = transaction
        self._message.clear()
        self._move(Happening.MESSAGE_ENDED)

    # --- commands ------------------------------------------------------------------------

    def _command(self, line: str) -> None:
        """Dispatch one command line (without CRLF); verbs are case-insensitive."""
        word, _, argument = line.strip(" ").partition(" ")
        word = word.upper()
        verb = Verb.__members__.get(word)
        if verb is None:
            if word in ("HELO", "EHLO"):  # RFC 2033 4.1: MUST NOT succeed, 500 recommended
                self._reply(500, "5.5.1", "This is LMTP: send LHLO, not HELO or EHLO")
            else:
                self._reply(500, "5.5.2", "Command not recognized")
            return
        if verb not in TRANSITIONS[self._phase]:
            why = _OUT_OF_SEQUENCE.get((verb, self._phase), "Send LHLO first")
            self._reply(503, "5.5.1", why)
            return
        argument = argument.strip(" ")
        if argument and verb in _NO_ARGUMENT:
            self._reply(501, "5.5.4", f"Syntax: {verb.value} (no argument)")
        elif _HANDLERS[verb](self, argument):
            self._move(verb)

    def _on_lhlo(self, argument: str) -> bool:
        if not argument or _has_control(argument):
            return self._refuse(501, "5.5.4", "Syntax: LHLO domain")
        self._reset_transaction()
        lines = [self._hostname, "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]
        lines.append(f"SIZE {self._max_size}")  # no enhanced codes here (RFC 2034 section 3)
        for number, line in enumerate(lines, 1):
            self._outbox += f"250{' ' if number == len(lines) else '-'}{line}\r\n".encode()
        return True

    def _on_mail(self, argument: str) -> bool:
        parsed = _parse_path(argument, "FROM:")
        if isinstance(parsed, str):
            return self._refuse(501, "5.5.4", parsed)
        address, parameters = parsed
        problem = _address_problem(address, null_allowed=True)
        if problem is not None:
            return self._refuse(501, "5.1.7", problem)
        size, body, seen = None, "7BIT", set[str]()
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            key = key.upper()
            if key in seen:
                return self._refuse(501, "5.5.4", f"{key} given twice")
            seen.add(key)
            if key == "SIZE":
                if not _SIZE.fullmatch(value):
                    return self._refuse(501, "5.5.4", "Syntax: SIZE=number-of-bytes")
                size = int(value)
                if size > self._max_size:
                    return self._refuse(552, "5.3.4", f"Message too big (max {self._max_size})")
            elif key == "BODY":
                body = value.upper()
                if body not in ("7BIT", "8BITMIME"):
                    return self._refuse(501, "5.5.4", "Syntax: BODY=7BIT or BODY=8BITMIME")
            else:  # RFC 5321 4.1.1.11
                return self._refuse(555, "5.5.4", f"MAIL parameter {key} not recognized")
        self._sender, self._body, self._size_declared = address, body, size
        self._reply(250, "2.1.0", f"<{address}> sender OK")
        return True

    def _on_rcpt(self, argument: str) -> bool:
        parsed = _parse_path(argument, "TO:")
        if isinstance(parsed, str):
            return self._refuse(501, "5.5.4", parsed)
        address, parameters = parsed
        if parameters:  # none offered (RFC 5321 4.1.1.11)
            return self._refuse(555, "5.5.4", "RCPT parameters not recognized")
        problem = _address_problem(address, null_allowed=False)
        if problem is not None:
            return self._refuse(501, "5.1.3", problem)
        if len(self._recipients) >= self._max_recipients:  # RFC 5321 4.5.3.1.10
            return self._refuse(452, "4.5.3", "Too many recipients")
        refusal = self._check_recipient(address)
        if refusal is not None:
            _check_reply(refusal.code, refusal.enhanced, refusal.text, classes="45")
            return self._refuse(refusal.code, refusal.enhanced, refusal.text)
        self._recipients.append(address)
        self._reply(250, "2.1.5", f"<{address}> recipient OK")
        return True

    def _on_data(self, argument: str) -> bool:
        self._message.clear()
        self._message_size, self._at_line_start = 0, True
        self._outbox += b"354 End data with <CR><LF>.<CR><LF>\r\n"  # 3xx: no enhanced code
        return True

    def _on_rset(self, argument: str) -> bool:
        self._reset_transaction()
        self._reply(250, "2.0.0", "OK")
        return True

    def _on_noop(self, argument: str) -> bool:  # an argument is allowed (RFC 5321 4.1.1.9)
        self._reply(250, "2.0.0", "OK")
        return True

    def _on_quit(self, argument: str) -> bool:
        self._reply(221, "2.0.0", f"{self._hostname} closing connection")
        self._why_closed = "the client sent QUIT"
        return True

    def _on_vrfy(self, argument: str) -> bool:  # 252: not verified, RCPT will tell (5321 3.5.3)
        if not argument:
            return self._refuse(501, "5.5.4", "Syntax: VRFY address")
        self._reply(252, "2.0.0", "Cannot VRFY; send RCPT to try the address")
        return True

    def _on_help(self, argument: str) -> bool:
        self._reply(214, "2.0.0", _HELP)
        return True

    # --- small steps ---------------------------------------------------------------------

    def _reply(self, code: int, enhanced: str, text: str) -> None:
        self._outbox += f"{code} {enhanced} {text}\r\n".encode("ascii", "replace")

    def _refuse(self, code: int, enhanced: str, text: str) -> bool:
        self._reply(code, enhanced, text)
        return False

    def _fatal(self, why: str) -> None:
        self._reply(421, "4.5.0", f"{self._hostname} {why}; closing connection")
        self._why_closed = why
        self._move(Happening.FATAL_ERROR)

    def _reset_transaction(self) -> None:
        self._sender, self._recipients = "", []
        self._body, self._size_declared = "7BIT", None
        self._message.clear()

    def _move(self, trigger: Trigger) -> None:
        moves = TRANSITIONS[self._phase]
        if trigger not in moves:
            raise RuntimeError(f"session bug: no move from {self._phase} on {trigger}")
        self._phase = moves[trigger]


_HANDLERS: dict[Verb, Callable[[Session, str], bool]] = {
    Verb.LHLO: Session._on_lhlo,
    Verb.MAIL: Session._on_mail,
    Verb.RCPT: Session._on_rcpt,
    Verb.DATA: Session._on_data,
    Verb.RSET: Session._on_rset,
    Verb.NOOP: Session._on_noop,
    Verb.QUIT: Session._on_quit,
    Verb.VRFY: Session._on_vrfy,
    Verb.HELP: Session._on_help,
}


def _parse_path(argument: str, keyword: str) -> tuple[str, list[str]] | str:
    """`FROM:<path> PARAM=x ...` (or `TO:`) as the address and its parameters, or what is
    wrong with it. A space after the colon is tolerated (RFC 5321 4.1.2 has none; clients
    send one); a source route is accepted and dropped (RFC 5321 4.1.1.3, appendix C)."""
    if argument[: len(keyword)].upper() != keyword:
        return f"Syntax: {keyword}<address>"
    rest = argument[len(keyword) :].lstrip(" ")
    close = _closing_bracket(rest) if rest.startswith("<") else -1
    if close < 0:
        return "The address must be in angle brackets"
    address, tail = rest[1:close], rest[close + 1 :]
    if tail and not tail.startswith(" "):
        return "A space must follow the address"
    route = _SOURCE_ROUTE.match(address)
    if route is not None:
        address = address[route.end() :]
    return address, [parameter for parameter in tail.split(" ") if parameter]


def _closing_bracket(text: str) -> int:
    """The index of the ">" closing the "<" at text[0], outside any quoted string; or -1."""
    quoted = escaped = False
    for index in range(1, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    return -1


def _address_problem(address: str, *, null_allowed: bool) -> str | None:
    """Why `address` is no RFC 5321 4.1.2 Mailbox, or None. <> is only a sender; the bare
    <Postmaster> only a recipient (RFC 5321 4.1.1.3). Addresses are ASCII: no SMTPUTF8."""
    if not address:
        return None if null_allowed else "An empty address cannot be a recipient"
    if not address.isascii():
        return "Addresses must be ASCII (SMTPUTF8 is not offered)"
    if _has_control(address):
        return "Control character in the address"
    if len(address) + 2 > _PATH_LIMIT:
        return f"Address longer than {_PATH_LIMIT} with its brackets"
    if not null_allowed and address.lower() == "postmaster":
        return None
    local, at, domain = address.rpartition("@")
    if not at or not _LOCAL_PART.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        return "Syntax: <local-part@domain>"
    return None


def _has_control(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def _check_reply(code: int, enhanced: str, text: str, *, classes: str) -> None:
    """Refuse (MisuseError) a caller's reply that would break the protocol: a code of the
    wrong class, an enhanced code not agreeing with it (RFC 2034 section 4), a line break."""
    digits = str(code)
    ok = len(digits) == 3 and digits[0] in classes and enhanced.startswith(f"{digits[0]}.")
    if not ok or not re.fullmatch(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}", enhanced):
        raise MisuseError(f"reply {code} {enhanced} is not a {'/'.join(classes)}xx reply")
    if "\r" in text or "\n" in text:
        raise MisuseError(f"reply text with a line break: {text!r}")
