"""Group commit: many deliveries made durable together, written once as a sans-IO generator.

An LMTP server (impl/lmtp/) holds messages in memory once their DATA is complete, each with
one or more recipients; every (message, recipient) pair is a `Job`. Jobs that arrive while
a batch is being made durable wait for the next batch, so one journal commit serves many
deliveries. `deliver_batch` runs one batch; `impl.drivers.run_batch_on_os` runs it on the OS
and the checker (harness/batch_machine.py) runs the very same generator on the model. The
steps (spec M1-M5 in specs/requirements.md) reuse `impl/deliver.py`'s, in phases:

  M1  each job: envelope, folder and maildir checks (D2, D4, A1), a fresh name (A2), tmp/NAME
      opened O_EXCL (A3), the headers and the message written, every write checked (A4);
  M2  every file fsynced and closed (A5, A6) - all writes of the batch are issued before
      the first fsync, so the file system commits them together;
  M3  every file linked into its new/ (A8, A9), never over a name;
  M4  each distinct new/ directory fsynced once (A10); a failure takes back the entries
      of every job in that directory;
  M5  only now each job is answered delivered (A12); then the tmp/ names are removed
      (A11). A job that fails at any phase is cleaned up (A13) and answered at once with a
      temporary failure (a permanent one for a refusal by policy or data, D6), and no
      other job is touched.

`BatchSteps` holds the replaceable phases; its defaults are the correct algorithm, and
each flawed batching variant of `impl/catalogue/batching.py` replaces only the phase its
one flaw changes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from maildircheck.impl.deliver import (
    CREATE_FLAGS,
    abandon,
    check_maildir,
    describe,
    discard,
    envelope_headers,
    envelope_problem,
    fresh_name,
    link_into_new,
    prepare_folder,
    write_all,
)
from maildircheck.impl.naming import with_size
from maildircheck.model.outcome import (
    Delivered,
    DeliveryRequest,
    Outcome,
    PermanentFailure,
    TemporaryFailure,
)
from maildircheck.model.record import Record, replace
from maildircheck.model.syscalls import (
    Answer,
    Close,
    Fsync,
    FsyncDir,
    Lstat,
    Mkdir,
    Open,
    SyscallGen,
    call,
)


class Job(Record):
    """One recipient of one message: where (`request`: its maildir, folder and envelope
    headers), what (`data`: the message as received) and who to answer (`token`)."""

    token: int
    request: DeliveryRequest
    data: bytes


class Written(Record):
    """A job whose file is open in tmp/ (M1), then closed (M2), then linked (M3)."""

    job: Job
    root: str  # the maildir (a folder's, for D4)
    tmp: str
    name: str  # the name for new/
    fd: int = -1  # -1 once closed
    final: str = ""  # the name in new/ once linked


Answers = Callable[[list[Written]], SyscallGen[list[Written]]]
"""A phase: takes the jobs still going, answers those that fail, returns the rest."""


def answer(job: Job, outcome: Outcome) -> SyscallGen[None]:
    """The reply for one job (one LMTP reply line). A batch is never interrupted (the
    server finishes its batches before it stops), so no call here needs `finishing`."""
    yield from call(Answer(job.token, outcome))


def fail(item: Written, stage: str, err: OSError) -> SyscallGen[None]:
    """A13 for one job: close its file, remove tmp/NAME, answer a temporary failure."""
    yield from abandon(item.fd, item.tmp)
    yield from answer(item.job, TemporaryFailure(f"{stage}: {describe(err)}"))


def make_parents(maildir: str) -> SyscallGen[None]:
    """M1: with --create, the missing directories above the maildir (a server's template
    such as /srv/mail/%d/%n/Maildir names a new domain and user at once), mode 0700."""
    missing, path = [], os.path.dirname(maildir.rstrip("/"))
    while path not in ("/", ""):
        try:
            yield from call(Lstat(path))
            break
        except OSError as err:
            if err.errno != errno.ENOENT:
                return  # check_maildir says what is wrong
            missing.append(path)
            path = os.path.dirname(path)
    for path in reversed(missing):
        try:
            yield from call(Mkdir(path, 0o700))
        except OSError as err:
            if err.errno != errno.EEXIST:
                return


def check_place(request: DeliveryRequest) -> SyscallGen[DeliveryRequest | Outcome]:
    """M1: the request with its folder resolved (D4) once the maildir is usable (A1), or
    the outcome of a job that cannot go there."""
    try:
        if request.create_dirs:
            yield from make_parents(request.maildir)
        prepared = yield from prepare_folder(request)  # D4
        if not isinstance(prepared, DeliveryRequest):
            return prepared
        refused = yield from check_maildir(prepared)  # A1
    except OSError as err:
        return TemporaryFailure(f"check: {describe(err)}")
    return prepared if refused is None else refused


Places = dict[tuple[str, str, bool], "DeliveryRequest | Outcome"]
"""M1: each (maildir, folder, create) a batch checked, and what the check found: a batch
with many recipients in one mailbox checks it once."""


def open_one(job: Job, places: Places) -> SyscallGen[Written | Outcome]:
    """M1 for one job: the open file in tmp/ with the message written, or the outcome of a
    job that cannot go on (already cleaned up)."""
    request = job.request
    problem = envelope_problem(request)  # D2
    if problem is not None:
        return PermanentFailure(problem, "data")
    if request.refuse_empty and not job.data:  # D6
        return PermanentFailure("empty message", "data")
    key = (request.maildir, request.folder, request.create_dirs)
    if key not in places:
        places[key] = yield from check_place(request)
    place = places[key]
    if not isinstance(place, DeliveryRequest):
        return place
    prepared = replace(request, maildir=place.maildir, folder="", create_dirs=False)
    root = prepared.maildir.rstrip("/")
    for counter in range(prepared.max_name_attempts):  # A2, A3
        name = yield from fresh_name(counter)
        tmp = f"{root}/tmp/{name}"
        try:
            fd = yield from call(Open(tmp, CREATE_FLAGS, 0o600))
            break
        except OSError as err:
            if err.errno != errno.EEXIST:  # a name taken: another name
                return TemporaryFailure(f"create: {describe(err)}")
    else:
        return TemporaryFailure("no free name in tmp/")
    headers = envelope_headers(prepared, None)  # D2
    try:
        if headers:
            yield from write_all(fd, headers)
        yield from write_all(fd, job.data)  # A4
    except OSError as err:
        yield from abandon(fd, tmp)
        return TemporaryFailure(f"write: {describe(err)}")
    size = len(headers) + len(job.data)
    placed = with_size(name, size) if prepared.size_in_name else name  # D5
    return Written(job, root, tmp, placed, fd)


def write_files(jobs: list[Job]) -> SyscallGen[list[Written]]:
    """M1: every job's file written in tmp/; the jobs that cannot be are answered."""
    going = []
    places: Places = {}
    for job in jobs:
        done = yield from open_one(job, places)
        if isinstance(done, Written):
            going.append(done)
        else:
            yield from answer(job, done)
    return going


def sync_files(items: list[Written]) -> SyscallGen[list[Written]]:
    """M2, correct: fsync then close each file, each checked; a failure fails its job."""
    going = []
    for item in items:
        try:
            yield from call(Fsync(item.fd))  # A5
        except OSError as err:
            yield from fail(item, "fsync", err)
            continue
        closed = yield from close_one(item)
        if closed is not None:
            going.append(closed)
    return going


def close_one(item: Written) -> SyscallGen[Written | None]:
    """M2: close the file, checked (A6); None when that failed (the job is answered)."""
    closed = replace(item, fd=-1)  # closed whatever close(2) says
    try:
        yield from call(Close(item.fd))
    except OSError as err:
        yield from fail(closed, "close", err)
        return None
    return closed


def link_files(items: list[Written]) -> SyscallGen[list[Written]]:
    """M3: link each file into its new/ (A8, A9); a failure fails its job."""
    going = []
    for item in items:
        try:
            request = replace(item.job.request, maildir=item.root, folder="")
            final = yield from link_into_new(request, item.tmp, item.name)
        except OSError as err:
            yield from fail(item, "link", err)
            continue
        going.append(replace(item, final=final))
    return going


def take_back(items: list[Written], err: OSError) -> SyscallGen[None]:
    """M4: new/ could not be made durable: each job's entry there is taken back out, and
    the job fails (A13)."""
    for item in items:
        yield from discard(f"{item.root}/new/{item.final}")
        yield from fail(item, "fsync new/", err)


def sync_dirs(items: list[Written]) -> SyscallGen[list[Written]]:
    """M4, correct: fsync each distinct new/ once; if that fails, every job linked into that
    directory has its entry taken back out and fails."""
    going = []
    roots = list(dict.fromkeys(item.root for item in items))
    for root in roots:
        here = [item for item in items if item.root == root]
        try:
            yield from call(FsyncDir(f"{root}/new"))
        except OSError as err:
            yield from take_back(here, err)
            continue
        going += here
    return going


def acknowledge(items: list[Written]) -> SyscallGen[list[Written]]:
    """M5: answer each job delivered (A12), then remove the tmp/ names (A11). The answers
    go first: the removals are cleanup (a tmp/ name left by a crash is the cleaner's, E2),
    and on ext4 each waits on the journal, which would hold every answer of the batch back."""
    for item in items:
        yield from answer(item.job, Delivered(item.final))
    for item in items:
        yield from discard(item.tmp)
    return []


class BatchSteps(Record):
    """The replaceable phases of a batch; the defaults are the correct algorithm."""

    write: Callable[[list[Job]], SyscallGen[list[Written]]] = write_files
    sync: Answers = sync_files
    place: Answers = link_files
    sync_new: Answers = sync_dirs
    finish: Answers = acknowledge


def run_batch(jobs: list[Job], steps: BatchSteps) -> SyscallGen[None]:
    """One batch with `steps` in place of its phases (M1-M5 above): every job is answered
    exactly once."""
    going = yield from steps.write(jobs)
    for phase in (steps.sync, steps.place, steps.sync_new, steps.finish):
        going = yield from phase(going)


GROUP_COMMIT = BatchSteps()


def deliver_batch(jobs: list[Job]) -> SyscallGen[None]:
    """Deliver every job of the batch durably, answering each; see the module docstring."""
    yield from run_batch(jobs, GROUP_COMMIT)
