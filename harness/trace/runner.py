"""Running a delivery program under strace on a scratch Maildir (the I/O half of `trace`).

This module owns the real run: a scratch directory with `home/` (the working directory
and $HOME) and `Maildir/{tmp,new,cur}` holding one earlier message in cur/, the message
on standard input, `{maildir}` in the command replaced by the Maildir's path (or the path
appended when no argument names it), strace's options (`-f` children, `-y` fd paths,
`-xx` every byte exact, `-s` long enough for any write), optional fault injection, a
time limit, and the Maildir's files before and after. Reading the trace is `trace.reader`'s
job, its meaning `trace.translator`'s, the replay `trace.replay`'s.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

STRACE_CALLS = (
    "%file,%desc,%process,fsync,fdatasync,sync,syncfs,link,linkat,rename,renameat,"
    "renameat2,unlink,unlinkat,mkdir,mkdirat,chdir,fchdir,dup,dup2,dup3,fcntl,close_range"
)
SEED_NAME = "1700000000.M1P1Q1.earlier.example:2,S"
SEED = b"From: earlier@example.org\nSubject: delivered before the traced run\n\nkeep me\n"
DEFAULT_MESSAGE = (
    b"From: Alice Sender <alice@example.org>\n"
    b"To: Bob Rcpt <bob@example.net>\n"
    b"Subject: maildircheck trace\n"
    b"Message-ID: <trace-1@example.org>\n"
    b"\n"
    + b"A line of the body that the checker compares byte for byte.\n" * 8
)
PLACEHOLDER = "{maildir}"


class TraceSetupError(Exception):
    """strace is missing, the command cannot start, a bad option: one line."""


Snapshot = dict[str, bytes | None]  # path relative to the Maildir -> bytes (None: a dir)


@dataclass
class TracedRun:
    command: list[str]
    root: str  # the real Maildir
    cwd: str
    status: int
    signal_name: str | None
    stderr: str
    trace: list[str]
    before: Snapshot
    after: Snapshot
    message: bytes
    inject: tuple[str, ...] = ()
    scratch: str = ""
    timed_out: bool = False
    notes: list[str] = field(default_factory=list)

    def delivered(self) -> dict[str, bytes]:
        """Files in new/ and cur/ after the run that were not there before."""
        return delivered(self.before, self.after)


def delivered(before: Snapshot, after: Snapshot) -> dict[str, bytes]:
    """Files in new/ and cur/ in `after` that are not in `before`."""
    return {
        path: data
        for path, data in sorted(after.items())
        if data is not None and path.split("/", 1)[0] in ("new", "cur") and path not in before
    }


def snapshot(root: str) -> Snapshot:
    """Every directory and regular file under `root` (symlinks are not followed)."""
    found: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames:
            found[os.path.normpath(os.path.join(rel, name))] = None
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as f:
                    found[os.path.normpath(os.path.join(rel, name))] = f.read()
    return found


def inject_option(spec: str) -> str:
    """`fsync:EIO` or `write:ENOSPC:2` (the 2nd call) -> strace's `-e inject=` value; a
    spec already in strace's syntax (`fsync:error=EIO:when=1`) is passed on as it is."""
    if "=" in spec:
        return spec
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("E"):
        raise TraceSetupError(f"bad --inject {spec!r}: use CALL:ERRNO[:N], e.g. fsync:EIO")
    when = parts[2] if len(parts) == 3 else "1"
    if not when.isdigit():
        raise TraceSetupError(f"bad --inject {spec!r}: N must be a number")
    return f"{parts[0]}:error={parts[1]}:when={when}"


def command_for(command: Sequence[str], root: str) -> list[str]:
    """`command` with `{maildir}` replaced by `root`, or `root` appended when no argument
    names it. A program given by a relative path (`./my-agent`) is found from where the
    user stands, not from the scratch directory it runs in."""
    program, *args = command
    if "/" in program and not os.path.isabs(program):
        program = os.path.abspath(program)
    if any(PLACEHOLDER in arg for arg in command):
        return [arg.replace(PLACEHOLDER, root) for arg in (program, *args)]
    return [program, *args, root]


def user_entry(user: str) -> pwd.struct_passwd:
    """The password entry of the user `--user` names; `TraceSetupError` if there is none."""
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise TraceSetupError(f"no such user {user!r}") from None


def give_to(entry: pwd.struct_passwd, top: str) -> None:
    """Make `top` and everything under it the user's, so a program run as them can write."""
    for dirpath, _, filenames in os.walk(top):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)


def child_environment(
    home: str, root: str, user: str | None, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The delivery program's environment: what an MTA sets (HOME, MAILDIR, SENDER,
    RECIPIENT, USER, LOGNAME), PATH, and `env` over it."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "MAILDIR": root,
        "SENDER": "alice@example.org",
        "RECIPIENT": "bob@example.net",
        "USER": user or "root",
        "LOGNAME": user or "root",
        "PYTHONDONTWRITEBYTECODE": "1",  # a Python agent must not write beside its source
        **(env or {}),
    }


@dataclass(frozen=True)
class Finished:
    status: int  # the exit status; negative: killed by that signal
    stderr: str
    timed_out: bool


def run_in_session(
    argv: Sequence[str],
    stdin_path: str,
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    user: pwd.struct_passwd | None = None,
) -> Finished:
    """Run `argv` (as `user`, if given) in a session of its own with `stdin_path` on its
    standard input. At the time limit, and once it has exited, whatever is left of its
    process group is killed: a child it left running would outlive the check. OSError when
    it cannot start."""
    uid = gid = groups = None
    if user is not None:
        uid, gid = user.pw_uid, user.pw_gid
        groups = os.getgrouplist(user.pw_name, user.pw_gid)
    timed_out = False
    with open(stdin_path, "rb") as stdin:
        proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            _, err = proc.communicate()
        _kill_group(proc.pid)
    return Finished(proc.returncode, err.decode("utf-8", "replace"), timed_out)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_traced(
    command: Sequence[str],
    message: bytes = DEFAULT_MESSAGE,
    *,
    inject: Sequence[str] = (),
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    keep: bool = False,
) -> TracedRun:
    """Run `command` under strace with `message` on stdin; the scratch directory is
    removed afterwards unless `keep`."""
    strace = shutil.which("strace")
    if strace is None:
        raise TraceSetupError("strace is not installed (Debian: apt-get install strace)")
    if not command:
        raise TraceSetupError("no command to trace (give it after --)")
    scratch = os.path.realpath(tempfile.mkdtemp(prefix="maildircheck-trace-"))
    try:
        return _run(strace, command, message, inject, user, env, timeout, scratch, keep)
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


def _run(
    strace: str,
    command: Sequence[str],
    message: bytes,
    inject: Sequence[str],
    user: str | None,
    env: Mapping[str, str] | None,
    timeout: float,
    scratch: str,
    keep: bool,
) -> TracedRun:
    home, root = _prepare(scratch, message, user)
    before = snapshot(root)
    argv = command_for(command, root)
    trace_file = f"{scratch}/trace.strace"
    options = [strace, "-f", "-q", "-y", "-xx", "-s", str(1 << 24), "-o", trace_file]
    options += ["-e", f"trace={STRACE_CALLS}", "-e", "signal=none"]
    for spec in inject:
        options += ["-e", f"inject={inject_option(spec)}"]
    if user is not None:
        options += ["-u", user]
    child_env = child_environment(home, root, user, env)
    try:
        done = run_in_session(
            [*options, "--", *argv], f"{scratch}/message", home, child_env, timeout
        )
    except OSError as err:
        raise TraceSetupError(f"cannot run strace: {err}") from None
    status, stderr, timed_out = done.status, done.stderr, done.timed_out
    with open(trace_file, encoding="utf-8", errors="surrogateescape") as f:
        lines = f.readlines()
    signal_name = _killed_by(lines)
    if status < 0 and signal_name is None:
        signal_name = "SIGKILL"
    notes = [f"the run was stopped after {timeout:g} s"] if timed_out else []
    if not lines or (len(lines) < 3 and "execve(" in lines[0] and "= -1 E" in lines[0]):
        said = stderr.strip().splitlines()
        why = said[-1] if said else "strace recorded nothing"
        refused = [line for line in said if "ptrace" in line.lower()]
        if refused:  # a seccomp filter, a container without CAP_SYS_PTRACE, Yama's scope
            raise TraceSetupError(f"not checked: strace cannot trace here ({refused[-1]})")
        raise TraceSetupError(f"command not found or not runnable: {argv[0]} ({why})")
    return TracedRun(
        list(argv), root, home, status, signal_name, stderr.strip(), lines, before,
        snapshot(root), message, tuple(inject), scratch if keep else "", timed_out, notes,
    )


def _prepare(scratch: str, message: bytes, user: str | None) -> tuple[str, str]:
    """The scratch directory's home/ and Maildir/ (one earlier message in cur/) and the
    message file; all given to `user` when the command runs as one."""
    home, root = os.path.join(scratch, "home"), os.path.join(scratch, "Maildir")
    for d in (home, root, f"{root}/tmp", f"{root}/new", f"{root}/cur"):
        os.mkdir(d, 0o700)
    with open(f"{root}/cur/{SEED_NAME}", "wb") as f:
        f.write(SEED)
    with open(f"{scratch}/message", "wb") as f:
        f.write(message)
    if user is not None:
        give_to(user_entry(user), scratch)
    return home, root


@dataclass
class PlainRun:
    status: int  # negative: killed by that signal
    delivered: dict[str, bytes]  # new files in new/ and cur/
    stderr: str
    timed_out: bool


def run_plain(
    command: Sequence[str],
    message: bytes,
    *,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> PlainRun:
    """Run `command` once on a fresh scratch Maildir with `message` on stdin, without
    strace: what it delivers (the message set of trace.messages)."""
    scratch = os.path.realpath(tempfile.mkdtemp(prefix="maildircheck-message-"))
    try:
        home, root = _prepare(scratch, message, user)
        before = snapshot(root)
        argv = command_for(command, root)
        entry = user_entry(user) if user is not None else None
        child_env = child_environment(home, root, user, env)
        try:
            done = run_in_session(argv, f"{scratch}/message", home, child_env, timeout, entry)
        except OSError as err:
            raise TraceSetupError(f"cannot run {argv[0]}: {err.strerror}") from None
        return PlainRun(
            done.status, delivered(before, snapshot(root)), done.stderr.strip(), done.timed_out
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _killed_by(lines: Sequence[str]) -> str | None:
    """The signal that killed the traced command (its first process), if one did."""
    if not lines:
        return None
    first = lines[0].split(" ", 1)[0]
    for line in reversed(lines):
        if line.startswith(first + " +++ killed by "):
            return line.split("killed by ", 1)[1].split()[0]
    return None
