"""One check as one value: which strategy, where, under which faults, with what budget.

A `Check` is built and validated once, by `Check.of` - the command line (harness/cli.py),
the pytest plugin and the matrix all build it there, and nothing downstream validates
again. A worker process receives Checks (they pickle: the strategy is its reference, a
catalogue name or `path/to/file.py:function`, resolved where it runs); a `Verdict` holds
the Check it answers; `argv()` renders the Check as the `maildircheck` command line that
replays it, and parsing that command line gives the same Check back (tests/test_check.py).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, replace

from maildircheck.impl.strategies import StrategyError, StrategyInfo, strategy_info
from maildircheck.model.environments import Environment, environment
from maildircheck.model.faults import DEFAULT_FAULTS, FAULTS, Fault, fault, names, parse_faults
from maildircheck.model.properties import ALWAYS, PROPERTIES

QUALITY = "P6"  # at-most-once delivery: checked with --quality
LIFECYCLE = "L1"  # every step an edge of the lifecycle table: --strict-lifecycle


class CheckError(ValueError):
    """A check that names nothing usable; the message is one line."""


@dataclass(frozen=True)
class Check:
    strategy: str  # a catalogue name or path/to/file.py:function
    env: Environment
    faults: tuple[Fault, ...]  # those that apply in `env`, as asked for
    properties: tuple[str, ...]  # the property IDs a violation of which fails the check
    max_examples: int = 200  # the search's budget: runs Hypothesis generates
    seed: int | None = None  # None: the fixed derandomized search
    workers: int = 1  # processes sharing the budget (seeds seed..seed+workers-1)
    message_size: int | None = None  # every message this many plain bytes; None: drawn
    shrink: bool = True  # False: the first violation found is the answer, not shrunk

    @classmethod
    def of(
        cls,
        strategy: str,
        env: str | Environment,
        faults: str | Iterable[str | Fault] = DEFAULT_FAULTS,
        *,
        max_examples: int = 200,
        seed: int | None = None,
        quality: bool = False,
        strict_lifecycle: bool = False,
        workers: int = 1,
        message_size: int | None = None,
        shrink: bool = True,
    ) -> Check:
        """The Check, validated: the strategy resolves, the environment exists, every fault
        is known and applies there ("all" keeps those that do), the numbers are positive.
        Raises CheckError with a one-line message."""
        try:
            strategy_info(strategy)
            where = env if isinstance(env, Environment) else environment(env)
            chosen = _faults(faults)
        except (StrategyError, ValueError) as err:
            raise CheckError(str(err)) from None
        if set(chosen) == set(FAULTS.values()):  # "all": what can happen here
            chosen = tuple(f for f in chosen if where.applies(f))
        misplaced = [f.name for f in chosen if not where.applies(f)]
        if misplaced:
            raise CheckError(f"fault {misplaced[0]!r} needs an NFS environment (nfs3-*)")
        numbers = [("--max-examples", max_examples), ("--workers", workers)]
        if message_size is not None:
            numbers.append(("--message-size", message_size))
        for what, value in numbers:
            if value < 1:
                raise CheckError(f"{what} must be a positive integer, got {value}")
        wanted = {*ALWAYS, *[QUALITY] * quality, *[LIFECYCLE] * strict_lifecycle}
        checked = tuple(p for p in PROPERTIES if p in wanted)
        return cls(
            strategy, where, chosen, checked, max_examples, seed, workers, message_size, shrink
        )

    @property
    def info(self) -> StrategyInfo:
        """What the strategy is (its function, summary, expectations); a file loads once."""
        return strategy_info(self.strategy)

    @property
    def quality(self) -> bool:
        return QUALITY in self.properties

    @property
    def strict_lifecycle(self) -> bool:
        return LIFECYCLE in self.properties

    @property
    def label(self) -> str:
        return f"{self.strategy} on {self.env}"

    def argv(self) -> list[str]:
        """The `maildircheck` arguments that run this check again."""
        args = ["verify", "--strategy", self.strategy, "--env", self.env.name]
        args += ["--faults", names(self.faults), "--max-examples", str(self.max_examples)]
        if self.seed is not None:
            args += ["--seed", str(self.seed)]
        if self.quality:
            args.append("--quality")
        if self.strict_lifecycle:
            args.append("--strict-lifecycle")
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        if self.message_size is not None:
            args += ["--message-size", str(self.message_size)]
        if not self.shrink:
            args.append("--no-shrink")
        return args

    def replay_command(self) -> str:
        return shlex.join(["maildircheck", *self.argv()])

    def shares(self) -> list[Check]:
        """The single-process checks `workers` processes run: seeds S..S+N-1 (S is 1 for a
        derandomized check), each with its share of the budget."""
        base = 1 if self.seed is None else self.seed
        budget = max(1, -(-self.max_examples // self.workers))
        return [
            replace(self, seed=base + i, max_examples=budget, workers=1)
            for i in range(self.workers)
        ]


def _faults(faults: str | Iterable[str | Fault]) -> tuple[Fault, ...]:
    if isinstance(faults, str):
        return parse_faults(faults)
    return tuple(dict.fromkeys(f if isinstance(f, Fault) else fault(f) for f in faults))
