"""Group commit (impl/batch.py, spec M1-M7) on the OS and in the checker.

Owns: the batch delivers every job on the real OS with one fsync per file and one per
distinct new/, answering each job once and only after its new/ was fsynced (strace-free:
the order of the calls is recorded by a wrapping driver); a job that fails is answered 4xx
and no other; the checker holds for the correct batch under every local profile and finds
each flawed variant of impl/catalogue/batching.py where the file system does not mask it.
Budgets are small (seed 1).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from maildircheck.harness.batch_machine import check_batch
from maildircheck.impl import drivers
from maildircheck.impl.batch import GROUP_COMMIT, Job, deliver_batch
from maildircheck.impl.catalogue.batching import VARIANTS
from maildircheck.impl.drivers import run_batch_on_os
from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.outcome import Delivered, DeliveryRequest, TemporaryFailure
from maildircheck.model.syscalls import Answer, Fsync, FsyncDir, Link, Syscall, Unlink

LOCAL = [e.name for e in ENVIRONMENTS.values() if e.mount is None]


def maildir(root: Path, name: str) -> Path:
    for sub in ("tmp", "new", "cur"):
        (root / name / sub).mkdir(parents=True)
    return root / name


def test_a_batch_delivers_every_job_and_answers_each_after_its_new_dir_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = maildir(tmp_path, "a"), maildir(tmp_path, "b")
    jobs = [
        Job(
            1, DeliveryRequest(str(a), return_path=True, sender="s@x", delivered_to="a1@x"), b"m1\n"
        ),
        Job(2, DeliveryRequest(str(a), delivered_to="a2@x"), b"m2\n"),
        Job(3, DeliveryRequest(str(b)), b"m3\r\n\x00\xff"),
    ]
    calls: list[Syscall[Any]] = []
    real = drivers._perform

    def recording(request: Syscall[Any], *args: Any) -> object:
        calls.append(request)
        return real(request, *args)

    monkeypatch.setattr(drivers, "_perform", recording)
    answers: list[tuple[int, object]] = []

    def on_answer(token: int, outcome: object) -> None:
        calls.append(Answer(token, outcome))
        answers.append((token, outcome))

    run_batch_on_os(deliver_batch(jobs), on_answer)
    assert [t for t, _ in answers] == [1, 2, 3]
    assert all(isinstance(o, Delivered) for _, o in answers)
    files = {
        t: (p / "new" / o.name).read_bytes()
        for (t, o), p in zip(answers, (a, a, b), strict=True)
        if isinstance(o, Delivered)
    }
    assert files == {
        1: b"Return-Path: <s@x>\nDelivered-To: a1@x\nm1\n",
        2: b"Delivered-To: a2@x\nm2\n",
        3: b"m3\r\n\x00\xff",
    }
    assert os.listdir(a / "tmp") == os.listdir(b / "tmp") == []
    watched = Fsync | FsyncDir | Link | Answer | Unlink
    kinds = [type(c).__name__ for c in calls if isinstance(c, watched)]
    # every fsync before the first link, each new/ once, the answers, then the tmp/ names
    assert kinds == (
        ["Fsync"] * 3 + ["Link"] * 3 + ["FsyncDir"] * 2 + ["Answer"] * 3 + ["Unlink"] * 3
    )
    assert [c.path for c in calls if isinstance(c, FsyncDir)] == [f"{a}/new", f"{b}/new"]


def test_a_failing_job_is_answered_4xx_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = maildir(tmp_path, "a")
    jobs = [Job(t, DeliveryRequest(str(a)), f"m{t}\n".encode()) for t in (1, 2, 3)]
    real = drivers._perform
    fsyncs = 0

    def second_fsync_fails(request: Syscall[Any], *args: Any) -> object:
        nonlocal fsyncs
        if isinstance(request, Fsync):
            fsyncs += 1
            if fsyncs == 2:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(request, *args)

    monkeypatch.setattr(drivers, "_perform", second_fsync_fails)
    answers: dict[int, object] = {}
    run_batch_on_os(deliver_batch(jobs), lambda t, o: answers.setdefault(t, o))
    assert isinstance(answers[2], TemporaryFailure) and "EIO" in answers[2].reason
    assert isinstance(answers[1], Delivered) and isinstance(answers[3], Delivered)
    assert sorted(p.read_bytes() for p in (a / "new").iterdir()) == [b"m1\n", b"m3\n"]
    assert os.listdir(a / "tmp") == []


@pytest.mark.parametrize("env", LOCAL)
def test_the_checker_holds_for_group_commit(env: str) -> None:
    verdict = check_batch(GROUP_COMMIT, env, max_examples=150, seed=1)
    assert verdict.holds, "\n".join(verdict.timeline)


# Where each flawed variant is caught with this budget and seed, and where the file system
# itself masks it: ext4's one journal commits every directory's entries with any fsync, so
# one-dir-fsync is safe there by accident; ext4 data=journal journals the file data too.
CAUGHT = {
    "answer-before-dir-fsync": ({"ext4-ordered", "ext4-writeback", "btrfs", "posix"}, "P2"),
    "one-dir-fsync": ({"btrfs", "posix"}, "P2"),
    "fsync-failure-acks-rest": ({"ext4-ordered", "ext4-writeback", "btrfs", "posix"}, None),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_checker_finds_each_flawed_batching_variant(variant: str) -> None:
    _, steps = VARIANTS[variant]
    envs, prop = CAUGHT[variant]
    for env in sorted(envs):
        verdict = check_batch(steps, env, max_examples=2000, seed=1, shrink=False)
        assert verdict.violation is not None, f"{variant} not caught under {env}"
        if prop is not None:
            assert verdict.violation.prop == prop, str(verdict.violation)
        assert any("answers #" in line for line in verdict.timeline)
    held = check_batch(steps, "sync", max_examples=100, seed=1)
    assert held.holds, "under sync every call is durable on return: no batching flaw shows"


def test_a_found_violation_is_shrunk_to_a_short_timeline() -> None:
    """Hypothesis's shrinker: the answer-before-dir-fsync counterexample comes out shorter
    than the run that found it, and still ends at the early answer's P2 violation."""
    _, steps = VARIANTS["answer-before-dir-fsync"]
    raw = check_batch(steps, "ext4-ordered", max_examples=300, seed=1, shrink=False)
    shrunk = check_batch(steps, "ext4-ordered", max_examples=300, seed=1)
    assert raw.violation is not None and shrunk.violation is not None
    assert shrunk.violation.prop == "P2"
    assert len(shrunk.timeline) < len(raw.timeline), "\n".join(shrunk.timeline)
    assert shrunk.timeline[-1].startswith("check    VIOLATED P2")
    assert "answers #" in shrunk.timeline[-2]


def test_the_batch_command_says_what_it_found_and_exits_by_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from maildircheck.harness.cli import main

    argv = ["batch", "--env", "ext4-ordered", "--max-examples", "300"]
    assert main([*argv, "--variant", "answer-before-dir-fsync"]) == 1
    said = capsys.readouterr().out
    assert said.startswith("answer-before-dir-fsync  ext4-ordered    violated P2")
    assert "the shrunk run:" in said and "answers #1: delivered" in said
    assert main([*argv, "--variant", "group-commit", "--json", "--max-examples", "50"]) == 0
    (check,) = json.loads(capsys.readouterr().out)["checks"]
    assert (check["variant"], check["verdict"], check["violation"]) == (
        "group-commit",
        "holds",
        None,
    )
    assert main(["batch", "--variant", "no-such"]) == 2
    assert "unknown variant no-such" in capsys.readouterr().err
