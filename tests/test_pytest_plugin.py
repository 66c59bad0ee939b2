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


def test_a_relative_strategy_file_is_found_beside_the_test_file(
    pytester: pytest.Pytester,
) -> None:
    """"agent.py:deliver" in tests/test_agent.py names tests/agent.py, wherever pytest is
    started from (it was looked up from the working directory only)."""
    tests = pytester.mkdir("tests")
    (tests / "agent.py").write_text(
        "from maildircheck.impl.deliver import deliver\n\n"
        "def mine(request):\n"
        "    return (yield from deliver(request))\n"
    )
    (tests / "test_agent.py").write_text(
        "def test_mine_keeps_p1_and_p2(maildircheck):\n"
        '    maildircheck.assert_keeps("agent.py:mine", "ext4-ordered", ("P1", "P2"),'
        " max_examples=20)\n"
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "tests")
    result.assert_outcomes(passed=1)
