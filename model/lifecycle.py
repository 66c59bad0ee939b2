"""The abstract delivery state machine: a message's lifecycle as a table (specs L1).

Theory of operation. A delivery attempt is, at every moment, in one abstract `Stage`,
computed from the concrete model state by `stage_of` (an abstraction function). The
checker computes the stage before and after every step and looks the pair up in
`TRANSITIONS`; a step that keeps the stage is a stutter. An algorithm that refines this
machine can only ever report success from DURABLE and only ever leaves nothing behind when
it fails. docs/lifecycle.md draws its diagram from this table (`mermaid()`), and the
checker prints each step's transition in the timeline; a pair missing from the table is
shown as "off the protocol" (the correct strategy is tested never to take one).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Stage(enum.Enum):
    QUEUED = "queued"  # nothing of the message on disk
    WRITING = "writing"  # a tmp/ file exists, not yet the complete message
    STAGED = "staged"  # the complete message in tmp/, not yet durable
    SAFE_IN_TMP = "safe-in-tmp"  # the complete message durable in tmp/
    VISIBLE = "visible"  # complete in new/ or cur/, a power loss could still lose it
    DURABLE = "durable"  # complete in new/ or cur/ in every crash state
    DELIVERED = "delivered"  # success reported (from DURABLE only)
    FAILED = "failed"  # failure reported, nothing left behind
    ABANDONED = "abandoned"  # the process died (kill -9, power loss)
    # states no correct algorithm may enter:
    PARTIAL = "partial"  # incomplete content visible in new/ or cur/
    EARLY_SUCCESS = "early-success"  # success reported while not DURABLE
    DIRTY_FAILURE = "dirty-failure"  # failure reported with a tmp/ file left


FORBIDDEN = frozenset({Stage.PARTIAL, Stage.EARLY_SUCCESS, Stage.DIRTY_FAILURE})

# (from, to) -> what the step did. The only edges an implementation may take.
TRANSITIONS: dict[tuple[Stage, Stage], str] = {
    (Stage.QUEUED, Stage.WRITING): "create the file in tmp/",
    (Stage.QUEUED, Stage.STAGED): "create and write the file in tmp/ (empty message)",
    (Stage.QUEUED, Stage.SAFE_IN_TMP): "create the file in tmp/ (empty message, sync)",
    (Stage.WRITING, Stage.STAGED): "write the last byte",
    (Stage.WRITING, Stage.SAFE_IN_TMP): "write the last byte (sync)",
    (Stage.STAGED, Stage.SAFE_IN_TMP): "fsync the file",
    (Stage.STAGED, Stage.WRITING): "close reports a write error: unsynced data is lost (F7)",
    (Stage.SAFE_IN_TMP, Stage.VISIBLE): "link tmp/ into new/",
    (Stage.SAFE_IN_TMP, Stage.DURABLE): "link tmp/ into new/ (durable at once)",
    (Stage.VISIBLE, Stage.DURABLE): "fsync new/",
    (Stage.DURABLE, Stage.DELIVERED): "report success",
    (Stage.QUEUED, Stage.FAILED): "report failure",
    (Stage.WRITING, Stage.QUEUED): "remove the tmp/ file",
    (Stage.STAGED, Stage.QUEUED): "remove the tmp/ file",
    (Stage.SAFE_IN_TMP, Stage.QUEUED): "remove the tmp/ file",
    (Stage.VISIBLE, Stage.QUEUED): "remove the new/ entry, or lose it in a power loss",
    (Stage.VISIBLE, Stage.SAFE_IN_TMP): "remove the new/ entry after a failed fsync of new/",
    (Stage.DURABLE, Stage.SAFE_IN_TMP): "remove the new/ entry after a failed fsync of new/",
    (Stage.DURABLE, Stage.QUEUED): "the reader deletes the message",
    (Stage.VISIBLE, Stage.FAILED): "report failure after a failed fsync of new/ (the reader "
    "had already moved the message)",
    (Stage.DURABLE, Stage.FAILED): "report failure after a failed fsync of new/ (the reader "
    "had already moved the message)",
}
for _stage in (
    Stage.QUEUED,
    Stage.WRITING,
    Stage.STAGED,
    Stage.SAFE_IN_TMP,
    Stage.VISIBLE,
    Stage.DURABLE,
):
    TRANSITIONS[(_stage, Stage.ABANDONED)] = "the process dies"
del _stage


@dataclass(frozen=True)
class Facts:
    """What the abstraction function needs to know about one delivery attempt."""

    reported: str | None  # "success", "failure" or None
    died: bool
    partial_visible: bool
    visible: bool  # its complete message is in new/ or cur/
    guaranteed: bool  # ... in every crash state
    tmp_exists: bool
    tmp_complete: bool
    tmp_durable: bool


def stage_of(f: Facts) -> Stage:
    """The abstraction function: concrete facts -> abstract stage."""
    if f.partial_visible:
        return Stage.PARTIAL
    if f.reported == "success":
        return Stage.DELIVERED if f.guaranteed else Stage.EARLY_SUCCESS
    if f.reported == "failure":
        return Stage.DIRTY_FAILURE if f.tmp_exists else Stage.FAILED
    if f.died:
        return Stage.ABANDONED
    if f.guaranteed:
        return Stage.DURABLE
    if f.visible:
        return Stage.VISIBLE
    if f.tmp_exists:
        if not f.tmp_complete:
            return Stage.WRITING
        return Stage.SAFE_IN_TMP if f.tmp_durable else Stage.STAGED
    return Stage.QUEUED


def transition(before: Stage, after: Stage) -> str | None:
    """The table's label for a step, "" for a stutter, None when the step is off the table."""
    if before == after:
        return ""
    return TRANSITIONS.get((before, after))


def mermaid() -> str:
    """The table as a Mermaid state diagram (docs/lifecycle.md embeds this text). Mermaid
    state ids cannot hold "-" and labels cannot hold ":" or ";", so ids are the enum names
    and labels are cleaned."""

    def sid(stage: Stage) -> str:
        return stage.name.lower()

    def text(label: str) -> str:
        return label.replace(":", " -").replace(";", ",")

    lines = ["stateDiagram-v2", f"    [*] --> {sid(Stage.QUEUED)}"]
    for (src, dst), label in TRANSITIONS.items():
        if dst is Stage.ABANDONED:
            continue
        lines.append(f"    {sid(src)} --> {sid(dst)}: {text(label)}")
    lines.append(
        f"    {sid(Stage.QUEUED)} --> {sid(Stage.ABANDONED)}: the process dies (any stage)"
    )
    lines += [f"    {sid(Stage.DELIVERED)} --> [*]", f"    {sid(Stage.FAILED)} --> [*]"]
    return "\n".join(lines)
