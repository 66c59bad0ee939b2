"""A private Dovecot LMTP server for the LMTP benchmark (bench/lmtp_perf.py).

Owns: starting and stopping one Dovecot that speaks LMTP only, configured entirely in a
directory of our own (nothing under /etc is read or written beyond what `dovecot -c`
reads of its own defaults), and running any server command in a process group of its own
that is stopped on every way out (`process_group`, also used for `cmd:` endpoints).
`dovecot_lmtp(root)` writes ROOT/dovecot.conf and yields an `Endpoint`: the unix socket
ROOT/lmtp.sock, a TCP listener on 127.0.0.1 at a free port, and the Maildir template
ROOT/mail/%d/%n/Maildir (any recipient is accepted; each address gets its own Maildir).

The Dovecot set-up follows tests/mta_servers.py (whose helpers are imported): its own
base_dir (ROOT/run), state_dir and log file, `ssl = no`, `protocols = lmtp`,
`lmtp_proxy = no`; a userdb `static` with `allow_all_users=yes`, so every recipient's
userdb lookup succeeds without a passdb lookup, mapping every recipient to one
unprivileged account (`nobody`, as the test suite uses; /etc/passwd is not touched);
an empty passwd-file as the passdb (Dovecot's auth process will not start without a
passdb; nobody can log in with it); `mail_fsync` as asked. Dovecot's index files stay in
the Maildir (its default) unless `memory_index` (then `:INDEX=MEMORY`). Dovecot 2.2/2.3
only: 2.4 changed the configuration language.

ROOT and every directory above it must be traversable by that account (the rig checks),
and ROOT short enough for unix socket paths (108 bytes). The master runs in the
foreground (`dovecot -F`) as our child, in a new session; on the way out its process group
gets SIGTERM, then SIGKILL after STOP_SECONDS, and the rig waits until no process of the
group is left.

Usage (a self-check: one message to two recipients through bench/lmtp_client.py, found
byte for byte in both Maildirs; prints JSON):
    python bench/lmtp_rig.py [--dir /var/tmp] [--fsync optimized|always|never] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests/mta_servers.py, imported as the test suite does
    sys.path.append(str(ROOT))

from lmtp_client import Endpoint, check_maildirs, measure_load  # noqa: E402

from tests.mta_servers import (  # noqa: E402
    RECIPIENT_USER,
    SBIN_PATH,
    STOP_SECONDS,
    Account,
    alive,
    free_port,
    run_root,
    wait_until,
)

FSYNC_MODES = ("optimized", "always", "never")
START_SECONDS = 20.0
LIBEXEC = ("/usr/lib/dovecot", "/usr/libexec/dovecot")
SOCKET_PATH_MAX = 107
HOSTNAME = "lmtp.maildircheck.test"


class RigError(RuntimeError):
    """The server could not be set up, did not start, or did not stop cleanly."""


# --- what is installed -------------------------------------------------------------------


def dovecot_program() -> str | None:
    return shutil.which("dovecot", path=SBIN_PATH)


def dovecot_version(program: str) -> str:
    done = run_root([program, "--version"])
    return done.stdout.strip() or done.stderr.strip()


def lmtp_executable() -> Path | None:
    for directory in LIBEXEC:
        candidate = Path(directory) / "lmtp"
        if candidate.exists():
            return candidate
    return None


def unavailable() -> str | None:
    """Why `dovecot_lmtp` cannot run here, or None."""
    if os.geteuid() != 0:
        return "the Dovecot LMTP rig runs as root (Dovecot's master must)"
    program = dovecot_program()
    if program is None:
        return "not installed: dovecot (apt-get install dovecot-lmtpd)"
    if lmtp_executable() is None:
        return f"not installed: Dovecot's lmtp in {' or '.join(LIBEXEC)} (dovecot-lmtpd)"
    version = dovecot_version(program)
    if not re.match(r"2\.[23]\.", version):
        return f"the Dovecot config here is written for 2.2/2.3, not {version!r}"
    try:
        mail_account()
    except RigError as err:
        return str(err)
    return None


def mail_account(name: str = RECIPIENT_USER) -> Account:
    """The unprivileged account every recipient's mail is stored as."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise RigError(f"no account {name!r} to store mail as") from None
    if entry.pw_uid == 0:
        raise RigError(f"{name!r} is uid 0; Dovecot refuses to deliver as root")
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


# --- process groups ----------------------------------------------------------------------


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes in process group `pgid`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def stop_group(proc: subprocess.Popen[bytes], what: str, first: int | None = None) -> list[str]:
    """Stop the process group `proc` leads: SIGTERM to `first` (a master that shuts its
    children down itself) if given, else to the whole group; then SIGTERM to the group
    if anything is left, and SIGKILL after STOP_SECONDS more. The problems, if any."""
    problems = []
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError):
        if first is not None:
            os.kill(first, signal.SIGTERM)
        else:
            os.killpg(pgid, signal.SIGTERM)
    stopped = wait_until(lambda: not group_members(pgid), STOP_SECONDS)
    if not stopped and first is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        stopped = wait_until(lambda: not group_members(pgid), STOP_SECONDS)
    if not stopped:
        problems.append(f"{what}: processes {group_members(pgid)} ignored SIGTERM; killed")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        wait_until(lambda: not group_members(pgid), STOP_SECONDS)
    try:
        proc.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return problems


@contextlib.contextmanager
def process_group(
    argv: Sequence[str],
    output: Path,
    ready: Callable[[], bool],
    what: str,
    env: dict[str, str] | None = None,
    first: Callable[[], int | None] = lambda: None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` in a new session (its own process group), its output to `output`; yield
    once `ready()` is true. The whole group is stopped however the block is left (see
    stop_group; `first()` names the process to signal first); a stop that needed SIGKILL
    raises RigError after the clean-up (unless the block raised)."""
    with output.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env if env is not None else {"PATH": SBIN_PATH, "LANG": "C"},
        )
    try:
        started = wait_until(lambda: proc.poll() is not None or ready(), START_SECONDS)
        if proc.poll() is not None or not started:
            said = output.read_text(encoding="utf-8", errors="replace")[-3000:]
            if proc.poll() is not None:
                state = f"exited {proc.returncode} before it was ready"
            else:
                state = f"not ready after {START_SECONDS:.0f} s"
            raise RigError(f"{what} did not start: {state}; its output:\n{said}")
        yield proc
    finally:
        problems = stop_group(proc, what, first())
    if problems:
        raise RigError("clean-up: " + "; ".join(problems))


def greets(endpoint: Endpoint) -> bool:
    """True when the endpoint accepts a connection and sends a 220 line."""
    try:
        if endpoint.unix:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(2)
            sock.connect(endpoint.unix)
        else:
            sock = socket.create_connection((endpoint.host, endpoint.port or 0), timeout=2)
        with sock:
            first = sock.recv(512)
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
                sock.recv(512)
            return first.startswith(b"220")
    except OSError:
        return False


# --- Dovecot -----------------------------------------------------------------------------


def traversable(path: Path) -> str | None:
    """None if everyone may search `path` and each directory above it, else the first
    that is not."""
    for directory in [path, *path.parents]:
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            return str(directory)
    return None


def config_text(
    root: Path,
    account: Account,
    fsync: str,
    sock: Path,
    port: int | None,
    memory_index: bool,
) -> str:
    mail = root / "mail"
    index = ":INDEX=MEMORY" if memory_index else ""
    inet = (
        f"""\
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
"""
        if port is not None
        else ""
    )
    return f"""\
# Written by bench/lmtp_rig.py: a private Dovecot that speaks LMTP only.
base_dir = {root / "run"}
state_dir = {root / "state"}
instance_name = maildircheck-lmtp
log_path = {root / "dovecot.log"}
protocols = lmtp
listen = 127.0.0.1
ssl = no
hostname = {HOSTNAME}
lmtp_proxy = no
mail_location = maildir:{mail}/%d/%n/Maildir{index}
mail_fsync = {fsync}
first_valid_uid = {account.uid}
last_valid_uid = {account.uid}
# The auth process needs a passdb to start; this one is empty: nobody can log in.
passdb {{
  driver = passwd-file
  args = {root / "no-logins.passwd"}
}}
# Every recipient exists and is stored as {account.name}: no passdb lookup for LMTP.
userdb {{
  driver = static
  args = uid={account.uid} gid={account.gid} home={mail}/%d/%n allow_all_users=yes
}}
service lmtp {{
  unix_listener {sock} {{
    mode = 0666
  }}
{inet}}}
"""


def effective_config(program: str, config: Path) -> str:
    """`doveconf -n -c CONFIG`: the settings that differ from Dovecot's defaults."""
    doveconf = Path(program).with_name("doveconf")
    done = run_root([str(doveconf if doveconf.exists() else "doveconf"), "-n", "-c", str(config)])
    if done.returncode != 0:
        raise RigError(f"doveconf -n rejects {config}:\n{done.stderr.strip()}")
    return done.stdout


@contextlib.contextmanager
def dovecot_lmtp(
    root: Path,
    fsync: str = "optimized",
    *,
    tcp: bool = True,
    memory_index: bool = False,
    wrap: Sequence[str] = (),
) -> Iterator[Endpoint]:
    """Dovecot LMTP on ROOT/lmtp.sock (and 127.0.0.1:a free port with `tcp`), delivering
    to ROOT/mail/%d/%n/Maildir with `mail_fsync = fsync`. `wrap` is a command prefix for
    the master (e.g. strace ... ); the whole process group is stopped on the way out.
    The Endpoint's `maildir` is that template; ROOT/dovecot.conf and ROOT/dovecot.log
    stay behind for a post-mortem."""
    if fsync not in FSYNC_MODES:
        raise ValueError(f"mail_fsync is one of {FSYNC_MODES}, not {fsync!r}")
    why = unavailable()
    if why is not None:
        raise RigError(why)
    program = dovecot_program()
    assert program is not None
    account = mail_account()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    blocked = traversable(root)
    if blocked is not None:
        raise RigError(f"{blocked} is not searchable by others; {account.name} must reach {root}")
    sock = root / "lmtp.sock"
    if len(str(root / "run" / "token-login" / "tokenlogin")) > SOCKET_PATH_MAX:
        raise RigError(f"{root} is too long for unix socket paths under it")
    mail = root / "mail"
    mail.mkdir(exist_ok=True)
    os.chown(mail, account.uid, account.gid)
    passwd = root / "no-logins.passwd"
    passwd.write_text("", encoding="utf-8")
    passwd.chmod(0o644)
    port = free_port() if tcp else None
    config = root / "dovecot.conf"
    config.write_text(config_text(root, account, fsync, sock, port, memory_index), encoding="utf-8")
    effective_config(program, config)  # a config Dovecot rejects fails here, with its words
    endpoint = Endpoint(unix=str(sock), port=port, maildir=f"{mail}/%d/%n/Maildir")

    def ready() -> bool:
        return greets(endpoint) and (port is None or greets(endpoint.over_tcp()))

    argv = [*wrap, program, "-F", "-c", str(config)]
    try:
        what = f"Dovecot ({program} -F)"
        with process_group(argv, root / "master.out", ready, what, first=lambda: master_pid(root)):
            yield endpoint
    except RigError as err:
        raise RigError(f"{err}\n{tail(root / 'dovecot.log')}") from None


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no {path.name})"
    return f"last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])


def master_pid(root: Path) -> int | None:
    """The running master's pid, from base_dir/master.pid."""
    try:
        pid = int((root / "run" / "master.pid").read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


# --- the self-check ----------------------------------------------------------------------


def self_check(root: Path, fsync: str) -> dict[str, Any]:
    """Start Dovecot, deliver one message to two recipients, over the unix socket and over
    TCP, check both Maildirs byte for byte."""
    program = dovecot_program() or "dovecot"
    result: dict[str, Any] = {"dovecot_version": dovecot_version(program), "fsync": fsync}
    with dovecot_lmtp(root, fsync) as endpoint:
        result["endpoint"] = {"unix": endpoint.unix, "tcp_port": endpoint.port}
        result["maildir_template"] = endpoint.maildir
        for name, where in (("unix", endpoint), ("tcp", endpoint.over_tcp())):
            load = measure_load(where, 1, 2, 1, 4096, domain=f"{name}.example.org", tag=name)
            result[name] = {"load": load.report(), "delivered": check_maildirs(where, load)}
        result["master_pid"] = master_pid(root)
    result["doveconf_n"] = effective_config(program, root / "dovecot.conf").splitlines()
    result["ok"] = all(result[k]["delivered"]["ok"] for k in ("unix", "tcp"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp", help="where the server's directory is made")
    parser.add_argument("--fsync", default="optimized", choices=FSYNC_MODES)
    parser.add_argument("--keep", action="store_true", help="keep the directory")
    args = parser.parse_args()
    why = unavailable()
    if why is not None:
        sys.exit(f"lmtp_rig: {why}")
    work = Path(tempfile.mkdtemp(prefix="lmtp-rig-", dir=args.dir))
    work.chmod(0o755)  # mkdtemp makes it 0700; the mail account must pass through
    started = time.monotonic()
    try:
        result = self_check(work / "dovecot", args.fsync)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
