"""One campaign on one Redis server (issue 12, docs/campaigns.md section 4): two worker
processes search the same target with MAILDIRCHECK_DB pointing at a redis-server this test
starts (Debian's, on a Unix socket in a scratch directory), and a third process, which may
only replay what the database holds (Hypothesis's reuse phase, no generation), fails with
the same violation - so a failure one worker found replays anywhere that can reach the
server.

Needs `redis-server` (.ci/run installs it, with the pinned `redis` client of pyproject.toml):
where it is missing the test fails and says so, it never passes without the server.

Spec IDs exercised: E1 (the campaign targets), P1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TARGET = ("vpopmail-4.10.14", "ext4-ordered")  # broken within a few examples


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed (Debian package redis-server; .ci/run)")
    socket = tmp_path / "redis.sock"
    process = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(socket), "--save", "", "--appendonly",
         "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import redis

        client = redis.Redis(unix_socket_path=str(socket))
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("redis-server did not start within 10 s")
                time.sleep(0.05)
        yield f"unix://{socket}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _worker_file(tmp_path: Path) -> Path:
    scratch = tmp_path / "test_worker_target.py"
    scratch.write_text(
        textwrap.dedent(f"""\
            import sys
            sys.path.insert(0, {str(TESTS)!r})
            from test_campaign_target import target
            TestTarget = target{TARGET!r}
        """)
    )
    return scratch


def _replay_file(tmp_path: Path) -> Path:
    script = tmp_path / "replay_only.py"
    script.write_text(
        textwrap.dedent(f"""\
            import sys
            import unittest
            sys.path.insert(0, {str(TESTS)!r})
            from hypothesis import HealthCheck, Phase, settings
            from hypothesis.stateful import run_state_machine_as_test
            from test_campaign_target import SHARED, campaign_machine, shared_database
            from maildircheck.harness.verify import STEPS
            assert SHARED, "MAILDIRCHECK_DB is not set"
            try:
                run_state_machine_as_test(
                    campaign_machine(*{TARGET!r}),
                    settings=settings(
                        database=shared_database(SHARED),
                        phases=(Phase.reuse,),
                        stateful_step_count=STEPS,
                        deadline=None,
                        suppress_health_check=list(HealthCheck),
                    ),
                )
            except AssertionError as failure:
                print("replayed:", str(failure).splitlines()[0])
                sys.exit(1)
            except unittest.SkipTest:  # the reuse phase found no example saved
                print("nothing to replay")
        """)
    )
    return script


def _replay_only(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(_replay_file(tmp_path))],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_two_workers_feed_one_redis_database_and_a_third_process_replays(
    tmp_path: Path, redis_url: str
) -> None:
    env = {**os.environ, "MAILDIRCHECK_DB": redis_url, "PYTHONHASHSEED": "0"}
    env.pop("MAILDIRCHECK_PROFILE", None)
    scratch = _worker_file(tmp_path)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(scratch)]
    workers = [
        subprocess.Popen(
            [*argv, "--rootdir", str(tmp_path)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 1, output  # each breaks the target ...
        assert "P1 no-partial" in output, output  # ... with the violation it holds

    import redis

    keys = redis.Redis.from_url(redis_url).keys(b"hypothesis-example:*")
    assert keys, "the workers saved their failures in the Redis database"

    replay = _replay_only(tmp_path, env)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "replayed: P1 no-partial" in replay.stdout, replay.stdout + replay.stderr


def test_without_the_database_the_replay_only_process_finds_nothing(
    tmp_path: Path, redis_url: str
) -> None:
    """The control: the replaying process only fails through what the database holds."""
    env = {**os.environ, "MAILDIRCHECK_DB": redis_url}
    env.pop("MAILDIRCHECK_PROFILE", None)
    replay = _replay_only(tmp_path, env)
    assert replay.returncode == 0 and "nothing to replay" in replay.stdout, replay.stderr
