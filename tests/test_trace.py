"""`maildircheck trace`: the strace reader, the translation into the model's calls and the
replay with a crash at every point (specs/requirements.md T1-T6).

Synthetic traces pin the format and every call family; real runs (of maildir-deliver and
of small flawed agents written here) check the whole path from strace to a verdict."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from maildircheck.harness.cli import main
from maildircheck.harness.svg import render_svg
from maildircheck.harness.trace.reader import TraceSyntaxError, decode_string, parse, split_args
from maildircheck.harness.trace.replay import outcome_of, replay
from maildircheck.harness.trace.runner import DEFAULT_MESSAGE, inject_option, run_traced
from maildircheck.harness.trace.translator import Dup, Fork, Seek, Step, Unmodeled, translate
from maildircheck.harness.trace.verdicts import check_run, render
from maildircheck.model.environments import LOCAL
from maildircheck.model.outcome import Delivered, PermanentFailure, TemporaryFailure
from maildircheck.model.syscalls import (
    Close,
    Fsync,
    Link,
    Open,
    OpenFlag,
    Rename,
    Sync,
    Write,
)

MD = "/s/Maildir"
NOREPLACE = "RENAME_NOREPLACE"
NEEDS_STRACE = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")


def hx(text: str) -> str:
    """A string as `strace -xx` prints it."""
    return '"' + "".join(f"\\x{b:02x}" for b in text.encode()) + '"'


def events(trace: str, cwd: str = "/s/home") -> list[object]:
    return list(translate(parse(textwrap.dedent(trace).strip().splitlines()), MD, cwd))


def steps(trace: str, cwd: str = "/s/home") -> list[object]:
    return [e.request for e in events(trace, cwd) if isinstance(e, Step)]


# --- T1: the strace format ----------------------------------------------------------------
def test_strings_decode_hex_c_escapes_and_octal() -> None:
    """T1: -xx hex, C escapes and octal all give the exact bytes; a cut string is refused."""
    assert decode_string(hx("a\0\xff")) == "a\0\xff".encode()
    assert decode_string(r'"a\n\t\"\\\0\101"') == b'a\n\t"\\\x00A'
    with pytest.raises(TraceSyntaxError, match="cut short"):
        decode_string('"abc"...')


def test_arguments_split_at_top_level_commas_only() -> None:
    """T1: commas inside strings, structs, arrays and -y decorations do not split."""
    text = '3</a,b>, [{iov_base="x,y", iov_len=3}], {st_mode=S_IFDIR|0755, ...}, "q,\\"r"'
    assert split_args(text) == (
        "3</a,b>",
        '[{iov_base="x,y", iov_len=3}]',
        "{st_mode=S_IFDIR|0755, ...}",
        '"q,\\"r"',
    )


def test_unfinished_calls_join_their_resumed_half_and_results_are_read() -> None:
    """T1: -f interleaving, padded `=`, errno results, (INJECTED), -y result paths."""
    trace = [
        f"10 openat(AT_FDCWD<{hx('/s')[1:-1]}>, {hx('/s/Maildir/tmp/x')}, O_WRONLY|O_CREAT"
        " <unfinished ...>",
        "11 close(5)                         = -1 EBADF (Bad file descriptor)",
        f"10 <... openat resumed>, 0600)      = 3<{hx('/s/Maildir/tmp/x')[1:-1]}>",
        "10 fsync(3) = -1 EIO (Input/output error) (INJECTED)",
        "10 +++ exited with 75 +++",
    ]
    calls = list(parse(trace))
    assert [c.name for c in calls] == ["close", "openat", "fsync", "+++exit"]
    opened = calls[1]
    assert (opened.line, opened.result, opened.result_path) == (1, 3, "/s/Maildir/tmp/x")
    assert opened.args[-1] == "0600"
    assert (calls[0].errno, calls[0].result) == ("EBADF", -1)
    assert calls[2].injected and calls[2].errno == "EIO"
    assert calls[3].result == 75
    with pytest.raises(TraceSyntaxError):
        list(parse(["10 this is not strace"]))


# --- T2: what touches the Maildir -----------------------------------------------------------
def test_relative_paths_follow_chdir_and_dirfds_and_others_are_dropped() -> None:
    """T2: chdir, openat on a directory fd, `..` normalised; /etc and stdout ignored."""
    found = steps(
        f"""
        1 chdir({hx("/s/Maildir")}) = 0
        1 openat(AT_FDCWD, {hx("tmp//m1")}, O_WRONLY|O_CREAT|O_EXCL, 0600) = 3
        1 openat(AT_FDCWD, {hx("/etc/passwd")}, O_RDONLY) = 4
        1 read(4, {hx("root")}, 4096) = 4
        1 write(3, {hx("Subject: a")}, 10) = 10
        1 write(1, {hx("done")}, 4) = 4
        1 openat(AT_FDCWD, {hx("new/../new")}, O_RDONLY|O_DIRECTORY) = 5
        1 link({hx("tmp/m1")}, {hx("new/m1")}) = 0
        1 fsync(5) = 0
        """
    )
    assert found == [
        Open("/home/user/Maildir/tmp/m1", OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.EXCL, 0o600),
        Write(3, b"Subject: a"),
        Open("/home/user/Maildir/new", OpenFlag.DIRECTORY, 0),
        Link("/home/user/Maildir/tmp/m1", "/home/user/Maildir/new/m1"),
        Fsync(5),
    ]


def test_writev_pwrite_short_writes_renameat2_and_sync() -> None:
    """T2: every write form keeps exactly the bytes the kernel took; RENAME_NOREPLACE and
    sync/syncfs are kept."""
    found = steps(
        f"""
        1 openat(AT_FDCWD, {hx(MD + "/tmp/a")}, O_RDWR|O_CREAT|O_EXCL, 0600) = 3
        1 writev(3, [{{iov_base={hx("ab")}, iov_len=2}}, {{iov_base={hx("cd")}, iov_len=2}}], 2) = 3
        1 pwrite64(3, {hx("XY")}, 2, 10) = 2
        1 renameat2(AT_FDCWD, {hx(MD + "/tmp/a")}, AT_FDCWD, {hx(MD + "/new/a")}, {NOREPLACE}) = 0
        1 syncfs(3) = 0
        """
    )
    assert found[1:] == [
        Write(3, b"abc"),
        Write(3, b"XY", 10),
        Rename("/home/user/Maildir/tmp/a", "/home/user/Maildir/new/a", noreplace=True),
        Sync(),
    ]


def test_dup_fork_exec_and_exit_follow_descriptors() -> None:
    """T2: dup shares a description, a fork copies the table (a child may print first),
    execve closes O_CLOEXEC descriptors, exit closes the rest."""
    found = events(
        f"""
        1 openat(AT_FDCWD, {hx(MD + "/tmp/a")}, O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 3
        1 openat(AT_FDCWD, {hx(MD + "/tmp/b")}, O_WRONLY|O_CREAT|O_EXCL, 0600) = 4
        1 dup2(4, 7) = 7
        1 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
        2 write(7, {hx("x")}, 1) = 1
        1 <... clone resumed>) = 2
        2 execve("/bin/true", ["true"], 0x1 /* 1 vars */) = 0
        2 +++ exited with 0 +++
        1 lseek(4, 0, SEEK_SET) = 0
        """
    )
    kinds = [
        (type(e).__name__, e.request if isinstance(e, Step) else getattr(e, "pid", None))
        for e in found
    ]
    assert isinstance(found[2], Dup) and (found[2].old, found[2].new) == (4, 7)
    assert kinds[3] == ("Step", Write(7, b"x")) and found[3].pid == 2
    assert isinstance(found[4], Fork) and (found[4].parent, found[4].child) == (1, 2)
    closes = [e for e in found[5:] if isinstance(e, Step)]
    assert [c.request for c in closes] == [Close(3), Close(4), Close(7)]  # exec, then exit
    assert isinstance(found[-1], Seek) and found[-1].offset == 0


def test_calls_the_model_lacks_are_reported_not_guessed() -> None:
    """T3: O_TMPFILE, RENAME_EXCHANGE, a link from outside the Maildir, rmdir."""
    found = events(
        f"""
        1 openat(AT_FDCWD, {hx(MD + "/tmp")}, O_RDWR|O_TMPFILE, 0600) = 3
        1 renameat2(AT_FDCWD, {hx(MD + "/a")}, AT_FDCWD, {hx(MD + "/b")}, RENAME_EXCHANGE) = 0
        1 link({hx("/var/spool/x")}, {hx(MD + "/new/x")}) = 0
        1 rmdir({hx(MD + "/tmp")}) = 0
        """
    )
    assert [type(e) for e in found] == [Unmodeled] * 4
    assert "O_TMPFILE" in found[0].why and "RENAME_EXCHANGE" in found[1].why


# --- T4-T5: the replay and its verdicts ---------------------------------------------------
def _agent(writes_first: bool, fsync_dir: bool) -> str:
    """A trace of a delivery: tmp file, write, fsync, close, link into new/ (or the
    vpopmail shape: straight into new/), optionally fsync new/."""
    target = "new" if writes_first else "tmp"
    lines = [
        f"1 openat(AT_FDCWD, {hx(MD + f'/{target}/m')}, O_WRONLY|O_CREAT|O_EXCL, 0600) = 3",
        f"1 write(3, {hx('Subject: x')}, 10) = 5",
        f"1 write(3, {hx('ct: x')}, 5) = 5",
        "1 fsync(3) = 0",
        "1 close(3) = 0",
    ]
    if not writes_first:
        lines.append(f"1 link({hx(MD + '/tmp/m')}, {hx(MD + '/new/m')}) = 0")
    if fsync_dir:
        lines += [
            f"1 openat(AT_FDCWD, {hx(MD + '/new')}, O_RDONLY|O_DIRECTORY) = 4",
            "1 fsync(4) = 0",
            "1 close(4) = 0",
        ]
    if not writes_first:
        lines.append(f"1 unlink({hx(MD + '/tmp/m')}) = 0")
    return "\n".join(lines)


DIRS: dict[str, bytes | None] = {"tmp": None, "new": None, "cur": None}


def _replay(trace: str, env: str, status: int = 0) -> tuple[str, str | None]:
    found = translate(parse(trace.splitlines()), MD, "/s")
    result = replay(found, env, b"Subject: x", DIRS, outcome_of(status))
    return result.verdict, result.violation.prop if result.violation else None


@pytest.mark.parametrize("env", ["sync", "ext4-ordered", "ext4-writeback", "posix"])
def test_the_correct_shape_holds_under_every_profile(env: str) -> None:
    """T4: tmp, write, fsync, close, link, fsync new/, unlink: nothing to find."""
    assert _replay(_agent(writes_first=False, fsync_dir=True), env) == ("holds", None)


def test_a_missing_fsync_of_new_is_p2_except_on_a_sync_mount() -> None:
    """T4/P2: success reported while the link is not yet durable."""
    trace = _agent(writes_first=False, fsync_dir=False)
    assert _replay(trace, "ext4-ordered") == ("violated", "P2")
    assert _replay(trace, "sync") == ("holds", None)


def test_writing_straight_into_new_is_p1_in_the_live_view() -> None:
    """T4/P1: the vpopmail shape shows a partial message to a reader, even on sync."""
    assert _replay(_agent(writes_first=True, fsync_dir=False), "sync") == ("violated", "P1")


def test_a_traced_counterexample_is_the_checkers_record_with_each_strace_line() -> None:
    """Issue 9: a replay's counterexample is the same `Timeline` a model run gives - each
    call numbered with the strace line it came from, the exit, the violation with what the
    maildir holds - rendered as text, JSON and SVG by the checker's one renderer each."""
    trace = _agent(writes_first=True, fsync_dir=False)
    result = replay(
        translate(parse(trace.splitlines()), MD, "/s"), "sync", b"Subject: x", DIRS, outcome_of(0)
    )
    calls = [ln for ln in result.timeline.lines if ln.kind == "syscall"]
    assert calls and all(ln.source.startswith("strace line ") for ln in calls)
    lines = trace.splitlines()
    for ln in calls:  # the source names the line of the trace the call was read from
        call = ln.text.split("(", 1)[0]
        assert call in lines[int(ln.source.rsplit(" ", 1)[1]) - 1]
    assert result.timeline.lines[-1].text.startswith("VIOLATED P1")
    text = result.timeline.render()
    assert f"[{calls[0].source}]" in text and "the maildir now" in text
    assert result.timeline.as_json()[0]["source"] == calls[0].source
    assert f"[{calls[0].source}]" in render_svg(result.timeline)


def test_a_failure_report_is_judged_p4_and_p5() -> None:
    """T5: exit 75 after leaving tmp/m is P4; an injected transient error reported with a
    bouncing exit status is P5."""
    leftover = "\n".join(_agent(False, True).splitlines()[:5])  # stops before link
    assert _replay(leftover, "sync", status=75) == ("violated", "P4")
    clean = leftover + f"\n1 unlink({hx(MD + '/tmp/m')}) = 0"
    assert _replay(clean, "sync", status=75) == ("holds", None)
    assert _replay(clean, "sync", status=1) == ("violated", "P5")


def test_the_replay_stops_where_the_model_and_the_kernel_disagree() -> None:
    """T3: a result the model would not give ends the replay, reported."""
    trace = (
        f"1 openat(AT_FDCWD, {hx(MD + '/tmp/m')}, O_WRONLY|O_CREAT|O_EXCL, 0600)"
        " = -1 EEXIST (File exists)"
    )
    result = replay(translate(parse([trace]), MD, "/s"), "sync", b"x", DIRS, outcome_of(0))
    assert result.verdict == "incomplete"
    assert result.stopped is not None and "EEXIST" in result.stopped


def test_exit_statuses_map_to_reports() -> None:
    """T5: 0 delivered, 71, 75 and 111 temporary (or the list given), others permanent,
    killed no report."""
    assert isinstance(outcome_of(71), TemporaryFailure)
    assert isinstance(outcome_of(0), Delivered)
    assert isinstance(outcome_of(75), TemporaryFailure)
    assert isinstance(outcome_of(111), TemporaryFailure)
    assert isinstance(outcome_of(73), PermanentFailure)
    assert isinstance(outcome_of(73, temporary=(73, 74, 75)), TemporaryFailure)
    assert outcome_of(0, "SIGKILL") is None


def test_inject_specs() -> None:
    assert inject_option("fsync:EIO") == "fsync:error=EIO:when=1"
    assert inject_option("write:ENOSPC:2") == "write:error=ENOSPC:when=2"
    assert inject_option("fsync:error=EIO:when=3+") == "fsync:error=EIO:when=3+"


# --- T6: real runs ------------------------------------------------------------------------
def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "agent.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path), "{maildir}"]


@NEEDS_STRACE
def test_maildir_deliver_itself_holds_under_every_profile() -> None:
    """T6: our own agent, traced like any other, keeps every property."""
    agent = str(Path(sys.executable).with_name("maildir-deliver"))
    report = check_run(run_traced([agent, "{maildir}"]))
    assert report.run.status == 0
    assert [(r.env, r.verdict) for r in report.results] == [
        (e.name, "holds") for e in LOCAL
    ]
    assert list(report.run.delivered().values()) == [DEFAULT_MESSAGE]


@NEEDS_STRACE
def test_a_python_agent_that_skips_fsync_is_caught(tmp_path: Path) -> None:
    """T6: a real program's missing fsync is P1 after a power loss under ext4-ordered."""
    argv = _script(
        tmp_path,
        """
        import os, sys
        md = sys.argv[1]
        data = sys.stdin.buffer.read()
        fd = os.open(f"{md}/tmp/m", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.close(fd)
        os.link(f"{md}/tmp/m", f"{md}/new/m")
        os.unlink(f"{md}/tmp/m")
        """,
    )
    report = check_run(run_traced(argv), ["sync", "ext4-ordered"])
    verdicts = {
        r.env: (r.verdict, r.violation.prop if r.violation else None) for r in report.results
    }
    assert verdicts == {"sync": ("holds", None), "ext4-ordered": ("violated", "P1")}
    assert "never calls fsync" in report.facts


@NEEDS_STRACE
def test_an_agent_that_removes_an_earlier_message_is_p3(tmp_path: Path) -> None:
    """T6: the scratch Maildir holds an earlier message; an agent that clobbers it is P3."""
    argv = _script(
        tmp_path,
        """
        import os, sys
        md = sys.argv[1]
        for name in os.listdir(f"{md}/cur"):
            os.unlink(f"{md}/cur/{name}")
        """,
    )
    report = check_run(run_traced(argv), ["sync"])
    assert report.results[0].violation is not None
    assert report.results[0].violation.prop == "P3"


@NEEDS_STRACE
def test_cli_trace_json_exit_code_and_injection(capsys: pytest.CaptureFixture[str]) -> None:
    """T5/T6: --inject takes a branch the plain run did not; --json is stable; exit 0 when
    everything holds (maildir-deliver fails cleanly and temporarily on an fsync EIO)."""
    agent = str(Path(sys.executable).with_name("maildir-deliver"))
    code = main(["trace", "--env", "posix", "--inject", "fsync:EIO", "--json", "--", agent])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["exit_status"] == 111 and report["outcome"].startswith("temporary failure")
    assert [r["verdict"] for r in report["results"]] == ["holds"]
    assert report["inject"] == ["fsync:EIO"]
    assert report["replay"].startswith("maildircheck trace --env posix --inject fsync:EIO --")


def test_cli_trace_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace"]) == 2
    assert main(["trace", "--env", "nope", "--", "true"]) == 2
    assert "unknown profile" in capsys.readouterr().err


@NEEDS_STRACE
def test_cli_trace_command_not_found(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--", "/nonexistent/agent"]) == 3
    assert "command not found or not runnable" in capsys.readouterr().err


def test_strace_is_present_where_ci_runs() -> None:
    """CI installs strace (.ci/run); a machine without it would skip the real runs above."""
    if shutil.which("strace") is None:
        pytest.skip("strace not installed here")
    out = subprocess.run(["strace", "-V"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("strace -- version")


@NEEDS_STRACE
def test_matrix_has_a_row_per_traced_program(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 4 matrix: traced programs are rows beside the catalogue, each cell linked to
    its counterexample and with the command that replays it."""
    agent = str(Path(sys.executable).with_name("maildir-deliver"))
    flawed = " ".join(_script(tmp_path, "import sys; open(sys.argv[1] + '/new/m', 'w')"))
    out = tmp_path / "m.json"
    code = main(
        ["matrix", "--envs", "sync,posix", "--no-progress", "--format", "json",
         "--output", str(out), "--trace", f"ours={agent} {{maildir}}", "--trace", f"bad={flawed}"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["strategies"] == [] and data["cells"] == []
    rows = {row["program"]: [c["result"] for c in row["cells"]] for row in data["traced"]}
    assert rows == {"ours": ["holds", "holds"], "bad": ["P1 violated", "P1 violated"]}
    bad = data["traced"][1]
    assert "open(" in bad["cells"][0]["counterexample"]
    assert bad["replay"].startswith("maildircheck trace --env sync --env posix --")
    md = main(["matrix", "--envs", "sync", "--no-progress", "--trace", f"bad={flawed}"])
    assert md == 0 and "| bad (traced) | [P1 violated](#bad--sync) |" in capsys.readouterr().out


@NEEDS_STRACE
def test_nfs_environments_replay_on_a_client_host() -> None:
    """T4 on NFS: the replay runs on one client of the server; the correct agent holds on
    a sync export and nothing can on an async one (R2), which the report says."""
    agent = str(Path(sys.executable).with_name("maildir-deliver"))
    report = check_run(run_traced([agent]), ["nfs3-sync", "nfs3-nocto", "nfs3-async-export"])
    assert [r.verdict for r in report.results] == ["holds", "holds", "violated"]  # replayed
    # ... and judged as verify and matrix judge it: the environment's verdict (issue 13)
    assert report.verdicts() == ["holds", "holds", "environment cannot keep it"]
    assert report.holds and not report.violated
    assert report.as_json()["results"][2]["environment_cannot"] is True
    assert report.as_json()["results"][2]["verdict"] == "environment cannot keep it"
    assert any("no agent can keep P1/P2 here" in line for line in render(report))


@NEEDS_STRACE
def test_a_traced_counterexample_is_drawn_as_svg_in_the_html_matrix(tmp_path: Path) -> None:
    """Issue 4 reports: a traced row's counterexample is a timeline diagram too - its
    calls with their strace lines, the exit, and the violation band."""
    flawed = " ".join(_script(tmp_path, "import sys; open(sys.argv[1] + '/new/m', 'w')"))
    out = tmp_path / "m.html"
    args = ["matrix", "--envs", "sync", "--no-progress", "--format", "html"]
    assert main([*args, "--output", str(out), "--trace", f"bad={flawed}"]) == 0
    page = out.read_text()
    section = page[page.index('<section id="bad--sync">') :]
    svg = section[section.index("<svg") : section.index("</svg>")]
    assert 'class="band violation"' in svg
    assert "open(&quot;new/m&quot;" in svg and "[strace line" in svg
