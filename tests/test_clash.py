"""Clash sources (X13 clock-back, X14 reboot, X15 cloned-hostnames, X16 pid-namespaces): what
each does in the model, which parts of a unique name it makes equal, that our names (N1)
keep apart by their R part alone, and that the correct strategy holds with each one on -
while B19 (no-random-name, Dovecot's `seconds.M<usec>P<pid>.host`) is safe without them and
caught with them.

Spec IDs exercised: X13, X14, X15, X16, N1, A2, P3.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest

from maildircheck.harness.check import Check
from maildircheck.harness.host import HOST, NFS_HOSTS, ROOT, Host
from maildircheck.harness.machine import PID_POOL
from maildircheck.harness.messages import Shape
from maildircheck.harness.rules import machine_for
from maildircheck.harness.verify import verify
from maildircheck.impl.catalogue.weak_names import time_usec_pid_host
from maildircheck.impl.deliver import fresh_name
from maildircheck.impl.naming import NameParts, parse_name
from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.faults import (
    CLOCK_BACK,
    CLONED_HOSTNAMES,
    DEFAULT_FAULTS,
    FAULTS,
    PID_NAMESPACES,
    REBOOT,
    Family,
    Fault,
)
from maildircheck.model.kernel import BOOT_US, Process
from maildircheck.model.syscalls import GetHostname, Open, OpenFlag, Write

CLASHES = [f for f in FAULTS.values() if f.family is Family.CLASH]
PARTS = set(NameParts.__annotations__) - {"size", "flags"}  # the parts of an N1 name

PLAIN = (Shape(20), 64)  # a 20-byte message through a 64-byte pipe


def run_on(host: Host, proc: Process, step: Generator[Any, object, str], entropy: int) -> str:
    """Run a naming step (a syscall generator) on `proc`'s kernel; the name it returns."""
    kernel = host.kernel_of(proc)
    try:
        request = next(step)
        while True:
            request = step.send(kernel.execute(proc, request, None, entropy))
    except StopIteration as done:
        name: str = done.value
        return name


Namer = Callable[[], Generator[Any, object, str]]


def two_names(clash: Fault, namer: Namer, entropies: tuple[int, int]) -> tuple[str, str]:
    """Two deliveries that meet `clash` as the model makes it, each naming with `namer`."""
    env = "nfs3-sync" if clash.nfs_only else "ext4-ordered"
    host = Host(ENVIRONMENTS[env], cloned=clash is CLONED_HOSTNAMES)
    first = Process("D1", 100, NFS_HOSTS[0] if host.nfs else HOST)
    one = run_on(host, first, namer(), entropies[0])
    if clash is CLOCK_BACK:  # the clock steps back to the reading the first name took
        host.clock_back(first.host, host.kernel_of(first).clock_us - BOOT_US)
        second = Process("D2", 101, HOST)
    elif clash is REBOOT:  # the host comes back at its boot time, pid 100 first again
        host.reboot(first.host)
        second = Process("D2", 100, HOST)
    elif clash is CLONED_HOSTNAMES:  # the other client, its own pid 100, its own clock
        second = Process("D2", 100, NFS_HOSTS[1])
    else:  # PID_NAMESPACES: a second agent, running at once in a namespace of its own
        assert clash is PID_NAMESPACES
        second = Process("D2", 100, HOST)
    return one, run_on(host, second, namer(), entropies[1])


def equal_parts(a: str, b: str) -> set[str]:
    pa, pb = parse_name(a), parse_name(b)
    assert pa is not None and pb is not None, (a, b)
    return {p for p in PARTS if getattr(pa, p) == getattr(pb, p)}


def test_every_clash_source_is_a_fault_with_its_spec_and_the_parts_it_defeats() -> None:
    assert [f.name for f in CLASHES] == [
        "clock-back",
        "reboot",
        "cloned-hostnames",
        "pid-namespaces",
    ]
    assert [f.spec for f in CLASHES] == ["X13", "X14", "X15", "X16"]
    for clash in CLASHES:
        assert clash.defeats and set(clash.defeats) <= PARTS, clash
        assert not clash.default  # asked for by name or with "all"
    assert all(f not in ENVIRONMENTS["nfs3-sync"].threat for f in CLASHES)
    assert [f for f in CLASHES if f.nfs_only] == [CLONED_HOSTNAMES]


@pytest.mark.parametrize("clash", CLASHES, ids=str)
def test_n1_each_clash_makes_the_parts_it_defeats_equal_and_r_keeps_the_names_apart(
    clash: Fault,
) -> None:
    """The model really makes equal what the fault says it defeats; what stays apart
    differs; R, drawn from getrandom, is defeated by none and tells the names apart."""
    one, two = two_names(clash, lambda: fresh_name(0), (1, 2))
    same = equal_parts(one, two)
    assert set(clash.defeats) <= same, (one, two)
    assert "random" not in same and one != two
    if clash in (REBOOT, CLONED_HOSTNAMES):  # everything but R repeats: R alone saves it
        assert same == PARTS - {"random"}
        again = two_names(clash, lambda: fresh_name(0), (1, 1))
        assert again[0] == again[1]  # with one random value the names are one


def test_n1_r_is_the_one_part_no_clash_source_defeats() -> None:
    defeated = {p for clash in CLASHES for p in clash.defeats}
    assert PARTS - defeated == {"random"}


@pytest.mark.parametrize("clash", [CLOCK_BACK, REBOOT, CLONED_HOSTNAMES], ids=str)
def test_b19_names_repeat_under_the_clash_sources_that_defeat_their_parts(clash: Fault) -> None:
    """Dovecot's `seconds.M<usec>P<pid>.host` has no part the clash cannot repeat."""
    one, two = two_names(clash, lambda: time_usec_pid_host(0), (1, 2))
    if clash is CLOCK_BACK:  # the second delivery has another pid: only the time repeats
        assert one.replace("P100.", "P101.") == two
    else:
        assert one == two


def test_x13_the_clock_steps_back_and_gives_its_readings_again() -> None:
    host = Host(ENVIRONMENTS["sync"])
    kernel = host.kernels[HOST]
    kernel.clock_us += 5_000_000
    host.clock_back(HOST, 3_000_000)
    assert kernel.clock_us == BOOT_US + 2_000_000


def test_x14_a_reboot_is_clean_and_comes_back_at_the_boot_time() -> None:
    host = Host(ENVIRONMENTS["ext4-ordered"])
    proc = Process("D1", 100, HOST)
    kernel = host.kernels[HOST]
    fd = kernel.execute(proc, Open(f"{ROOT}/tmp/f", OpenFlag.WRONLY | OpenFlag.CREAT, 0o600))
    assert isinstance(fd, int) and kernel.execute(proc, Write(fd, b"data")) == 4
    assert host.fs.pending and kernel.clock_us > BOOT_US
    host.reboot(HOST)
    assert not host.fs.pending and kernel.clock_us == BOOT_US  # nothing left to lose


def test_x14_an_nfs_client_reboot_writes_back_and_commits_its_dirty_pages() -> None:
    host = Host(ENVIRONMENTS["nfs3-sync"])
    proc = Process("D1", 100, NFS_HOSTS[0])
    kernel = host.kernels[NFS_HOSTS[0]]
    fd = kernel.execute(proc, Open(f"{ROOT}/tmp/f", OpenFlag.WRONLY | OpenFlag.CREAT, 0o600))
    assert isinstance(fd, int) and kernel.execute(proc, Write(fd, b"data")) == 4
    ino = host.fs.lookup(f"{ROOT}/tmp/f")
    assert bytes(host.fs.inodes[ino].data) == b""  # still in the client's page cache
    host.reboot(NFS_HOSTS[0])
    assert bytes(host.fs.inodes[ino].data) == b"data" and host.fs.durable_data[ino] == b"data"


def test_x14_after_a_reboot_the_host_gives_out_its_pids_in_the_same_order() -> None:
    machine = machine_for(Check.of("correct", "sync", (REBOOT,)))()
    for pid in (1, 2):  # D1 gets 101, D2 (D1 still running) 100 - what the draws pick
        machine.start_delivery(0, pid, 1, 0, None, PLAIN)
    first = [a.proc.pid for a in machine.deliveries()]
    machine.reboot(0)
    for pid in (0, 0):  # the draws say otherwise; the boot order wins
        machine.start_delivery(0, pid, 1, 0, None, PLAIN)
    assert [a.proc.pid for a in machine.deliveries()] == first


def test_x15_cloned_nfs_clients_answer_one_host_name() -> None:
    for cloned, expected in ((False, list(NFS_HOSTS)), (True, [NFS_HOSTS[0]] * 2)):
        host = Host(ENVIRONMENTS["nfs3-sync"], cloned=cloned)
        answers = [host.kernels[h].execute(Process("D1", 100, h), GetHostname()) for h in NFS_HOSTS]
        assert answers == expected


@pytest.mark.parametrize("knob", [False, True])
def test_x16_in_pid_namespaces_running_agents_share_a_pid(knob: bool) -> None:
    faults = (PID_NAMESPACES,) if knob else ()
    machine = machine_for(Check.of("correct", "sync", faults))()
    machine.start_delivery(0, 0, 1, 0, None, PLAIN)
    machine.start_delivery(0, 0, 1, 0, None, PLAIN)  # the first is still running
    pids = [a.proc.pid for a in machine.deliveries()]
    assert pids == ([PID_POOL[0]] * 2 if knob else [PID_POOL[0], PID_POOL[1]])


@pytest.mark.parametrize(
    "env", ["ext4-ordered", "posix", "nfs3-sync", "nfs3-nocto"], ids=lambda e: str(e)
)
def test_correct_strategy_holds_with_every_clash_source_on(env: str) -> None:
    """Whatever the names repeat, the correct algorithm keeps every property: an exclusive
    create (A3) and a link that never replaces (A8) turn a clash into a fresh name."""
    faults = tuple(f for f in CLASHES if ENVIRONMENTS[env].applies(f)) + DEFAULT_FAULTS
    v = verify(Check.of("correct", env, faults, max_examples=150, seed=11, strict_lifecycle=True))
    assert v.holds, f"{v.violation}\n{v.timeline.render() if v.timeline else ''}"
    assert v.syscalls > 1000


@pytest.mark.parametrize("env", ["ext4-ordered", "nfs3-sync"])
def test_b19_is_unique_by_the_classic_rules(env: str) -> None:
    """Without a clash source Dovecot's name never repeats: pids reused within a second
    (E4) and two NFS clients are told apart by M<usec> and the host."""
    faults = DEFAULT_FAULTS + (() if env == "ext4-ordered" else ENVIRONMENTS[env].threat)
    v = verify(Check.of("no-random-name", env, faults, max_examples=300, seed=1))
    assert v.holds, f"{v.violation}\n{v.timeline.render() if v.timeline else ''}"


@pytest.mark.parametrize("clash", [REBOOT, CLONED_HOSTNAMES], ids=str)
def test_b19_is_caught_under_the_clash_sources(clash: Fault) -> None:
    env = "nfs3-sync" if clash.nfs_only else "ext4-ordered"
    v = verify(Check.of("no-random-name", env, (clash,), max_examples=1000, seed=1))
    assert v.violation is not None and v.violation.prop == "P3", str(v.violation)
    assert v.timeline is not None
    text = v.timeline.render()
    assert ("REBOOT" in text) == (clash is REBOOT) and "rename(" in text
