"""`trace --faults` (issue 13, item 2; harness/trace/faults.py): every Maildir call of the
clean run made to fail, one run per call and errno, tabulated call -> exit -> verdict; a
fault that hits no Maildir call is "fault missed", never a verdict.

Before: `--inject` counted per process with no check of what it hit, so `close:EIO` could
hit the loader's cache and read as a clean run of the agent's error path. And a failed
close was translated as a successful one, so even a close fault that landed was unseen.

Spec IDs exercised: T8 (every error path), T3 (the replay never guesses).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from maildircheck.harness.cli import main
from maildircheck.harness.trace.faults import ERRNOS, aims, fault_table
from maildircheck.harness.trace.runner import run_traced
from maildircheck.harness.trace.verdicts import check_run


def _needs(*tools: str) -> None:
    for tool in ("strace", *tools):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (.ci/run installs it)")


@pytest.mark.parametrize(
    "command",
    [
        ["safecat", "{maildir}/tmp", "{maildir}/new"],
        ["procmail", "-m", "DEFAULT={maildir}/", "/dev/null"],
    ],
    ids=["safecat", "procmail"],
)
def test_every_maildir_call_fails_in_a_run_of_its_own_and_every_fault_lands(
    command: list[str],
) -> None:
    _needs(command[0])
    clean = check_run(run_traced(command), ["sync", "ext4-ordered"])
    targets = aims(clean.run, clean.events)
    kinds = {type(step.request).__name__ for step, _, _ in targets}
    assert {"Open", "Write", "Fsync", "Close", "Link", "Unlink"} <= kinds, kinds
    rows = fault_table(clean, command, ["sync", "ext4-ordered"], (71, 75, 111))
    assert len(rows) == sum(len(ERRNOS[type(step.request)]) for step, _, _ in targets)
    assert [r.outcome for r in rows if not r.landed] == []
    for row in rows:
        assert row.report is not None
        failed = [e for e in row.report.events if getattr(e, "injected", False)]
        assert failed and all(e.errno == row.errno for e in failed), row.call


def test_the_faults_table_is_in_the_report_and_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    _needs("safecat")
    argv = ["trace", "--faults", "--no-message-set", "--env", "sync", "--", "safecat"]
    argv += ["{maildir}/tmp", "{maildir}/new"]
    assert main(argv) == 0  # under sync safecat holds, and so does each of its error paths
    out = capsys.readouterr().out
    assert "every Maildir call made to fail (18 runs):" in out
    assert "  close(3)  -> EIO: exit 111; 0 file(s) left in tmp/; holds" in out
    assert main([argv[0], "--json", *argv[1:]]) == 0
    faults = json.loads(capsys.readouterr().out)["faults"]
    assert len(faults) == 18 and all(f["landed"] for f in faults)
    assert {f["exit_status"] for f in faults} == {111, 0}  # 0: only the unlink after the link


# Writes to /dev/null once more on every run after the first: the clean run's count of
# write calls no longer points at the message's write.
DRIFTING = """\
import os, sys
state, root = sys.argv[1], sys.argv[2]
runs = int(open(state).read()) if os.path.exists(state) else 0
open(state, "w").write(str(runs + 1))
null = os.open("/dev/null", os.O_WRONLY)
for _ in range(min(runs, 1)):
    os.write(null, b"x")
fd = os.open(f"{root}/tmp/m", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, sys.stdin.buffer.read())
os.fsync(fd)
os.close(fd)
os.link(f"{root}/tmp/m", f"{root}/new/m")
os.unlink(f"{root}/tmp/m")
"""


def test_a_fault_that_hits_no_maildir_call_is_missed_not_a_verdict(tmp_path: Path) -> None:
    _needs()
    agent = tmp_path / "drifting.py"
    agent.write_text(DRIFTING)
    command = [sys.executable, str(agent), str(tmp_path / "runs"), "{maildir}"]
    clean = check_run(run_traced(command), ["sync"])
    rows = fault_table(clean, command, ["sync"], (71, 75, 111))
    writes = [r for r in rows if r.call.startswith("write(")]
    assert writes and all(not r.landed and r.report is None for r in writes)
    assert all(r.outcome.startswith("fault missed") for r in writes)
    assert all(r.landed for r in rows if r.call.startswith("link("))  # its only link: counted right
