"""The Debian delivery agents under `maildircheck trace` (issue 4); the table of
docs/traced-agents.md is made from these runs.

Owns: each agent - safecat, Courier's deliverquota and maildrop, procmail, mblaze's
mdeliver, getmail6's getmail_maildir, dovecot-lda, Python's mailbox.Maildir and our own
maildir-deliver - run once through the library (`run_traced`, `check_run`) with the command
the document shows. It delivers the message into new/ and changes nothing else (tmp/ empty,
the earlier message kept, nothing created outside the scratch directory, /var/mail
untouched); its own trace shows what it fsyncs and how it moves the file into new/; its
verdict under each profile is the one the document explains. Then the same command with one
injected fault: exit status, what it leaves in tmp/, verdicts. The table rendered from these
runs must be the document's; it and every JSON report are written to
$MAILDIRCHECK_ARTIFACTS/traced-agents (else under tmp_path) and the table is printed. An
agent is skipped only when its program is not installed.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from maildircheck.harness.trace.agent_table import (
    AgentRow,
    embedded,
    placement,
    render_table,
    synced,
    verdict,
    with_table,
)
from maildircheck.harness.trace.reader import decode_string, fd_path, flags_of, parse
from maildircheck.harness.trace.runner import TracedRun, run_traced
from maildircheck.harness.trace.translator import Step
from maildircheck.harness.trace.verdicts import LOCAL_ENVS, TraceReport, check_run

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "traced-agents.md"
BIN = Path(sys.executable).parent
ENVS = LOCAL_ENVS
# The one config file (maildrop needs a filter file); the document shows this line.
MAILFILTER = "printf 'to \"$1\"\\n' > ~/trace.mailfilter && chmod 600 ~/trace.mailfilter"
PY_ADD = (
    "import sys, mailbox; mailbox.Maildir(sys.argv[1], create=False).add(sys.stdin.buffer.read())"
)


def lost_unless_sync(prop: str) -> dict[str, str]:
    return {env: "holds" if env == "sync" else prop for env in ENVS}


HOLDS = dict.fromkeys(ENVS, "holds")


@dataclass(frozen=True)
class Agent:
    name: str
    package: str  # the Debian package (its version goes to the artifacts); "" if none
    command: str  # exactly as docs/traced-agents.md shows it
    syncs: tuple[str, ...]  # what its successful fsyncs flush (agent_table.synced)
    into_new: str  # link or rename (agent_table.placement)
    verdicts: dict[str, str]  # profile -> holds or the violated property
    fault: str  # the --inject of the fault run
    fault_exit: int
    fault_verdict: str  # under every profile
    fault_leaves_tmp: bool
    prepends: tuple[str, ...] = ()  # header fields the agent puts before the message

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        """The table's name for it."""
        return self.name if self.package in ("", self.name) else f"{self.name} ({self.package})"


AGENTS = [
    Agent(
        name="safecat",
        package="safecat",
        command="maildircheck trace -- safecat '{maildir}/tmp' '{maildir}/new'",
        syncs=("file",),
        into_new="link",
        verdicts=lost_unless_sync("P2"),
        fault="fsync:EIO",
        fault_exit=111,
        fault_verdict="holds",
        fault_leaves_tmp=False,
    ),
    Agent(
        name="deliverquota",
        package="maildrop",
        command="maildircheck trace -- deliverquota '{maildir}'",
        syncs=(),
        into_new="link",
        # data=journal commits the data before the link that names it: lost, never partial
        verdicts=lost_unless_sync("P1") | {"ext4-journal": "P2"},
        fault="write:ENOSPC",  # it never calls fsync: an fsync fault would meet nothing
        fault_exit=74,
        fault_verdict="P5",
        fault_leaves_tmp=False,
    ),
    Agent(
        name="maildrop",
        package="maildrop",
        command="maildircheck trace -- maildrop ~/trace.mailfilter '{maildir}/'",
        syncs=("file",),
        into_new="link",
        verdicts=lost_unless_sync("P2"),
        fault="fsync:EIO",
        fault_exit=75,
        fault_verdict="holds",
        fault_leaves_tmp=False,
    ),
    Agent(
        name="procmail",
        package="procmail",
        command="maildircheck trace -- procmail -m 'DEFAULT={maildir}/' /dev/null",
        syncs=("file",),
        into_new="link",
        verdicts=lost_unless_sync("P2"),
        fault="fsync:EIO",
        fault_exit=73,
        fault_verdict="P5",
        fault_leaves_tmp=False,
    ),
    Agent(
        name="mdeliver",
        package="mblaze",
        command="maildircheck trace -- mdeliver '{maildir}'",
        syncs=("file",),
        into_new="rename",
        verdicts=lost_unless_sync("P2"),
        fault="fsync:EIO",
        fault_exit=2,
        fault_verdict="P4",
        fault_leaves_tmp=True,
    ),
    Agent(
        name="getmail_maildir",
        package="getmail6",
        command="maildircheck trace --user nobody -- getmail_maildir '{maildir}/'",
        syncs=("file",),
        into_new="link",
        verdicts=lost_unless_sync("P2"),
        fault="fsync:EIO",
        fault_exit=1,
        fault_verdict="P4",
        fault_leaves_tmp=True,
        prepends=("Return-Path", "Delivered-To"),
    ),
    Agent(
        name="dovecot-lda",
        package="dovecot-core",
        command="maildircheck trace --user nobody -- /usr/lib/dovecot/dovecot-lda -c /dev/null"
        " -o 'mail_location=maildir:{maildir}:INDEX=MEMORY:CONTROL={maildir}/../control'"
        " -o log_path=/dev/stderr -f alice@example.org -a bob@example.net",
        syncs=("file", "new/ (fdatasync)"),
        into_new="rename",
        verdicts=HOLDS,
        fault="fsync:EIO",
        fault_exit=75,
        fault_verdict="holds",
        fault_leaves_tmp=False,
    ),
    Agent(
        name="python-mailbox",
        package="",
        command=f"maildircheck trace -- python3 -c '{PY_ADD}' '{{maildir}}'",
        syncs=("file",),
        into_new="link",
        verdicts=lost_unless_sync("P2"),
        fault="fsync:EIO",
        fault_exit=1,
        fault_verdict="P4",
        fault_leaves_tmp=True,
    ),
    Agent(
        name="maildir-deliver",
        package="",
        command="maildircheck trace -- maildir-deliver '{maildir}'",
        syncs=("file", "new/"),
        into_new="link",
        verdicts=HOLDS,
        fault="fsync:EIO",
        fault_exit=111,
        fault_verdict="holds",
        fault_leaves_tmp=False,
    ),
]


# --- running an agent ----------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    report: TraceReport
    spool_before: list[tuple[str, int, int]]
    spool_after: list[tuple[str, int, int]]


def mail_spool() -> list[tuple[str, int, int]]:
    """/var/mail's entries (name, size, mtime): procmail's fallback when it has no -m."""
    spool = Path("/var/mail")
    if not spool.is_dir():
        return []
    return sorted((p.name, p.lstat().st_size, p.lstat().st_mtime_ns) for p in spool.iterdir())


def argv_of(agent: Agent, home: Path) -> tuple[list[str], str | None]:
    """The document's command as run here: `python3` is this interpreter, `maildir-deliver`
    the console script beside it, `~/` the directory holding the maildrop filter; `--user`
    only when we are root (getmail_maildir and dovecot-lda refuse or need more as root)."""
    words = shlex.split(agent.command)
    assert words[:2] == ["maildircheck", "trace"], agent.command
    options, argv = words[2 : words.index("--")], words[words.index("--") + 1 :]
    user = options[options.index("--user") + 1] if "--user" in options else None
    local = {"python3": sys.executable, "maildir-deliver": str(BIN / "maildir-deliver")}
    argv = [local.get(argv[0], argv[0])] + [
        str(home / arg[2:]) if arg.startswith("~/") else arg for arg in argv[1:]
    ]
    return argv, user if os.geteuid() == 0 else None


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Agent, bool], Run]:
    """Runs an agent (with its fault or not) once per module; later calls reuse the run."""
    home = tmp_path_factory.mktemp("agent-home")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    subprocess.run(["sh", "-c", MAILFILTER], env=env, check=True)
    done: dict[tuple[str, bool], Run] = {}

    def run(agent: Agent, with_fault: bool) -> Run:
        if (agent.name, with_fault) not in done:
            argv, user = argv_of(agent, home)
            if shutil.which(argv[0]) is None:
                pytest.skip(f"{argv[0]} is not installed ({agent.name})")
            before = mail_spool()
            inject = (agent.fault,) if with_fault else ()
            report = check_run(run_traced(argv, inject=inject, user=user))
            done[(agent.name, with_fault)] = Run(report, before, mail_spool())
        return done[(agent.name, with_fault)]

    return run


def made_outside(run: TracedRun) -> list[str]:
    """Names the run created, linked, renamed or removed outside its scratch directory
    (devices excepted: procmail opens /dev/null with O_CREAT)."""
    scratch = os.path.dirname(run.root)
    cwd: dict[int, str] = {}
    found = []

    def path(pid: int, raw: str, dirfd: str | None = None) -> str:
        name = decode_string(raw).decode("utf-8", "surrogateescape")
        base = (fd_path(dirfd) if dirfd else None) or cwd.get(pid, run.cwd)
        return os.path.normpath(os.path.join(base, name))

    for c in parse(run.trace):
        a, names = c.args, []
        if c.failed or c.name.startswith("+++"):
            continue
        if c.name == "chdir":
            cwd[c.pid] = path(c.pid, a[0])
        elif c.name == "creat" or (c.name == "open" and "O_CREAT" in flags_of(a[1])):
            names = [path(c.pid, a[0])]
        elif c.name == "openat" and "O_CREAT" in flags_of(a[2]):
            names = [path(c.pid, a[1], a[0])]
        elif c.name in ("link", "rename"):
            names = [path(c.pid, a[0]), path(c.pid, a[1])]
        elif c.name in ("linkat", "renameat", "renameat2"):
            names = [path(c.pid, a[1], a[0]), path(c.pid, a[3], a[2])]
        elif c.name in ("unlink", "mkdir", "rmdir"):
            names = [path(c.pid, a[0])]
        elif c.name in ("unlinkat", "mkdirat"):
            names = [path(c.pid, a[1], a[0])]
        elif c.name == "symlink":
            names = [path(c.pid, a[1])]
        found += [
            f"line {c.line}: {c.name} {name}"
            for name in names
            if os.path.commonpath([name, scratch]) != scratch and not name.startswith("/dev/")
        ]
    return found


def added(run: TracedRun) -> set[str]:
    """Paths in the Maildir after the run that were not there before."""
    return set(run.after) - set(run.before)


def header_names(text: bytes) -> tuple[str, ...]:
    return tuple(line.split(b":", 1)[0].decode() for line in text.splitlines())


# --- every agent ---------------------------------------------------------------------------
@pytest.mark.parametrize("agent", AGENTS, ids=str)
def test_agent_delivers_and_gets_its_verdicts(
    agent: Agent, traced: Callable[[Agent, bool], Run]
) -> None:
    run = traced(agent, False)
    report, real = run.report, run.report.run
    assert real.status == 0, real.stderr
    delivered = real.delivered()
    assert len(delivered) == 1 and added(real) == set(delivered), sorted(added(real))
    ((name, data),) = delivered.items()
    assert name.startswith("new/")
    assert data.endswith(real.message), data[:200]
    assert header_names(data[: len(data) - len(real.message)]) == agent.prepends
    assert all(real.after.get(path) == was for path, was in real.before.items())  # cur/ too
    assert synced(report) == list(agent.syncs), report.facts
    assert placement(report) == agent.into_new, report.facts
    assert {r.env: verdict(r) for r in report.results} == agent.verdicts, [
        str(r.violation or r.stopped) for r in report.results
    ]
    assert made_outside(real) == []
    assert run.spool_after == run.spool_before, "/var/mail changed"


@pytest.mark.parametrize("agent", AGENTS, ids=str)
def test_agent_with_an_injected_fault(agent: Agent, traced: Callable[[Agent, bool], Run]) -> None:
    run = traced(agent, True)
    report, real = run.report, run.report.run
    assert real.status == agent.fault_exit, real.stderr
    hit = [e for e in report.events if isinstance(e, Step) and e.injected]
    assert hit, f"{agent.fault} never hit a call on the Maildir"
    assert real.delivered() == {}
    left = {path for path in added(real) if path.startswith("tmp/")}
    assert added(real) == left and bool(left) == agent.fault_leaves_tmp, sorted(added(real))
    assert {r.env: verdict(r) for r in report.results} == dict.fromkeys(
        ENVS, agent.fault_verdict
    ), [str(r.violation or r.stopped) for r in report.results]
    assert made_outside(real) == []
    assert run.spool_after == run.spool_before, "/var/mail changed"


# safecat's `fsync(3<.../tmp/N>) = -1 EIO (Input/output error) (INJECTED)` must not read as
# "never calls fsync", deliverquota's `write(3<...>) = -1 ENOSPC (...) (INJECTED)` not as
# "writes 0 bytes in 0 calls": a failed call was made, and failed.
@pytest.mark.parametrize(
    "agent", [a for a in AGENTS if a.name in ("safecat", "deliverquota")], ids=str
)
def test_the_fault_report_does_not_deny_the_failed_call(
    agent: Agent, traced: Callable[[Agent, bool], Run]
) -> None:
    facts = traced(agent, True).report.facts
    denial = {"safecat": "never calls fsync", "deliverquota": "writes 0 bytes in 0 calls"}
    assert denial[agent.name] not in facts, facts
    assert any("failed (-1 E" in fact and "(injected)" in fact for fact in facts), facts


def test_the_outside_check_sees_a_file_made_outside(tmp_path: Path) -> None:
    stray = tmp_path / "stray"
    run = run_traced(["sh", "-c", f": > {stray}; cat > {{maildir}}/new/x"])
    assert run.status == 0 and stray.exists()
    found = made_outside(run)
    assert len(found) == 1 and found[0].endswith(f"openat {stray}"), found


# --- the document --------------------------------------------------------------------------
def artifacts(tmp_path: Path) -> Path:
    base = os.environ.get("MAILDIRCHECK_ARTIFACTS")
    where = Path(base) / "traced-agents" if base else tmp_path / "traced-agents"
    where.mkdir(parents=True, exist_ok=True)
    return where


def versions() -> dict[str, str]:
    """The installed version of each agent's Debian package (dpkg-query), else of what runs
    it here."""
    found = {
        "python-mailbox": f"Python {platform.python_version()}",
        "maildir-deliver": f"maildircheck {metadata.version('maildircheck')}",
    }
    for agent in AGENTS:
        if not agent.package:
            continue
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", agent.package],
            capture_output=True,
            text=True,
            check=False,
        )
        found[agent.name] = done.stdout if done.returncode == 0 else "unknown"
    return found


def test_the_documented_table_is_this_runs(
    traced: Callable[[Agent, bool], Run], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [AgentRow(a.label, traced(a, False).report, traced(a, True).report) for a in AGENTS]
    table = render_table(rows, ENVS)
    out = artifacts(tmp_path)
    (out / "table.md").write_text(table, encoding="utf-8")
    for agent, row in zip(AGENTS, rows, strict=True):
        for kind, report in (("", row.report), (".fault", row.fault)):
            assert report is not None
            text = json.dumps(report.as_json(), indent=2, sort_keys=True)
            (out / f"{agent.name}{kind}.json").write_text(text, encoding="utf-8")
    (out / "versions.json").write_text(json.dumps(versions(), indent=2), encoding="utf-8")
    with capsys.disabled():
        print(f"\ntraced agents (table and JSON reports in {out}):\n{table}")
    document = DOC.read_text(encoding="utf-8")
    if embedded(document) != table:
        fresh = out / "traced-agents.md"
        fresh.write_text(with_table(document, table), encoding="utf-8")
        pytest.fail(
            f"docs/traced-agents.md's table is not this run's; this run's table: "
            f"{out / 'table.md'}, the document with it: {fresh}"
        )


def test_the_document_shows_the_tested_commands() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [line for line in [MAILFILTER, *(a.command for a in AGENTS)] if line not in text]
    assert not missing, f"docs/traced-agents.md lacks: {missing}"
