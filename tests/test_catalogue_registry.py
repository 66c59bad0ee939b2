"""Sanity of the strategy registry (impl/strategies.py) and the catalogue.

Owns: every registry entry resolves and documents its bug class, source and properties;
`resolve`/`strategy_info` load `file.py:function` specs and reject bad ones with one-line
`StrategyError`s; every entry delivers when nothing goes wrong (driven by a stateless stub
that answers every request); every flawed entry is `impl.deliver.run` with its module's
`STEPS`, importing nothing private from impl/deliver.py. Whether the checker catches each
flaw is tested with the checker (tests/test_catalogue.py).
"""

from __future__ import annotations

import ast
import errno
import inspect
import sys
import zlib
from pathlib import Path

import pytest

from maildircheck.impl.deliver import Steps, run
from maildircheck.impl.strategies import (
    CATALOGUE,
    StrategyError,
    resolve,
    strategy_info,
)
from maildircheck.model.outcome import (
    Delivered,
    DeliveryRequest,
    Outcome,
    Strategy,
    TemporaryFailure,
)
from maildircheck.model.properties import PROPERTIES
from maildircheck.model.syscalls import (
    ClockReading,
    FileKind,
    Fstat,
    GetTime,
    Lstat,
    ReadInput,
    Stat,
    StatResult,
    Syscall,
    Write,
)

NAMES = [
    "correct",
    "vpopmail-4.10.14",
    "no-fsync",
    "close-unchecked",
    "rename-clobber",
    "non-exclusive-create",
    "no-dir-fsync",
    "ambiguous-link-fails",
    "success-when-gone",
    "transient-as-permanent",
    "tmp-leak",
    "content-altered",
    "pid-only-name",
    "stale-nlink",
    "fsync-retry",
    "short-write-ignored",
    "same-name-forever",
    "always-defer",
    "large-mail-unsynced",
    "no-random-name",
]
NEVER_DELIVERS = ("always-defer",)  # B17: its one flaw is to defer every message (P7)


def test_registry_names() -> None:
    assert list(CATALOGUE) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_entry_resolves_and_documents_itself(name: str) -> None:
    info = CATALOGUE[name]
    assert info.name == name
    assert resolve(name) is info.function and strategy_info(name) is info
    assert inspect.isgeneratorfunction(info.function)
    assert info.summary and "\n" not in info.summary
    assert info.summary.endswith((".", ")")), info.summary  # whole: B13's was cut mid-sentence
    assert info.source and "\n" not in info.source
    assert set(info.expected) <= set(PROPERTIES)
    if name == "correct":
        assert info.bug_class is None and info.expected == ()
        return
    doc = " ".join((sys.modules[info.function.__module__].__doc__ or "").split())
    assert info.bug_class is not None and doc.startswith(f"{info.bug_class} - ")
    assert "Source:" in doc
    assert info.expected
    for prop in info.expected:
        assert f"{prop} {PROPERTIES[prop].name}" in doc


def test_resolve_user_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(
        '"""My strategies."""\n'
        "from maildircheck.impl.deliver import deliver as _d\n"
        "def deliver(request):\n"
        '    """Just the correct one.\n\n    More words."""\n'
        "    return (yield from _d(request))\n"
        "def bare(request):\n"
        "    return (yield from _d(request))\n"
    )
    assert callable(resolve(f"{path}:deliver"))
    info = strategy_info(f"{path}:deliver")
    assert (info.bug_class, info.summary, info.expected) == (None, "Just the correct one.", ())
    assert strategy_info(f"{path}:bare").summary == "My strategies."


@pytest.mark.parametrize(
    ("spec", "content", "fragment"),
    [
        ("no-such-strategy", None, "no strategy named 'no-such-strategy'"),
        ("{dir}/absent.py:deliver", None, "no such file"),
        ("{dir}/s.py:nothing", "x = 1\n", "has no function 'nothing'"),
        ("{dir}/s.py:x", "x = 1\n", "'x' is not a function"),
        ("{dir}/s.py:f", "def f(request):\n    return None\n", "not a generator function"),
        ("{dir}/s.py:deliver", "def deliver(:\n", "failed to load: SyntaxError"),
        ("{dir}/s.py:deliver", "raise RuntimeError('boom\\nsecond line')\n", "RuntimeError: boom"),
        ("{dir}/s.py", "", "name the function too"),
        ("{dir}/s.py:", "", "name a function after the colon"),
    ],
)
def test_bad_specs(tmp_path: Path, spec: str, content: str | None, fragment: str) -> None:
    if content is not None:
        (tmp_path / "s.py").write_text(content)
    with pytest.raises(StrategyError) as caught:
        resolve(spec.format(dir=tmp_path))
    message = str(caught.value)
    assert fragment in message and "\n" not in message


def _stub_reply(request: Syscall[object], late: bool, calls: list[str]) -> object:
    """A stateless answer to every request: all succeed; the clock may jump a day."""
    if isinstance(request, GetTime):
        seconds = 1_000 + (100_000 if late and any(c.startswith("write") for c in calls) else 0)
        return ClockReading(seconds, 5)
    if isinstance(request, ReadInput):
        return b"" if any(c.startswith("read(stdin") for c in calls[:-1]) else b"msg\n"
    if isinstance(request, Lstat):
        is_dir = request.path.rsplit("/", 1)[-1] in ("tmp", "new")
        kind = FileKind.DIRECTORY if is_dir else FileKind.REGULAR
        return StatResult(1, zlib.crc32(request.path.encode()), kind, 0o600, 1, 4, 0, 0)
    if isinstance(request, Stat):  # a file's link count: 2 once a link was made
        nlink = 2 if any(c.startswith("link(") for c in calls) else 1
        return StatResult(
            1, zlib.crc32(request.path.encode()), FileKind.REGULAR, 0o600, nlink, 4, 0, 0
        )
    if isinstance(request, Fstat):  # the open file: the 4 bytes written
        return StatResult(1, 3, FileKind.REGULAR, 0o600, 1, 4, 0, 0)
    if isinstance(request, Write):
        return len(request.data)
    answers: dict[str, object] = {"Open": 3, "GetPid": 42, "GetHostname": "h", "GetRandom": 7}
    return answers.get(type(request).__name__)


def _drive(
    strategy: Strategy, fault_at: int, fault: int, late: bool = False
) -> tuple[list[str], Outcome | str]:
    """Run a strategy on the stub; request number `fault_at` gets OSError(`fault`).

    Returns the requests (as strace-like text) and the outcome, or the error that escaped
    (a fault where no agent expects one, such as at gettimeofday).
    """
    gen = strategy(DeliveryRequest("/m"))
    calls: list[str] = []
    reply: object = None
    while len(calls) < 200:
        try:
            request = gen.send(reply)
        except StopIteration as stop:
            return calls, stop.value
        except OSError as err:
            return calls, f"raised {err!r}"
        calls.append(str(request))
        reply = _stub_reply(request, late, calls)
        if len(calls) - 1 == fault_at:
            reply = OSError(fault, errno.errorcode[fault])
    raise AssertionError("no outcome after 200 requests")


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NEVER_DELIVERS])
def test_every_entry_delivers_when_nothing_goes_wrong(name: str) -> None:
    assert isinstance(_drive(CATALOGUE[name].function, -1, 0)[1], Delivered)


@pytest.mark.parametrize("name", NEVER_DELIVERS)
def test_always_defer_defers_when_nothing_goes_wrong(name: str) -> None:
    """B17 (P7): with no fault at all it writes the file, removes it and defers."""
    calls, outcome = _drive(CATALOGUE[name].function, -1, 0)
    assert isinstance(outcome, TemporaryFailure), outcome
    assert any(c.startswith("unlink(") for c in calls) and not any("new/" in c for c in calls)


@pytest.mark.parametrize("name", NAMES[1:])
def test_flawed_entry_is_run_with_its_steps(name: str) -> None:
    module = sys.modules[CATALOGUE[name].function.__module__]
    steps = getattr(module, "STEPS", None)
    assert isinstance(steps, Steps) and steps != Steps()
    for fault_at in range(-1, 12):  # its deliver makes exactly the calls run(STEPS) makes
        flawed = _drive(CATALOGUE[name].function, fault_at, errno.EIO)
        assert flawed == _drive(lambda request: run(request, steps), fault_at, errno.EIO)
    imported = [
        alias.name
        for node in ast.walk(ast.parse(inspect.getsource(module)))
        if isinstance(node, ast.ImportFrom) and node.module == "maildircheck.impl.deliver"
        for alias in node.names
    ]
    assert imported and not [each for each in imported if each.startswith("_")]
