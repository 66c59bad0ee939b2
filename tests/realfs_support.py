"""What a test on a real file system needs: the rig, or a clear reason why not.

`.ci/run` sets MAILDIRCHECK_REQUIRE_REALFS=1: there (CI has root, FUSE and loop devices) a
missing capability fails the test with its reason; elsewhere the test is skipped with it.
"""

from __future__ import annotations

import os

import pytest

from maildircheck.harness.realfs.filesystems import RealFs
from maildircheck.harness.realfs.rig import unavailable


def require_rig(fs: RealFs | None = None) -> None:
    why = unavailable(fs)
    if why is None:
        return
    if os.environ.get("MAILDIRCHECK_REQUIRE_REALFS"):
        pytest.fail(f"real-file-system test cannot run: {why}")
    pytest.skip(why)
