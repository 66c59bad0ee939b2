"""One verdict vocabulary (issue 13, item 5; harness/vocabulary.py): verify, matrix and
trace say the same of the correct agent on an NFS export that acknowledges writes before
they are stable - "environment cannot keep it", exit 0 - where trace said VIOLATED P1 and
exited 1 before.

Spec IDs exercised: R2 (an async export), T6.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from maildircheck.harness.cli import main
from maildircheck.harness.vocabulary import ENVIRONMENT_CANNOT

ENV = "nfs3-async-export"


def test_the_async_export_case_agrees_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("strace") is None:
        pytest.fail("strace is not installed (.ci/run installs it)")
    verify = ["verify", "--strategy", "correct", "--env", ENV, "--max-examples", "60", "--json"]
    assert main([*verify, "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == ENVIRONMENT_CANNOT
    matrix = ["matrix", "--strategies", "correct", "--envs", ENV, "--max-examples", "60"]
    assert main([*matrix, "--format", "json", "--no-progress"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert [c["result"] for c in cells] == [ENVIRONMENT_CANNOT]
    agent = str(Path(sys.executable).with_name("maildir-deliver"))
    trace = ["trace", "--env", ENV, "--no-message-set", "--json", "--", agent]
    assert main(trace) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "holds"
    assert [r["verdict"] for r in report["results"]] == [ENVIRONMENT_CANNOT]
