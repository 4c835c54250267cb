"""Kafka's classic consumer-group coordinator, as plain synchronous code.

Both the embedded consumer and Kafka clients over the wire (kafka-python, librdkafka)
drive it exactly as they drive a Kafka broker's coordinator: JoinGroup, SyncGroup,
Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch, with Kafka's error codes. Protocol
metadata and assignments are opaque bytes here: the member elected leader runs the
assignor client-side and sends every member's assignment in its SyncGroup.

A group moves Empty -> PreparingRebalance -> CompletingRebalance -> Stable (see
:mod:`eventstore.groups.state`). A rebalance waits until every known member has sent
JoinGroup again (or the rebalance timeout, the largest of the members', passes and the
laggards are dropped); the first rebalance of an empty group waits
``group.initial.rebalance.delay.ms`` longer for more members. Members missing their session
timeout are dropped, which starts a rebalance. JoinGroup and SyncGroup requests that must
wait are parked: their ``concurrent.futures.Future`` is completed later, by whichever call
moves the rebalance on, so nothing here ever blocks.

A member with a ``group.instance.id`` is static (KIP-345): when its consumer restarts and
joins with no member id, it takes its old place under a new id (in a Stable group, with
its assignment and no rebalance), and whoever still uses the old id is answered
FENCED_INSTANCE_ID. Every check follows Kafka's order: the member, then the generation,
then the group's state.

Committed offsets live in the catalog (they survive restarts); group membership is in
memory only, as a restarted Kafka coordinator's members also rejoin. Every deadline is read
from the injected clock (milliseconds, like Kafka's). There is no thread: the owner is
asked, through ``wake_at``, to call :meth:`ClassicGroupCoordinator.run_timers` at the
earliest deadline, and every call first runs whatever is already due, so a late wake-up
changes nothing a client can see.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, InvalidStateError

from eventstore.clock import Clock
from eventstore.config import CoordinatorConfig
from eventstore.errors import (
    FencedInstanceId,
    GroupIdNotFound,
    GroupSubscribedToTopic,
    IllegalGeneration,
    InconsistentGroupProtocol,
    InvalidGroupId,
    InvalidSessionTimeout,
    KafkaStorageError,
    MemberIdRequired,
    NonEmptyGroup,
    NotCoordinator,
    OffsetMetadataTooLarge,
    RebalanceInProgress,
    UnknownMemberId,
    UnknownTopicOrPartition,
)
from eventstore.groups.messages import (
    CoordinatorStats,
    GroupDescription,
    JoinGroupMember,
    JoinGroupRequest,
    JoinGroupResult,
    MemberDescription,
    MemberIdentity,
    SyncGroupRequest,
    SyncGroupResult,
)
from eventstore.groups.state import (
    CONSUMER_PROTOCOL_TYPE,
    Group,
    GroupState,
    Member,
    protocols_of,
)
from eventstore.storage.catalog import Catalog, CommittedOffset
from eventstore.topic_partition import TopicPartition

log = logging.getLogger(__name__)

NO_ERROR = 0

WakeAt = Callable[[int], None]
"""Asks the owner to call ``run_timers`` at a clock time (ms); each call replaces the last."""


def _complete(reply: Future, result: JoinGroupResult | SyncGroupResult) -> None:
    """Answer a parked request; a reply its caller has already cancelled is dropped."""
    with contextlib.suppress(InvalidStateError):
        reply.set_result(result)


class ClassicGroupCoordinator:
    """Every classic group of one catalog, and their committed offsets.

    JoinGroup and SyncGroup answer through the ``reply`` future they are given (at once or
    when the rebalance moves on); every other method returns its answer. Error codes are
    Kafka's (0 for none); reads of the catalog may raise KafkaStorageError. The caller owns
    the catalog and calls one method at a time.
    """

    def __init__(self, catalog: Catalog, config: CoordinatorConfig, clock: Clock,
                 wake_at: WakeAt) -> None:
        """Know every group that has committed offsets (as Empty) and ask for a first wake-up."""
        self._catalog = catalog
        self._config = config
        self._clock = clock
        self._wake_at = wake_at
        self._groups: dict[str, Group] = {}
        self._rebalances = 0
        now = clock()
        for group_id in catalog.groups():
            self._groups[group_id] = Group(group_id, empty_since=now)
        self._next_sweep = now + config.offsets_retention_check_interval_ms
        self._next_due = 0
        self._arm()

    def abandon(self) -> None:
        """Answer every parked request NOT_COORDINATOR: the coordinator is going away, and
        clients go find it again, as after a Kafka coordinator moves."""
        for group in self._groups.values():
            for member in group.members.values():
                self._fail_parked(member, NotCoordinator.code)

    # -- group membership ----------------------------------------------------------------

    def join_group(self, request: JoinGroupRequest, reply: Future) -> None:
        """JoinGroup: completes ``reply`` with a JoinGroupResult, now or once the rebalance
        this member takes part in completes."""
        now = self._now()
        result = self._join(request, reply, now)
        if result is not None:
            _complete(reply, result)

    def sync_group(self, request: SyncGroupRequest, reply: Future) -> None:
        """SyncGroup: completes ``reply`` with a SyncGroupResult once the leader's assignment
        for this generation is known (at once if it already is)."""
        now = self._now()
        result = self._sync(request, reply, now)
        if result is not None:
            _complete(reply, result)

    def heartbeat(self, group_id: str, generation_id: int, member_id: str,
                  group_instance_id: str | None = None) -> int:
        """Heartbeat: keeps the member's session; REBALANCE_IN_PROGRESS means join again.

        Checked as Kafka's ``GroupMetadataManager.validateClassicGroupHeartbeat`` does: the
        member (FENCED_INSTANCE_ID for a static member another consumer replaced), then the
        generation, then the group's state.
        """
        now = self._now()
        group = self._groups.get(group_id)
        error = self._check_member(group_id, group, generation_id, member_id,
                                   group_instance_id)
        if error:
            return error
        self._keep_session(group.members[member_id], now)
        if group.state is GroupState.PREPARING_REBALANCE:
            return RebalanceInProgress.code
        return NO_ERROR

    def leave_group(self, group_id: str, members: Iterable[str | MemberIdentity]) -> int:
        """LeaveGroup: removes the members (a member id, or a MemberIdentity) and starts a
        rebalance.

        Returns the error of a member that could not leave, if any (the others still leave);
        LeaveGroup v3+ answers per member: call once per member for each one's code.
        """
        now = self._now()
        if not group_id:
            return InvalidGroupId.code
        group = self._groups.get(group_id)
        error = NO_ERROR
        for member in members:
            identity = MemberIdentity(member) if isinstance(member, str) else member
            code = UnknownMemberId.code if group is None else self._leave(group, identity, now)
            error = code or error
        return error

    def _leave(self, group: Group, identity: MemberIdentity, now: int) -> int:
        """One member leaves, checked in the order of Kafka's classic LeaveGroup: by instance
        id alone (an admin removing a static member), as a KIP-394 id not yet joined with,
        or as a current member (FENCED_INSTANCE_ID if its instance id is another's now)."""
        member_id, instance_id = identity
        if not member_id and instance_id is not None:
            current = group.static_members.get(instance_id)
            if current is None:
                return UnknownMemberId.code
            member_id = current
        elif group.pending.pop(member_id, None) is not None:
            self._maybe_complete_join(group, now)
            return NO_ERROR
        else:
            error = self._check_identity(group, member_id, instance_id)
            if error:
                return error
        self._remove_member(group, member_id, now, "left the group")
        return NO_ERROR

    # -- offsets -------------------------------------------------------------------------

    def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        offsets: Mapping[TopicPartition, tuple[int, str | None] | tuple[int, str | None, int]],
        group_instance_id: str | None = None,
    ) -> dict[TopicPartition, int]:
        """OffsetCommit: stores (offset, metadata) per partition; returns an error code each.

        Generation -1 with member '' is a standalone commit, allowed while the group is
        Empty. Otherwise the member must be known (and hold its group.instance.id, if it
        gives one) and of the current generation; commits are accepted while the group
        prepares a rebalance (so members can commit what they processed before giving
        partitions up) but not while it completes one.
        """
        now = self._now()
        error = self._check_commit(group_id, generation_id, member_id, group_instance_id, now)
        if error:
            return {tp: error for tp in offsets}
        try:
            results, store = self._check_offsets(group_id, offsets, now)
            self._catalog.commit_offsets(group_id, store)
        except KafkaStorageError:
            # Kafka's answer when the coordinator cannot write: clients look it up again.
            log.exception("group %s: committing offsets failed", group_id)
            return {tp: NotCoordinator.code for tp in offsets}
        if group_id not in self._groups:
            self._groups[group_id] = Group(group_id, empty_since=now)
        return results

    def fetch_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, tuple[int, str]]:
        """OffsetFetch: (offset, metadata) per partition, (-1, '') where none is committed;
        ``partitions=None`` gives every partition the group has committed."""
        self._now()
        committed = {(o.topic, o.partition): (o.offset, o.metadata or "")
                     for o in self._catalog.committed_offsets(group_id)}
        if partitions is None:
            return committed
        return {tp: committed.get(tp, (-1, "")) for tp in partitions}

    def delete_offsets(self, group_id: str, partitions: Iterable[TopicPartition]
                       ) -> tuple[int, dict[TopicPartition, int]]:
        """OffsetDelete: forgets the group's committed offsets of ``partitions``; returns
        the group's error code and, without one, an error code per partition.

        In the order of Kafka's ``OffsetMetadataManager.deleteOffsets`` and
        ``ClassicGroup.validateOffsetDelete``: INVALID_GROUP_ID for an empty id,
        GROUP_ID_NOT_FOUND for an unknown group, NON_EMPTY_GROUP while a group of another
        protocol type than ``consumer`` has members; then per partition
        GROUP_SUBSCRIBED_TO_TOPIC while a member subscribes to its topic, else its offset
        (if any) is deleted. An Empty group left with no offsets is forgotten, as Kafka's
        ``cleanupGroupMetadata`` does.
        """
        self._now()
        if not group_id:
            return InvalidGroupId.code, {}
        group = self._groups.get(group_id)
        if group is None:
            return GroupIdNotFound.code, {}
        if group.state is not GroupState.EMPTY and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return NonEmptyGroup.code, {}
        subscribed = group.subscribed_topics()
        results = {tp: GroupSubscribedToTopic.code if tp[0] in subscribed else NO_ERROR
                   for tp in partitions}
        try:
            self._catalog.delete_offsets(group_id, [tp for tp, e in results.items() if not e])
            left = self._catalog.committed_offsets(group_id)
        except KafkaStorageError:
            log.exception("group %s: deleting offsets failed", group_id)
            return NotCoordinator.code, {}
        if group.state is GroupState.EMPTY and not group.pending and not left:
            self._forget(group)
        return NO_ERROR, results

    def leader_epochs(self, group_id: str) -> dict[TopicPartition, int]:
        """OffsetFetch's committed leader epoch of each partition the group committed with
        one (Kafka's clients send it to detect a log truncated under them)."""
        self._now()
        return {(o.topic, o.partition): o.leader_epoch
                for o in self._catalog.committed_offsets(group_id) if o.leader_epoch >= 0}

    # -- administration and metrics ------------------------------------------------------

    def list_groups(self) -> list[tuple[str, str, str]]:
        """ListGroups: (group id, protocol type, state) of every group, by id, including
        groups that only have committed offsets (Empty, protocol type '')."""
        self._now()
        return [(g.group_id, g.protocol_type, g.state.value)
                for _, g in sorted(self._groups.items())]

    def describe_group(self, group_id: str) -> GroupDescription:
        """DescribeGroups: state and members; metadata and assignments only when Stable."""
        self._now()
        group = self._groups.get(group_id)
        if group is None:
            return GroupDescription(group_id, GroupState.DEAD.value, "", "", ())
        stable = group.state is GroupState.STABLE
        members = tuple(
            MemberDescription(
                m.member_id, m.group_instance_id, m.client_id, m.client_host,
                m.metadata(group.protocol_name) if stable else b"",
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        protocol = group.protocol_name if stable else ""
        return GroupDescription(group_id, group.state.value, group.protocol_type, protocol,
                                members)

    def delete_group(self, group_id: str) -> int:
        """DeleteGroups: forgets an Empty group and its committed offsets.

        NON_EMPTY_GROUP while it has members (or a rebalance is under way),
        GROUP_ID_NOT_FOUND if there is no such group.
        """
        self._now()
        group = self._groups.get(group_id)
        if group is None:
            return GroupIdNotFound.code
        if group.state is not GroupState.EMPTY:
            return NonEmptyGroup.code
        self._catalog.delete_group_offsets(group_id)
        self._forget(group)
        log.info("group %s: deleted", group_id)
        return NO_ERROR

    def stats(self) -> CoordinatorStats:
        """Rebalances started since the coordinator started, and members of every group."""
        self._now()
        return CoordinatorStats(self._rebalances,
                                {gid: len(g.members) for gid, g in sorted(self._groups.items())})

    # -- JoinGroup and SyncGroup -----------------------------------------------------------

    def _join(self, request: JoinGroupRequest, reply: Future, now: int) -> JoinGroupResult | None:
        """Handle JoinGroup; a result to answer now, or None once ``reply`` is parked."""
        member_id = request.member_id
        config = self._config
        if not request.group_id:
            return JoinGroupResult(InvalidGroupId.code, member_id=member_id)
        if not (config.group_min_session_timeout_ms <= request.session_timeout_ms
                <= config.group_max_session_timeout_ms):
            return JoinGroupResult(InvalidSessionTimeout.code, member_id=member_id)
        group = self._groups.get(request.group_id)
        if group is None and member_id:  # a group is only made for a member with no id yet
            return JoinGroupResult(UnknownMemberId.code, member_id=member_id)
        if not request.protocol_type or not request.protocols:
            return JoinGroupResult(InconsistentGroupProtocol.code, member_id=member_id)
        if group is None:
            group = self._groups[request.group_id] = Group(request.group_id, empty_since=now)
        names = [name for name, _ in request.protocols]
        if not group.accepts(request.protocol_type, names, member_id):
            return JoinGroupResult(InconsistentGroupProtocol.code, member_id=member_id)
        if not member_id and request.group_instance_id in group.static_members:
            return self._rejoin_static(group, request, reply, now)
        if not member_id or member_id in group.pending:
            return self._join_new(group, request, reply, now)
        error = self._check_identity(group, member_id, request.group_instance_id)
        if error:
            return JoinGroupResult(error, member_id=member_id)
        member = group.members[member_id]
        if group.state is GroupState.PREPARING_REBALANCE:
            self._park_join(group, member, request, reply)
            self._maybe_complete_join(group, now)
            return None
        changed = member.protocols != protocols_of(request)
        if changed or (group.state is GroupState.STABLE and member_id == group.leader_id):
            # Kafka rebalances when a member changes its subscription, or when the leader
            # joins again (it may have seen new topics or partitions).
            self._park_join(group, member, request, reply)
            self._prepare_rebalance(group, now, f"member {member_id} joined again")
            # in a group where everyone has now joined again (one member), don't wait
            self._maybe_complete_join(group, now)
            return None
        self._keep_session(member, now)
        return self._join_result(group, member)

    def _join_new(self, group: Group, request: JoinGroupRequest, reply: Future, now: int
                  ) -> JoinGroupResult | None:
        """A member with no id yet, or one coming back with the id KIP-394 gave it.

        A static member (KIP-345) is named after its group.instance.id and joins at once:
        KIP-394's round trip is for dynamic members only, as in Kafka.
        """
        member_id = request.member_id
        if not member_id:
            member_id = f"{request.group_instance_id or request.client_id}-{uuid.uuid4()}"
            if request.require_known_member_id and request.group_instance_id is None:
                group.pending[member_id] = now + request.session_timeout_ms
                self._schedule(group.pending[member_id])
                return JoinGroupResult(MemberIdRequired.code, member_id=member_id)
        else:
            del group.pending[member_id]
        member = Member(member_id, now + request.session_timeout_ms, join_reply=reply,
                        group_instance_id=request.group_instance_id)
        member.update(request)
        if not group.members:
            group.protocol_type = request.protocol_type
        group.add(member)
        if group.state is GroupState.PREPARING_REBALANCE:
            group.new_member_added = group.generation_id == 0 or group.new_member_added
            self._maybe_complete_join(group, now)
        else:
            self._prepare_rebalance(group, now, f"new member {member_id} joined")
        return None

    def _rejoin_static(self, group: Group, request: JoinGroupRequest, reply: Future, now: int
                       ) -> JoinGroupResult | None:
        """A known static member joins with no member id: the same consumer restarted
        (KIP-345). It takes the old member's place under a new id, and the old one's parked
        requests are answered FENCED_INSTANCE_ID (Kafka's ``classicGroupJoinNewStaticMember``
        and ``updateStaticMemberThenRebalanceOrCompleteJoin``).

        In a Stable group whose protocol it does not change, it gets its current assignment
        back through SyncGroup, with no rebalance: the answer names the leader as it was,
        so a replaced leader does not assign again, for nobody would hear it. Otherwise
        the group rebalances (while completing one, the leader may have assigned under the
        old id).
        """
        instance_id = request.group_instance_id
        assert instance_id is not None
        leader_id = group.leader_id or ""
        self._fail_parked(group.members[group.static_members[instance_id]],
                          FencedInstanceId.code)
        member = group.replace_static_member(instance_id, f"{instance_id}-{uuid.uuid4()}")
        member.update(request)
        log.info("group %s: static member %s is back as %s", group.group_id, instance_id,
                 member.member_id)
        if (group.state is GroupState.STABLE
                and group.select_protocol() == group.protocol_name):
            self._keep_session(member, now)
            return JoinGroupResult(NO_ERROR, group.generation_id, group.protocol_type,
                                   group.protocol_name, leader_id, member.member_id)
        self._park_join(group, member, request, reply)
        if group.state is not GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, now, f"static member {instance_id} joined again")
        self._maybe_complete_join(group, now)
        return None

    @staticmethod
    def _park_join(group: Group, member: Member, request: JoinGroupRequest,
                   reply: Future) -> None:
        """Keep ``reply`` until the rebalance completes; a reply parked before is superseded."""
        if member.join_reply is not None:
            _complete(member.join_reply, JoinGroupResult(RebalanceInProgress.code,
                                                         member_id=member.member_id))
        member.update(request)
        member.join_reply = reply
        if len(group.members) == 1:
            group.protocol_type = request.protocol_type

    @staticmethod
    def _join_result(group: Group, member: Member) -> JoinGroupResult:
        """This generation's JoinGroup answer for ``member`` (the leader gets the members)."""
        members: tuple[JoinGroupMember, ...] = ()
        if member.member_id == group.leader_id:
            members = tuple(JoinGroupMember(m.member_id, m.group_instance_id,
                                            m.metadata(group.protocol_name))
                            for m in group.members.values())
        return JoinGroupResult(NO_ERROR, group.generation_id, group.protocol_type,
                               group.protocol_name, group.leader_id or "", member.member_id,
                               members)

    def _sync(self, request: SyncGroupRequest, reply: Future, now: int) -> SyncGroupResult | None:
        """Handle SyncGroup; a result to answer now, or None once ``reply`` is parked."""
        group = self._groups.get(request.group_id)
        error = self._check_member(request.group_id, group, request.generation_id,
                                   request.member_id, request.group_instance_id)
        if error:
            return SyncGroupResult(error)
        if (request.protocol_type not in (None, group.protocol_type)
                or request.protocol_name not in (None, group.protocol_name)):
            return SyncGroupResult(InconsistentGroupProtocol.code)
        member = group.members[request.member_id]
        if group.state is GroupState.PREPARING_REBALANCE:
            return SyncGroupResult(RebalanceInProgress.code)
        if group.state is GroupState.STABLE:
            self._keep_session(member, now)
            return self._sync_result(group, member)
        if member.sync_reply is not None:
            _complete(member.sync_reply, SyncGroupResult(RebalanceInProgress.code))
        member.sync_reply = reply
        if member.member_id == group.leader_id:
            assignments = dict(request.assignments)
            for m in group.members.values():
                m.assignment = bytes(assignments.get(m.member_id, b""))
            group.transition_to(GroupState.STABLE)
            log.info("group %s: generation %d is stable with %d members", group.group_id,
                     group.generation_id, len(group.members))
            for m in group.members.values():
                if m.sync_reply is not None:
                    parked, m.sync_reply = m.sync_reply, None
                    self._keep_session(m, now)
                    _complete(parked, self._sync_result(group, m))
        return None

    @staticmethod
    def _sync_result(group: Group, member: Member) -> SyncGroupResult:
        return SyncGroupResult(NO_ERROR, member.assignment, group.protocol_type,
                               group.protocol_name)

    # -- rebalancing ---------------------------------------------------------------------

    def _prepare_rebalance(self, group: Group, now: int, reason: str) -> None:
        """Enter PreparingRebalance: every member must join again before the deadline."""
        if group.state is GroupState.COMPLETING_REBALANCE:
            for member in group.members.values():
                member.assignment = b""
                if member.sync_reply is not None:
                    parked, member.sync_reply = member.sync_reply, None
                    self._keep_session(member, now)
                    _complete(parked, SyncGroupResult(RebalanceInProgress.code))
        if group.state is GroupState.EMPTY:
            delay = self._config.group_initial_rebalance_delay_ms
            group.initial_delay_left_ms = max(group.rebalance_timeout_ms() - delay, 0)
        else:
            delay = group.rebalance_timeout_ms()
            group.initial_delay_left_ms = None
        group.join_deadline = now + delay
        group.transition_to(GroupState.PREPARING_REBALANCE)
        self._rebalances += 1
        log.info("group %s: preparing rebalance of generation %d: %s", group.group_id,
                 group.generation_id, reason)
        self._schedule(group.join_deadline)

    def _maybe_complete_join(self, group: Group, now: int) -> None:
        """Complete the rebalance once every member has joined (never during the initial
        delay, which waits for more members however many have joined)."""
        if (group.state is GroupState.PREPARING_REBALANCE
                and group.initial_delay_left_ms is None and group.all_joined()):
            self._complete_join(group, now)

    def _join_deadline_passed(self, group: Group, now: int) -> None:
        """The initial delay extends while new members keep coming (up to the rebalance
        timeout); otherwise the rebalance completes with the members that joined."""
        left = group.initial_delay_left_ms or 0
        delay = min(self._config.group_initial_rebalance_delay_ms, left)
        if delay and group.new_member_added:
            group.initial_delay_left_ms = left - delay
            group.new_member_added = False
            group.join_deadline = now + delay
            self._schedule(group.join_deadline)
            return
        self._complete_join(group, now)

    def _complete_join(self, group: Group, now: int) -> None:
        """Start the next generation with the members that joined; answer their JoinGroups."""
        group.join_deadline = None
        group.initial_delay_left_ms = None
        group.new_member_added = False
        for member in [m for m in group.members.values() if not m.awaiting_join]:
            log.info("group %s: member %s did not join within the rebalance timeout",
                     group.group_id, member.member_id)
            self._drop_member(group, member.member_id)
        group.generation_id += 1
        if not group.members:
            group.transition_to(GroupState.EMPTY)
            group.protocol_name = None
            group.empty_since = now
            log.info("group %s: generation %d is empty", group.group_id, group.generation_id)
            return
        group.transition_to(GroupState.COMPLETING_REBALANCE)
        group.protocol_name = group.select_protocol()
        log.info("group %s: generation %d, protocol %s, leader %s, %d members", group.group_id,
                 group.generation_id, group.protocol_name, group.leader_id, len(group.members))
        for member in group.members.values():
            parked, member.join_reply = member.join_reply, None
            self._keep_session(member, now)
            _complete(parked, self._join_result(group, member))

    def _remove_member(self, group: Group, member_id: str, now: int, reason: str) -> None:
        """A member is gone (left, or its session expired): the others must rebalance."""
        self._drop_member(group, member_id)
        log.info("group %s: member %s %s", group.group_id, member_id, reason)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now, f"member {member_id} {reason}")
        else:
            self._maybe_complete_join(group, now)

    def _drop_member(self, group: Group, member_id: str) -> None:
        """Forget a member (its parked requests get UNKNOWN_MEMBER_ID); the caller decides
        what the group's state becomes."""
        self._fail_parked(group.remove(member_id), UnknownMemberId.code)

    def _forget(self, group: Group) -> None:
        """The group is gone (deleted, or empty with nothing committed): Dead, then dropped."""
        group.transition_to(GroupState.DEAD)
        del self._groups[group.group_id]

    @staticmethod
    def _fail_parked(member: Member, error: int) -> None:
        """Answer the member's parked JoinGroup and SyncGroup with ``error``."""
        if member.join_reply is not None:
            _complete(member.join_reply, JoinGroupResult(error, member_id=member.member_id))
            member.join_reply = None
        if member.sync_reply is not None:
            _complete(member.sync_reply, SyncGroupResult(error))
            member.sync_reply = None

    # -- checks --------------------------------------------------------------------------

    @staticmethod
    def _check_identity(group: Group, member_id: str, group_instance_id: str | None) -> int:
        """Kafka's ``ClassicGroup.validateMember``: a group.instance.id must be held by this
        member id (FENCED_INSTANCE_ID if another consumer took it over), and the member
        must be known."""
        if group_instance_id is not None:
            holder = group.static_members.get(group_instance_id)
            if holder is None:
                return UnknownMemberId.code
            if holder != member_id:
                return FencedInstanceId.code
        if member_id not in group.members:
            return UnknownMemberId.code
        return NO_ERROR

    @classmethod
    def _check_member(cls, group_id: str, group: Group | None, generation_id: int,
                      member_id: str, group_instance_id: str | None) -> int:
        """Error code for a request of a current member in a given generation, if any: the
        member first, then the generation (the group's state is the caller's to check)."""
        if not group_id:
            return InvalidGroupId.code
        if group is None:
            return UnknownMemberId.code
        error = cls._check_identity(group, member_id, group_instance_id)
        if error:
            return error
        if generation_id != group.generation_id:
            return IllegalGeneration.code
        return NO_ERROR

    def _check_commit(self, group_id: str, generation_id: int, member_id: str,
                      group_instance_id: str | None, now: int) -> int:
        """Kafka's OffsetCommit checks, in the order of ``ClassicGroup.validateOffsetCommit``:
        the member and its generation before the group's state, so a stale member learns
        ILLEGAL_GENERATION rather than retrying into REBALANCE_IN_PROGRESS. A valid member's
        session restarts."""
        group = self._groups.get(group_id)
        if group is None:
            return NO_ERROR if generation_id < 0 else IllegalGeneration.code
        if generation_id < 0 and group.state is GroupState.EMPTY:
            return NO_ERROR
        if generation_id < 0 and not member_id and group_instance_id is None:
            return UnknownMemberId.code  # a standalone commit to a group with members
        error = self._check_member(group_id, group, generation_id, member_id,
                                   group_instance_id)
        if error:
            return error
        if group.state is GroupState.COMPLETING_REBALANCE:
            return RebalanceInProgress.code
        self._keep_session(group.members[member_id], now)
        return NO_ERROR

    def _check_offsets(
        self, group_id: str,
        offsets: Mapping[TopicPartition, tuple[int, str | None] | tuple[int, str | None, int]],
        now: int,
    ) -> tuple[dict[TopicPartition, int], list[CommittedOffset]]:
        """Each partition's error code, and the offsets fit to store (absent metadata is '',
        an absent leader epoch -1)."""
        results: dict[TopicPartition, int] = {}
        store = []
        partition_counts: dict[str, int] = {}
        for (topic, partition), (offset, metadata, *leader_epoch) in offsets.items():
            if topic not in partition_counts:
                try:
                    partition_counts[topic] = self._catalog.topic(topic).partitions
                except UnknownTopicOrPartition:
                    partition_counts[topic] = 0
            if len(metadata or "") > self._config.offset_metadata_max_bytes:
                results[(topic, partition)] = OffsetMetadataTooLarge.code
            elif not 0 <= partition < partition_counts[topic]:
                results[(topic, partition)] = UnknownTopicOrPartition.code
            else:
                store.append(CommittedOffset(group_id, topic, partition, offset, metadata or "",
                                             now, *leader_epoch))
                results[(topic, partition)] = NO_ERROR
        return results, store

    # -- time ----------------------------------------------------------------------------

    def run_timers(self) -> None:
        """Expire sessions and pending members, end rebalance waits, sweep old offsets; then
        ask to be woken at the earliest deadline still ahead. The owner calls this when
        woken; calling it early or more often is harmless."""
        self._run_timers(self._clock())

    def _run_timers(self, now: int) -> None:
        """What ``run_timers`` does, as of ``now``."""
        for group in list(self._groups.values()):
            for member in list(group.members.values()):
                if member.session_deadline <= now and not member.kept_alive:
                    self._remove_member(group, member.member_id, now,
                                        f"missed its session timeout of"
                                        f" {member.session_timeout_ms} ms")
            for member_id, deadline in list(group.pending.items()):
                if deadline <= now:
                    del group.pending[member_id]
                    self._maybe_complete_join(group, now)
            if group.join_deadline is not None and group.join_deadline <= now:
                self._join_deadline_passed(group, now)
        if self._next_sweep <= now:
            self._sweep_offsets(now)
            self._next_sweep = now + self._config.offsets_retention_check_interval_ms
        self._arm()

    def _now(self) -> int:
        """The clock, after running whatever deadline has already passed."""
        now = self._clock()
        if now >= self._next_due:
            self._run_timers(now)
        return now

    def _keep_session(self, member: Member, now: int) -> None:
        member.session_deadline = now + member.session_timeout_ms
        self._schedule(member.session_deadline)

    def _schedule(self, deadline: int) -> None:
        """Make sure the owner wakes us by ``deadline``."""
        if deadline < self._next_due:
            self._next_due = deadline
            self._wake_at(deadline)

    def _arm(self) -> None:
        """Ask to be woken at the earliest deadline still ahead."""
        deadlines = [self._next_sweep]
        for group in self._groups.values():
            deadlines.extend(group.pending.values())
            deadlines.extend(m.session_deadline for m in group.members.values()
                             if not m.kept_alive)
            if group.join_deadline is not None:
                deadlines.append(group.join_deadline)
        self._next_due = min(deadlines)
        self._wake_at(self._next_due)

    def _sweep_offsets(self, now: int) -> None:
        """offsets.retention.minutes: once a group has been empty that long, offsets committed
        longer ago than that expire; a group left with no members and no offsets is forgotten."""
        retention_ms = self._config.offsets_retention_minutes * 60_000
        keep = [gid for gid, g in self._groups.items()
                if g.state is not GroupState.EMPTY or now - g.empty_since < retention_ms]
        try:
            expired = self._catalog.expire_offsets(now - retention_ms, keep)
            with_offsets = set(self._catalog.groups())
        except KafkaStorageError:
            log.exception("expiring committed offsets failed; will retry")
            return
        if expired:
            log.info("expired %d committed offsets", expired)
        for gid, group in list(self._groups.items()):
            if group.state is GroupState.EMPTY and not group.pending and gid not in with_offsets:
                self._forget(group)
