"""The OS driver and `maildir-deliver` on pyfakefs: faults a real directory cannot give.

Owns the checks that need a file system we control: a disk that fills up in the middle of
the message, a quota exceeded in the middle of it (EDQUOT, which pyfakefs cannot raise by
itself, so the reply to one write is replaced), permission errors for a non-root user, a
missing maildir, and a plain successful delivery, all through the real `os` calls of
impl/drivers.py.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Generator
from typing import Any

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from maildircheck.impl import cli
from maildircheck.impl.deliver import CHUNK, deliver
from maildircheck.impl.drivers import run_on_os
from maildircheck.impl.naming import parse_name
from maildircheck.model.outcome import (
    Delivered,
    DeliveryRequest,
    Outcome,
    TemporaryFailure,
)
from maildircheck.model.syscalls import Syscall, Write

ROOT = "/home/user/Maildir"
# Patcher(additional_skip_names, modules_to_reload, modules_to_patch, allow_root_user)
NOT_ROOT = pytest.mark.parametrize("fs", [[None, None, None, False]], indirect=True)


@pytest.fixture
def maildir(fs: FakeFilesystem) -> str:
    for sub in ("tmp", "new", "cur"):
        fs.create_dir(f"{ROOT}/{sub}")
    return ROOT


def run(root: str, data: bytes, create: bool = False) -> Outcome:
    return run_on_os(deliver(DeliveryRequest(root, create_dirs=create)), io.BytesIO(data))


class FakeStdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def run_main(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    data: bytes,
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", FakeStdin(data))
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def listing(sub: str) -> list[str]:
    return sorted(os.listdir(f"{ROOT}/{sub}"))


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_delivery_on_the_fake_file_system(maildir: str) -> None:
    data = b"Subject: fake\r\n\r\n\x00\xff" + b"y" * (CHUNK + 7)
    outcome = run(maildir, data)
    assert isinstance(outcome, Delivered)
    assert listing("new") == [outcome.name]
    assert listing("tmp") == []
    assert read(f"{ROOT}/new/{outcome.name}") == data
    assert os.stat(f"{ROOT}/new/{outcome.name}").st_mode & 0o777 == 0o600
    assert parse_name(outcome.name) is not None


def test_cli_on_the_fake_file_system(
    maildir: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(monkeypatch, capsys, ["--exit-codes", "sysexits", maildir], b"m\n")
    assert (code, err) == (0, "")
    assert listing("new") == [out.strip()]
    assert read(f"{ROOT}/new/{out.strip()}") == b"m\n"


def test_create_on_the_fake_file_system(fs: FakeFilesystem) -> None:
    fs.create_dir("/home/user")
    outcome = run(ROOT, b"hello", create=True)
    assert isinstance(outcome, Delivered)
    assert listing("new") == [outcome.name]
    assert listing("cur") == listing("tmp") == []


def test_disk_full_in_the_middle_of_the_message(
    maildir: str,
    fs: FakeFilesystem,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Room for the first chunk but not the second: the first write succeeds, a later fails.
    fs.set_disk_usage(CHUNK + CHUNK // 2)
    data = os.urandom(3 * CHUNK)
    outcome = run(maildir, data)
    assert isinstance(outcome, TemporaryFailure)
    assert "ENOSPC" in outcome.reason
    assert outcome.reason.startswith("write:")
    assert listing("tmp") == []
    assert listing("new") == []
    assert fs.get_disk_usage()[1] == 0  # nothing of the message is left anywhere
    code, out, err = run_main(monkeypatch, capsys, [maildir], data)
    assert (code, out) == (111, "")
    assert err.startswith("maildir-deliver: ") and err.count("\n") == 1
    assert "ENOSPC" in err
    assert listing("tmp") == listing("new") == []


def test_a_message_that_just_fits(maildir: str, fs: FakeFilesystem) -> None:
    fs.set_disk_usage(3 * CHUNK)
    data = os.urandom(3 * CHUNK)
    outcome = run(maildir, data)
    assert isinstance(outcome, Delivered)
    assert read(f"{ROOT}/new/{outcome.name}") == data


@pytest.mark.parametrize(("argv", "code"), [([], 111), (["--exit-codes", "sysexits"], 75)])
def test_missing_maildir(
    fs: FakeFilesystem,
    argv: list[str],
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = run(ROOT, b"m")
    assert isinstance(outcome, TemporaryFailure)
    assert "ENOENT" in outcome.reason
    got, out, err = run_main(monkeypatch, capsys, [*argv, ROOT], b"m")
    assert (got, out) == (code, "")
    assert err.startswith("maildir-deliver: ") and err.count("\n") == 1
    assert not os.path.exists(ROOT)


@NOT_ROOT
@pytest.mark.parametrize(("argv", "code"), [([], 111), (["--exit-codes", "sysexits"], 75)])
def test_tmp_not_writable(
    maildir: str,
    argv: list[str],
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    os.chmod(f"{ROOT}/tmp", 0o500)
    outcome = run(maildir, b"m")
    assert isinstance(outcome, TemporaryFailure)
    assert "EACCES" in outcome.reason
    got, out, err = run_main(monkeypatch, capsys, [*argv, maildir], b"m")
    assert (got, out) == (code, "")
    assert "EACCES" in err and err.count("\n") == 1
    assert listing("tmp") == listing("new") == []


@NOT_ROOT
def test_new_not_writable_removes_the_tmp_file(maildir: str) -> None:
    os.chmod(f"{ROOT}/new", 0o500)
    outcome = run(maildir, b"m")
    assert isinstance(outcome, TemporaryFailure)
    assert "EACCES" in outcome.reason
    assert outcome.reason.startswith("link:")
    assert listing("tmp") == listing("new") == []


@NOT_ROOT
def test_as_non_root_a_writable_maildir_still_works(maildir: str) -> None:
    outcome = run(maildir, b"m")
    assert isinstance(outcome, Delivered)
    assert listing("new") == [outcome.name]


def test_root_ignores_the_permission_bits(maildir: str) -> None:
    # The contrast to the non-root tests: under the default (root) fixture 0o500 is no bar,
    # so their failures come from the permission check and not from something else.
    if os.getuid() != 0:
        pytest.skip("only meaningful when the tests run as root")
    os.chmod(f"{ROOT}/tmp", 0o500)
    os.chmod(f"{ROOT}/new", 0o500)
    assert isinstance(run(maildir, b"m"), Delivered)


def failing_write(
    gen: Generator[Syscall[Any], object, Outcome], nth: int, code: int
) -> Generator[Syscall[Any], object, Outcome]:
    """Pass `gen` to the driver, but answer its nth Write with OSError(code), unperformed."""
    seen = 0
    request = next(gen)
    while True:
        reply: object
        if isinstance(request, Write) and (seen := seen + 1) == nth:
            reply = OSError(code, os.strerror(code))
        else:
            reply = yield request
        try:
            request = gen.send(reply)
        except StopIteration as done:
            result: Outcome = done.value
            return result


@pytest.mark.parametrize(("argv", "code"), [([], 111), (["--exit-codes", "sysexits"], 75)])
def test_quota_exceeded_in_the_middle_of_the_message(
    maildir: str,
    fs: FakeFilesystem,
    argv: list[str],
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # EDQUOT on the OS driver and through the CLI (D3): the first chunk is on disk when the quota is
    # hit; the outcome is temporary, and nothing of the message is left anywhere.
    data = os.urandom(3 * CHUNK)
    gen = failing_write(deliver(DeliveryRequest(maildir)), 2, errno.EDQUOT)
    outcome = run_on_os(gen, io.BytesIO(data))
    assert isinstance(outcome, TemporaryFailure)
    assert outcome.reason.startswith("write: EDQUOT")
    assert listing("tmp") == listing("new") == []
    monkeypatch.setattr(
        cli, "deliver", lambda request: failing_write(deliver(request), 2, errno.EDQUOT)
    )
    got, out, err = run_main(monkeypatch, capsys, [*argv, maildir], data)
    assert (got, out) == (code, "")
    assert err.startswith("maildir-deliver: temporary failure: write: EDQUOT")
    assert err.count("\n") == 1
    assert listing("tmp") == listing("new") == []
    assert fs.get_disk_usage()[1] == 0
