"""Differential test: the model kernel against the real OS, request by request.

Owns the claim that the model's live view behaves like Linux for every request a delivery
agent makes when nothing goes wrong. A Hypothesis state machine runs random fault-free
requests over a small pool of names (so that names collide) on `model.kernel.Kernel` (the
"posix" profile; the live view does not depend on the profile) and, through
`impl.drivers.perform_on_os`, in a fresh temporary directory per example. The replies must
agree after normalising what legitimately differs:

  - errors compare by errno;
  - descriptors: handle k on one side is handle k on the other (the k-th successful open);
  - stat: kind, permission bits, link count and (files only) size compare; dev and times do
    not; inode numbers compare by their equality pattern (two stats name one model inode
    exactly when they name one OS inode; the OS may reuse the number of a dead inode);
  - directory link counts compare only where the file system counts subdirectories (ext4,
    tmpfs, xfs), directory sizes never.

After each example every directory listing, stat and file content of the pool must agree.
Both sides use literally the same absolute paths: the model file system is built with
`FileSystem.with_dirs` on the temporary directory's own path components.

The examples at the bottom pin each divergence found so far, one short request sequence
each (fd fields there name the k-th successful open).
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    multiple,
    rule,
    run_state_machine_as_test,
)

from maildircheck.impl.drivers import perform_on_os
from maildircheck.model.fs import FileSystem
from maildircheck.model.kernel import Kernel, Process
from maildircheck.model.persistence import PROFILES
from maildircheck.model.record import replace
from maildircheck.model.syscalls import (
    Close,
    FileKind,
    Fstat,
    Fsync,
    FsyncDir,
    Link,
    ListDir,
    Lstat,
    Mkdir,
    Open,
    OpenFlag,
    Read,
    Rename,
    Stat,
    StatResult,
    Syscall,
    Unlink,
    Write,
)

F = OpenFlag
NO_STDIN = io.BytesIO(b"")

# Paths are relative to the example's temporary directory until they are run.
SUBDIRS = ("d", "d/tmp", "d/new")  # exist at the start, mode 0o700
FILES = ("d/tmp/a", "d/tmp/b", "d/new/a", "d/new/b")  # where most requests go
PATHS = (
    *FILES,
    "d/a",  # a file or (after mkdir) a directory, and the parent in d/a/b
    "d/x",  # usually a directory someone makes; may be a file
    "d/x/a",
    "d/a/b",  # its parent may be a regular file: ENOTDIR
    "d/tmp",
    "d/new",
    "d/tmp/c",  # mostly made by link and rename
    "d/new/c",
)
PATH = st.sampled_from((*FILES, *FILES, *PATHS))
TARGET = st.sampled_from(("d/tmp/c", "d/new/c", *PATHS))  # for link and rename
NEW_DIR = st.sampled_from(("d/x", "d/x/a", "d/a", "d/a/b", "d/tmp/b", "d/new"))
DIRS = ("d", "d/tmp", "d/new", "d/x", "d/a")

CREATING = (
    F.WRONLY | F.CREAT | F.EXCL,
    F.WRONLY | F.CREAT | F.EXCL | F.NOFOLLOW,
    F.RDWR | F.CREAT | F.EXCL,
    F.WRONLY | F.CREAT | F.TRUNC,
    F.RDWR | F.CREAT,
    F.WRONLY | F.CREAT | F.APPEND,
    F.RDONLY | F.CREAT,
    F.RDONLY | F.CREAT | F.TRUNC,
)
OPENING = (
    F.RDONLY,
    F.RDWR,
    F.WRONLY,
    F.WRONLY | F.TRUNC,
    F.RDWR | F.APPEND,
    F.WRONLY | F.APPEND,
    F.RDONLY | F.DIRECTORY,
    F.WRONLY | F.DIRECTORY,
    F.RDONLY | F.TRUNC,
    F.RDONLY | F.NOFOLLOW,
)
FILE_MODES = (0o600, 0o700)  # no umask clears an owner bit
MODE = st.sampled_from(FILE_MODES)
DIR_MODE = 0o700
BAD_FD = 1_000_000  # never open in this process: EBADF on both sides


# --- the two sides ------------------------------------------------------------------------
def counts_subdirs(base: str) -> bool:
    """Whether directory link counts are 2 + subdirectories here (d has tmp/ and new/)."""
    return os.stat(os.path.join(base, "d")).st_nlink == 4


def model_for(base: str) -> Kernel:
    parts = [p for p in base.split("/") if p]
    ancestors = ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
    dirs = [*ancestors, *(f"{base}/{sub}" for sub in SUBDIRS)]
    return Kernel(FileSystem.with_dirs(*dirs), PROFILES["posix"])


def show(reply: object) -> str:
    if isinstance(reply, OSError):
        return f"OSError(errno={reply.errno} {os.strerror(reply.errno or 0)!r})"
    return repr(reply) if isinstance(reply, bytes | tuple) else str(reply)


@dataclass(frozen=True)
class Handle:
    """One successful open on both sides; `index` counts successful opens from 0."""

    index: int
    model_fd: int
    os_fd: int

    def __repr__(self) -> str:
        return f"handle{self.index}"


@dataclass
class Pair:
    """The model kernel and the OS directory of one example, and a log that reads like strace."""

    base: str = field(
        default_factory=lambda: os.path.realpath(tempfile.mkdtemp(prefix="maildircheck-diff-"))
    )
    kernel: Kernel = field(init=False)
    proc: Process = field(default_factory=lambda: Process("diff", 4242, "model.host"))
    handles: list[Handle] = field(default_factory=list)
    opened: int = 0
    model_to_os_ino: dict[int, int] = field(default_factory=dict)
    os_to_model_ino: dict[int, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    dir_nlink: bool = False
    broken: bool = False  # a request raised or disagreed: the tree is not worth comparing

    def __post_init__(self) -> None:
        for sub in SUBDIRS:
            os.mkdir(os.path.join(self.base, sub), DIR_MODE)
            os.chmod(os.path.join(self.base, sub), DIR_MODE)
        self.kernel = model_for(self.base)
        self.dir_nlink = counts_subdirs(self.base)

    def close(self) -> None:
        for handle in self.handles:
            try:
                os.close(handle.os_fd)
            except OSError:
                pass
        self.handles.clear()
        shutil.rmtree(self.base, ignore_errors=True)

    def abs(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    # -- running one request on both sides ---------------------------------------------
    def run(self, model_req: Syscall[Any], os_req: Syscall[Any] | None = None) -> object:
        """Run on both sides, compare, and return the model's reply."""
        os_req = model_req if os_req is None else os_req
        self.broken = True
        model_reply = self.kernel.execute(self.proc, model_req)
        try:
            os_reply: object = perform_on_os(os_req, NO_STDIN)
        except OSError as err:
            os_reply = err
        shown = str(model_req).replace(self.base, "$T")
        self.log.append(f"  {shown} -> model {show(model_reply)} | os {show(os_reply)}")
        if isinstance(model_req, Open) and isinstance(os_reply, int):
            handle = Handle(
                self.opened, model_reply if isinstance(model_reply, int) else -1, os_reply
            )
            self.handles.append(handle)
            self.opened += 1
        self.compare(model_req, model_reply, os_reply)
        self.broken = False
        return model_reply

    def on(self, handle: Handle, make: Any) -> object:
        """Run the request `make(fd)` on `handle`'s descriptor on each side."""
        return self.run(make(handle.model_fd), make(handle.os_fd))

    def close_handle(self, handle: Handle) -> None:
        self.handles.remove(handle)
        self.on(handle, Close)

    # -- comparing -----------------------------------------------------------------------
    def fail(self, why: str) -> None:
        raise AssertionError(f"{why}\nrequests ($T = {self.base}):\n" + "\n".join(self.log))

    def compare(self, request: Syscall[Any], model_reply: object, os_reply: object) -> None:
        mismatch = f"{request}: model {show(model_reply)}, os {show(os_reply)}"
        mismatch = mismatch.replace(self.base, "$T")
        if isinstance(model_reply, OSError) or isinstance(os_reply, OSError):
            m_errno = model_reply.errno if isinstance(model_reply, OSError) else None
            o_errno = os_reply.errno if isinstance(os_reply, OSError) else None
            if m_errno != o_errno:
                self.fail(mismatch)
            return
        if isinstance(request, Open):
            ok = isinstance(model_reply, int) and isinstance(os_reply, int)
        elif isinstance(model_reply, StatResult) and isinstance(os_reply, StatResult):
            ok = self.same_stat(model_reply, os_reply)
        else:
            ok = model_reply == os_reply
        if not ok:
            self.fail(mismatch)

    def same_stat(self, m: StatResult, o: StatResult) -> bool:
        directory = m.kind is FileKind.DIRECTORY
        if (m.kind, stat.S_IMODE(m.mode) & 0o777) != (o.kind, stat.S_IMODE(o.mode) & 0o777):
            return False
        if (not directory or self.dir_nlink) and m.nlink != o.nlink:
            return False
        if not directory and m.size != o.size:
            return False
        return self.same_inode(m.ino, o.ino)

    def same_inode(self, m_ino: int, o_ino: int) -> bool:
        known = self.model_to_os_ino.get(m_ino)
        if known is not None and known != o_ino:
            return False  # one live model inode, two OS inodes
        owner = self.os_to_model_ino.get(o_ino)
        if owner is not None and owner != m_ino and self.alive(owner):
            return False  # two live model inodes, one OS inode
        self.model_to_os_ino[m_ino] = o_ino
        self.os_to_model_ino[o_ino] = m_ino
        return True

    def alive(self, m_ino: int) -> bool:
        """A model inode whose number the OS may not reuse: it has a name or a descriptor."""
        if any(h.ino == m_ino for h in self.proc.fds.values()):
            return True
        return self.kernel.fs.link_count(m_ino) > 0

    def compare_tree(self) -> None:
        """Every listing, stat and file content in the pool agrees."""
        self.log.append("  -- final state --")
        for rel in (*DIRS, *PATHS):
            self.run(ListDir(self.abs(rel)))
            self.run(Stat(self.abs(rel)))
            ino = self.kernel.fs.find(self.abs(rel))
            if ino is None or self.kernel.fs.inodes[ino].kind is not FileKind.REGULAR:
                continue
            with open(self.abs(rel), "rb") as f:
                on_os = f.read()
            in_model = bytes(self.kernel.fs.inodes[ino].data)
            if in_model != on_os:
                self.fail(f"contents of $T/{rel}: model {in_model!r}, os {on_os!r}")


# --- random sequences -----------------------------------------------------------------------
class ModelVersusOS(RuleBasedStateMachine):
    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.pair = Pair()

    def teardown(self) -> None:
        try:
            if not self.pair.broken:
                self.pair.compare_tree()
        finally:
            self.pair.close()

    @initialize(files=st.sets(st.sampled_from(FILES), min_size=1), data=st.binary(max_size=8))
    def some_files(self, files: set[str], data: bytes) -> None:
        """Start with a few files (with content), so that link, rename and unlink find some."""
        for rel in sorted(files):
            self.pair.run(Open(self.pair.abs(rel), F.WRONLY | F.CREAT | F.EXCL, 0o600))
            handle = self.pair.handles[-1]
            self.pair.on(handle, lambda fd: Write(fd, data))
            self.pair.close_handle(handle)

    def _opened(self, reply: object) -> Any:
        if isinstance(reply, int) and self.pair.handles:
            return self.pair.handles[-1]
        return multiple()

    @rule(target=handles, path=PATH, flags=st.sampled_from(CREATING), mode=MODE)
    def open_creating(self, path: str, flags: OpenFlag, mode: int) -> Any:
        return self._opened(self.pair.run(Open(self.pair.abs(path), flags, mode)))

    @rule(target=handles, path=PATH, flags=st.sampled_from(OPENING))
    def open_existing(self, path: str, flags: OpenFlag) -> Any:
        return self._opened(self.pair.run(Open(self.pair.abs(path), flags)))

    @rule(handle=handles, data=st.binary(min_size=0, max_size=12))
    def write(self, handle: Handle, data: bytes) -> None:
        self.pair.on(handle, lambda fd: Write(fd, data))

    @rule(handle=handles, data=st.binary(min_size=0, max_size=6), at=st.integers(0, 10))
    def pwrite(self, handle: Handle, data: bytes, at: int) -> None:
        self.pair.on(handle, lambda fd: Write(fd, data, at))

    @rule(handle=handles, size=st.integers(min_value=0, max_value=16))
    def read(self, handle: Handle, size: int) -> None:
        self.pair.on(handle, lambda fd: Read(fd, size))

    @rule(handle=handles)
    def fsync(self, handle: Handle) -> None:
        self.pair.on(handle, Fsync)

    @rule(handle=handles)
    def fstat(self, handle: Handle) -> None:
        self.pair.on(handle, Fstat)

    @rule(handle=consumes(handles))
    def close(self, handle: Handle) -> None:
        self.pair.close_handle(handle)

    @rule(make=st.sampled_from((Close, Fsync, Fstat, lambda fd: Write(fd, b"x"))))
    def bad_fd(self, make: Any) -> None:
        self.pair.run(make(BAD_FD))

    @rule(src=PATH, dst=TARGET)
    def link(self, src: str, dst: str) -> None:
        self.pair.run(Link(self.pair.abs(src), self.pair.abs(dst)))

    @rule(src=PATH, dst=TARGET, noreplace=st.booleans())
    def rename(self, src: str, dst: str, noreplace: bool) -> None:
        self.pair.run(Rename(self.pair.abs(src), self.pair.abs(dst), noreplace))

    @rule(path=PATH)
    def unlink(self, path: str) -> None:
        self.pair.run(Unlink(self.pair.abs(path)))

    @rule(path=NEW_DIR)
    def mkdir(self, path: str) -> None:
        self.pair.run(Mkdir(self.pair.abs(path), DIR_MODE))

    @rule(path=PATH, follow=st.booleans())
    def stat(self, path: str, follow: bool) -> None:
        self.pair.run((Stat if follow else Lstat)(self.pair.abs(path)))

    @rule(path=st.sampled_from(DIRS))
    def listdir(self, path: str) -> None:
        self.pair.run(ListDir(self.pair.abs(path)))

    @rule(path=st.sampled_from(DIRS))
    def fsync_dir(self, path: str) -> None:
        self.pair.run(FsyncDir(self.pair.abs(path)))


def test_model_matches_os() -> None:
    run_state_machine_as_test(
        ModelVersusOS,
        settings=settings(
            max_examples=200,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# --- divergences found, pinned -------------------------------------------------------------
def agree(*requests: Syscall[Any]) -> None:
    """Run `requests` (paths relative to the temporary directory; an fd field names the k-th
    successful open) on both sides; they must agree, and so must the tree after."""
    pair = Pair()
    try:
        for request in requests:
            fd = getattr(request, "fd", None)
            if fd is not None:
                handle = next(h for h in pair.handles if h.index == fd)
                pair.on(handle, lambda n, r=request: replace(r, fd=n))
                if isinstance(request, Close):
                    pair.handles.remove(handle)
                continue
            absolute = {
                name: pair.abs(getattr(request, name))
                for name in ("path", "src", "dst")
                if hasattr(request, name)
            }
            pair.run(replace(request, **absolute))
        pair.compare_tree()
    finally:
        pair.close()


PINNED = {
    "mkdir-under-a-file": (Open("d/a", F.WRONLY | F.CREAT, 0o600), Mkdir("d/a/b")),
    "unlink-under-a-file": (Open("d/a", F.WRONLY | F.CREAT, 0o600), Unlink("d/a/b")),
    "link-into-a-file": (Open("d/a", F.WRONLY | F.CREAT, 0o600), Link("d/a", "d/a/b")),
    "rename-into-a-file": (Open("d/a", F.WRONLY | F.CREAT, 0o600), Rename("d/a", "d/a/b")),
    "link-directory-onto-existing-name": (Link("d/tmp", "d/new"),),
    "link-directory-into-missing-dir": (Link("d/tmp", "d/x/a"),),
    "rename-directory-into-itself": (Rename("d/tmp", "d/tmp/a"),),
    "rename-file-onto-its-own-directory": (
        Open("d/tmp/a", F.WRONLY | F.CREAT, 0o600),
        Rename("d/tmp/a", "d/tmp"),
    ),
    "rename-missing-source-into-a-file": (
        Open("d/a", F.WRONLY | F.CREAT, 0o600),
        Rename("d/tmp/c", "d/a/b"),
    ),
    "open-directory-o-creat": (Open("d/tmp", F.RDONLY | F.CREAT, 0o600),),
    "open-directory-o-trunc": (Open("d/tmp", F.RDONLY | F.TRUNC),),
    "rdonly-o-trunc-truncates": (
        Open("d/a", F.WRONLY | F.CREAT, 0o600),
        Write(0, b"hello"),
        Open("d/a", F.RDONLY | F.TRUNC),
        Stat("d/a"),
    ),
    "fstat-directory-replaced-by-rename": (
        Mkdir("d/x"),
        Open("d/x", F.RDONLY | F.DIRECTORY),
        Rename("d/new", "d/x"),
        Fstat(0),
    ),
}


@pytest.mark.parametrize("requests", PINNED.values(), ids=PINNED.keys())
def test_pinned_divergence(requests: tuple[Syscall[Any], ...]) -> None:
    agree(*requests)
