"""Why HypoFuzz recorded no coverage for the campaign targets, and the one patch that lets
it (applied by tests/test_campaign_target.py only inside a HypoFuzz worker).

HypoFuzz keeps an input in its corpus only after a second execution of the same choice
sequence covers the same branches (hypofuzz/provider.py, `after_test_case`: "only add
coverage from stable re-executions"). It records an input's choices as the values of
*every* choice node of the observation, forced ones included, but when it replays them its
provider is asked only for the unforced draws (`HypofuzzProvider._pop_choice`: Hypothesis
answers a forced draw itself). From the first forced node on, every replayed choice is one
off - a boolean where an integer is drawn - and HypoFuzz, finding the choice "misaligned",
draws a fresh random one. Every stateful test has such a node: its first "stop now?"
boolean is forced to False (hypothesis/stateful.py, `_min_steps`). So the re-execution runs
another program, its coverage differs, and nothing ever enters the corpus - not for our
targets, not for a three-line RuleBasedStateMachine (measured with hypofuzz 25.11.1 and
Hypothesis 6.145.1: 0 of 56 stability re-executions of a trivial machine replayed the
original choices; hypofuzz's master of May 2026 records the choices the same way).

The patch hands HypoFuzz each observation without its forced nodes, so what it records is
exactly what its provider is asked for on replay. Nothing else changes.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def record_unforced_choices_only() -> None:
    from hypofuzz import provider

    original = provider.HypofuzzProvider.after_test_case
    if getattr(original, "_unforced_only", False):
        return

    def after_test_case(self: Any, observation: Any) -> None:
        nodes = observation.metadata.choice_nodes
        if nodes is not None and any(n.was_forced for n in nodes):
            unforced = tuple(n for n in nodes if not n.was_forced)
            metadata = dataclasses.replace(observation.metadata, choice_nodes=unforced)
            observation = dataclasses.replace(observation, metadata=metadata)
        original(self, observation)

    after_test_case._unforced_only = True  # type: ignore[attr-defined]
    provider.HypofuzzProvider.after_test_case = after_test_case  # type: ignore[method-assign]
