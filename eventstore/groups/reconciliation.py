"""KIP-848's member reconciliation: how one member moves from its current assignment to
its target, one heartbeat at a time, without two members owning a partition.

A member's state is ``STABLE`` (it owns its target at the target's epoch),
``UNREVOKED_PARTITIONS`` (it must first give up partitions: its epoch stays until its
heartbeat no longer reports them) or ``UNRELEASED_PARTITIONS`` (it is at the new epoch but
some of its new partitions are still held, assigned or pending revocation, by another
member; it gets them once they are released). A partition is given to its new owner only
after the previous owner acknowledged its revocation.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace

from eventstore.groups.server_assignors import TopicPartition


class MemberState(enum.Enum):
    """Where a member stands in reconciling toward its target assignment."""

    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


@dataclass(frozen=True)
class MemberAssignment:
    """A member's epoch, the partitions it owns and those it is asked to give up."""

    epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned: frozenset[TopicPartition] = frozenset()
    pending_revocation: frozenset[TopicPartition] = frozenset()


def reconcile(
    current: MemberAssignment,
    target_epoch: int,
    target: frozenset[TopicPartition],
    owned_by_others: Callable[[TopicPartition], bool],
    reported: frozenset[TopicPartition] | None = None,
) -> MemberAssignment:
    """The member's next assignment given its target and, when its heartbeat carried them,
    the partitions it ``reported`` still owning (``None`` when it sent no list)."""
    if current.state is MemberState.UNREVOKED_PARTITIONS:
        if reported is None or reported & current.pending_revocation:
            return current
        current = replace(current, pending_revocation=frozenset())
    elif current.state is MemberState.STABLE and current.epoch == target_epoch:
        return current
    revoke = current.assigned - target
    kept = current.assigned & target
    if revoke:
        return MemberAssignment(current.epoch, MemberState.UNREVOKED_PARTITIONS, kept, revoke)
    new = target - current.assigned
    free = frozenset(tp for tp in new if not owned_by_others(tp))
    state = MemberState.STABLE if free == new else MemberState.UNRELEASED_PARTITIONS
    return MemberAssignment(target_epoch, state, kept | free, frozenset())
