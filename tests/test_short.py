"""Short transfers (X11 short-write, X12 short-read): the model kernels' answers, the
correct algorithm's write loop (A4) that finishes them, and the checker drawing the count.

Spec IDs exercised: X11, X12, A4; B15 (short-write-ignored) is caught by
tests/test_catalogue.py like every catalogue entry.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildircheck.harness.check import Check
from maildircheck.harness.host import ROOT, Host
from maildircheck.harness.verify import verify
from maildircheck.impl.deliver import deliver
from maildircheck.impl.strategies import CATALOGUE
from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.faults import ENOSPC, FAULTS, SHORT_READ, SHORT_WRITE, Fault, short_count
from maildircheck.model.fs import FileSystem
from maildircheck.model.kernel import Kernel, Process
from maildircheck.model.nfs import EXPORT_SYNC, NfsClientKernel
from maildircheck.model.outcome import Delivered, DeliveryRequest, TemporaryFailure
from maildircheck.model.persistence import PROFILES
from maildircheck.model.syscalls import Close, Open, OpenFlag, ReadInput, Syscall, Write

CREATE = OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.EXCL


def opened(kernel: Kernel, proc: Process) -> int:
    fd = kernel.execute(proc, Open("/m/tmp/f", CREATE, 0o600))
    assert isinstance(fd, int)
    return fd


@given(asked=st.integers(2, 5000), cut=st.integers(0, 1 << 20))
def test_a_short_count_is_at_least_one_and_less_than_asked(asked: int, cut: int) -> None:
    assert 1 <= short_count(asked, cut) < asked
    assert short_count(asked, 0) == 1  # what a shrunk draw gives


def test_x11_a_short_write_stores_and_returns_only_the_first_bytes() -> None:
    fs = FileSystem.with_dirs("/m", "/m/tmp")
    kernel, proc = Kernel(fs, PROFILES["ext4-ordered"]), Process("D1", 100, "h")
    fd = opened(kernel, proc)
    assert kernel.execute(proc, Write(fd, b"abcdef"), SHORT_WRITE, cut=2) == 3
    assert kernel.execute(proc, Write(fd, b"XY")) == 2  # the offset moved by 3, not 6
    assert bytes(fs.inodes[fs.lookup("/m/tmp/f")].data) == b"abcXY"


def test_x11_a_short_write_on_nfs_puts_only_the_first_bytes_in_the_page_cache() -> None:
    fs = FileSystem.with_dirs("/m", "/m/tmp")
    kernel, proc = NfsClientKernel(fs, EXPORT_SYNC), Process("D1", 100, "a")
    fd = opened(kernel, proc)
    assert kernel.execute(proc, Write(fd, b"abcdef"), SHORT_WRITE, cut=0) == 1
    assert kernel.execute(proc, Close(fd)) is None  # close-to-open: flushed to the server
    assert bytes(fs.inodes[fs.lookup("/m/tmp/f")].data) == b"a"


def test_x11_x12_a_transfer_of_one_byte_cannot_be_short() -> None:
    assert not SHORT_WRITE.hits(Write(3, b"a")) and SHORT_WRITE.hits(Write(3, b"ab"))
    assert not SHORT_READ.hits(ReadInput(1)) and SHORT_READ.hits(ReadInput(2))
    assert SHORT_WRITE.can_hit("write") and not SHORT_WRITE.can_hit("stdin")
    assert SHORT_READ.can_hit("stdin") and not SHORT_READ.can_hit("write")


def test_x12_a_short_read_of_stdin_returns_part_and_the_rest_follows() -> None:
    kernel = Kernel(FileSystem.with_dirs("/m"), PROFILES["posix"])
    proc = Process("D1", 100, "h", stdin=b"hello world")
    assert kernel.execute(proc, ReadInput(65536), SHORT_READ, cut=4) == b"hello"
    assert kernel.execute(proc, ReadInput(65536)) == b" world"
    assert kernel.execute(proc, ReadInput(65536), SHORT_READ) == b""  # the end stays the end


def drive(host: Host, gen: Generator[Syscall[Any], object, Any], faults: dict[type, Fault]) -> Any:
    """Run a delivery on the host's kernel, `faults` hitting every request of their type
    (with a different cut each time); returns the outcome and the number of writes."""
    proc, _ = host.spawn_delivery("D1", 100, "m1")
    kernel = host.kernel_of(proc)
    writes = 0
    request = next(gen)
    try:
        while True:
            fault = faults.get(type(request))
            hit = fault if fault is not None and fault.hits(request) else None
            writes += isinstance(request, Write)
            request = gen.send(kernel.execute(proc, request, hit, cut=writes * 7))
    except StopIteration as done:
        return done.value, writes


@pytest.mark.parametrize("env", ["ext4-ordered", "nfs3-sync"])
def test_a4_the_correct_write_loop_finishes_every_short_write(env: str) -> None:
    host = Host(ENVIRONMENTS[env])
    outcome, writes = drive(
        host, deliver(DeliveryRequest(ROOT)), {Write: SHORT_WRITE, ReadInput: SHORT_READ}
    )
    assert isinstance(outcome, Delivered)
    new = host.fs.entries[host.layout.new]
    (ino,) = new.values()
    assert host.messages.get(host.fs.inodes[ino].data) == "m1"  # the whole message, in order
    assert writes > 2  # the loop continued after short writes


def test_a4_a_full_disk_after_a_short_write_is_a_temporary_failure() -> None:
    """The disk filled mid-write (write(2)): a short count, then ENOSPC on the next call."""
    host = Host(ENVIRONMENTS["ext4-ordered"])
    proc, _ = host.spawn_delivery("D1", 100, "m1")
    kernel = host.kernel_of(proc)
    gen = deliver(DeliveryRequest(ROOT))
    request, writes = next(gen), 0
    try:
        while True:
            fault = None
            if isinstance(request, Write):
                writes += 1
                fault = SHORT_WRITE if writes == 1 else ENOSPC
            request = gen.send(kernel.execute(proc, request, fault, cut=3))
    except StopIteration as done:
        outcome = done.value
    assert isinstance(outcome, TemporaryFailure) and "ENOSPC" in outcome.reason
    assert writes == 2
    assert not host.fs.entries[host.layout.new] and not host.fs.entries[host.layout.tmp]


def test_b15_counterexample_shrinks_to_a_one_byte_write() -> None:
    info = CATALOGUE["short-write-ignored"]
    assert info.exposed_by == (FAULTS["short-write"],)
    v = verify(Check.of(info.name, "ext4-ordered", info.exposed_by, max_examples=300, seed=1))
    assert v.violation is not None and v.violation.prop == "P1"
    assert "the first 1 of" in str(v.violation)


_ON_THE_OS = """
import io, os, resource, signal, sys
from maildircheck.impl.drivers import run_on_os
from maildircheck.impl.strategies import resolve
from maildircheck.model.outcome import DeliveryRequest
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal's death
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
outcome = run_on_os(resolve(sys.argv[1])(DeliveryRequest(sys.argv[2])), io.BytesIO(b"x" * 5000))
print(type(outcome).__name__)
"""


@pytest.mark.parametrize(
    ("name", "reported", "size"),
    [("correct", "TemporaryFailure", None), ("short-write-ignored", "Delivered", 1000)],
)
def test_x11_on_the_os_a_file_size_limit_gives_a_short_write(
    tmp_path: Path, name: str, reported: str, size: int | None
) -> None:
    """On the real OS, RLIMIT_FSIZE makes write(2) short (write(2)): 1000 of 5000 bytes,
    then EFBIG. The correct loop writes on and fails honestly; B15 links 1000 bytes."""
    for sub in ("tmp", "new", "cur"):
        (tmp_path / sub).mkdir()
    run = subprocess.run(
        [sys.executable, "-c", _ON_THE_OS, name, str(tmp_path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode().strip() == reported
    assert os.listdir(tmp_path / "tmp") == []
    new = [p.stat().st_size for p in (tmp_path / "new").iterdir()]
    assert new == ([] if size is None else [size])
