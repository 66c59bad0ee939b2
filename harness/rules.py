"""The checker's rules as one table: what each rule of the state machine draws, when it may
run, and the Hypothesis state machine built from it.

`rules_for(check)` is the table for one check: only the faults it searches become rules or
draws, so no step of the search is spent on the others. `machine_for(check)` turns the table
into Hypothesis rules; every rule call is recorded as a `Step` in the machine's program, so
that a failing run can be replayed and shrunk without Hypothesis (harness/shrink.py, E7).
A step that ran out its process before its `count` is recorded with the count it used: the
same run, simpler.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from maildircheck.harness.check import Check
from maildircheck.harness.draws import Choice, Draw, Fates, Ints, Just, Mail, Step, strategies
from maildircheck.harness.machine import DeliveryMachine
from maildircheck.harness.messages import PIPE_CHUNKS, Shape
from maildircheck.model.faults import (
    CLIENT_CRASH,
    CLOCK_BACK,
    FAULT_KINDS,
    FAULTS,
    KILL,
    POWER_LOSS,
    REBOOT,
    SERVER_CRASH,
    SIGTERM,
    Family,
    Fault,
)

CLOCK_JUMPS = (1_000_000, 2_000_000, 25 * 3600 * 1_000_000, 37 * 3600 * 1_000_000)
CLOCK_STEPS_BACK = (1_000_000, 3600 * 1_000_000)  # X13: besides 1-64 us, 1 s and 1 h


@dataclass(frozen=True)
class Rule:
    method: Callable[..., None]
    draws: dict[str, Draw[Any]]
    when: Callable[[DeliveryMachine], bool] | None = None  # its precondition

    def allows(self, machine: DeliveryMachine) -> bool:
        return self.when is None or self.when(machine)


def _has_delivery(machine: DeliveryMachine) -> bool:
    return bool(machine.deliveries())


def _has_tmp(machine: DeliveryMachine) -> bool:
    return bool(machine.host.fs.entries[machine.host.layout.tmp])


def _clock_matters(machine: DeliveryMachine) -> bool:
    """A jump of the clock acts on a running delivery (its 24-hour timer, A7) or on what
    tmp/ holds (the cleaner, E2); with neither, it would only move later names apart."""
    return _has_delivery(machine) or _has_tmp(machine)


def _crash_matters(machine: DeliveryMachine) -> bool:
    """A local power loss acts on a running delivery or on what is not yet durable; with
    neither, the machine would restart to what it was."""
    return _has_delivery(machine) or bool(machine.host.fs.pending)


def rules_for(check: Check) -> dict[str, Rule]:
    M = DeliveryMachine
    # how far a process runs in one step (the correct delivery of a one-read message: 17)
    counts = Ints(1, 64)
    faults = check.faults
    reply_faults = [f for f in FAULTS.values() if f.family is Family.REPLY and f in faults]
    aims: tuple[tuple[Fault, str] | None, ...] = (None,)
    if reply_faults:
        aims += tuple((f, k) for f in reply_faults for k in FAULT_KINDS if f.can_hit(k))
    # no fault half the time: a uniform pick among 20-odd aims armed one almost every step
    fault: Draw[Any] = Just(None)
    if reply_faults:
        fault = Choice(aims, st.one_of(st.none(), st.sampled_from(aims[1:])))
    # a short transfer's count is drawn, so that it shrinks (to 1 byte)
    cut: Draw[int] = Ints(0, 65535) if any(f.short for f in reply_faults) else Just(0)
    mail: Draw[Any] = Mail()
    if check.message_size is not None:  # fixed: plain messages, a full pipe
        mail = Just((Shape(check.message_size), max(PIPE_CHUNKS)))
    hosts: Draw[int] = Ints(0, 1) if check.env.is_nfs else Just(0)  # only NFS has two
    table = {
        "r_start": Rule(
            M.start_delivery,
            {
                "which": Ints(0, 2),
                "pid": Ints(0, 2),
                "count": counts,
                "entropy": Ints(0, 3),
                "fault": fault,
                "mail": mail,
                "on": hosts,
                "cut": cut,
            },
            M.can_start,
        ),
        "r_run": Rule(
            M.run_delivery,
            {"which": Ints(0, 1), "count": counts, "fault": fault, "cut": cut},
            _has_delivery,
        ),
        "r_reader": Rule(M.run_reader, {"count": Ints(1, 16)}),
        "r_cleaner": Rule(M.run_cleaner, {"count": Ints(1, 8)}, _has_tmp),
        "r_clock": Rule(M.advance_clock, {"jump": Choice(CLOCK_JUMPS)}, _clock_matters),
    }
    crash: dict[str, Draw[Any]] = {"dropped": Ints(0, 4095), "fates": Fates()}
    if KILL in faults:
        table["r_kill"] = Rule(M.kill, {"which": Ints(0, 1)}, _has_delivery)
    if SIGTERM in faults:
        table["r_sigterm"] = Rule(M.sigterm, {"which": Ints(0, 1)}, _has_delivery)
    if POWER_LOSS in faults:  # on NFS a power loss also empties the clients' caches
        table["r_power"] = Rule(M.power_loss, crash, None if check.env.is_nfs else _crash_matters)
    if SERVER_CRASH in faults:
        table["r_server"] = Rule(M.server_crash, crash)
    if CLIENT_CRASH in faults:
        table["r_client"] = Rule(M.client_crash, {"which": Ints(0, 1)})
    if CLOCK_BACK in faults:
        small = tuple(range(1, 65))
        drawn = st.one_of(st.sampled_from(small), st.sampled_from(CLOCK_STEPS_BACK))
        back = Choice((*small, *CLOCK_STEPS_BACK), drawn)
        table["r_clock_back"] = Rule(M.clock_back, {"step": back, "which": hosts})
    if REBOOT in faults:
        table["r_reboot"] = Rule(M.reboot, {"which": hosts})
    return table


_rule: Callable[..., Callable[[Callable[..., None]], Callable[..., None]]] = rule  # no bundles


def machine_for(check: Check) -> type[DeliveryMachine]:
    """A state-machine class with the rules of one check. Instances take the search's
    `RunLog` (a fresh one when Hypothesis or HypoFuzz make them without)."""
    table = rules_for(check)
    ns: dict[str, Any] = {"check": check, "table": table}
    for name, entry in table.items():
        recorded = _rule(**strategies(entry.draws))(_recorded(name, entry.method))
        ns[name] = precondition(entry.when)(recorded) if entry.when else recorded
    return type("Rules", (DeliveryMachine,), ns)


def _recorded(name: str, method: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(method)
    def call(self: DeliveryMachine, **arguments: Any) -> None:
        before = self.log.syscalls
        try:
            method(self, **arguments)
        finally:  # also when the call raised the violation: the program ends with it
            ran = self.log.syscalls - before
            if "count" in arguments and ran < arguments["count"]:
                arguments["count"] = max(1, ran)
            self.program.append(Step(name, tuple(arguments.items())))

    return call
