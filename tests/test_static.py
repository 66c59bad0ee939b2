"""Static checks as tests: the package is typed (mypy --strict) and linted (ruff).

mypy cannot follow the editable install's import hook, so the test builds the package's
import layout out of symlinks in a temp dir (maildircheck/{model,impl,harness}) and checks
it there; nothing on anyone's path changes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    other = shutil.which(name)
    if other is None:
        pytest.fail(f"{name} is not installed (pip install -e '.[test]')")
    return other


def test_mypy_strict(tmp_path: Path) -> None:
    pkg = tmp_path / "maildircheck"
    pkg.mkdir()
    for sub in ("model", "impl", "harness"):
        (pkg / sub).symlink_to(ROOT / sub)
    result = subprocess.run(
        [
            tool("mypy"),
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "-p",
            "maildircheck",
        ],
        cwd=tmp_path,
        env={"MYPYPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_ruff() -> None:
    result = subprocess.run(
        [tool("ruff"), "check", "model", "impl", "harness", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
