"""Flawed group commits: the ways batching durable deliveries goes wrong, one flaw each.

Each entry is impl/batch.py's `run_batch` with the `BatchSteps` of one flaw replaced, so
the checker's counterexample (harness/batch_machine.py) is about that flaw alone. They are
the mistakes a server makes when it acknowledges a batch rather than each recipient
(spec M7):

  M7a  answer-before-dir-fsync - each recipient is answered 250 as soon as its file is
       linked into new/, before new/ is fsynced (the reply overtakes the batch's sync);
  M7b  one-dir-fsync - only the first job's new/ is fsynced, as if a batch were one
       mailbox; recipients in any other mailbox are answered 250 with their entry unsynced;
  M7c  fsync-failure-acks-rest - at the first failed fsync that recipient gets 4xx, and
       the files after it are closed unsynced and answered 250 with the rest of the batch.
"""

from __future__ import annotations

from maildircheck.impl.batch import (
    BatchSteps,
    Written,
    answer,
    close_one,
    fail,
    link_files,
    take_back,
)
from maildircheck.impl.deliver import discard
from maildircheck.model.outcome import Delivered
from maildircheck.model.syscalls import Fsync, FsyncDir, SyscallGen, call


def link_and_answer(items: list[Written]) -> SyscallGen[list[Written]]:
    """M7a: link each file, then answer it delivered at once."""
    linked = yield from link_files(items)
    for item in linked:
        yield from answer(item.job, Delivered(item.final))
    return linked


def sync_dirs_answered(items: list[Written]) -> SyscallGen[list[Written]]:
    """M7a: fsync each new/ afterwards; a failure can no longer be answered."""
    for root in dict.fromkeys(item.root for item in items):
        try:
            yield from call(FsyncDir(f"{root}/new"))
        except OSError:
            pass
    return items


def remove_tmp(items: list[Written]) -> SyscallGen[list[Written]]:
    """M7a: A11 only; every job was answered when it was linked."""
    for item in items:
        yield from discard(item.tmp)
    return []


def sync_first_dir(items: list[Written]) -> SyscallGen[list[Written]]:
    """M7b: fsync the new/ of the batch's first job only."""
    if not items:
        return items
    root = items[0].root
    try:
        yield from call(FsyncDir(f"{root}/new"))
    except OSError as err:
        yield from take_back(items, err)
        return []
    return items


def sync_until_failure(items: list[Written]) -> SyscallGen[list[Written]]:
    """M7c: fsync in order; after the first failure the rest are only closed."""
    going = []
    failed = False
    for item in items:
        if not failed:
            try:
                yield from call(Fsync(item.fd))
            except OSError as err:
                failed = True
                yield from fail(item, "fsync", err)
                continue
        closed = yield from close_one(item)
        if closed is not None:
            going.append(closed)
    return going


VARIANTS: dict[str, tuple[str, BatchSteps]] = {
    "answer-before-dir-fsync": (
        "M7a",
        BatchSteps(place=link_and_answer, sync_new=sync_dirs_answered, finish=remove_tmp),
    ),
    "one-dir-fsync": ("M7b", BatchSteps(sync_new=sync_first_dir)),
    "fsync-failure-acks-rest": ("M7c", BatchSteps(sync=sync_until_failure)),
}
"""name -> (spec ID, the batch's steps with that one flaw)."""
