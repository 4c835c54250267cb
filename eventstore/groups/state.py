"""A classic consumer group and its members, as state machines.

A group's state only changes through :meth:`Group.transition_to`, which checks the move
against the states it may follow, as Kafka's ``ClassicGroup.transitionTo`` does:

=====================  ===========================================================
to                     from
=====================  ===========================================================
PreparingRebalance     Stable, CompletingRebalance, Empty
CompletingRebalance    PreparingRebalance
Stable                 CompletingRebalance
Empty                  PreparingRebalance
Dead                   any state (Dead included)
=====================  ===========================================================

Any other move is a bug in the coordinator, not a client's mistake: it raises
:class:`IllegalStateError` naming both states rather than leaving a group in a state no
Kafka client expects. A member's state is whether it has a JoinGroup or a SyncGroup
parked (waiting for the rebalance to move on); nothing here touches a clock or a thread.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, replace

from eventstore.errors import InvalidRequest
from eventstore.groups.consumer_protocol import decode_subscription
from eventstore.groups.messages import JoinGroupRequest

CONSUMER_PROTOCOL_TYPE = "consumer"


class GroupState(enum.StrEnum):
    """Kafka's group states, with Kafka's names (what DescribeGroups and ListGroups show)."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


VALID_PREVIOUS_STATES: dict[GroupState, frozenset[GroupState]] = {
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY}),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.DEAD: frozenset(GroupState),
}
"""For each state, the states a group may be in just before it (Kafka's table)."""


class IllegalStateError(RuntimeError):
    """A group was moved to a state its current state may not lead to: a coordinator bug."""

    def __init__(self, group_id: str, current: GroupState, target: GroupState) -> None:
        allowed = ", ".join(sorted(VALID_PREVIOUS_STATES[target]))
        super().__init__(f"group {group_id} cannot move from {current} to {target}"
                         f" (only from {allowed})")
        self.group_id = group_id
        self.current = current
        self.target = target


def protocols_of(request: JoinGroupRequest) -> tuple[tuple[str, bytes], ...]:
    """The (name, metadata) protocols a JoinGroup offers, with the metadata as bytes."""
    return tuple((name, bytes(meta)) for name, meta in request.protocols)


@dataclass(eq=False)
class Member:
    """A member as its latest JoinGroup described it, and its requests parked here.

    ``session_deadline`` is a clock time in ms; ``join_reply`` and ``sync_reply`` are the
    futures of a JoinGroup or SyncGroup waiting for the rebalance, answered when it moves on.
    ``group_instance_id`` (KIP-345) is fixed when the member is created: a static member
    keeps it for life, as Kafka's ClassicGroupMember does.
    """

    member_id: str
    session_deadline: int
    join_reply: Future | None = None
    sync_reply: Future | None = None
    assignment: bytes = b""
    group_instance_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    session_timeout_ms: int = 0
    rebalance_timeout_ms: int = 0
    protocols: tuple[tuple[str, bytes], ...] = ()

    def update(self, request: JoinGroupRequest) -> None:
        """Take what the member's latest JoinGroup says about it."""
        self.client_id = request.client_id
        self.client_host = request.client_host
        self.session_timeout_ms = request.session_timeout_ms
        self.rebalance_timeout_ms = request.rebalance_timeout_ms
        self.protocols = protocols_of(request)

    def metadata(self, protocol: str | None) -> bytes:
        """The member's metadata for ``protocol`` (b'' if it does not offer it)."""
        return next((meta for name, meta in self.protocols if name == protocol), b"")

    @property
    def awaiting_join(self) -> bool:
        """Whether its JoinGroup waits for the rebalance to complete."""
        return self.join_reply is not None

    @property
    def kept_alive(self) -> bool:
        """A member parked in JoinGroup or SyncGroup cannot heartbeat, so it does not expire."""
        return self.join_reply is not None or self.sync_reply is not None


class Group:
    """One classic group: its state, generation, protocol, leader and members.

    ``pending`` holds the ids KIP-394 handed out and not yet joined with, each with the
    deadline by which it must be; ``static_members`` maps each group.instance.id (KIP-345) to
    the id of the member that has it; ``join_deadline`` is when the current rebalance stops
    waiting; ``initial_delay_left_ms`` is set while the first rebalance of an empty group
    may still extend its delay, and ``new_member_added`` says whether it should.
    """

    def __init__(self, group_id: str, empty_since: int) -> None:
        self.group_id = group_id
        self.empty_since = empty_since
        self._state = GroupState.EMPTY
        self.protocol_type = ""
        self.protocol_name: str | None = None
        self.generation_id = 0
        self.leader_id: str | None = None
        self.members: dict[str, Member] = {}
        self.pending: dict[str, int] = {}
        self.static_members: dict[str, str] = {}
        self.join_deadline: int | None = None
        self.initial_delay_left_ms: int | None = None
        self.new_member_added = False

    @property
    def state(self) -> GroupState:
        """The group's state; change it with :meth:`transition_to`."""
        return self._state

    def transition_to(self, target: GroupState) -> None:
        """Move to ``target``; raises IllegalStateError unless the current state may lead there."""
        if self._state not in VALID_PREVIOUS_STATES[target]:
            raise IllegalStateError(self.group_id, self._state, target)
        self._state = target

    def add(self, member: Member) -> None:
        """Make ``member`` one of the group; the first member in leads."""
        self.members[member.member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        if self.leader_id is None:
            self.leader_id = member.member_id

    def remove(self, member_id: str) -> Member:
        """Forget a member; if it led, the longest-standing remaining member leads."""
        member = self.members.pop(member_id)
        if member.group_instance_id is not None:
            del self.static_members[member.group_instance_id]
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        return member

    def replace_static_member(self, group_instance_id: str, new_id: str) -> Member:
        """The static member with ``group_instance_id`` came back under a new member id
        (KIP-345): the same member, with its assignment and its place as leader, now known
        by ``new_id`` (Kafka's ``ClassicGroup.replaceStaticMember``). The old member's parked
        requests are the caller's to answer first; the new member has none."""
        old_id = self.static_members[group_instance_id]
        old = self.members.pop(old_id)
        new = replace(old, member_id=new_id, join_reply=None, sync_reply=None)
        self.members[new_id] = new
        self.static_members[group_instance_id] = new_id
        if self.leader_id == old_id:
            self.leader_id = new_id
        return new

    def rebalance_timeout_ms(self) -> int:
        """How long a rebalance waits for members to join again: the largest member's."""
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def accepts(self, protocol_type: str, names: Iterable[str], member_id: str) -> bool:
        """Whether a member offering these protocols can be in the group with the others."""
        others = [m for m in self.members.values() if m.member_id != member_id]
        if not others:
            return True
        common = set.intersection(*({name for name, _ in m.protocols} for m in others))
        return protocol_type == self.protocol_type and not common.isdisjoint(names)

    def select_protocol(self) -> str:
        """The protocol every member supports that most members prefer; ties: the leader's order."""
        members = list(self.members.values())
        leader = self.members[self.leader_id]
        candidates = [name for name, _ in leader.protocols
                      if all(name in dict(m.protocols) for m in members)]
        votes = Counter(next(n for n, _ in m.protocols if n in candidates) for m in members)
        return max(candidates, key=lambda name: votes[name])

    def subscribed_topics(self) -> frozenset[str]:
        """The topics the members of a consumer group subscribe to, read from their
        metadata for the group's protocol, as Kafka's ``ClassicGroup.computeSubscribedTopics``
        does: none for another protocol type, before a protocol is chosen, or when a member's
        metadata is not a subscription (Kafka then knows no subscription either)."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE or self.protocol_name is None:
            return frozenset()
        topics: set[str] = set()
        for member in self.members.values():
            try:
                topics.update(decode_subscription(member.metadata(self.protocol_name)).topics)
            except InvalidRequest:
                return frozenset()
        return frozenset(topics)

    def all_joined(self) -> bool:
        """Whether every member (and no id KIP-394 handed out) has joined this rebalance."""
        return not self.pending and all(m.awaiting_join for m in self.members.values())
