"""One simulated mail host for the checker: its file system, its messages, what was reported.

`Host` joins the model pieces the state machine drives: it spawns processes, answers which
properties hold now (model.properties), maps a delivery onto the lifecycle table
(model.lifecycle), applies a power loss and explains a violation in words. The messages
are the run's (harness/messages.py: drawn by the state machine, or the fixed three), and
the pipe hands each delivery at most the run's pipe chunk per read.
"""

from __future__ import annotations

import errno
import functools
import itertools
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from maildircheck.harness.messages import FIXED, FIXED_PIPE, PIPE_CHUNKS, SIZES, pipe_chunk
from maildircheck.impl.deliver import deliver as correct_delivery
from maildircheck.model import persistence
from maildircheck.model.content import Content, Messages
from maildircheck.model.environments import ENVIRONMENTS, Environment
from maildircheck.model.fs import DataOp, FileSystem
from maildircheck.model.kernel import BOOT_US, Kernel, Process
from maildircheck.model.lifecycle import FORBIDDEN, Facts, Stage, stage_of, transition
from maildircheck.model.nfs import NfsClientKernel
from maildircheck.model.outcome import Delivered, DeliveryRequest, Strategy
from maildircheck.model.persistence import SYNC, CrashChoice
from maildircheck.model.properties import (
    DeliveryRecord,
    Layout,
    Violation,
    check_clobber,
    check_crash_states,
    check_deferral,
    check_durable_success,
    check_honest_failure,
    check_progress,
    check_unique_names,
    check_visible,
    describe_content,
    find_duplicates,
    visible_messages,
)
from maildircheck.model.syscalls import Syscall, Unlink

ROOT = "/home/user/Maildir"
HOST = "mx.example"
NFS_HOSTS = ("mx1.example", "mx2.example")  # two NFS clients: a and b

PROGRESS_FACTOR = 3
"""P7: a delivery may make this many times the syscalls the correct algorithm needs for its
message (fault-free, `correct_syscalls`) after the last fault that hit it. After a fault
the correct algorithm has at most the rest of one run left (its cleanup and report, or the
remainder of the delivery); the factor leaves room beyond that - fresh names after a real
collision (A3, A9), the retries of an agent that does more than the minimum - while a loop
is still shown within a screen of timeline."""


@functools.lru_cache(maxsize=1024)
def correct_syscalls(env_name: str, size: int, pipe: int = FIXED_PIPE) -> int:
    """How many syscalls the correct algorithm (impl/deliver.py) makes to deliver a
    message of `size` bytes, read through a pipe of `pipe` bytes a read, with no fault,
    measured on a fresh host of the environment named `env_name`. It reads and writes
    whatever the bytes are, so only their number counts (tests/test_messages.py checks
    this over every drawn shape); keyed so, the cache soon holds every size the search
    draws, and a run executes the same code each time it is replayed - which
    coverage-guided fuzzing needs (HypoFuzz keeps an input's coverage only when a second
    execution covers the same branches; `warm_budgets` fills the cache at once)."""
    return syscalls_to_deliver(env_name, b"x" * size, pipe)


def syscalls_to_deliver(env_name: str, data: bytes, pipe: int = FIXED_PIPE) -> int:
    """The syscalls the correct algorithm makes to deliver `data`, counted afresh."""
    host = Host(ENVIRONMENTS[env_name], crashes=False)
    host.use_messages({"m1": data})
    proc, _ = host.spawn_delivery("D1", 100, "m1", pipe=pipe)
    gen = correct_delivery(DeliveryRequest(ROOT))
    count = 0
    try:
        request = next(gen)
        while True:
            count += 1
            request = gen.send(host.kernel_of(proc).execute(proc, request))
    except StopIteration:
        return count


def warm_budgets(env_name: str) -> None:
    """Work out P7's budget for every message size and pipe the search draws in
    `env_name`, so that no run is the first to (the campaign targets call it)."""
    for size, pipe in itertools.product(SIZES, PIPE_CHUNKS):
        correct_syscalls(env_name, size, pipe_chunk(pipe, size))


def start(strategy: Strategy, request: DeliveryRequest) -> Generator[Syscall[Any], object, Any]:
    """The strategy's generator; a strategy that fails before yielding fails like an agent
    that crashes at start-up (its exception is raised at the first step)."""
    try:
        gen = strategy(request)
    except Exception as err:
        failure = err

        def crashed() -> Generator[Syscall[Any], object, Any]:
            raise failure
            yield  # pragma: no cover - makes this a generator

        return crashed()
    if not isinstance(gen, Generator):
        raise TypeError(f"the strategy returned {type(gen).__name__}, not a generator")
    return gen


def short(request: Syscall[Any]) -> str:
    """A request as the timeline shows it: paths relative to the maildir."""
    return str(request).replace(ROOT + "/", "")


def show(reply: object) -> str:
    if isinstance(reply, OSError):
        return f"-1 {errno.errorcode.get(reply.errno or 0, '?')}"
    if isinstance(reply, bytes):
        return f"<{len(reply)} bytes>"
    if isinstance(reply, tuple):
        return "[" + ", ".join(str(x) for x in reply) + "]"
    return "0" if reply is None else str(reply)


@dataclass
class Host:
    """The mail site of one environment: a local disk with one kernel, or an NFS server
    with one client kernel per host (model.nfs). `crashes`: can the disk (or the NFS
    server) lose power in this threat model? Without it, "every state a crash could leave"
    is just the live view, and the profile only decides what is durable."""

    env: Environment
    crashes: bool = True
    cloned: bool = False  # X15: every NFS client answers the first one's host name

    def __post_init__(self) -> None:
        self.nfs = self.env.is_nfs
        self.profile = self.env.profile
        self.judge = self.profile if self.crashes else SYNC
        self.crash = "a server crash" if self.nfs else "a power loss"
        self.fs = FileSystem.with_dirs(
            "/home", "/home/user", ROOT, f"{ROOT}/tmp", f"{ROOT}/new", f"{ROOT}/cur"
        )
        mount = self.env.mount
        self.kernels: dict[str, Kernel] = (
            {
                name: NfsClientKernel(self.fs, self.profile, mount=mount, drc=self.env.drc)
                for name in NFS_HOSTS
            }
            if mount is not None
            else {HOST: Kernel(self.fs, self.profile)}
        )
        if self.cloned:
            for kernel in self.kernels.values():
                kernel.hostname = NFS_HOSTS[0]
        self.layout = Layout.of(self.fs, ROOT)
        self.use_messages(FIXED)
        self.pipes: dict[str, int] = {}  # each delivery's pipe chunk (label -> bytes)
        self.records: list[DeliveryRecord] = []
        self.consumed: set[str] = set()

    # --- processes ----------------------------------------------------------------------
    def undelivered(self) -> list[str]:
        done = {r.message for r in self.records if isinstance(r.outcome, Delivered)}
        return [m for m in self.ids if m not in done]

    def use_messages(self, mail: dict[str, bytes], ids: tuple[str, ...] = ()) -> None:
        """The run's messages: `mail` (id -> bytes) known now, and `ids`, the ids of messages
        whose contents are drawn when their first delivery starts (`add_message`)."""
        self.ids = tuple(dict.fromkeys((*mail, *ids)))
        self.mail: dict[str, bytes] = {}
        self.messages = Messages()
        for mid, data in mail.items():
            self.add_message(mid, data)

    def add_message(self, mid: str, data: bytes) -> None:
        self.mail[mid] = data
        self.messages.add(mid, Content.of(data))

    def spawn_delivery(
        self, label: str, pid: int, message: str, on: int = 0, pipe: int = FIXED_PIPE
    ) -> tuple[Process, DeliveryRecord]:
        """A delivery process on host number `on` (of the NFS clients; 0 locally)."""
        record = DeliveryRecord(label, message, self.messages.by_id[message])
        self.records.append(record)
        hosts = list(self.kernels)
        stdin = self.mail[message]  # the same bytes as the record's content: shared runs
        self.pipes[label] = pipe
        return Process(label, pid, hosts[on % len(hosts)], stdin, pipe_chunk=pipe), record

    def spawn_helper(self, label: str, pid: int) -> Process:
        """The reader runs on the last host (another host than the first deliveries'),
        the tmp/ cleaner on the first."""
        hosts = list(self.kernels)
        return Process(label[0].upper(), pid, hosts[-1] if label == "reader" else hosts[0])

    def kernel_of(self, proc: Process) -> Kernel:
        return self.kernels[proc.host]

    def lane(self, proc: Process) -> str:
        """The timeline's lane: the process, and on NFS its host (a:, b:)."""
        return proc.label if not self.nfs else self.host_lane(proc.host) + proc.label

    def host_lane(self, name: str) -> str:
        """The timeline's lane of NFS client host `name`: "a:" or "b:"."""
        return f"{'ab'[list(self.kernels).index(name)]}:"

    def advance_clock(self, us: int) -> None:
        for kernel in self.kernels.values():
            kernel.clock_us += us

    def clock_back(self, name: str, us: int) -> None:
        """X13: the clock of host `name` steps back by `us` microseconds."""
        self.kernels[name].clock_us -= us

    def reboot(self, name: str) -> None:
        """X14: host `name` shuts down cleanly - everything written is made stable, an NFS
        client writes back and commits its dirty pages and then has empty caches - and
        comes back with its clock at its boot time (the caller ends its processes)."""
        kernel = self.kernels[name]
        if isinstance(kernel, NfsClientKernel):
            for ino in sorted({*kernel.dirty, *kernel.unstable}):
                kernel.commit(ino)
            kernel.crash()
        else:
            persistence.sync_all(self.fs, self.profile)
        kernel.clock_us = BOOT_US

    def key(self) -> tuple[int, int, int, int]:
        """Changes whenever a property's answer could: the file system, a report, a
        deletion, a refused unlink (which excuses a tmp/ file, P4)."""
        reports = sum(1 for r in self.records if r.outcome is not None)
        refused = sum(len(r.refused_unlinks) for r in self.records)
        return (self.fs.version, reports, len(self.consumed), refused)

    def visible(self) -> dict[int, str]:
        return visible_messages(self.fs, self.layout)

    def note_reader_step(self, request: Syscall[Any], before: dict[int, str]) -> None:
        """The reader deleted a message: the user is done with it (it ends P2's duty)."""
        if isinstance(request, Unlink):
            for ino, where in before.items():
                if request.path.endswith("/" + where) and ino not in self.visible():
                    mid = self.messages.get(self.fs.inodes[ino].data)
                    if mid:
                        self.consumed.add(mid)

    # --- properties ---------------------------------------------------------------------
    def check(
        self, actor: str | None, is_reader: bool, before: dict[int, str] | None
    ) -> list[Violation]:
        found = [
            check_visible(
                self.fs,
                self.layout,
                self.messages,
                "on the NFS server (what a reader on another host sees)"
                if self.nfs
                else "live view",
            ),
            check_clobber(before, self.fs, self.layout, actor, is_reader, self.messages)
            if actor and before is not None
            else None,
            check_unique_names(self.records),
            check_durable_success(
                self.fs, self.judge, self.layout, self.records, self.consumed, self.crash
            ),
            check_crash_states(self.fs, self.judge, self.layout, self.messages, self.crash),
            find_duplicates(self.fs, self.layout, self.messages),
        ]
        return [v for v in found if v is not None]

    def check_report(self, record: DeliveryRecord, progress: bool = True) -> Violation | None:
        """P4 and P5 on a report, and P7's deferral rule unless `progress` is False (a traced
        replay: one run on a real host, whose faults the replay does not all see)."""
        found = check_honest_failure(self.fs, self.layout, record, self.messages)
        if found is None and progress:
            found = check_deferral(self.fs, self.layout, record)
        return found

    def progress_budget(self, message: str, pipe: int = FIXED_PIPE) -> int:
        """P7: the syscalls a delivery of `message` through `pipe` may make after its last
        fault."""
        return PROGRESS_FACTOR * correct_syscalls(self.env.name, len(self.mail[message]), pipe)

    def check_progress(self, record: DeliveryRecord) -> Violation | None:
        return check_progress(
            record, self.progress_budget(record.message, self.pipes.get(record.label, FIXED_PIPE))
        )

    # --- lifecycle ----------------------------------------------------------------------
    def facts(self, rec: DeliveryRecord) -> Facts:
        fs = self.fs
        mine = {ino for ino, node in fs.inodes.items() if node.creator == rec.label}
        unsynced = {op.ino for op in fs.pending if isinstance(op, DataOp)}
        tmp = [
            i
            for name, i in fs.entries[self.layout.tmp].items()
            if i in mine and f"{ROOT}/tmp/{name}" not in rec.refused_unlinks
        ]
        shown = [i for d in self.layout.visible for i in fs.entries[d].values() if i in mine]
        complete = [i for i in shown if fs.inodes[i].data == rec.content]
        reported = None
        if rec.outcome is not None:
            reported = "success" if isinstance(rec.outcome, Delivered) else "failure"
        return Facts(
            reported=reported,
            died=rec.ended is not None,
            partial_visible=len(complete) < len(shown),
            visible=bool(complete),
            guaranteed=persistence.guaranteed_in(
                fs, self.judge, self.layout.visible, rec.content, mine
            ),
            tmp_exists=bool(tmp),
            tmp_complete=any(fs.inodes[i].data == rec.content for i in tmp),
            tmp_durable=any(
                fs.inodes[i].data == rec.content
                and (
                    not self.crashes
                    or (fs.durable_data.get(i) == rec.content and i not in unsynced)
                )
                for i in tmp
            ),
        )

    def stage_step(self, rec: DeliveryRecord, before: Stage) -> tuple[Stage, str | None]:
        """The delivery's new stage and the table's label for the move (None: off the table)."""
        if before in FORBIDDEN or before in (Stage.DELIVERED, Stage.FAILED, Stage.ABANDONED):
            return before, ""
        if rec.message in self.consumed:
            return before, ""
        after = stage_of(self.facts(rec))
        return after, transition(before, after)

    # --- power loss and explanations ----------------------------------------------------
    def power_loss(self, choice: CrashChoice) -> list[str]:
        """The disk (or the NFS server) loses power; on NFS the clients lose theirs too."""
        detail = self.server_crash(choice)
        for name in self.kernels:
            self.client_crash(name)
        return detail

    def server_crash(self, choice: CrashChoice) -> list[str]:
        """The disk or NFS server restarts from a crash state; NFS clients that still hold
        uncommitted data send it again (R4)."""
        detail = [
            line.replace(ROOT + "/", "")
            for line in persistence.explain(self.fs, self.profile, choice)
        ] or ["nothing was pending"]
        persistence.power_loss(self.fs, self.profile, choice)
        for kernel in self.kernels.values():
            if isinstance(kernel, NfsClientKernel):
                kernel.server_rebooted()
        return [*detail, "after the restart:", *self.listing()]

    def client_crash(self, name: str) -> None:
        kernel = self.kernels[name]
        if isinstance(kernel, NfsClientKernel):
            kernel.crash()

    def listing(self) -> list[str]:
        lines = []
        for d in (self.layout.tmp, self.layout.new, self.layout.cur):
            entries = sorted(self.fs.entries[d].items())
            if not entries:
                lines.append(f"  {self.layout.dirname(d)}/ is empty")
            for name, ino in entries:
                content = describe_content(self.fs.inodes[ino].data, self.messages)
                lines.append(f"  {self.layout.dirname(d)}/{name}: {content}")
        return lines

    def explain(self, violation: Violation) -> list[str]:
        lines = []
        if violation.crash is not None:
            lines.append(f"{self.crash} at this point could keep or lose:")
            lines += [
                "  " + s.replace(ROOT + "/", "")
                for s in persistence.explain(self.fs, self.judge, violation.crash)
            ]
        lines.append("the maildir now (live view):")
        return lines + self.listing()
