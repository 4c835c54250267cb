"""A KIP-848 ``consumer`` group: members, the group epoch, the target assignment and its
epoch, and session deadlines read from an injected clock.

Any change of membership, subscription or topic metadata bumps the group epoch; the target
assignment is then recomputed by the server-side assignor at that epoch, and each member
reconciles toward its share on its next heartbeat (``reconciliation.reconcile``). A member
whose heartbeats stop for the session timeout is removed, like one that leaves; so is one
asked to revoke partitions that has not acknowledged it within its rebalance timeout (Kafka
fences it: it keeps heartbeating but holds partitions another member is waiting for).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eventstore.clock import Clock
from eventstore.groups.reconciliation import MemberAssignment, MemberState, reconcile
from eventstore.groups.server_assignors import ASSIGNORS, MemberSpec, TopicPartition


@dataclass
class ConsumerGroupMember:
    """One member: its subscription, its assignment, its session deadline and, while it
    has partitions to revoke, the time by which it must have (its rebalance timeout)."""

    member_id: str
    topics: frozenset[str]
    deadline_ms: int
    assignment: MemberAssignment = field(default_factory=MemberAssignment)
    rebalance_timeout_ms: int = 300_000  # the consumer's max.poll.interval.ms default
    revoke_by_ms: int | None = None

    def next_deadline(self) -> int:
        """The earliest time this member may be removed at."""
        if self.revoke_by_ms is None:
            return self.deadline_ms
        return min(self.deadline_ms, self.revoke_by_ms)


@dataclass
class ConsumerGroup:
    """The group's state; ``heartbeat`` and ``leave`` are the member's requests."""

    group_id: str
    clock: Clock
    session_timeout_ms: int = 45_000
    assignor: str = "uniform"
    group_epoch: int = 0
    target_epoch: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    members: dict[str, ConsumerGroupMember] = field(default_factory=dict)
    target: dict[str, frozenset[TopicPartition]] = field(default_factory=dict)

    def heartbeat(
        self,
        member_id: str,
        topics: frozenset[str] | None = None,
        owned: frozenset[TopicPartition] | None = None,
        rebalance_timeout_ms: int | None = None,
    ) -> MemberAssignment:
        """A member's heartbeat (joining if new; ``topics`` and ``rebalance_timeout_ms``
        None keep what it had): its deadline extends and it takes its next reconciliation
        step; a step that asks it to revoke partitions gives it its rebalance timeout."""
        now = self.clock()
        member = self.members.get(member_id)
        if member is None:
            member = ConsumerGroupMember(member_id, topics or frozenset(), 0)
            self.members[member_id] = member
            self._bump()
        elif topics is not None and topics != member.topics:
            member.topics = topics
            self._bump()
        if rebalance_timeout_ms is not None:
            member.rebalance_timeout_ms = rebalance_timeout_ms
        member.deadline_ms = now + self.session_timeout_ms
        self._refresh_target()
        before = member.assignment
        member.assignment = reconcile(
            before,
            self.target_epoch,
            self.target.get(member_id, frozenset()),
            lambda tp: self._owner_other_than(tp, member_id),
            owned,
        )
        if member.assignment.state is not MemberState.UNREVOKED_PARTITIONS:
            member.revoke_by_ms = None
        elif member.assignment != before:  # a new revocation: Kafka's rebalance timer
            member.revoke_by_ms = now + member.rebalance_timeout_ms
        return member.assignment

    def leave(self, member_id: str) -> None:
        """The member leaves: its partitions are free at once."""
        if self.members.pop(member_id, None) is not None:
            self._bump()

    def expire_members(self) -> list[str]:
        """Remove members whose session ended or whose revocation is overdue; their ids."""
        now = self.clock()
        expired = [m for m, member in self.members.items() if member.next_deadline() <= now]
        for member_id in expired:
            self.leave(member_id)
        return expired

    def set_topics(self, topics: dict[str, int]) -> None:
        """The cluster's topics (name to partition count) changed."""
        if topics != self.topics:
            self.topics = dict(topics)
            self._bump()

    def _bump(self) -> None:
        self.group_epoch += 1

    def _refresh_target(self) -> None:
        if self.target_epoch == self.group_epoch:
            return
        specs = {
            m: MemberSpec(member.topics, self.target.get(m, frozenset()))
            for m, member in self.members.items()
        }
        self.target = ASSIGNORS[self.assignor](specs, self.topics)
        self.target_epoch = self.group_epoch

    def _owner_other_than(self, tp: TopicPartition, member_id: str) -> bool:
        return any(
            tp in member.assignment.assigned or tp in member.assignment.pending_revocation
            for m, member in self.members.items()
            if m != member_id
        )
