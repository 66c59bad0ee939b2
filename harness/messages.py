"""The messages a check delivers: drawn for every run, with the sizes where a copy loop's
code paths change and the bytes copy loops get wrong.

A run's mail is three messages, m1, m2 and m3 (the MTA has three to deliver). A message
gets its content when its first delivery starts; each delivery draws its pipe: how much
the MTA's writer has put in the pipe when the agent reads, the most one read of standard
input returns (the agent's own reads ask for 64 KiB), and never so little that a message
needs more than MAX_READS reads.

A message's `Shape` is a size from SIZES - small ones first, then one byte either side of
each boundary, a small size half the time - and five awkward
traits: a leading mbox `From ` line, CRLF line ends, NUL bytes, 8-bit bytes, no final
newline. A counterexample shrinks (harness/draws.py `Mail`, E7) to the smallest message
that still shows the flaw, each trait off where it can be, through a full pipe. The
boundaries:
  4096   a page (getpagesize(2) on x86-64 and arm64);
  8192   BUFSIZ, glibc's stdio buffer (stdio.h);
  65536  the default capacity of a Linux pipe (pipe(7)) and the agent's read size
         (impl/deliver.py CHUNK);
  1 MiB  a large message (2^20 bytes).
The contents are built from the shape alone (no random bytes), so a shrunk counterexample
names its message exactly. `FIXED` are the messages of a run that draws none (unit tests,
traced replays).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

MIB = 1 << 20
BOUNDARIES = (4096, 8192, 65536, MIB)
PIPE_CHUNKS = (65536, 4096, 64)  # what the writer has put in the pipe; shrinks to a full one
MAX_READS = 16  # a slow reader finds the pipe fuller: no message takes more reads
MESSAGE_IDS = ("m1", "m2", "m3")

FIXED: dict[str, bytes] = {  # ends in CRLF; NUL, 8-bit and no final newline; longer
    "m1": b"Subject: one\n\nshort\n",
    "m2": b"Subject: two\r\n\r\nbinary \x00\xff\xfe data\r\n" + b"8-bit \xe9t\xe9 " * 6 + b"end",
    "m3": b"Return-Path: <a@example.org>\nSubject: three\n\n" + b"line of the third body\n" * 5,
}
FIXED_PIPE = 64


@dataclass(frozen=True)
class Shape:
    size: int
    from_line: bool = False
    crlf: bool = False
    nul: bool = False
    eight_bit: bool = False
    no_final_newline: bool = False

    def describe(self) -> str:
        traits = [
            name
            for name, on in (
                ("a From_ line", self.from_line),
                ("CRLF", self.crlf),
                ("NUL", self.nul),
                ("8-bit", self.eight_bit),
                ("no final newline", self.no_final_newline),
            )
            if on
        ]
        size = f"{self.size} byte{'s' if self.size != 1 else ''}"
        return size + (f" ({', '.join(traits)})" if traits else "")


def build(mid: str, shape: Shape) -> bytes:
    """The message `mid` of `shape`: exactly `shape.size` bytes, different from any other
    message id's of any shape at the same size."""
    end = b"\r\n" if shape.crlf else b"\n"
    head = b""
    if shape.from_line:
        head += f"From {mid}@example.org  Thu Dec  3 13:00:00 2026".encode() + end
    head += f"Subject: {mid}".encode() + end + end
    line = b"body line of " + mid.encode()
    if shape.eight_bit:
        line += b" \xe9t\xe9"
    if shape.nul:
        line += b" \x00 "
    line += end
    if shape.size < len(head):  # too short for headers: the id's digit first
        unit = (mid[1:] + mid[0] + " ").encode()
        data = (unit * (shape.size // len(unit) + 1))[: shape.size]
    else:
        data = (head + line * ((shape.size - len(head)) // len(line) + 1))[: shape.size]
    if shape.no_final_newline and data.endswith(b"\n"):
        data = data[:-1] + b"."
    elif not shape.no_final_newline and not data.endswith(b"\n") and len(data) > 1:
        data = data[:-1] + b"\n"
    return data


TRAITS = ("from_line", "crlf", "nul", "eight_bit", "no_final_newline")
SMALL: tuple[int, ...] = (1, 2, 3, 7, 8, 9, 20, 63, 64, 65, 100, 127, 128, 129, 200, 255)
SMALL += (256, 257, 511, 512, 513, 1000, 1023, 1024, 1025)
AROUND = tuple((b - 1, b, b + 1) for b in BOUNDARIES)  # one byte either side of each boundary
SIZES = (*SMALL, *(size for sizes in AROUND for size in sizes))  # simplest first


def mail() -> st.SearchStrategy[tuple[Shape, int]]:
    """A message's shape and the pipe it comes through. The size is small half the time
    and one byte either side of a boundary the other half; a number's bits are the
    traits; the pipe is full half the time (a delivery of few reads leaves the search
    room for the rest of the run)."""
    sizes = st.one_of(st.sampled_from(SMALL), st.sampled_from(SIZES[len(SMALL) :]))
    traits = st.integers(0, (1 << len(TRAITS)) - 1)
    pipes = st.one_of(st.just(PIPE_CHUNKS[0]), st.sampled_from(PIPE_CHUNKS[1:]))
    return st.tuples(sizes, traits, pipes).map(_shape)


def _shape(drawn: tuple[int, int, int]) -> tuple[Shape, int]:
    size, bits, pipe = drawn
    return Shape(size, **{t: bool(bits >> i & 1) for i, t in enumerate(TRAITS)}), pipe


def pipe_chunk(drawn: int, size: int) -> int:
    """The most one read returns for a message of `size` bytes: as drawn, but no message
    takes more than MAX_READS reads (a slow reader finds the pipe fuller)."""
    return max(drawn, -(-size // MAX_READS))
