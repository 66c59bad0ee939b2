"""The strategy registry: names for the correct delivery and the catalogue of flawed ones.

This module owns `CATALOGUE` (registry name -> `StrategyInfo`) and the two ways a command
line names a strategy: a registry name such as `no-fsync`, or `path/to/file.py:function` for
a strategy of one's own. `resolve` turns either into the generator function; `strategy_info`
into its `StrategyInfo`. Bad names raise `StrategyError` with a one-line message.
Importing it imports only the small catalogue modules.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

from maildircheck.impl import deliver as correct
from maildircheck.impl.catalogue import (
    b1_vpopmail,
    b2_no_fsync,
    b3_close_unchecked,
    b4_rename_clobber,
    b5_nonexclusive,
    b6_no_dir_fsync,
    b7_ambiguous_link,
    b8_success_when_gone,
    b9_transient_permanent,
    b10_tmp_leak,
    b11_content_altered,
    b12_pid_only_name,
    b13_stale_nlink,
    b14_fsync_retry,
    b15_short_write_ignored,
    b16_same_name_forever,
    b17_always_defer,
    b18_large_unsynced,
    b19_no_random_name,
)
from maildircheck.model.environments import ENVIRONMENTS, LOCAL
from maildircheck.model.environments import NFS as NFS_ENVIRONMENTS
from maildircheck.model.faults import (
    EIO,
    ENOSPC,
    LOST_REPLY,
    POWER_LOSS,
    REBOOT,
    SHORT_WRITE,
    Fault,
)
from maildircheck.model.outcome import Strategy
from maildircheck.model.persistence import FailedFsync


class StrategyError(ValueError):
    """A strategy spec that names nothing usable; the message is one line."""


@dataclass(frozen=True)
class StrategyInfo:
    """One strategy: what it is called, its function, and what it is expected to break."""

    name: str
    function: Strategy
    bug_class: str | None  # "B1".."B19"; None for the correct algorithm and user files
    summary: str  # the first paragraph of the module's docstring, as one line
    source: str  # one line: the real agent, file/function and version it comes from
    expected: tuple[str, ...]  # property IDs (see PROPERTIES) it is expected to break
    unsafe_on: tuple[str, ...] = ()  # the environments where the flaw really bites
    exposed_by: tuple[Fault, ...] = ()  # the faults that expose it there


def _first_line(doc: str | None) -> str:
    """A docstring's first paragraph, as one line (a sentence is never cut at a line end)."""
    paragraph = (doc or "").strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


# Where a flaw bites, named from the environment table (model/environments.py):
ALL_PROFILES = tuple(e.name for e in LOCAL)  # every local disk
CRASHING = tuple(e.name for e in LOCAL if not e.profile.is_sync)  # unsynced state can be lost
# ... and a directory fsync does not carry the file's data with it (it does on data=journal, S5)
DATA_APART = tuple(n for n in CRASHING if not ENVIRONMENTS[n].profile.data_journaled)
NFS = tuple(e.name for e in NFS_ENVIRONMENTS if e.durable_success_possible)  # can be passed
DROPS_FAILED_WRITEBACK = tuple(  # a failed fsync loses data a retry cannot bring back (F9)
    e.name for e in LOCAL if not e.profile.is_sync and e.profile.failed_fsync is FailedFsync.DROPPED
)


def _entry(
    name: str,
    function: Strategy,
    bug: str | None,
    source: str,
    expected: tuple[str, ...],
    unsafe_on: tuple[str, ...] = ALL_PROFILES,
    exposed_by: tuple[Fault, ...] = (),
) -> StrategyInfo:
    summary = _first_line(sys.modules[function.__module__].__doc__)
    return StrategyInfo(name, function, bug, summary, source, expected, unsafe_on, exposed_by)


_ENTRIES = (
    _entry(
        "correct",
        correct.deliver,
        None,
        "this project, impl/deliver.py (maildir(5) plus a checked fsync of new/)",
        (),
        (),
    ),
    _entry(
        "vpopmail-4.10.14",
        b1_vpopmail.deliver,
        "B1",
        "vpopmail 4.10.3-4.10.14 vdelivermail.c deliver_mail (seed report)",
        ("P1", "P2"),
    ),
    _entry(
        "no-fsync",
        b2_no_fsync.deliver,
        "B2",
        "vpopmail FILE_SYNC off; Courier deliverquota.c; isync FSync no; Dovecot mail_fsync=never",
        ("P1", "P2"),
        DATA_APART,
        (POWER_LOSS,),
    ),
    _entry(
        "close-unchecked",
        b3_close_unchecked.deliver,
        "B3",
        "Courier deliverquota.c (no fsync, close unchecked)",
        ("P1", "P2"),
        CRASHING,
        (ENOSPC,),
    ),
    _entry(
        "rename-clobber",
        b4_rename_clobber.deliver,
        "B4",
        "Dovecot maildir-save.c; isync drv_maildir.c; Exim appendfile.c; OpenSMTPD mail.maildir",
        ("P2", "P3"),
    ),
    _entry(
        "non-exclusive-create",
        b5_nonexclusive.deliver,
        "B5",
        "vpopmail vdelivermail.c deliver_to_maildir; Courier maildrop maildircreate.C",
        ("P1", "P3"),
    ),
    _entry(
        "no-dir-fsync",
        b6_no_dir_fsync.deliver,
        "B6",
        "all but Dovecot: qmail-local.c, Postfix local/maildir.c, Python mailbox.py, ...",
        ("P2",),
        CRASHING,
        (POWER_LOSS,),
    ),
    _entry(
        "ambiguous-link-fails",
        b7_ambiguous_link.deliver,
        "B7",
        "qmail-local.c maildir_child; Python mailbox.py Maildir.add; getmail6; safecat.c",
        ("P6",),
        ALL_PROFILES,
        (LOST_REPLY,),
    ),
    _entry(
        "success-when-gone",
        b8_success_when_gone.deliver,
        "B8",
        "vpopmail vdelivermail.c DeleteMail path (positive errno taken for success)",
        ("P2",),
        ALL_PROFILES,
        (ENOSPC,),
    ),
    _entry(
        "transient-as-permanent",
        b9_transient_permanent.deliver,
        "B9",
        "Postfix src/local/maildir.c (5.2.0 on EIO/EEXIST); Courier deliverquota.c (exit 74)",
        ("P5",),
        ALL_PROFILES,
        (EIO,),
    ),
    _entry(
        "tmp-leak",
        b10_tmp_leak.deliver,
        "B10",
        "Python Lib/mailbox.py Maildir.add (sync/close raising)",
        ("P4",),
        ALL_PROFILES,
        (EIO,),
    ),
    _entry(
        "content-altered",
        b11_content_altered.deliver,
        "B11",
        "OpenSMTPD mail.maildir (line-based copy)",
        ("P1",),
    ),
    _entry(
        "pid-only-name",
        b12_pid_only_name.deliver,
        "B12",
        "cr.yp.to/proto/maildir.html (time.ID.host); rename agents of B4",
        ("P2", "P3"),
        ALL_PROFILES + NFS,
        (),
    ),
    _entry(
        "stale-nlink",
        b13_stale_nlink.deliver,
        "B13",
        "lock-file idiom link + st_nlink == 2; stale NFS attribute caches (nfs(5))",
        ("P6",),
        NFS,
        (),
    ),
    _entry(
        "fsync-retry",
        b14_fsync_retry.deliver,
        "B14",
        "PostgreSQL checkpointer before 11.2 (fsyncgate 2018): a failed fsync retried, trusted",
        ("P1", "P2"),
        DROPS_FAILED_WRITEBACK + NFS,  # NFS: the client drops the pages that failed (R5)
        (EIO, POWER_LOSS),
    ),
    _entry(
        "short-write-ignored",
        b15_short_write_ignored.deliver,
        "B15",
        "the idiom `if (write(fd, buf, n) < 0)`: write(2) NOTES; gnulib full-write.c",
        ("P1",),
        ALL_PROFILES + NFS,
        (SHORT_WRITE,),
    ),
    _entry(
        "same-name-forever",
        b16_same_name_forever.deliver,
        "B16",
        "maildir(5) stat-and-sleep loop without its time update and limit (qmail 1.03)",
        ("P7",),
        ALL_PROFILES,
        (LOST_REPLY,),
    ),
    _entry(
        "always-defer",
        b17_always_defer.deliver,
        "B17",
        "Courier deliverquota's over-quota deferral (exit 75) for every message",
        ("P7",),
        ALL_PROFILES,
        (),
    ),
    _entry(
        "large-mail-unsynced",
        b18_large_unsynced.deliver,
        "B18",
        "a branch only large mail takes (a second write path that lost its fsync)",
        ("P1", "P2"),
        DATA_APART,
        (POWER_LOSS,),
    ),
    _entry(
        "no-random-name",
        b19_no_random_name.deliver,
        "B19",
        "Dovecot maildir-filename.c seconds.M<usec>P<pid>.host, maildir-save.c rename",
        ("P3",),
        ALL_PROFILES + NFS,
        (REBOOT,),
    ),
)

CATALOGUE: dict[str, StrategyInfo] = {info.name: info for info in _ENTRIES}
"""Registry name -> strategy, the correct one first, then the B entries in order."""

_loaded = itertools.count(1)
_files: dict[tuple[Path, int, str], tuple[Strategy, str]] = {}


def _load_file(spec: str) -> tuple[Strategy, str]:
    """`path/to/file.py:function` -> (the function, its module's docstring), loaded once."""
    path_text, _, func_name = spec.rpartition(":")
    path = Path(path_text)
    if not func_name.isidentifier():
        raise StrategyError(f"{spec!r}: name a function after the colon, as {path_text}:deliver")
    if not path.is_file():
        raise StrategyError(f"no such file: {path_text}")
    key = (path.resolve(), path.stat().st_mtime_ns, func_name)
    if key not in _files:
        _files[key] = _exec_file(path, func_name)
    return _files[key]


def _exec_file(path: Path, func_name: str) -> tuple[Strategy, str]:
    path_text = str(path)
    module_name = f"maildircheck_user_strategy_{next(_loaded)}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise StrategyError(f"{path_text} cannot be loaded as Python (is it a .py file?)")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[module_name]
        first = _first_line(str(err)) or "(no message)"
        raise StrategyError(f"{path_text} failed to load: {type(err).__name__}: {first}") from err
    function = getattr(module, func_name, None)
    if function is None:
        raise StrategyError(f"{path_text} has no function {func_name!r}")
    if not callable(function):
        raise StrategyError(f"{path_text}: {func_name!r} is not a function")
    if not inspect.isgeneratorfunction(function):
        raise StrategyError(
            f"{path_text}: {func_name!r} is not a generator function "
            "(a strategy yields its syscalls: see docs/own-agent.md)"
        )
    return function, module.__doc__ or ""


def _is_file_spec(spec: str) -> bool:
    return ":" in spec and spec.rpartition(":")[0].endswith(".py")


def resolve(spec: str) -> Strategy:
    """The strategy named by `spec`: a registry name or `path/to/file.py:function`."""
    return strategy_info(spec).function


def strategy_info(spec: str) -> StrategyInfo:
    """The `StrategyInfo` for `spec`; a user's file gets bug class None and no expectations."""
    info = CATALOGUE.get(spec)
    if info is not None:
        return info
    if spec.endswith(".py"):
        raise StrategyError(f"{spec!r}: name the function too, as {spec}:deliver")
    if not _is_file_spec(spec):
        raise StrategyError(
            f"no strategy named {spec!r} (try: maildircheck list, or path/to/file.py:function)"
        )
    function, module_doc = _load_file(spec)
    summary = _first_line(getattr(function, "__doc__", None)) or _first_line(module_doc)
    return StrategyInfo(spec, function, None, summary, spec.rpartition(":")[0], ())
