"""One conformance suite for the delivery algorithm, run on two backends: the real OS
(impl.drivers) and the model kernel (model.kernel). The same generator, the same
scenarios, the same expected outcomes - what the checker proves on the model is about the
code that runs for real (A1-A13).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from maildircheck.impl.deliver import deliver
from maildircheck.impl.drivers import run_on_os
from maildircheck.impl.naming import parse_name
from maildircheck.model.fs import FileSystem
from maildircheck.model.kernel import Kernel, Process
from maildircheck.model.outcome import (
    Delivered,
    DeliveryRequest,
    Outcome,
    TemporaryFailure,
)
from maildircheck.model.persistence import PROFILES


class Backend(Protocol):
    root: str

    def make(self, *dirs: str) -> None: ...
    def make_file(self, path: str) -> None: ...
    def deliver(self, message: bytes, create: bool = False) -> Outcome: ...
    def listing(self, sub: str) -> list[str]: ...
    def read(self, path: str) -> bytes: ...


class OsBackend:
    def __init__(self, base: str) -> None:
        self.root = f"{base}/Maildir"

    def make(self, *dirs: str) -> None:
        for d in dirs:
            os.makedirs(f"{self.root}/{d}" if d else self.root, exist_ok=True)

    def make_file(self, path: str) -> None:
        Path(f"{self.root}/{path}").write_bytes(b"")

    def deliver(self, message: bytes, create: bool = False) -> Outcome:
        request = DeliveryRequest(self.root, create_dirs=create)
        return run_on_os(deliver(request), io.BytesIO(message))

    def listing(self, sub: str) -> list[str]:
        return sorted(os.listdir(f"{self.root}/{sub}"))

    def read(self, path: str) -> bytes:
        return Path(f"{self.root}/{path}").read_bytes()


class ModelBackend:
    def __init__(self, base: str) -> None:
        self.root = f"{base}/Maildir"
        self.fs = FileSystem.with_dirs(*self._chain(base))
        self.kernel = Kernel(self.fs, PROFILES["posix"])
        self.pid = 100

    @staticmethod
    def _chain(path: str) -> list[str]:
        parts = [p for p in path.split("/") if p]
        return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]

    def make(self, *dirs: str) -> None:
        paths = [f"{self.root}/{d}" if d else self.root for d in dirs]
        for p in paths:
            for c in self._chain(p):
                if self.fs.find(c) is None:
                    self.fs.mkdir(c, 0o700, 0, "setup")

    def make_file(self, path: str) -> None:
        self.fs.create(f"{self.root}/{path}", 0o600, 0, "setup")

    def deliver(self, message: bytes, create: bool = False) -> Outcome:
        self.pid += 1
        proc = Process(f"D{self.pid}", self.pid, "mx.example", stdin=message)
        gen = deliver(DeliveryRequest(self.root, create_dirs=create))
        try:
            request = next(gen)
            while True:
                request = gen.send(self.kernel.execute(proc, request))
        except StopIteration as stop:
            result: Outcome = stop.value
            return result

    def listing(self, sub: str) -> list[str]:
        return sorted(self.fs.entries[self.fs.lookup(f"{self.root}/{sub}")])

    def read(self, path: str) -> bytes:
        return bytes(self.fs.inodes[self.fs.lookup(f"{self.root}/{path}")].data)


@pytest.fixture(params=["os", "model"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with tempfile.TemporaryDirectory() as base:
        yield OsBackend(base) if request.param == "os" else ModelBackend(base)


MESSAGE = b"Subject: conformance\r\n\r\nNUL \x00 and 8-bit \xff, no final newline"


def test_delivers_exact_bytes_into_new(backend: Backend) -> None:
    backend.make("", "tmp", "new", "cur")
    outcome = backend.deliver(MESSAGE)
    assert isinstance(outcome, Delivered)
    assert backend.listing("new") == [outcome.name] and backend.listing("tmp") == []
    assert backend.read(f"new/{outcome.name}") == MESSAGE
    assert parse_name(outcome.name) is not None


def test_two_deliveries_get_two_names(backend: Backend) -> None:
    backend.make("", "tmp", "new", "cur")
    first, second = backend.deliver(b"one\n"), backend.deliver(b"two\n")
    assert isinstance(first, Delivered) and isinstance(second, Delivered)
    assert first.name != second.name
    assert backend.listing("new") == sorted([first.name, second.name])


def test_empty_message(backend: Backend) -> None:
    backend.make("", "tmp", "new", "cur")
    outcome = backend.deliver(b"")
    assert isinstance(outcome, Delivered)
    assert backend.read(f"new/{outcome.name}") == b""


def test_missing_maildir_is_a_temporary_failure(backend: Backend) -> None:
    outcome = backend.deliver(MESSAGE)
    assert isinstance(outcome, TemporaryFailure)
    assert "maildir unusable" in outcome.reason


def test_tmp_not_a_directory_is_a_temporary_failure(backend: Backend) -> None:
    backend.make("", "new", "cur")
    backend.make_file("tmp")
    outcome = backend.deliver(MESSAGE)
    assert isinstance(outcome, TemporaryFailure)
    assert backend.listing("new") == []


def test_create_dirs_when_asked(backend: Backend) -> None:
    backend.make()  # only the parent exists
    outcome = backend.deliver(MESSAGE, create=True)
    assert isinstance(outcome, Delivered)
    assert backend.listing("cur") == [] and backend.listing("tmp") == []
    assert backend.read(f"new/{outcome.name}") == MESSAGE
