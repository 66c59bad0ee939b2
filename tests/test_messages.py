"""Drawn messages (E6) and the flat-cost contents under them (model/content.py).

Spec IDs exercised: E6 (the drawn messages and the pipe), E3 (the MTA's messages), F1 (what
a write leaves, live and durable), P1 (B18 large-mail-unsynced, caught only with a message
past one read buffer).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from maildircheck.harness.check import Check
from maildircheck.harness.host import ROOT, Host
from maildircheck.harness.messages import (
    MAX_READS,
    MESSAGE_IDS,
    PIPE_CHUNKS,
    SIZES,
    Shape,
    build,
    mail,
    pipe_chunk,
)
from maildircheck.harness.verify import verify
from maildircheck.impl.deliver import CHUNK, deliver
from maildircheck.model import persistence
from maildircheck.model.content import EMPTY, Content, Messages
from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.outcome import Delivered, DeliveryRequest
from maildircheck.model.properties import moves_the_message
from maildircheck.model.syscalls import ReadInput, Write

# --- Content against bytes: every operation, differentially --------------------------------
SOURCES = [b"", b"a", b"hello world", bytes(range(256)) * 3, b"\0\0\0\0"]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 900), st.sampled_from(SOURCES)),
        st.tuples(st.just("truncate"), st.integers(0, 900), st.just(b"")),
        st.tuples(st.just("zeros"), st.integers(0, 900), st.integers(0, 50).map(bytes)),
    ),
    max_size=12,
)


def bytes_write(data: bytes, offset: int, new: bytes) -> bytes:
    buf = bytearray(data)
    if len(buf) < offset:
        buf.extend(bytes(offset - len(buf)))
    buf[offset : offset + len(new)] = new
    return bytes(buf)


@settings(max_examples=300, database=None)
@given(ops, ops)
def test_f1_content_agrees_with_bytes_under_every_operation(
    first: list[tuple[str, int, bytes]], second: list[tuple[str, int, bytes]]
) -> None:
    """Writes (past the end too), truncates, zero runs: Content holds what bytes would,
    compares equal exactly when the bytes are equal, and slices and reads alike."""
    results = []
    for program in (first, second):
        content, plain = EMPTY, b""
        for op, offset, data in program:
            if op == "truncate":
                content, plain = content.slice(0, offset), plain[:offset]
            elif op == "zeros":
                content = content.write(offset, Content.zeros(len(data)))
                plain = bytes_write(plain, offset, data)
            else:
                content, plain = content.write(offset, data), bytes_write(plain, offset, data)
            assert bytes(content) == plain and len(content) == len(plain)
            assert content.read(3, 40) == plain[3:40]
            assert bytes(content.slice(5, 17)) == plain[5:17]
        results.append((content, plain))
    (a, pa), (b, pb) = results
    assert (a == b) == (pa == pb) and (a == pb) == (pa == pb)
    assert (a == b) <= (hash(a) == hash(b))


def test_f1_equal_contents_over_different_sources_come_to_share_runs() -> None:
    """Equal bytes from two sources are compared once byte by byte; then they share runs."""
    one = Content.of(b"abc" * 1000)
    two = Content.of(b"abc" * 500).write(1500, b"abc" * 500)
    assert one.runs != two.runs
    assert one == two and one.runs == two.runs
    assert Content.of(b"abc") != Content.of(b"abd") and Content.zeros(3) != b"\0\0\1"


# --- flat cost: a 1 MiB message is a run over the message, not a copy ---------------------
def test_e6_a_delivered_message_shares_the_messages_bytes() -> None:
    """A 1 MiB message copied through the pipe ends up, in new/ and in the durable view, as
    one run over the very bytes the MTA handed over: no byte was copied into the model."""
    host = Host(ENVIRONMENTS["ext4-ordered"])
    data = build("m1", Shape(1 << 20, nul=True))
    host.use_messages({"m1": data})
    proc, record = host.spawn_delivery("D1", 100, "m1", pipe=max(PIPE_CHUNKS))
    gen = deliver(DeliveryRequest(ROOT))
    request, writes = next(gen), 0
    try:
        while True:
            writes += isinstance(request, Write)
            request = gen.send(host.kernel_of(proc).execute(proc, request))
    except StopIteration as done:
        assert isinstance(done.value, Delivered)
    (ino,) = host.fs.entries[host.layout.new].values()
    runs = host.fs.inodes[ino].data.runs
    assert len(runs) == 1 and runs[0].source is data
    assert host.fs.durable_data[ino].runs[0].source is data
    assert host.messages.get(host.fs.inodes[ino].data) == "m1"
    assert writes == len(data) // CHUNK  # 16 writes of 64 KiB, each a run over the message
    for choice in persistence.crash_choices(host.fs, host.profile):  # nothing pending
        _, view = persistence.crash_view(host.fs, host.profile, choice)
        assert view[ino] == record.content


# --- the drawn messages ----------------------------------------------------------------
def test_e6_every_shape_builds_its_size_and_traits_and_ids_never_clash() -> None:
    for size in SIZES:
        for bits in range(32):
            on = [bool(bits >> i & 1) for i in range(5)]
            shape = Shape(size, *on)
            built = {mid: build(mid, shape) for mid in MESSAGE_IDS}
            assert len(set(built.values())) == len(MESSAGE_IDS), shape
            for data in built.values():
                assert len(data) == size
                if size > 200:  # long enough for every trait to show
                    assert data.startswith(b"From ") == shape.from_line
                    assert (b"\r\n" in data) == shape.crlf
                    assert (b"\0" in data) == shape.nul
                    assert any(c > 127 for c in data) == shape.eight_bit
                    assert data.endswith(b"\n") != shape.no_final_newline


def test_e6_the_pipe_never_makes_a_message_take_more_than_max_reads() -> None:
    for size in SIZES:
        for drawn in PIPE_CHUNKS:
            chunk = pipe_chunk(drawn, size)
            assert chunk >= drawn and -(-size // chunk) <= MAX_READS


@settings(max_examples=200, database=None)
@given(mail())
def test_e6_drawn_mail_is_a_shape_from_the_table(drawn: tuple[Shape, int]) -> None:
    shape, pipe = drawn
    assert shape.size in SIZES and pipe in PIPE_CHUNKS


def test_e6_messages_index_by_content() -> None:
    index = Messages({"m1": Content.of(b"one"), "m2": Content.of(b"two")})
    assert index.get(Content.of(b"t").write(1, b"wo")) == "m2"
    assert index.add("again", Content.of(b"one")) == "m1"  # known already
    assert Content.of(b"three") not in index


# --- B18: only a message past one read buffer shows the flaw ------------------------------
def test_p1_large_mail_unsynced_shrinks_to_the_smallest_large_message() -> None:
    """B18 skips fsync only for a message longer than CHUNK: the shrunk counterexample
    delivers the smallest drawn size past it, and with every message at CHUNK bytes the
    same search finds nothing."""
    v = verify(
        Check.of("large-mail-unsynced", "ext4-ordered", ("power-loss",), seed=1, max_examples=1000)
    )
    assert v.violation is not None and v.violation.prop == "P1", v.violation
    assert v.timeline is not None
    sizes = [
        int(n) for n in re.findall(r"MTA starts delivering m\d, (\d+) bytes", v.timeline.render())
    ]
    assert max(sizes) == min(s for s in SIZES if s > CHUNK), sizes
    # one delivery: the start that only gave the message its shape handed it on (E7), as
    # short as the explorer's shortest (docs/explore.md)
    assert len(sizes) == 1 and v.timeline.syscalls == 17, v.timeline.render()
    held = verify(
        Check.of("large-mail-unsynced", "ext4-ordered", ("power-loss",), seed=3, message_size=CHUNK)
    )
    assert held.holds, held.violation


def test_p7_a_line_by_line_copy_of_a_long_message_is_slow_not_stuck() -> None:
    """B11 writes one line per write: 500 lines are 500 writes, ten times the bound of 51.
    Reads that got bytes and writes that wrote some move the message forward, so P7 counts
    only its other syscalls and never fires (P1 is what B11 breaks, not P7)."""
    from maildircheck.impl.strategies import CATALOGUE

    host = Host(ENVIRONMENTS["ext4-ordered"])
    host.use_messages({"m1": b"a\n" * 500})
    proc, record = host.spawn_delivery("D1", 100, "m1", pipe=65536)
    gen = CATALOGUE["content-altered"].function(DeliveryRequest(ROOT))
    request, calls = next(gen), 0
    try:
        while True:
            reply = host.kernel_of(proc).execute(proc, request)
            calls += 1
            if not moves_the_message(request, reply):
                record.since_fault += 1
            assert host.check_progress(record) is None, record.since_fault
            request = gen.send(reply)
    except StopIteration as done:
        assert isinstance(done.value, Delivered)
    assert calls > 10 * host.progress_budget("m1", 65536) >= 10 * 51
    assert moves_the_message(ReadInput(10), b"x") and not moves_the_message(ReadInput(10), b"")
    assert moves_the_message(Write(3, b"ab"), 1) and not moves_the_message(Write(3, b"ab"), 0)


def test_p7_the_correct_syscall_count_depends_on_the_size_alone() -> None:
    """P7's budget is keyed by a message's size (host.correct_syscalls): the correct
    algorithm makes as many syscalls for every shape and id of one size, through each pipe,
    as for that many plain bytes."""
    import itertools

    from maildircheck.harness.host import correct_syscalls, syscalls_to_deliver

    for size in (1, 20, 513, 4097, 65537):
        for pipe in PIPE_CHUNKS:
            chunk = pipe_chunk(pipe, size)
            shapes = [Shape(size, *traits) for traits in itertools.product((False, True), repeat=5)]
            counts = {
                syscalls_to_deliver("ext4-ordered", build(mid, shape), chunk)
                for mid in MESSAGE_IDS
                for shape in shapes
            }
            assert counts == {correct_syscalls("ext4-ordered", size, chunk)}, (size, pipe)
