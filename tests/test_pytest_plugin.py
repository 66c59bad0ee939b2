"""The pytest plugin (issue 4, part 4): an agent's own suite can assert what its strategy
keeps, and gets the counterexample when it does not. Run through pytester in a subprocess
so that the plugin is loaded the way a user's suite loads it (entry point pytest11)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_fixture_passes_and_fails_as_it_should(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_correct_keeps_everything(maildircheck):
            maildircheck.assert_keeps("correct", "ext4-ordered", max_examples=40)

        def test_no_dir_fsync_is_flagged(maildircheck):
            maildircheck.assert_breaks("no-dir-fsync", "ext4-ordered", "P2")

        def test_no_dir_fsync_does_not_keep_p2(maildircheck):
            maildircheck.assert_keeps("no-dir-fsync", "ext4-ordered", ("P2",))
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*P2 no-early-success*", "*replay: maildircheck verify*"])
