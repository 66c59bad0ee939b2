"""The one place the checker reaches into Hypothesis's internals, and why.

Everything else uses Hypothesis's public API (`run_state_machine_as_test`, `settings`,
`@seed`). One thing has no public switch (checked against Hypothesis 6.170): its
provider mixes into its draws constants it collects from the source of whatever local
modules the process has imported (HypothesisWorks/hypothesis#4356, the pool cached per
module in #4366, in `hypothesis/internal/conjecture/providers.py`). The pool depends on
what the process happened to import, so a seed replayed from the command line could
explore differently from the run that printed it. The checker's draws are indices and
choices, not literals worth mining, so while a search runs the pool is switched off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def same_search_everywhere() -> Iterator[None]:
    """While this runs, a seeded search draws the same in every process: Hypothesis's pool
    of local constants is empty. A Hypothesis without the pool needs nothing."""
    try:
        from hypothesis.internal.conjecture import providers

        original = providers._get_local_constants
        empty = type(original())()  # an empty pool of Hypothesis's own Constants type
        cache = providers.CONSTANTS_CACHE.cache
    except (ImportError, AttributeError):  # a Hypothesis without the pool
        yield
        return
    providers._get_local_constants = lambda: empty
    cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.clear()
