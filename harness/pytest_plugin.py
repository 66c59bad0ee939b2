"""A pytest plugin: let an agent's own test suite assert what its strategy keeps.

Installed with the package (entry point `pytest11`), it offers the fixture
`maildircheck`:

    def test_my_agent_is_durable(maildircheck):
        maildircheck.assert_keeps("path/to/agent.py:deliver", env="ext4-ordered",
                                  properties=("P1", "P2"), max_examples=300)

`assert_keeps` fails with the violated property, its shrunk timeline and the replay command;
`assert_breaks` is its opposite (for a regression test that a known flaw is still seen).
Each builds its `Check` (harness/check.py) the way the command line does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from maildircheck.harness.check import QUALITY, Check
from maildircheck.harness.verify import Verdict, verify
from maildircheck.model.faults import DEFAULT_FAULTS, Fault
from maildircheck.model.properties import ALWAYS


class Checker:
    """What the `maildircheck` fixture gives a test. A strategy file given by a relative
    path ("agent.py:deliver") is found next to the test file first, then from the
    working directory."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = base

    def _located(self, strategy: str) -> str:
        file, sep, function = strategy.rpartition(":")
        if sep and file.endswith(".py") and not os.path.isabs(file) and self.base is not None:
            beside = self.base / file
            if beside.is_file():
                return f"{beside}:{function}"
        return strategy

    def check(
        self,
        strategy: str,
        env: str,
        faults: Iterable[str | Fault] = DEFAULT_FAULTS,
        *,
        max_examples: int = 200,
        seed: int = 1,
        quality: bool = False,
    ) -> Verdict:
        return verify(
            Check.of(
                self._located(strategy),
                env,
                tuple(faults),
                max_examples=max_examples,
                seed=seed,
                quality=quality,
            )
        )

    def assert_keeps(
        self,
        strategy: str,
        env: str,
        properties: Iterable[str] = ALWAYS,
        faults: Iterable[str | Fault] = DEFAULT_FAULTS,
        *,
        max_examples: int = 200,
        seed: int = 1,
    ) -> Verdict:
        wanted = tuple(properties)
        v = self.check(
            strategy, env, faults, max_examples=max_examples, seed=seed, quality=QUALITY in wanted
        )
        if v.violation is not None and v.violation.prop in wanted:
            timeline = v.timeline.render() if v.timeline else ""
            pytest.fail(
                f"{strategy} under {env}: {v.violation}\n{timeline}\nreplay: {v.replay_command()}",
                pytrace=False,
            )
        return v

    def assert_breaks(
        self,
        strategy: str,
        env: str,
        prop: str,
        faults: Iterable[str | Fault] = DEFAULT_FAULTS,
        *,
        max_examples: int = 500,
        seed: int = 1,
    ) -> Verdict:
        v = self.check(
            strategy, env, faults, max_examples=max_examples, seed=seed, quality=prop == QUALITY
        )
        if v.violation is None or v.violation.prop != prop:
            pytest.fail(
                f"{strategy} under {env}: expected {prop} to be violated, got "
                f"{v.violation or 'no violation'}",
                pytrace=False,
            )
        return v


@pytest.fixture
def maildircheck(request: pytest.FixtureRequest) -> Checker:
    return Checker(Path(str(request.path)).parent)
