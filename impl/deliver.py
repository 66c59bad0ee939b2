"""The correct Maildir delivery algorithm, written once as a sans-IO generator.

It yields `model.syscalls` requests and receives their replies; `impl.drivers` runs it on
the real OS and the checker runs it on the model. The steps (docs/algorithm.md teaches them;
the spec IDs are in specs/requirements.md):

  A1  check the maildir: tmp/ and new/ are real directories (create them only when asked);
  A2  pick a unique name: seconds, M usec, P pid, Q counter, R random, escaped host;
  A3  open tmp/NAME with O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW, 0600; EEXIST -> a fresh name;
  A4  copy standard input, checking every write (short writes continue);
  A5  fsync the file, checked;  A6  close it, checked;
  A7  the 24-hour timer: past the deadline, give up (tmp removed, temporary failure);
  A8  link tmp/NAME to new/NAME - never rename over a name;
  A9  a failed link is resolved by comparing dev+ino of both paths: same inode = linked;
      a true EEXIST -> a fresh name for new/, link again;
  A10 fsync new/ so the new entry is durable;
  A11 unlink tmp/NAME (errors tolerated);  A12 only now report success;
  A13 on any failure remove tmp/NAME and report a temporary failure; a permanent failure
      only for a refusal by policy (tmp/ or new/ is a symlink) or unusable data (D6).

The delivery-agent conventions (the D family; all off in a default `DeliveryRequest`):
  D1  drop a leading mbox `From sender  date` line (A4, `read_head`);
  D2  prepend Return-Path and Delivered-To from the envelope (`envelope_headers`);
  D4  deliver into the Maildir++ folder MAILDIR/.NAME/ (`prepare_folder`, before A1);
  D5  name the file in new/ NAME,S=<size> (A8);  D6  refuse an empty message.

The algorithm is written once, in `run`, with each step a field of `Steps` whose default is
the correct step. `deliver` runs the defaults; each entry of the catalogue of flawed
strategies (impl/catalogue/) replaces only the fields its one flaw changes, so its
counterexample isolates that flaw. Where the file is written is one of them: `write_in`
(A3, tmp/) with `place` (A8-A9, the link into new/); B1 writes in new/ and has nothing
to place.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from maildircheck.impl.naming import (
    NameParts,
    folder_name_ok,
    size_of,
    unique_name,
    with_size,
)
from maildircheck.model.outcome import (
    Delivered,
    DeliveryRequest,
    Outcome,
    PermanentFailure,
    TemporaryFailure,
)
from maildircheck.model.record import Record, replace
from maildircheck.model.syscalls import (
    Close,
    FileKind,
    Fsync,
    FsyncDir,
    GetHostname,
    GetPid,
    GetRandom,
    GetTime,
    Interrupted,
    Link,
    Lstat,
    Mkdir,
    Open,
    OpenFlag,
    R,
    ReadInput,
    StatResult,
    Syscall,
    SyscallGen,
    Unlink,
    Write,
    call,
)

CHUNK = 65536
CREATE_FLAGS = OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.EXCL | OpenFlag.NOFOLLOW


def describe(err: OSError) -> str:
    """`ENOSPC (No space left on device)` - the errno name first, for logs and reports."""
    code = err.errno if err.errno is not None else 0
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def check_maildir(request: DeliveryRequest) -> SyscallGen[Outcome | None]:
    """A1: None when tmp/ and new/ are usable directories, else the failure to report."""
    root = request.maildir.rstrip("/") or "/"
    if request.create_dirs:
        for path in (root, f"{root}/tmp", f"{root}/new", f"{root}/cur"):
            try:
                yield from call(Mkdir(path, 0o700))
            except OSError as err:
                if err.errno != errno.EEXIST:
                    return TemporaryFailure(f"mkdir {path}: {describe(err)}")
    for sub in ("tmp", "new"):
        path = f"{root}/{sub}"
        try:
            st = yield from call(Lstat(path))
        except OSError as err:
            return TemporaryFailure(f"maildir unusable: {path}: {describe(err)}")
        if st.kind is FileKind.SYMLINK:
            return PermanentFailure(f"refusing {path}: it is a symbolic link")
        if st.kind is not FileKind.DIRECTORY:
            return TemporaryFailure(f"maildir unusable: {path} is not a directory")
    return None


def prepare_folder(request: DeliveryRequest) -> SyscallGen[DeliveryRequest | Outcome]:
    """D4: the request to deliver with - for a Maildir++ folder, one whose maildir is
    MAILDIR/.NAME - or the failure to report.

    With `create_dirs` the main maildir is made first, then the folder with its tmp/ new/
    cur/ and the empty `maildirfolder` file that marks it as a folder. With
    `folder_fallback` (a name the mail's sender chose, such as an address extension) the
    folder is used only if it exists and is never created; a folder that does not exist,
    or a name that cannot be a folder, means MAILDIR itself."""
    if not request.folder:
        return request
    main = replace(request, folder="")
    if not folder_name_ok(request.folder):
        if request.folder_fallback:
            return main
        return PermanentFailure(f"refusing folder name {request.folder!r}")
    path = f"{request.maildir.rstrip('/')}/.{request.folder}"
    inner = replace(main, maildir=path)
    if request.folder_fallback:
        try:
            yield from call(Lstat(path))
        except OSError as err:
            if err.errno == errno.ENOENT:
                return main
        return replace(inner, create_dirs=False)
    if request.create_dirs:
        for target in (main, inner):
            refused = yield from check_maildir(target)
            if refused is not None:
                return refused
        marker = f"{path}/maildirfolder"
        try:
            fd = yield from call(Open(marker, OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.NOFOLLOW))
            yield from finishing(Close(fd))
        except OSError as err:
            return TemporaryFailure(f"create {marker}: {describe(err)}")
        return replace(inner, create_dirs=False)
    return inner


def fresh_name(counter: int) -> SyscallGen[str]:
    """A2: a name nobody else can be using, from clock, pid, counter, random and host."""
    now = yield from call(GetTime())
    pid = yield from call(GetPid())
    host = yield from call(GetHostname())
    rnd = yield from call(GetRandom(32))
    parts = NameParts(now.seconds, now.microseconds, pid, counter, rnd, host or "localhost")
    return unique_name(parts)


def write_all(fd: int, data: bytes) -> SyscallGen[None]:
    """A4: write all of `data`, every write checked, continuing after short writes."""
    view = memoryview(data)
    while view:
        written = yield from call(Write(fd, bytes(view)))
        if written <= 0:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        view = view[written:]


class TooLarge(Exception):
    """D9: the message is longer than the request's `max_size`."""


def copy_input(fd: int, first: bytes, room: int | None = None) -> SyscallGen[int]:
    """A4: copy standard input to fd, every write checked; returns the byte count.

    `first` is the input `read_head` already read (b"" only at the end of the input). D9:
    past `room` bytes (None: no limit) it stops, before writing the chunk that crossed."""
    total = 0
    chunk = first
    while chunk:
        if room is not None and total + len(chunk) > room:
            raise TooLarge(f"message larger than {room} bytes")
        yield from write_all(fd, chunk)
        total += len(chunk)
        chunk = yield from call(ReadInput(CHUNK))
    return total


FROM_ = b"From "
ENVELOPE_MAX = 1024
"""D1: how much of a From_ line is kept to find its sender; the rest is read and dropped."""


class Head(Record):
    """The start of the input: `data` is the first bytes of the message proper (b"" only
    at the end of the input), `sender` the sender of a removed From_ line (None: none)."""

    data: bytes
    sender: str | None = None


def envelope_sender(line: bytes) -> str | None:
    """D1: the sender of a From_ line (`From sender  date`, without its newline), None when
    it cannot be read off; Postfix writes MAILER-DAEMON for the null sender, which is ""."""
    rest = line[len(FROM_) :].lstrip(b" ")
    start = 0
    if rest.startswith(b'"'):  # a quoted local part may hold spaces: "a b"@example.org
        start = 1
        while start < len(rest) and rest[start : start + 1] != b'"':
            start += 2 if rest[start : start + 1] == b"\\" else 1  # \" does not end it
        if start >= len(rest):
            return None
    end = rest.find(b" ", start)
    token = rest[:end]
    if end <= 0 or any(byte < 0x20 or byte == 0x7F for byte in token):
        return None
    sender = token.decode("utf-8", "surrogateescape")
    return "" if sender == "MAILER-DAEMON" else sender


def envelope_problem(request: DeliveryRequest) -> str | None:
    """D2/D6: why the envelope values asked for cannot go into a header (a line break or
    NUL would end the header early or forge another), None when they can."""
    asked = (
        ("SENDER", request.sender if request.return_path else None),
        ("the Delivered-To address", request.delivered_to),
    )
    for label, value in asked:
        if value is not None and any(ch in value for ch in "\r\n\0"):
            return f"{label} contains a line break or NUL: {value!r}"
    return None


def envelope_headers(request: DeliveryRequest, from_line_sender: str | None) -> bytes:
    """D2: the header lines to prepend: `Return-Path: <sender>` (SENDER, else the sender of
    the removed From_ line; none when neither is known) and `Delivered-To: <recipient>`."""
    lines = []
    if request.return_path:
        sender = request.sender if request.sender is not None else from_line_sender
        if sender is not None:
            lines.append(f"Return-Path: <{sender}>\n")
    if request.delivered_to:
        lines.append(f"Delivered-To: {request.delivered_to}\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


def read_head(request: DeliveryRequest) -> SyscallGen[Head]:
    """A4/D1: read the first chunk of the input; with `strip_from_line`, a leading
    `From ` line is read to its newline and dropped, however the reads split it, keeping
    at most ENVELOPE_MAX bytes of it."""
    chunk = yield from call(ReadInput(CHUNK))
    if not request.strip_from_line:
        return Head(chunk)
    while chunk and len(chunk) < len(FROM_) and FROM_.startswith(chunk):
        more = yield from call(ReadInput(CHUNK))
        if not more:
            break
        chunk += more
    if not chunk.startswith(FROM_):
        return Head(chunk)
    line = b""
    while True:
        end = chunk.find(b"\n")
        if end >= 0:
            line = (line + chunk[:end])[:ENVELOPE_MAX]
            rest = chunk[end + 1 :]
            break
        line = (line + chunk)[:ENVELOPE_MAX]
        chunk = yield from call(ReadInput(CHUNK))
        if not chunk:  # the input was nothing but the From_ line
            return Head(b"", envelope_sender(line.rstrip(b"\r")))
    while not rest:  # b"" must mean the end of the input, so read past the newline
        rest = yield from call(ReadInput(CHUNK))
        if not rest:
            break
    return Head(rest, envelope_sender(line.rstrip(b"\r")))


def finishing(request: Syscall[R]) -> SyscallGen[R]:
    """Make a call that must not be skipped once the message may be in new/: an
    interruption (SIGTERM, the timer) arriving now is honoured by finishing, so the call
    is made anyway. OSErrors propagate."""
    try:
        return (yield from call(request))
    except Interrupted:
        return (yield from call(request))


def same_inode(a: str, b: str) -> SyscallGen[bool]:
    """A9: do both paths name one inode? (False when either is missing.)"""
    try:
        sa: StatResult = yield from finishing(Lstat(a))
        sb: StatResult = yield from finishing(Lstat(b))
    except OSError:
        return False
    return (sa.dev, sa.ino) == (sb.dev, sb.ino)


def link_into_new(request: DeliveryRequest, tmp: str, name: str) -> SyscallGen[str]:
    """A8-A9: link tmp into new/, never replacing a name; returns the name in new/."""
    root = request.maildir.rstrip("/")
    for attempt in range(request.max_name_attempts):
        if attempt:
            size = size_of(name)  # D5: a fresh name keeps the size
            name = yield from fresh_name(attempt)
            name = name if size is None else with_size(name, size)
        dst = f"{root}/new/{name}"
        try:
            yield from call(Link(tmp, dst))
            return name
        except OSError as err:
            if (yield from same_inode(tmp, dst)):
                return name  # the link happened although its reply said otherwise
            if err.errno != errno.EEXIST:
                raise
    raise OSError(errno.EEXIST, "no free name in new/")


def discard(path: str) -> SyscallGen[None]:
    """Remove `path`, tolerating errors (and finishing through an interruption)."""
    try:
        yield from finishing(Unlink(path))
    except OSError:
        pass


def abandon(fd: int, tmp: str) -> SyscallGen[None]:
    """A13: close what is open and remove the temporary file; errors here change nothing."""
    if fd >= 0:
        try:
            yield from finishing(Close(fd))
        except OSError:
            pass
    if tmp:
        yield from discard(tmp)


NameStep = Callable[[int], SyscallGen[str]]
"""A2: a name for tmp/ (and, by default, new/) given the attempt number."""
CopyStep = Callable[[int, bytes, int | None], SyscallGen[int]]
"""A4: copy standard input into the open file (fd, the input `read_head` already read);
returns the byte count."""
FdStep = Callable[[int], SyscallGen[None]]
"""A5 / A6: fsync or close the file."""
PlaceStep = Callable[[DeliveryRequest, str, str], SyscallGen[str]]
"""A8-A9: put the written file into new/ (request, its path, the name for new/); returns
the name in new/."""
DirStep = Callable[[str, str], SyscallGen[None]]
"""A10: make the new/ entry durable (maildir root, name in new/)."""
FailStep = Callable[[str, "OSError | Interrupted", int, str], SyscallGen[Outcome]]
"""A13: clean up and report (stage, error, open fd or -1, tmp path or "")."""


def fsync_file(fd: int) -> SyscallGen[None]:
    """A5, correct: fsync, checked (an error propagates)."""
    yield from call(Fsync(fd))


def close_file(fd: int) -> SyscallGen[None]:
    """A6, correct: close, checked (an error propagates)."""
    yield from call(Close(fd))


def fsync_new(root: str, final: str) -> SyscallGen[None]:
    """A10, correct: fsync new/; if that fails, take the entry back out and fail."""
    try:
        yield from finishing(FsyncDir(f"{root}/new"))
    except OSError:
        yield from discard(f"{root}/new/{final}")
        raise


def give_up(stage: str, err: OSError | Interrupted, fd: int, tmp: str) -> SyscallGen[Outcome]:
    """A13, correct: close the file, remove tmp/NAME, report a temporary failure."""
    yield from abandon(fd, tmp)
    why = describe(err) if isinstance(err, OSError) else str(err)
    return TemporaryFailure(f"{stage}: {why}")


class Steps(Record):
    """The replaceable steps; the defaults are the correct algorithm. None skips a step.

    `write_in` is the subdirectory where A3 creates the file and A4-A6 write it: tmp/, so
    that new/ only ever shows complete messages (B1's flaw is new/). `place_consumes_tmp`
    is True when, once `place` has run, the written file is the message in new/ - a rename
    moved it there, or it was written there - so there is nothing left to unlink (A11)."""

    name: NameStep = fresh_name
    write_in: str = "tmp"
    create_flags: OpenFlag = CREATE_FLAGS
    copy: CopyStep = copy_input
    sync: FdStep | None = fsync_file
    close: FdStep = close_file
    place: PlaceStep = link_into_new
    place_consumes_tmp: bool = False
    sync_new: DirStep | None = fsync_new
    fail: FailStep = give_up


def run(request: DeliveryRequest, steps: Steps) -> SyscallGen[Outcome]:
    """The delivery algorithm with `steps` in place of its steps (A1-A13, D1-D6 above)."""
    problem = envelope_problem(request)  # D2
    if problem is not None:
        return PermanentFailure(problem, "data")
    tmp = ""
    fd = -1
    stage = "check"
    try:
        prepared = yield from prepare_folder(request)  # D4
        if not isinstance(prepared, DeliveryRequest):
            return prepared
        request = prepared
        root = request.maildir.rstrip("/")
        refused = yield from check_maildir(request)  # A1
        if refused is not None:
            return refused
        start = yield from call(GetTime())
        deadline = start.seconds + request.timeout_seconds
        stage = "create"
        for counter in range(request.max_name_attempts):  # A3
            name = yield from steps.name(counter)
            tmp = f"{root}/{steps.write_in}/{name}"
            try:
                fd = yield from call(Open(tmp, steps.create_flags, 0o600))
                break
            except OSError as err:
                if err.errno != errno.EEXIST:
                    tmp = ""
                    raise
        else:
            tmp = ""
            return TemporaryFailure(f"no free name in {steps.write_in}/")
        stage = "write"
        head = yield from read_head(request)  # A4, D1
        if request.refuse_empty and not head.data:  # D6
            yield from abandon(fd, tmp)
            return PermanentFailure("empty message", "data")
        headers = envelope_headers(request, head.sender)  # D2
        if headers:
            yield from write_all(fd, headers)
        try:
            size = len(headers) + (yield from steps.copy(fd, head.data, request.max_size))  # A4
        except TooLarge as err:  # D9: refused for good, nothing left behind
            yield from abandon(fd, tmp)
            return PermanentFailure(f"{err} (RFC 3463 5.3.4)", "data")
        stage = "fsync"
        if steps.sync is not None:
            yield from steps.sync(fd)  # A5
        stage = "close"
        fd, closing = -1, fd
        yield from steps.close(closing)  # A6
        now = yield from call(GetTime())  # A7
        if now.seconds > deadline:
            raise Interrupted("24-hour delivery timer expired")
        stage = "link"
        placed = with_size(name, size) if request.size_in_name else name  # D5
        final = yield from steps.place(request, tmp, placed)  # A8-A9
        if steps.place_consumes_tmp:
            tmp = ""
        stage = "fsync new/"
        if steps.sync_new is not None:
            yield from steps.sync_new(root, final)  # A10
    except (OSError, Interrupted) as err:
        return (yield from steps.fail(stage, err, fd, tmp))  # A13
    if tmp:
        yield from discard(tmp)  # A11
    return Delivered(final)  # A12


CORRECT = Steps()


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """Deliver standard input into the maildir; see the module docstring for the steps."""
    return (yield from run(request, CORRECT))
