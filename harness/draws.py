"""What a rule of the checker draws, each value defined once for searching and shrinking.

A `Draw` is one argument's domain: the Hypothesis strategy the search draws it from, its
`rank` (0 is the simplest value, larger is less simple) and the `simpler` values to try in
its place, simplest first. The state machine's rules (harness/rules.py) are built from
draws; the shrinker (harness/shrink.py, spec E7) replays a failing run with simpler values
and keeps a change only when the run still fails the same way and its rank went down, so
shrinking always ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from hypothesis import strategies as st

from maildircheck.harness.messages import PIPE_CHUNKS, SIZES, TRAITS, Shape, mail, pipe_chunk

T = TypeVar("T")


class Draw(Protocol[T]):
    def strategy(self) -> st.SearchStrategy[T]: ...

    def rank(self, value: T) -> int: ...

    def simpler(self, value: T) -> Iterator[T]: ...

    def slack(self, value: T, simpler: T) -> tuple[int, ...]:
        """By how many syscalls replacing `value` with `simpler` may shorten a run: none,
        unless the draw says otherwise (a smaller message, `Mail`)."""
        return ()


def _towards(low: int, value: int) -> Iterator[int]:
    """low, low+1, then halfway, three quarters ... of the way to `value`: the first that
    still fails is kept, and the next round starts from there (a binary search in rounds)."""
    seen: set[int] = set()
    for candidate in (low, low + 1):
        if candidate < value:
            seen.add(candidate)
            yield candidate
    gap = (value - low) // 2
    while gap >= 1:
        candidate = value - gap
        if candidate not in seen and low <= candidate < value:
            seen.add(candidate)
            yield candidate
        gap //= 2


@dataclass(frozen=True)
class Ints(Draw[int]):
    """An integer in [low, high]; `drawn` replaces the uniform draw where the search should
    weigh the values otherwise."""

    low: int
    high: int
    drawn: st.SearchStrategy[int] | None = None

    def strategy(self) -> st.SearchStrategy[int]:
        return self.drawn if self.drawn is not None else st.integers(self.low, self.high)

    def rank(self, value: int) -> int:
        return value - self.low

    def simpler(self, value: int) -> Iterator[int]:
        return _towards(self.low, value)


@dataclass(frozen=True)
class Choice(Draw[T]):
    """One of `options`, the first the simplest. `drawn` replaces the uniform draw where
    the search should weigh the options otherwise."""

    options: tuple[T, ...]
    drawn: st.SearchStrategy[T] | None = None

    def strategy(self) -> st.SearchStrategy[T]:
        return self.drawn if self.drawn is not None else st.sampled_from(self.options)

    def rank(self, value: T) -> int:
        return self.options.index(value)

    def simpler(self, value: T) -> Iterator[T]:
        return iter(self.options[: self.options.index(value)])


@dataclass(frozen=True)
class Just(Draw[T]):
    value: T

    def strategy(self) -> st.SearchStrategy[T]:
        return st.just(self.value)

    def rank(self, value: T) -> int:
        return 0

    def simpler(self, value: T) -> Iterator[T]:
        return iter(())


@dataclass(frozen=True)
class Fates(Draw[list[int]]):
    """A crash's per-file fates (model.persistence.CrashChoice): at most `most` of
    0..`highest`; simpler is shorter, then smaller."""

    highest: int = 3
    most: int = 12

    def strategy(self) -> st.SearchStrategy[list[int]]:
        return st.lists(st.integers(0, self.highest), max_size=self.most)

    def rank(self, value: list[int]) -> int:
        return len(value) + sum(value)

    def simpler(self, value: list[int]) -> Iterator[list[int]]:
        if value:
            yield []
        for i in reversed(range(len(value))):
            yield value[:i] + value[i + 1 :]
        for i, fate in enumerate(value):
            for smaller in range(fate):
                yield [*value[:i], smaller, *value[i + 1 :]]


@dataclass(frozen=True)
class Mail(Draw[tuple[Shape, int]]):
    """A message's shape and pipe (harness/messages.py): simpler is a size earlier in SIZES,
    a trait off, a fuller pipe."""

    def strategy(self) -> st.SearchStrategy[tuple[Shape, int]]:
        return mail()

    def rank(self, value: tuple[Shape, int]) -> int:
        shape, pipe = value
        traits = sum(bool(getattr(shape, t)) for t in TRAITS)
        return _size_index(shape.size) + traits + PIPE_CHUNKS.index(pipe)

    def simpler(self, value: tuple[Shape, int]) -> Iterator[tuple[Shape, int]]:
        shape, pipe = value
        for index in _towards(0, _size_index(shape.size)):
            yield Shape(SIZES[index], **_traits(shape)), pipe
        for trait in TRAITS:
            if getattr(shape, trait):
                yield Shape(shape.size, **{**_traits(shape), trait: False}), pipe
        for fuller in PIPE_CHUNKS[: PIPE_CHUNKS.index(pipe)]:
            yield shape, fuller

    def slack(self, value: tuple[Shape, int], simpler: tuple[Shape, int]) -> tuple[int, ...]:
        """Fewer reads of stdin, and as many fewer writes (a copy loop writes what it read)."""
        fewer = _reads(*value) - _reads(*simpler)
        return (fewer, 2 * fewer) if fewer > 0 else ()


def _reads(shape: Shape, pipe: int) -> int:
    return -(-shape.size // pipe_chunk(pipe, shape.size)) + 1  # and the read that sees EOF


def _size_index(size: int) -> int:
    return SIZES.index(size) if size in SIZES else 0


def _traits(shape: Shape) -> dict[str, bool]:
    return {t: bool(getattr(shape, t)) for t in TRAITS}


def ranked(draws: dict[str, Draw[Any]], arguments: dict[str, Any]) -> int:
    """The rank of one rule call: the sum of its arguments' ranks."""
    return sum(draws[name].rank(value) for name, value in arguments.items())


def strategies(draws: dict[str, Draw[Any]]) -> dict[str, st.SearchStrategy[Any]]:
    return {name: draw.strategy() for name, draw in draws.items()}


@dataclass(frozen=True)
class Step:
    """One rule call of a run: the rule's name and the values it was called with."""

    rule: str
    arguments: tuple[tuple[str, Any], ...]

    def called(self) -> dict[str, Any]:
        return dict(self.arguments)

    def with_argument(self, name: str, value: Any) -> Step:
        return Step(self.rule, tuple((n, value if n == name else v) for n, v in self.arguments))
