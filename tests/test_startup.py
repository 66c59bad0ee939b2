"""`maildir-deliver` starts with only what a delivery needs (issue 5, docs/performance.md).

Owns the start-up guards: importing `maildircheck.impl.cli`, and a whole delivery, must
not import `dataclasses`, `inspect`, `socket`, `rich`, `hypothesis` or the harness (each
cost milliseconds on every delivery, or belongs to the checker, not the agent); a plain
command line must not build the argparse parser. No timing is asserted: only which
modules load, which is what a change brings back. Also the two replacements that made
this possible behave as what they replace: `Record` as a frozen dataclass
(model/record.py), and `cli.parse_plain` as `cli.parse_args` on every command line it
accepts.
"""

from __future__ import annotations

import copy
import inspect
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildircheck.impl import cli
from maildircheck.impl.naming import NameParts
from maildircheck.model.outcome import DeliveryRequest, PermanentFailure
from maildircheck.model.record import FrozenInstanceError, Record, replace
from maildircheck.model.syscalls import Close, Fsync, GetTime, Open, OpenFlag, Write

NEVER = ("dataclasses", "inspect", "socket", "rich", "hypothesis", "maildircheck.harness")
# argparse's parser, once built, pulls these in (gettext's locale look-up; shutil for the
# terminal width); a plain command line must not build it
NOT_FOR_A_PLAIN_DELIVERY = (*NEVER, "locale", "shutil")


def banned(loaded: list[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded for n in names if m == n or m.startswith(n + "."))


def test_importing_the_cli_imports_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import maildircheck.impl.cli"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")]
    loaded = [row[-1].strip() for row in rows[1:]]  # the first row is the header
    assert "maildircheck.impl.cli" in loaded, done.stderr
    assert banned(loaded, NEVER) == [], done.stderr


def test_a_plain_delivery_imports_nothing_heavy(tmp_path: Path) -> None:
    for sub in ("tmp", "new", "cur"):
        (tmp_path / "Maildir" / sub).mkdir(parents=True)
    program = (
        "import json, sys\n"
        "from maildircheck.impl.cli import main\n"
        "code = main(['--exit-codes', 'sysexits', sys.argv[1]])\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "Maildir")],
        input=b"",
        capture_output=True,
        timeout=60,
        check=True,
    )
    code, loaded = json.loads(done.stdout)
    assert code == 65, done.stderr  # an empty message: refused as a data error
    assert banned(loaded, NOT_FOR_A_PLAIN_DELIVERY) == []


# --- cli.parse_plain: argparse's answer, without argparse's parser --------------------------
SWITCHES = [
    "--create",
    "--extension-folder",
    "--return-path",
    "--delivered-to",
    "--keep-from-line",
    "--no-size",
    "--allow-empty",
]
WORDS = [
    *SWITCHES,
    *("--exit-codes", "qmail", "sysexits", "mbox", "--folder", "Lists", "a.b", "..", "a/b"),
    *("", "-", "--", "-5", "-h", "--help", "--exit-codes=qmail", "--folder=x", "--create=1"),
    *("--crea", "-x", "/srv/mail/u", "Maildir", "a b", "\n"),
]


@given(st.lists(st.sampled_from(WORDS), max_size=7))
def test_parse_plain_agrees_with_parse_args(argv: list[str]) -> None:
    plain = cli.parse_plain(argv)
    if plain is None:
        return  # main() asks parse_args
    assert plain == cli.parse_args(argv)


plain_lines = st.tuples(
    st.lists(st.sampled_from(SWITCHES), max_size=4),
    st.sampled_from([[], ["--exit-codes", "qmail"], ["--exit-codes", "sysexits"]]),
    st.sampled_from([[], ["--folder", "Lists.python"]]),
    st.sampled_from([[], ["./Maildir/"], ["/srv/mail/example.org/u"]]),
).map(lambda parts: [*parts[1], *parts[0], *parts[2], *parts[3]])


@given(plain_lines)
def test_the_command_lines_of_the_manual_take_the_plain_path(argv: list[str]) -> None:
    if "--folder" in argv:  # with --extension-folder: a usage error (mutually exclusive)
        argv = [word for word in argv if word != "--extension-folder"]
    plain = cli.parse_plain(argv)
    assert plain is not None
    assert plain == cli.parse_args(argv)


# --- Record: a frozen dataclass without dataclasses ----------------------------------------
class Base(Record):
    a: int
    b: str = "b"


class Derived(Base):
    shared: ClassVar[int] = 7
    c: tuple[int, ...] = ()


def test_a_record_is_built_as_a_dataclass_is() -> None:
    assert Derived.__match_args__ == ("a", "b", "c")
    assert Derived(1) == Derived(a=1, b="b", c=())
    assert Derived(1, c=(2,)).c == (2,)
    assert Derived.shared == 7
    assert str(inspect.signature(Derived)) == "(a: int, b: str = 'b', c: tuple[int, ...] = ())"
    for call, message in [
        (lambda: Derived(), "Derived() missing required argument(s): 'a'"),
        (lambda: Derived(1, "b", (), 4), "Derived() takes 3 arguments but 4 were given"),
        (lambda: Derived(1, a=2), "Derived() got multiple values for argument 'a'"),
        (lambda: Derived(1, d=2), "Derived() got an unexpected keyword argument 'd'"),
    ]:
        with pytest.raises(TypeError) as caught:
            call()
        assert str(caught.value) == message


def test_a_record_compares_hashes_and_shows_as_a_dataclass_does() -> None:
    assert repr(Write(3, b"x")) == "Write(fd=3, data=b'x', at=None)"
    assert repr(GetTime()) == "GetTime()"
    assert Fsync(3) == Fsync(3) and Fsync(3) != Fsync(4)
    assert Fsync(3) != Close(3)  # same fields, another class
    assert hash(Fsync(3)) == hash((3,)) == hash(Fsync(3))
    assert len({GetTime(), GetTime(), Open("/x", OpenFlag.RDONLY)}) == 2
    created = Open("/x", OpenFlag.WRONLY | OpenFlag.CREAT)
    assert str(created) == 'open("/x", O_WRONLY|O_CREAT, 0o600)'
    match Open("/x", OpenFlag.RDONLY):
        case Open(path, flags, mode):
            assert (path, flags, mode) == ("/x", OpenFlag.RDONLY, 0o600)


def test_a_record_is_frozen_and_copies_with_replace() -> None:
    request = DeliveryRequest("/m")
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'maildir'"):
        request.maildir = "/n"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del request.maildir  # type: ignore[misc]
    moved = replace(request, folder="a", create_dirs=True)
    assert (moved.maildir, moved.folder, moved.create_dirs) == ("/m", "a", True)
    assert request.folder == ""
    with pytest.raises(TypeError):
        replace(request, nonsense=1)
    for value in (PermanentFailure("p", "data"), NameParts(1, 2, 3, 4, 5, "h"), request):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value
