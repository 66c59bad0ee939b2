"""The rig (G1, G3): a real file system on a recorded disk, set up and torn down from Python.

`Rig(fs)` as a context manager starts the recorder (`recorder.py`) on a sparse image, puts a
loop device with direct I/O over the file it serves, makes and mounts the file system, and
on leaving - by any path - unmounts, detaches and stops everything it set up. If this
process is killed, the recorder sees its stdin close and tears down what it was told to
guard, so no mount or loop device outlives a killed test; and if the recorder itself was killed,
the next rig sweeps what it left (`sweep_stale`).

Inside, a workload runs under `rig.root`; `record()` starts the log, `mark(label)` names a
point in it, `fail(...)` makes chosen block writes fail, and `finish()` returns the
`BlockLog` and unmounts the recorded file system. `crash_state(writes)` then mounts a crash
state - the base image with `writes` laid over it, served by the recorder - so the file
system's own recovery runs, and yields its root (or raises `StateUnmountable`).

`unavailable()` says, in one line, why this machine cannot run the rig (not root, no
/dev/fuse, no loop devices, a missing mkfs or the FUSE binding), or None.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from types import TracebackType

from maildircheck.harness.realfs.blocklog import BlockLog, Write
from maildircheck.harness.realfs.filesystems import RealFs
from maildircheck.harness.realfs.release import release

PREFIX = "maildircheck-realfs-"


class RigError(Exception):
    """The rig could not be set up or a command to it failed (one line)."""


class StateUnmountable(Exception):
    """The file system refused to mount a crash state (its recovery failed)."""


def unavailable(fs: RealFs | None = None) -> str | None:
    if os.geteuid() != 0:
        return "the real-file-system recorder needs root (mount, losetup)"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse: FUSE is not available on this machine"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control: loop devices are not available on this machine"
    for tool in ("fusermount3", "losetup", "mount", *((fs.mkfs[0],) if fs else ())):
        if shutil.which(tool) is None:
            return f"{tool} not found (Debian: fuse3, util-linux, e2fsprogs, xfsprogs, btrfs-progs)"
    if importlib.util.find_spec("mfusepy") is None:
        return "the FUSE binding mfusepy is not installed (pip install mfusepy)"
    return None


def _alive(pid_file: str) -> bool:
    """The process named in `pid_file` runs (a zombie nobody reaped does not)."""
    try:
        with open(pid_file) as f, open(f"/proc/{int(f.read().strip())}/stat") as proc:
            return proc.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, ValueError, IndexError):
        return False


def sweep_stale() -> list[str]:
    """Tear down what a rig left when both its owner and its recorder died (kill -9 of the
    recorder itself): its mounts, loop devices and work directory. Returns what it swept."""
    swept = []
    for work in glob.glob(os.path.join(tempfile.gettempdir(), PREFIX + "*")):
        pids = [os.path.join(work, f) for f in ("owner.pid", "recorder.pid")]
        if any(_alive(p) for p in pids):
            continue
        young = time.time() - os.stat(work).st_mtime < 30
        if young and not any(os.path.exists(p) for p in pids):
            continue  # a rig being set up right now, before its pid files exist
        release(work)
        shutil.rmtree(work, ignore_errors=True)
        swept.append(work)
    return swept


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RigError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


class Rig:
    def __init__(self, fs: RealFs) -> None:
        self.fs = fs
        self.work = ""
        self.root = ""  # the mounted file system, while the workload runs
        self._recorder: subprocess.Popen[str] | None = None
        self._teardown: list[tuple[str, ...]] = []  # undo commands, last set up first

    # --- set-up and tear-down --------------------------------------------------------------
    def __enter__(self) -> Rig:
        why = unavailable(self.fs)
        if why is not None:
            raise RigError(why)
        sweep_stale()
        self.work = tempfile.mkdtemp(prefix=PREFIX)
        with open(self.path("owner.pid"), "w") as f:
            f.write(str(os.getpid()))
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _start(self) -> None:
        for key, value in self.fs.sysctl:
            where = os.path.join("/proc/sys", key)
            with open(where) as f:
                old = f.read().strip()
            self._teardown.append(("sysctl", "-q", "-w", f"{key.replace('/', '.')}={old}"))
            with open(where, "w") as f:
                f.write(value)
        for sub in ("fuse", "fs", "state"):
            os.mkdir(os.path.join(self.work, sub))
        image = os.path.join(self.work, "disk.img")
        with open(image, "wb") as f:
            f.truncate(self.fs.size_mb << 20)
        self._recorder = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "maildircheck.harness.realfs.recorder",
                "--image",
                image,
                "--mount",
                self.path("fuse"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with open(self.path("recorder.pid"), "w") as f:
            f.write(str(self._recorder.pid))
        self._teardown.append(("fusermount3", "-u", "-z", self.path("fuse")))
        deadline = time.monotonic() + 10
        while not os.path.exists(self.path("fuse", "disk")):
            if self._recorder.poll() is not None or time.monotonic() > deadline:
                err = self._recorder.stderr.read() if self._recorder.stderr else ""
                raise RigError(f"the recorder did not start: {err.strip()[-300:]}")
            time.sleep(0.02)
        loop = self._attach(self.path("fuse", "disk"), direct=True)
        _run(*self.fs.mkfs, loop)
        self._mount(loop, self.path("fs"), self.fs.options)
        self.root = self.path("fs")
        self.loop = loop

    def close(self) -> None:
        """Undo every step of the set-up that happened, last first; never raises."""
        while self._teardown:
            subprocess.run(self._teardown.pop(), capture_output=True)
        if self._recorder is not None:
            with contextlib.suppress(OSError, ValueError):
                if self._recorder.stdin:
                    self._recorder.stdin.close()
            try:
                self._recorder.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._recorder.kill()
                self._recorder.wait()
            self._recorder = None
        if self.work:
            subprocess.run(["fusermount3", "-u", "-z", self.path("fuse")], capture_output=True)
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = ""

    def path(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    def _attach(self, backing: str, direct: bool) -> str:
        argv = ["losetup", "--find", "--show", *(["--direct-io=on"] if direct else []), backing]
        loop = _run(*argv)
        self._teardown.append(("losetup", "-d", loop))
        self.command(f"guard {loop}")
        return loop

    def _mount(self, device: str, where: str, options: str) -> None:
        _run("mount", "-t", self.fs.fstype, "-o", options, device, where)
        self._teardown.append(("umount", where))
        self.command(f"guard {where}")

    def _undo(self, argv: tuple[str, ...]) -> None:
        self._teardown.remove(argv)
        _run(*argv)
        self.command(f"unguard {argv[-1]}")

    # --- the recorder's commands -----------------------------------------------------------
    def command(self, line: str) -> None:
        rec = self._recorder
        if rec is None or rec.stdin is None or rec.stdout is None:
            raise RigError("the recorder is not running")
        rec.stdin.write(line + "\n")
        rec.stdin.flush()
        reply = rec.stdout.readline().strip()
        if reply != "ok":
            raise RigError(f"recorder: {line.split()[0]}: {reply or 'no reply (it exited)'}")

    def record(self) -> None:
        """Make everything so far durable, copy the image as the base, and log from here."""
        os.sync()
        self.command(f"record {self.path('base.img')}")

    def mark(self, label: str) -> None:
        self.command("mark " + label.replace("\n", " "))

    def fail(self, pattern: bytes, code: int, count: int = 1) -> None:
        """The next `count` block writes whose bytes contain `pattern` fail with `code`
        (replacing an earlier rule for `pattern`: `count` 0 disarms it)."""
        self.command(f"fail {pattern.hex()} {code} {count}")

    def finish(self) -> BlockLog:
        """The log so far; then the recorded file system is unmounted and detached."""
        self.command(f"dump {self.path('log')}")
        log = BlockLog.load(self.path("log"))
        self._undo(("umount", self.path("fs")))
        self._undo(("losetup", "-d", self.loop))
        if self.fs.fstype == "btrfs":  # forget the detached device, or a state is a duplicate
            subprocess.run(["btrfs", "device", "scan", "--forget"], capture_output=True)
        self.root = ""
        return log

    # --- crash states ----------------------------------------------------------------------
    @contextlib.contextmanager
    def crash_state(self, base: str, writes: Sequence[Write]) -> Iterator[str]:
        """Mount the crash state `writes` (applied in order over `base`); yield its root."""
        state = BlockLog(base=base, size=0, records=list(writes))
        state.save(self.path("state.log"))
        self.command(f"state {self.path('state.log')}")
        loop = self._attach(self.path("fuse", "state"), direct=False)
        try:
            try:
                self._mount(loop, self.path("state"), self.fs.state_options)
            except RigError as err:
                raise StateUnmountable(str(err)) from None
            try:
                yield self.path("state")
            finally:
                self._undo(("umount", self.path("state")))
        finally:
            self._undo(("losetup", "-d", loop))
            if self.fs.fstype == "btrfs":
                subprocess.run(["btrfs", "device", "scan", "--forget"], capture_output=True)
