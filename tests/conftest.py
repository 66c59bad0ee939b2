"""Fixtures shared by the test modules that deliver into a real directory."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    """An empty Maildir (tmp/, new/, cur/) in the test's own temporary directory."""
    root = tmp_path / "Maildir"
    for sub in ("", "tmp", "new", "cur"):
        (root / sub).mkdir()
    return root
