"""Real Postfix and Dovecot on loopback, for tests/test_e2e_mta.py.

Owns: a private Postfix instance and a private Dovecot configured in a test's temp dir
(nothing under /etc is written: the stock master.cf is only read), the recipient account
and a `maildir-deliver` command that account can run, SMTP submission that returns each
message's queue id, waiting on the Postfix log for a delivery status, and stopping every
process it started. docs/end-to-end.md is the same set-up for an admin at a shell.

Two directories: the pytest temp dir holds what root alone reads and writes (main.cf,
master.cf, the queue - daemons enter it as root -, the Postfix log, dovecot.conf and its
log) and is kept by pytest for a post-mortem; pytest's temp dirs are 0700, so a
world-traversable directory made here, and removed on the way out, holds what the daemons
reach after dropping privileges: Postfix's data_directory (the postfix user), the
recipient's home with the Maildir (nobody; Dovecot's imap process too), Dovecot's base_dir
(short, for socket paths under 108 bytes) and its passwd-file (the dovecot user).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shlex
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SBIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
USER_PATH = "/usr/bin:/bin"  # what Postfix's local(8) gives a mailbox_command
RECIPIENT_USER = "nobody"  # an existing unprivileged account; /etc/passwd is not touched
RECIPIENT = "nobody@localhost"
SENDER = "sender@example.org"
MYHOSTNAME = "mta.maildircheck.test"
HELO = "client.maildircheck.test"
IMAP_PASSWORD = "secret"
STOP_SECONDS = 10.0


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def require_root_and(*programs: str) -> dict[str, str]:
    """The absolute path of each program; skip (with the reason) if one is missing."""
    if os.geteuid() != 0:
        pytest.skip("the end-to-end MTA test runs as root (Postfix and Dovecot masters)")
    found = {name: shutil.which(name, path=SBIN_PATH) for name in programs}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        pytest.skip(
            f"not installed: {', '.join(missing)} "
            "(apt-get install postfix dovecot-imapd, as .ci/run does)"
        )
    return {name: path for name, path in found.items() if path is not None}


def recipient_account() -> Account:
    try:
        entry = pwd.getpwnam(RECIPIENT_USER)
    except KeyError:
        pytest.skip(f"no account {RECIPIENT_USER!r} to deliver to")
    if entry.pw_uid == 0:
        pytest.skip(f"{RECIPIENT_USER!r} is uid 0; Postfix never runs a command as root")
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def run_as(
    account: Account, argv: Sequence[str], stdin: bytes = b"", timeout: float = 30
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` as `account`, the way local(8) runs a mailbox_command (cwd /, that PATH)."""
    return subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        user=account.uid,
        group=account.gid,
        extra_groups=[],
        cwd="/",
        env={"PATH": USER_PATH},
        timeout=timeout,
        check=False,
    )


def run_root(argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env={"PATH": SBIN_PATH, "LANG": "C"},
        timeout=timeout,
        check=False,
    )


def start_daemon(argv: Sequence[str], output: Path) -> tuple[int, str]:
    """Run a command that leaves a daemon behind; its output goes to a file, since the
    daemon may keep a pipe open for ever. The exit code and what it printed."""
    with output.open("wb") as out:
        code = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"PATH": SBIN_PATH, "LANG": "C"},
            timeout=60,
            check=False,
        ).returncode
    return code, output.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(done: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if done():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has ended; daemons are not our children to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop_pid(pid: int, what: str) -> str | None:
    """SIGTERM `pid` if it still runs, wait STOP_SECONDS, then SIGKILL; None if it ended."""
    with contextlib.suppress(ProcessLookupError):
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
    if wait_until(lambda: not alive(pid), STOP_SECONDS):
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return f"{what} (pid {pid}) ignored SIGTERM for {STOP_SECONDS:.0f} s and was killed"


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


# --- the delivery agent, as the recipient can run it ---------------------------------------

LAUNCHER = """#!{python} -ISB
# maildir-deliver for a recipient who cannot run the test venv's interpreter, written by
# tests/mta_servers.py: the packages maildircheck.impl and maildircheck.model copied from
# the tested tree into {lib}, run by {python}.
import sys

sys.path.insert(0, {lib!r})
from maildircheck.impl.cli import main

sys.exit(main())
"""
LAUNCHER_PACKAGES = ("maildircheck.impl", "maildircheck.model")  # what maildir-deliver imports


def _works_for(account: Account, argv: Sequence[str]) -> str | None:
    """None if `argv --help` runs as `account`, else why not (one line)."""
    try:
        done = run_as(account, [*argv, "--help"])
    except OSError as err:
        return f"{argv[0]}: {err}"
    if done.returncode == 0 and b"MAILDIR" in done.stdout:
        return None
    last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
    return f"{argv[0]} exits {done.returncode}: {last}"


def _copy_packages(lib: Path) -> None:
    """Copy LAUNCHER_PACKAGES' sources into `lib`, readable by everyone."""
    for name in LAUNCHER_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, name
        source = Path(next(iter(spec.submodule_search_locations)))
        target = lib.joinpath(*name.split("."))
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [lib, *lib.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def delivery_command(account: Account, shared: Path) -> tuple[list[str], str]:
    """How `account` runs maildir-deliver, and a sentence saying which way was taken.

    First choice: the console script next to the interpreter running the tests. When that
    is out of the account's reach (here: the venv's python links into a pyenv under /root,
    mode 0700; a clone in a private directory would do the same), a launcher in `shared`
    runs the same code - the packages copied there - with an interpreter the account can
    run, no older than the one running the tests. Skips, saying why, when neither works.
    """
    script = Path(sys.executable).with_name("maildir-deliver")
    if not script.exists():
        pytest.skip(f"{script} is missing: pip install -e . in the venv running the tests")
    why_not = _works_for(account, [str(script)])
    if why_not is None:
        return [str(script)], f"the console script {script}"
    tried = [why_not]
    version = sys.version_info[:2]
    dotted = ".".join(map(str, version))
    probe = f"import sys; sys.exit(sys.version_info[:2] < {version})"
    for python in dict.fromkeys(
        [os.path.realpath(sys.executable), f"/usr/bin/python{dotted}", "/usr/bin/python3"]
    ):
        try:
            usable = run_as(account, [python, "-IS", "-c", probe]).returncode == 0
        except OSError:
            usable = False
        if not usable:
            tried.append(f"{python}: not a Python >= {dotted} that {account.name} can run")
            continue
        lib = shared / "lib"
        if not lib.exists():
            _copy_packages(lib)
        launcher = shared / "maildir-deliver"
        launcher.write_text(LAUNCHER.format(python=python, lib=str(lib)), encoding="utf-8")
        launcher.chmod(0o755)
        why_not = _works_for(account, [str(launcher)])
        if why_not is None:
            return [str(launcher)], (
                f"{launcher}, which runs the tested code copied to {lib} with {python}, "
                f"because {account.name} cannot run the console script ({tried[0]})"
            )
        tried.append(why_not)
    pytest.skip(f"{account.name} cannot run maildir-deliver: " + "; ".join(tried))


# --- Postfix ---------------------------------------------------------------------------------

_QUEUED = re.compile(rb"queued as ([0-9A-Za-z]+)")


def master_cf(stock: str, port: int) -> str:
    """The stock master.cf with every inet service off, chroot off everywhere, a postlog
    service (maillog_file needs it) and smtpd on 127.0.0.1:`port`."""
    out = []
    has_postlog = False
    for line in stock.splitlines():
        fields = line.split()
        if not fields or line[0] in "# \t":
            out.append(line)
            continue
        if fields[1] == "inet":
            out.append("#" + line)
            continue
        has_postlog |= fields[0] == "postlog"
        fields[4] = "n"
        out.append(" ".join(fields))
    if not has_postlog:
        out.append("postlog unix-dgram n - n - 1 postlogd")
    out.append(f"127.0.0.1:{port} inet n - n - - smtpd")
    return "\n".join(out) + "\n"


@dataclass
class Postfix:
    """One private Postfix instance: `postfix -c config_dir`."""

    config_dir: Path
    queue_dir: Path
    maillog: Path
    port: int
    programs: dict[str, str]
    started: bool = False
    agent: str = "local"  # the delivery agent whose log lines say a message's status

    @classmethod
    def configure(
        cls,
        root: Path,
        shared: Path,
        mailbox_command: Sequence[str],
        programs: dict[str, str],
        lmtp_socket: Path | None = None,
    ) -> Postfix:
        """With `lmtp_socket`, local(8) hands every mailbox delivery to Postfix's lmtp(8)
        client on that socket (mailbox_transport) instead of running the command."""
        config_dir, queue_dir, data_dir = root / "etc", root / "queue", shared / "postfix-data"
        for path in (config_dir, queue_dir, data_dir):
            path.mkdir(parents=True)
        postfix_user = pwd.getpwnam("postfix")
        os.chown(data_dir, postfix_user.pw_uid, postfix_user.pw_gid)
        port = free_port()
        stock = Path("/etc/postfix/master.cf").read_text(encoding="utf-8")
        (config_dir / "master.cf").write_text(master_cf(stock, port), encoding="utf-8")
        level = run_root([programs["postconf"], "-h", "compatibility_level"]).stdout.strip()
        settings = {
            "compatibility_level": level or "2",
            "queue_directory": str(queue_dir),
            "data_directory": str(data_dir),
            "maillog_file": str(root / "maillog"),
            "maillog_file_prefixes": str(root),
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "myhostname": MYHOSTNAME,
            "mydomain": "maildircheck.test",
            "myorigin": "$myhostname",
            "mydestination": "localhost",
            "mynetworks": "127.0.0.0/8",
            "relayhost": "",
            "alias_maps": "",
            "alias_database": "",
            "forward_path": "",  # no .forward lookups in the recipient's real home
            # Never rewrite or add headers for our client, so what was sent is what lands.
            "local_header_rewrite_clients": "",
            "default_transport": "error",  # nothing, not even a bounce, leaves the machine
            "relay_transport": "error",
            "biff": "no",
            "recipient_delimiter": "",
            "mailbox_command": shlex.join(mailbox_command),
        }
        if lmtp_socket is not None:
            del settings["mailbox_command"]
            settings["mailbox_transport"] = f"lmtp:unix:{lmtp_socket}"
            # lmtp(8) breaks lines over 998 bytes with CRLF SPACE by default (so would it
            # for Dovecot's server): off, so that what was sent is what arrives.
            settings["lmtp_line_length_limit"] = "0"
        main_cf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        (config_dir / "main.cf").write_text(main_cf, encoding="utf-8")
        agent = "local" if lmtp_socket is None else "lmtp"
        return cls(config_dir, queue_dir, root / "maillog", port, programs, agent=agent)

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_root([self.programs["postfix"], "-c", str(self.config_dir), *args])

    def check_output(self) -> str:
        """`postfix check`'s complaints: without syslog they only reach a terminal."""
        command = shlex.join([self.programs["postfix"], "-c", str(self.config_dir), "check"])
        script = shutil.which("script", path=SBIN_PATH)
        argv = [script, "-qec", command, "/dev/null"] if script else shlex.split(command)
        done = run_root(argv)
        return (done.stdout + done.stderr).strip() or "(postfix check printed nothing)"

    def start(self) -> None:
        self.started = True
        command = [self.programs["postfix"], "-c", str(self.config_dir), "start"]
        code, said = start_daemon(command, self.config_dir.parent / "start.out")
        if code != 0 or not wait_until(lambda: accepts(self.port), 15):
            pytest.fail(
                f"Postfix did not start (exit {code}; port {self.port}):\n{said}\n"
                f"postfix check:\n{self.check_output()}\nmaillog:\n{self.log()}"
            )

    def stop(self) -> list[str]:
        """Delete every queued message, stop the instance, wait for its master to end."""
        if not self.started:
            return []
        problems = []
        pid = read_pid(self.queue_dir / "pid" / "master.pid")
        purge = run_root([self.programs["postsuper"], "-c", str(self.config_dir), "-d", "ALL"])
        if purge.returncode != 0:
            problems.append(f"postsuper -d ALL: {purge.stderr.strip()}")
        stopped = self._postfix("stop")
        if stopped.returncode != 0:
            problems.append(f"postfix stop: {stopped.stderr.strip()}")
        if pid is not None:
            problem = stop_pid(pid, "the Postfix master")
            if problem:
                problems.append(problem)
        self.started = False
        return problems

    def log(self) -> str:
        try:
            return self.maillog.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no maillog yet)"

    def submit(self, messages: Sequence[tuple[bytes, bool]]) -> list[str]:
        """Send each (wire bytes, 8-bit?) in one SMTP session; the queue id of each.

        The bytes go out as they are (CRLF line ends), dot-stuffed by smtplib; an 8-bit
        message is sent with MAIL FROM ... BODY=8BITMIME."""
        ids = []
        with smtplib.SMTP("127.0.0.1", self.port, local_hostname=HELO, timeout=30) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("8bitmime"), "Postfix does not offer 8BITMIME"
            for data, eightbit in messages:
                code, reply = smtp.mail(SENDER, ["BODY=8BITMIME"] if eightbit else [])
                assert code == 250, reply
                code, reply = smtp.rcpt(RECIPIENT)
                assert code == 250, reply
                code, reply = smtp.data(data)
                found = _QUEUED.search(reply)
                assert code == 250 and found, reply
                ids.append(found.group(1).decode())
        return ids

    def attempts(self, queue_id: str) -> list[tuple[str, str]]:
        """Each delivery attempt (by local(8), or lmtp(8) behind it) logged for `queue_id`:
        its status and log line."""
        pattern = re.compile(
            rf"postfix/{self.agent}\[\d+\]: {queue_id}: to=<{re.escape(RECIPIENT)}>, .* "
            r"status=(\w+) "
        )
        found = (pattern.search(line) for line in self.log().splitlines())
        return [(got.group(1), got.string) for got in found if got]

    def wait_for(
        self, queue_ids: Sequence[str], wanted: str, seconds: float, attempt: int = 1
    ) -> list[str]:
        """The log line of attempt number `attempt` of each message, once that is logged
        with status `wanted`; fails at once when it is logged with another status, and after
        `seconds` with the log."""
        lines: dict[str, str] = {}

        def logged() -> bool:
            for queue_id in queue_ids:
                seen = self.attempts(queue_id)
                if len(seen) < attempt:
                    return False
                status, line = seen[attempt - 1]
                if status != wanted:
                    pytest.fail(f"{queue_id}: {status}, not {wanted}:\n{self.log()}")
                lines[queue_id] = line
            return True

        if not wait_until(logged, seconds):
            pytest.fail(f"not all of {list(queue_ids)} {wanted} in {seconds:.0f} s:\n{self.log()}")
        return [lines[queue_id] for queue_id in queue_ids]

    def flush(self) -> None:
        """Try every deferred message again now (postqueue -f)."""
        done = run_root([self.programs["postqueue"], "-c", str(self.config_dir), "-f"])
        assert done.returncode == 0, done.stderr


# --- Dovecot ---------------------------------------------------------------------------------


@dataclass
class Dovecot:
    """One private Dovecot serving IMAP for the one account, with its own config."""

    config: Path
    base_dir: Path
    log_path: Path
    port: int
    program: str
    started: bool = False

    @classmethod
    def configure(
        cls, root: Path, shared: Path, account: Account, home: Path, maildir: Path, program: str
    ) -> Dovecot:
        version = run_root([program, "--version"]).stdout.split()
        if not version or not re.match(r"2\.[0-3]\.", version[0]):
            pytest.skip(f"the Dovecot config here is written for 2.2/2.3, not {version}")
        root.mkdir(parents=True)
        passwd = shared / "dovecot-passwd"
        passwd.write_text(
            f"{account.name}:{{PLAIN}}{IMAP_PASSWORD}:{account.uid}:{account.gid}::{home}::\n",
            encoding="utf-8",
        )
        passwd.chmod(0o644)  # the auth process reads it as the `dovecot` user
        port = free_port()
        base_dir = shared / "dovecot-run"
        log_path = root / "dovecot.log"
        # INDEX=MEMORY: Dovecot adds no index files of its own next to new/ and cur/.
        (root / "dovecot.conf").write_text(
            f"""\
base_dir = {base_dir}
state_dir = {root / "state"}
log_path = {log_path}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{maildir}:INDEX=MEMORY
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""",
            encoding="utf-8",
        )
        return cls(root / "dovecot.conf", base_dir, log_path, port, program)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no dovecot log)"

    def start(self) -> None:
        self.started = True
        command = [self.program, "-c", str(self.config)]
        code, said = start_daemon(command, self.config.with_name("start.out"))
        if code != 0 or not wait_until(lambda: accepts(self.port), 15):
            pytest.fail(
                f"Dovecot did not start (exit {code}; port {self.port}):\n{said}\n{self.log()}"
            )

    def stop(self) -> list[str]:
        if not self.started:
            return []
        self.started = False
        pid = read_pid(self.base_dir / "master.pid")
        if pid is None:
            return [f"no Dovecot master.pid in {self.base_dir}"]
        problem = stop_pid(pid, "the Dovecot master")
        return [problem] if problem else []


# --- the two together ------------------------------------------------------------------------


@dataclass
class MailSystem:
    account: Account
    maildir: Path
    mailbox_command: list[str]  # maildir-deliver as the recipient runs it, with arguments
    deliver_how: str  # which way of running maildir-deliver was taken, and why
    postfix: Postfix
    dovecot: Dovecot | None
    lmtp: LmtpServer | None = None


@dataclass
class LmtpServer:
    """`maildir-deliver --lmtp`, run as the recipient account, on a UNIX socket that
    Postfix's lmtp(8) client (the postfix user) can reach."""

    command: list[str]
    socket: Path
    log_path: Path
    account: Account
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            process = self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.account.uid,
                group=self.account.gid,
                extra_groups=[],
                cwd="/",
                env={"PATH": USER_PATH},
                start_new_session=True,
            )
        if not wait_until(lambda: self.socket.exists() or process.poll() is not None, 15):
            pytest.fail(f"maildir-deliver --lmtp made no socket in 15 s:\n{self.log()}")
        if process.poll() is not None:
            pytest.fail(f"maildir-deliver --lmtp exited {process.returncode}:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no maildir-deliver --lmtp log)"

    def stop(self) -> list[str]:
        """SIGTERM (it finishes the batches in flight and exits 0); SIGKILL after
        STOP_SECONDS, which is a problem to report."""
        process, self.process = self.process, None
        if process is None:
            return []
        process.terminate()
        try:
            code = process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return [f"maildir-deliver --lmtp ignored SIGTERM for {STOP_SECONDS:.0f} s"]
        return [] if code == 0 else [f"maildir-deliver --lmtp exited {code}:\n{self.log()}"]


@contextlib.contextmanager
def mail_system(tmp_path: Path, imap: bool, lmtp: bool = False) -> Iterator[MailSystem]:
    """Postfix (and, with `imap`, Dovecot) running for one test; everything started is
    stopped and the shared directory removed on the way out, whatever happened. A stop that
    needed SIGKILL or a failed command fails the test after the clean-up. With `lmtp`,
    Postfix delivers through `maildir-deliver --lmtp` (started as the recipient) instead of
    running it per message: the Maildir is then home/<account>/Maildir, from the server's
    template home/%n/Maildir."""
    needed = ["postfix", "postconf", "postsuper", "postqueue"] + (["dovecot"] if imap else [])
    programs = require_root_and(*needed)
    account = recipient_account()
    shared = Path(tempfile.mkdtemp(prefix="maildircheck-e2e-"))
    problems: list[str] = []
    try:
        shared.chmod(0o755)
        home = shared / "home"
        home.mkdir()
        os.chown(home, account.uid, account.gid)
        home.chmod(0o700)
        deliver, how = delivery_command(account, shared)
        maildir = home / "Maildir"
        command = [*deliver, "--exit-codes", "sysexits", "--create", str(maildir)]
        server = None
        if lmtp:
            maildir = home / account.name / "Maildir"
            sockets = shared / "lmtp"
            sockets.mkdir()
            os.chown(sockets, account.uid, account.gid)
            sockets.chmod(0o755)
            command = [
                *deliver, "--lmtp", str(sockets / "sock"), "--maildir", f"{home}/%n/Maildir",
                "--create", "--socket-mode", "666",
            ]  # fmt: skip
            server = LmtpServer(command, sockets / "sock", tmp_path / "lmtp.log", account)
        postfix = Postfix.configure(
            tmp_path / "postfix", shared, command, programs, server.socket if server else None
        )
        dovecot = None
        if imap:
            dovecot = Dovecot.configure(
                tmp_path / "dovecot", shared, account, home, maildir, programs["dovecot"]
            )
        system = MailSystem(account, maildir, command, how, postfix, dovecot, server)
        try:
            if server is not None:
                server.start()
            postfix.start()
            if dovecot is not None:
                dovecot.start()
            yield system
        finally:
            if dovecot is not None:
                problems += dovecot.stop()
            problems += postfix.stop()
            if server is not None:
                problems += server.stop()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    if problems:
        pytest.fail("clean-up: " + "; ".join(problems))
