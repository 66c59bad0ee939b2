"""The one verdict vocabulary of verify, trace, matrix and their JSON (issue 13).

A check answers one of: "holds"; "violated"; "environment cannot keep it" - the environment
itself breaks P1/P2 for any agent (an NFS export that acknowledges writes before they are
stable, R2), so the agent is judged without that crash and the environment's verdict is
shown apart; "not checked: why" - nothing could be judged. `trace` adds "delivered
nothing" (exit 0 and nothing in new/ or cur/, a false report) and "incomplete" (the replay
stopped at a call the model cannot follow).
"""

from __future__ import annotations

from maildircheck.model.environments import ENVIRONMENTS
from maildircheck.model.properties import Violation

HOLDS = "holds"
VIOLATED = "violated"
ENVIRONMENT_CANNOT = "environment cannot keep it"
NOT_CHECKED = "not checked"
DELIVERED_NOTHING = "delivered nothing"
INCOMPLETE = "incomplete"
DURABILITY = ("P1", "P2")  # what an environment that cannot keep mail breaks for everyone


def not_checked(why: str) -> str:
    return f"{NOT_CHECKED}: {why}"


def result_verdict(env: str, violation: Violation | None, stopped: str | None = None) -> str:
    """A traced run's verdict under one profile: a P1/P2 violation where no agent can keep
    them is the environment's, not the agent's."""
    if violation is not None:
        if violation.prop in DURABILITY and not ENVIRONMENTS[env].durable_success_possible:
            return ENVIRONMENT_CANNOT
        return VIOLATED
    return INCOMPLETE if stopped else HOLDS
