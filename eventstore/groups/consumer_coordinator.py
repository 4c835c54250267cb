"""KIP-848's group coordinator: every ``consumer`` group of the node, driven by
ConsumerGroupHeartbeat, as plain code with an injected clock.

A heartbeat is checked as Kafka's GroupMetadataManager checks it (an unknown member is
UNKNOWN_MEMBER_ID, an epoch the member is not at FENCED_MEMBER_EPOCH, an instance id held
by a live member UNRELEASED_INSTANCE_ID), then handed to the group's
:class:`~eventstore.groups.consumer_group.ConsumerGroup`, which bumps the group epoch,
recomputes the target assignment and moves the member one reconciliation step.
Subscriptions are topic names and a regex (``subscribed_topic_regex``), resolved against
the topics the caller passes with every call, so a topic created later that matches is
assigned at the next heartbeat of any member. A static member (``instance_id``) leaving
with epoch -2 keeps its partitions for the session timeout and gets them back when it
rejoins under a new member id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from eventstore.clock import Clock
from eventstore.config import CoordinatorConfig
from eventstore.groups.consumer_group import ConsumerGroup, ConsumerGroupMember
from eventstore.groups.reconciliation import MemberAssignment, MemberState
from eventstore.groups.server_assignors import TopicPartition

# Kafka's error codes for the consumer protocol
UNKNOWN_MEMBER_ID = 25
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
GROUP_MAX_SIZE_REACHED = 81
FENCED_MEMBER_EPOCH = 110
UNRELEASED_INSTANCE_ID = 111
UNSUPPORTED_ASSIGNOR = 112
STALE_MEMBER_EPOCH = 113
INVALID_REGULAR_EXPRESSION = 130

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


@dataclass(frozen=True)
class HeartbeatCall:
    """One ConsumerGroupHeartbeat, its null fields None ("unchanged since the last")."""

    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    topic_names: tuple[str, ...] | None = None
    topic_regex: str | None = None
    assignor: str | None = None
    owned: frozenset[TopicPartition] | None = None
    rebalance_timeout_ms: int | None = None
    client_id: str = ""
    client_host: str = ""


@dataclass(frozen=True)
class HeartbeatAnswer:
    """The answer: ``assignment`` is None when the member's assignment did not change
    since it was last sent (Kafka sends it only then)."""

    error_code: int
    member_id: str
    member_epoch: int
    heartbeat_interval_ms: int
    error_message: str | None = None
    assignment: frozenset[TopicPartition] | None = None


@dataclass(frozen=True)
class MemberDescription:
    """One member as ConsumerGroupDescribe, DescribeGroups, the CLI and SQL show it."""

    member_id: str
    instance_id: str | None
    rack_id: str | None
    member_epoch: int
    client_id: str
    client_host: str
    topic_names: tuple[str, ...]
    topic_regex: str | None
    assigned: frozenset[TopicPartition]
    target: frozenset[TopicPartition]


@dataclass(frozen=True)
class ConsumerGroupDescription:
    """A ``consumer`` group: its state (Kafka's names), epochs, assignor and members."""

    group_id: str
    state: str
    group_epoch: int
    assignment_epoch: int
    assignor: str
    members: tuple[MemberDescription, ...]


@dataclass
class _MemberInfo:
    """What the coordinator keeps of a member beside its ConsumerGroup entry."""

    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    topic_names: tuple[str, ...] = ()
    topic_regex: str | None = None
    previous_epoch: int = -1
    sent: frozenset[TopicPartition] | None = None
    left_static: bool = False


@dataclass
class _Group:
    state: ConsumerGroup
    info: dict[str, _MemberInfo] = field(default_factory=dict)
    instances: dict[str, str] = field(default_factory=dict)  # instance id -> member id


class ConsumerGroupCoordinator:
    """Every ``consumer`` group; each call sees them as the previous one left them."""

    def __init__(self, config: CoordinatorConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._assignors = tuple(config.group_consumer_assignors.split(","))
        self._groups: dict[str, _Group] = {}
        self._touched: set[str] = set()  # groups changed since take_changes
        self._taken: dict[str, dict] = {}  # each group's document as last taken

    # -- queries -----------------------------------------------------------------------

    def has_members(self, group_id: str) -> bool:
        """Whether ``group_id`` is a consumer group with members (classic joins refused)."""
        group = self._groups.get(group_id)
        return group is not None and bool(group.state.members)

    def check_commit(self, group_id: str, member_id: str, member_epoch: int,
                     api_version: int = 9) -> int | None:
        """OffsetCommit's check against a consumer group, as Kafka's
        ConsumerGroup.validateOffsetCommit: None if the classic coordinator decides (no
        consumer group of that id, or a commit of epoch -1 to one with no members, which
        is stored as a standalone commit), else 0 or the error code: UNKNOWN_MEMBER_ID,
        UNSUPPORTED_VERSION below OffsetCommit v9, STALE_MEMBER_EPOCH for any other epoch
        than the member's."""
        group = self._groups.get(group_id)
        if group is None or (member_epoch < 0 and not group.state.members):
            return None
        member = group.state.members.get(member_id)
        if member is None:
            return UNKNOWN_MEMBER_ID
        if api_version < 9:
            return UNSUPPORTED_VERSION
        return STALE_MEMBER_EPOCH if member_epoch != member.assignment.epoch else 0

    def check_fetch(self, group_id: str, member_id: str | None, member_epoch: int) -> int:
        """OffsetFetch's check (v9 carries the member), as ConsumerGroup.validateOffsetFetch:
        0 without a member id and epoch, or when ``group_id`` is no consumer group; else
        UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH as for a commit."""
        group = self._groups.get(group_id)
        if group is None or (member_id is None and member_epoch < 0):
            return 0
        member = group.state.members.get(member_id or "")
        if member is None:
            return UNKNOWN_MEMBER_ID
        return STALE_MEMBER_EPOCH if member_epoch != member.assignment.epoch else 0

    def group_ids(self) -> list[str]:
        """Every consumer group's id, sorted."""
        return sorted(self._groups)

    def describe(self, group_id: str) -> ConsumerGroupDescription | None:
        """The group, or None if there is no consumer group of that id."""
        group = self._groups.get(group_id)
        if group is None:
            return None
        state = group.state
        members = tuple(
            MemberDescription(
                member_id, info.instance_id, info.rack_id, member.assignment.epoch,
                info.client_id, info.client_host, info.topic_names, info.topic_regex,
                member.assignment.assigned, state.target.get(member_id, frozenset()))
            for member_id, member in sorted(state.members.items())
            for info in (group.info[member_id],)
        )
        return ConsumerGroupDescription(group_id, _state_name(state), state.group_epoch,
                                        state.target_epoch, state.assignor, members)

    # -- the heartbeat -------------------------------------------------------------------

    def heartbeat(self, call: HeartbeatCall, topics: Mapping[str, int]) -> HeartbeatAnswer:
        """One ConsumerGroupHeartbeat against the cluster's ``topics`` (name to count)."""
        interval = self._config.group_consumer_heartbeat_interval_ms
        refused = self._refusal(call)
        if refused is not None:
            return HeartbeatAnswer(refused[0], call.member_id, call.member_epoch, interval,
                                   refused[1])
        group = self._group(call.group_id)
        self._touched.add(call.group_id)
        if call.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            self._leave(group, call)
            return HeartbeatAnswer(0, call.member_id, call.member_epoch, interval)
        if call.member_epoch == 0:
            code = self._join(group, call, topics)
            if code:
                return HeartbeatAnswer(code, call.member_id, call.member_epoch, interval)
        else:
            code = self._check_epoch(group, call)
            if code:
                return HeartbeatAnswer(code, call.member_id, call.member_epoch, interval)
        info = group.info[call.member_id]
        _subscribe(info, call)
        if call.assignor is not None:
            group.state.assignor = call.assignor
        self._resubscribe(group, topics)
        member = group.state.members[call.member_id]
        before = member.assignment.epoch
        assignment = group.state.heartbeat(call.member_id, None, call.owned,
                                           call.rebalance_timeout_ms)
        if assignment.epoch != before:
            info.previous_epoch = before
        sent = None
        if info.sent != assignment.assigned or call.member_epoch == 0:
            sent = info.sent = assignment.assigned
        return HeartbeatAnswer(0, call.member_id, assignment.epoch, interval, assignment=sent)

    def run_timers(self, topics: Mapping[str, int] | None = None) -> int | None:
        """Remove members past their session or their rebalance timeout (Kafka fences
        both); the next deadline (None: no member)."""
        for group_id, group in self._groups.items():
            epoch = group.state.group_epoch
            for member_id in group.state.expire_members():
                self._forget(group, member_id)
            if topics is not None:
                self._resubscribe(group, topics)
            if group.state.group_epoch != epoch:
                self._touched.add(group_id)
        deadlines = [m.next_deadline() for g in self._groups.values()
                     for m in g.state.members.values()]
        return min(deadlines) if deadlines else None

    def delete(self, group_id: str) -> int:
        """DeleteGroups of a consumer group, as Kafka's ConsumerGroup.validateDeleteGroup:
        0 once an Empty group is forgotten, NON_EMPTY_GROUP while it has members,
        GROUP_ID_NOT_FOUND if no consumer group has that id."""
        group = self._groups.get(group_id)
        if group is None:
            return GROUP_ID_NOT_FOUND
        if group.state.members:
            return NON_EMPTY_GROUP
        del self._groups[group_id]
        self._taken.pop(group_id, None)
        self._touched.discard(group_id)
        return 0

    # -- persistence ---------------------------------------------------------------------

    def take_changes(self) -> dict[str, dict]:
        """The groups whose state changed since the last call, each as a JSON-able
        document (what Kafka writes to __consumer_offsets: the group epoch, the target
        assignment and its epoch, every member's subscription, epoch and assignment);
        session deadlines are not kept, as Kafka keeps none."""
        changed = {}
        for group_id in sorted(self._touched):
            document = _document(self._groups[group_id])
            if document != self._taken.get(group_id):
                self._taken[group_id] = changed[group_id] = document
        self._touched.clear()
        return changed

    def restore(self, group_id: str, document: Mapping) -> None:
        """A group as :meth:`take_changes` gave it (at start-up): its members keep their
        epochs and partitions; their sessions, and the rebalance timeout of a member with
        partitions to revoke, start again now, as when Kafka loads a group."""
        now = self._clock()
        state = ConsumerGroup(group_id, self._clock,
                              self._config.group_consumer_session_timeout_ms,
                              document["assignor"], document["group_epoch"],
                              document["assignment_epoch"], dict(document["topics"]))
        group = _Group(state)
        for member_id, m in document["members"].items():
            assignment = MemberAssignment(m["epoch"], MemberState(m["state"]),
                                          _partitions(m["assigned"]), _partitions(m["pending"]))
            unrevoked = assignment.state is MemberState.UNREVOKED_PARTITIONS
            state.members[member_id] = ConsumerGroupMember(
                member_id, frozenset(m["topics"]), now + state.session_timeout_ms, assignment,
                m["rebalance_timeout_ms"], now + m["rebalance_timeout_ms"] if unrevoked else None)
            state.target[member_id] = _partitions(m["target"])
            group.info[member_id] = _MemberInfo(
                m["instance_id"], m["rack_id"], m["client_id"], m["client_host"],
                tuple(m["topic_names"]), m["topic_regex"], m["previous_epoch"],
                assignment.assigned, m["left_static"])
            if m["instance_id"] is not None:
                group.instances[m["instance_id"]] = member_id
        self._groups[group_id] = group
        self._taken[group_id] = _document(group)

    # -- steps -------------------------------------------------------------------------

    def _refusal(self, call: HeartbeatCall) -> tuple[int, str] | None:
        if not call.group_id:
            return INVALID_REQUEST, "GroupId can't be empty."
        if not call.member_id:
            return INVALID_REQUEST, "MemberId can't be empty."
        if call.assignor is not None and call.assignor not in self._assignors:
            return UNSUPPORTED_ASSIGNOR, f"ServerAssignor {call.assignor} is not supported."
        if call.topic_regex:
            try:
                re.compile(call.topic_regex)
            except re.error as exc:
                return INVALID_REGULAR_EXPRESSION, f"SubscribedTopicRegex: {exc}"
        if call.member_epoch == 0 and call.topic_names is None and call.topic_regex is None:
            return INVALID_REQUEST, ("SubscribedTopicNames or SubscribedTopicRegex must be set"
                                     " in first request.")
        return None

    def _group(self, group_id: str) -> _Group:
        group = self._groups.get(group_id)
        if group is None:
            state = ConsumerGroup(group_id, self._clock,
                                  self._config.group_consumer_session_timeout_ms,
                                  self._assignors[0])
            group = self._groups[group_id] = _Group(state)
        return group

    def _join(self, group: _Group, call: HeartbeatCall, topics: Mapping[str, int]) -> int:
        if call.instance_id is not None:
            holder = group.instances.get(call.instance_id)
            if holder is not None and holder != call.member_id:
                if not group.info[holder].left_static:
                    return UNRELEASED_INSTANCE_ID
                self._rename(group, holder, call.member_id)
                group.info[call.member_id].left_static = False
                return 0
        if call.member_id in group.state.members:  # a known member joining again
            self._remove(group, call.member_id)
        if len(group.state.members) >= self._config.group_consumer_max_size:
            return GROUP_MAX_SIZE_REACHED
        info = group.info[call.member_id] = _MemberInfo(call.instance_id, call.rack_id,
                                                        call.client_id, call.client_host)
        _subscribe(info, call)
        if call.instance_id is not None:
            group.instances[call.instance_id] = call.member_id
        wanted = _wanted(info, topics)
        group.state.set_topics(_subscribed(group, topics) | {t: topics[t] for t in wanted})
        group.state.heartbeat(call.member_id, wanted)
        return 0

    def _check_epoch(self, group: _Group, call: HeartbeatCall) -> int:
        member = group.state.members.get(call.member_id)
        if member is None or group.info[call.member_id].left_static:
            return UNKNOWN_MEMBER_ID
        epoch = member.assignment.epoch
        if call.member_epoch == epoch:
            return 0
        info = group.info[call.member_id]
        lost_answer = (call.member_epoch == info.previous_epoch and call.owned is not None
                       and call.owned <= member.assignment.assigned)
        return 0 if lost_answer else FENCED_MEMBER_EPOCH

    def _leave(self, group: _Group, call: HeartbeatCall) -> None:
        info = group.info.get(call.member_id)
        if info is None:
            return
        if call.member_epoch == STATIC_LEAVE_EPOCH and info.instance_id is not None:
            info.left_static = True  # keeps its partitions until its session ends
        else:
            self._remove(group, call.member_id)

    def _remove(self, group: _Group, member_id: str) -> None:
        group.state.leave(member_id)
        self._forget(group, member_id)

    def _forget(self, group: _Group, member_id: str) -> None:
        info = group.info.pop(member_id, None)
        if info is not None and group.instances.get(info.instance_id) == member_id:
            del group.instances[info.instance_id]

    def _rename(self, group: _Group, old: str, new: str) -> None:
        """A static member back under a new member id: same partitions, same epoch."""
        state = group.state
        member = state.members.pop(old)
        member.member_id = new
        state.members[new] = member
        if old in state.target:
            state.target[new] = state.target.pop(old)
        group.info[new] = group.info.pop(old)
        group.instances[group.info[new].instance_id] = new

    def _resubscribe(self, group: _Group, topics: Mapping[str, int]) -> None:
        """Each member's topics: its names plus the existing topics its regex matches;
        the group's topic metadata: the subscribed topics' partition counts."""
        for member_id, member in group.state.members.items():
            wanted = _wanted(group.info[member_id], topics)
            if wanted != member.topics:
                member.topics = wanted
                group.state.group_epoch += 1
        group.state.set_topics(_subscribed(group, topics))


def _subscribe(info: _MemberInfo, call: HeartbeatCall) -> None:
    """The subscription fields a heartbeat carried (None: unchanged)."""
    if call.topic_names is not None:
        info.topic_names = tuple(call.topic_names)
    if call.topic_regex is not None:
        info.topic_regex = call.topic_regex or None


def _wanted(info: _MemberInfo, topics: Mapping[str, int]) -> frozenset[str]:
    """A member's topics: its names, and the existing topics its regex matches whole."""
    wanted = set(info.topic_names)
    if info.topic_regex:
        pattern = re.compile(info.topic_regex)
        wanted |= {t for t in topics if pattern.fullmatch(t)}
    return frozenset(wanted)


def _subscribed(group: _Group, topics: Mapping[str, int]) -> dict[str, int]:
    """Partition counts of the existing topics some member subscribes to."""
    wanted = {t for m in group.state.members.values() for t in m.topics}
    return {t: n for t, n in topics.items() if t in wanted}


def _sorted(partitions: frozenset[TopicPartition]) -> list[list]:
    return [list(tp) for tp in sorted(partitions)]


def _partitions(listed: list[list]) -> frozenset[TopicPartition]:
    return frozenset((topic, partition) for topic, partition in listed)


def _document(group: _Group) -> dict:
    """The group's state as ``restore`` takes it back: plain, ordered JSON values."""
    state = group.state
    members = {}
    for member_id, member in sorted(state.members.items()):
        info, assignment = group.info[member_id], member.assignment
        members[member_id] = {
            "instance_id": info.instance_id, "rack_id": info.rack_id,
            "client_id": info.client_id, "client_host": info.client_host,
            "topic_names": list(info.topic_names), "topic_regex": info.topic_regex,
            "topics": sorted(member.topics), "rebalance_timeout_ms": member.rebalance_timeout_ms,
            "epoch": assignment.epoch, "previous_epoch": info.previous_epoch,
            "state": assignment.state.value, "assigned": _sorted(assignment.assigned),
            "pending": _sorted(assignment.pending_revocation),
            "target": _sorted(state.target.get(member_id, frozenset())),
            "left_static": info.left_static,
        }
    return {"group_epoch": state.group_epoch, "assignment_epoch": state.target_epoch,
            "assignor": state.assignor, "topics": dict(sorted(state.topics.items())),
            "members": members}


def _state_name(group: ConsumerGroup) -> str:
    """Kafka's ConsumerGroupState names."""
    if not group.members:
        return "Empty"
    if group.target_epoch != group.group_epoch:
        return "Assigning"
    if all(m.assignment.epoch == group.target_epoch
           and m.assignment.state is MemberState.STABLE for m in group.members.values()):
        return "Stable"
    return "Reconciling"
