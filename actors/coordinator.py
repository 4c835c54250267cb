"""The group coordinator: Kafka's classic consumer-group protocol, as one pykka actor.

Both the embedded consumer and Kafka clients over the wire (kafka-python, librdkafka)
drive it exactly as they drive a Kafka broker's coordinator: JoinGroup, SyncGroup,
Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch, with Kafka's error codes. Protocol
metadata and assignments are opaque bytes here: the member elected leader runs the
assignor client-side and sends every member's assignment in its SyncGroup.

A group moves Empty -> PreparingRebalance -> CompletingRebalance -> Stable. A rebalance
waits until every known member has sent JoinGroup again (or the rebalance timeout, the
largest of the members', passes and the laggards are dropped); the first rebalance of an
empty group waits ``group.initial.rebalance.delay.ms`` longer for more members. Members
missing their session timeout are dropped, which starts a rebalance. JoinGroup and
SyncGroup requests that must wait are parked: their ``concurrent.futures.Future`` is
completed later from the actor thread, so neither the caller nor the actor blocks.

Committed offsets live in the catalog (they survive restarts); group membership is in
memory only, as a restarted Kafka coordinator's members also rejoin. All deadlines are
read from one injectable clock (milliseconds, like Kafka's); a timer thread wakes the
actor at the earliest one, and every message first runs whatever is already due.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import pykka

from eventstore.clock import wall_clock_ms
from eventstore.config import CoordinatorConfig
from eventstore.errors import (
    GroupIdNotFound,
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
    SyncGroupRequest,
    SyncGroupResult,
)
from eventstore.groups.state import GroupState
from eventstore.storage.catalog import Catalog, CommittedOffset
from eventstore.topic_partition import TopicPartition

log = logging.getLogger(__name__)

NO_ERROR = 0


# -- group state (owned by the actor thread, never shared) ------------------------------


@dataclass(eq=False)
class _Member:
    """A member as its latest JoinGroup described it, and its requests parked here."""

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
        self.group_instance_id = request.group_instance_id
        self.client_id = request.client_id
        self.client_host = request.client_host
        self.session_timeout_ms = request.session_timeout_ms
        self.rebalance_timeout_ms = request.rebalance_timeout_ms
        self.protocols = _protocols(request)

    def metadata(self, protocol: str | None) -> bytes:
        return next((meta for name, meta in self.protocols if name == protocol), b"")

    @property
    def kept_alive(self) -> bool:
        """A member parked in JoinGroup or SyncGroup cannot heartbeat, so it does not expire."""
        return self.join_reply is not None or self.sync_reply is not None


@dataclass(eq=False)
class _Group:
    group_id: str
    empty_since: int
    state: GroupState = GroupState.EMPTY
    protocol_type: str = ""
    protocol_name: str | None = None
    generation_id: int = 0
    leader_id: str | None = None
    members: dict[str, _Member] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)  # KIP-394 member id -> deadline
    join_deadline: int | None = None
    initial_delay_left_ms: int | None = None  # set while the initial delay may extend
    new_member_added: bool = False

    def rebalance_timeout_ms(self) -> int:
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

    def all_joined(self) -> bool:
        return not self.pending and all(m.join_reply is not None for m in self.members.values())


def _protocols(request: JoinGroupRequest) -> tuple[tuple[str, bytes], ...]:
    return tuple((name, bytes(meta)) for name, meta in request.protocols)


def _complete(reply: Future, result: JoinGroupResult | SyncGroupResult) -> None:
    """Answer a parked request; a reply its caller has already cancelled is dropped."""
    with contextlib.suppress(InvalidStateError):
        reply.set_result(result)


# -- timer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tick:
    """Told to the actor when its earliest deadline may have come."""


class _Waker:
    """One thread that tells the actor ``_Tick`` when asked to, and sleeps otherwise.

    The actor asks for a wake-up whenever its earliest deadline moves earlier; the thread
    waits on a condition until then, so an idle coordinator costs nothing.
    """

    def __init__(self, actor_ref: pykka.ActorRef, name: str) -> None:
        self._actor_ref = actor_ref
        self._cond = threading.Condition()
        self._due: float | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def wake_in(self, seconds: float) -> None:
        with self._cond:
            self._due = time.monotonic() + seconds
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                delay = None if self._due is None else self._due - time.monotonic()
                if delay is None or delay > 0:
                    self._cond.wait(delay)
                    continue
                self._due = None
                try:
                    self._actor_ref.tell(_Tick())
                except pykka.ActorDeadError:
                    return


# -- the actor ----------------------------------------------------------------------------


class GroupCoordinator(pykka.ThreadingActor):
    """Kafka's group coordinator for every group of one data directory.

    Start with ``GroupCoordinator.start(data_dir, config=..., clock=...)`` and call it
    through ``.proxy()``. JoinGroup and SyncGroup answer through the ``reply`` future they
    are given; every other method answers through the proxy's future. Error codes are
    Kafka's (0 for none); reads of the catalog may raise KafkaStorageError.
    """

    def __init__(
        self,
        data_dir: str,
        config: CoordinatorConfig | None = None,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        super().__init__()
        self._data_dir = data_dir
        self._config = config or CoordinatorConfig()
        self._clock = clock
        self._groups: dict[str, _Group] = {}
        self._rebalances = 0
        self._next_due = 0
        self._next_sweep = 0
        self._catalog: Catalog | None = None
        self._waker: _Waker | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def on_start(self) -> None:
        """Open the catalog and know every group that has committed offsets (as Empty)."""
        self._catalog = Catalog.open(self._data_dir)
        try:
            now = self._clock()
            for group_id in self._catalog.groups():
                self._groups[group_id] = _Group(group_id, empty_since=now)
            self._next_sweep = now + self._config.offsets_retention_check_interval_ms
            self._waker = _Waker(self.actor_ref, f"{threading.current_thread().name}-timer")
        except BaseException:
            self._catalog.close()
            raise
        self._arm(now)

    def on_stop(self) -> None:
        self._shutdown()

    def on_failure(self, *exc_info: object) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        """Stop the timer, answer parked requests NOT_COORDINATOR (clients go find the
        coordinator again, as after a Kafka coordinator moves), close the catalog."""
        if self._waker is not None:
            self._waker.stop()
        for group in self._groups.values():
            for member in group.members.values():
                self._fail_parked(member, NotCoordinator.code)
        if self._catalog is not None:
            self._catalog.close()

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Tick):
            self._run_timers(self._clock())
        else:
            super().on_receive(message)

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

    def heartbeat(self, group_id: str, generation_id: int, member_id: str) -> int:
        """Heartbeat: keeps the member's session; REBALANCE_IN_PROGRESS means join again."""
        now = self._now()
        group = self._groups.get(group_id)
        error = self._check_member(group_id, group, generation_id, member_id)
        if error:
            return error
        self._keep_session(group.members[member_id], now)
        if group.state is GroupState.PREPARING_REBALANCE:
            return RebalanceInProgress.code
        return NO_ERROR

    def leave_group(self, group_id: str, member_ids: Iterable[str]) -> int:
        """LeaveGroup: removes the members and starts a rebalance.

        Returns UNKNOWN_MEMBER_ID if any of them is not a member (the others still leave);
        LeaveGroup v3+ answers per member: call once per member for each one's code.
        """
        now = self._now()
        if not group_id:
            return InvalidGroupId.code
        group = self._groups.get(group_id)
        error = NO_ERROR
        for member_id in member_ids:
            if group is not None and group.pending.pop(member_id, None) is not None:
                self._maybe_complete_join(group, now)
            elif group is not None and member_id in group.members:
                self._remove_member(group, member_id, now, "left the group")
            else:
                error = UnknownMemberId.code
        return error

    # -- offsets -------------------------------------------------------------------------

    def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        offsets: Mapping[TopicPartition, tuple[int, str | None]],
    ) -> dict[TopicPartition, int]:
        """OffsetCommit: stores (offset, metadata) per partition; returns an error code each.

        Generation -1 with member '' is a standalone commit, allowed while the group has no
        members. Otherwise the member must be known and of the current generation; commits
        are accepted while the group prepares a rebalance (so members can commit what they
        processed before giving partitions up) but not while it completes one.
        """
        now = self._now()
        error = self._check_commit(group_id, generation_id, member_id, now)
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
            self._groups[group_id] = _Group(group_id, empty_since=now)
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
        del self._groups[group_id]
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
        if not request.protocol_type or not request.protocols:
            return JoinGroupResult(InconsistentGroupProtocol.code, member_id=member_id)
        group = self._groups.get(request.group_id)
        if group is None:
            if member_id:
                return JoinGroupResult(UnknownMemberId.code, member_id=member_id)
            group = self._groups[request.group_id] = _Group(request.group_id, empty_since=now)
        names = [name for name, _ in request.protocols]
        if not group.accepts(request.protocol_type, names, member_id):
            return JoinGroupResult(InconsistentGroupProtocol.code, member_id=member_id)
        if not member_id or member_id in group.pending:
            return self._join_new(group, request, reply, now)
        member = group.members.get(member_id)
        if member is None:
            return JoinGroupResult(UnknownMemberId.code, member_id=member_id)
        if group.state is GroupState.PREPARING_REBALANCE:
            self._park_join(group, member, request, reply)
            self._maybe_complete_join(group, now)
            return None
        changed = member.protocols != _protocols(request)
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

    def _join_new(self, group: _Group, request: JoinGroupRequest, reply: Future, now: int
                  ) -> JoinGroupResult | None:
        """A member with no id yet, or one coming back with the id KIP-394 gave it."""
        member_id = request.member_id
        if not member_id:
            member_id = f"{request.client_id}-{uuid.uuid4()}"
            if request.require_known_member_id:
                group.pending[member_id] = now + request.session_timeout_ms
                self._schedule(group.pending[member_id], now)
                return JoinGroupResult(MemberIdRequired.code, member_id=member_id)
        else:
            del group.pending[member_id]
        member = _Member(member_id, now + request.session_timeout_ms, join_reply=reply)
        member.update(request)
        if not group.members:
            group.protocol_type = request.protocol_type
        group.members[member_id] = member
        if group.leader_id is None:
            group.leader_id = member_id
        if group.state is GroupState.PREPARING_REBALANCE:
            group.new_member_added = group.generation_id == 0 or group.new_member_added
            self._maybe_complete_join(group, now)
        else:
            self._prepare_rebalance(group, now, f"new member {member_id} joined")
        return None

    def _park_join(self, group: _Group, member: _Member, request: JoinGroupRequest,
                   reply: Future) -> None:
        """Keep ``reply`` until the rebalance completes; a reply parked before is superseded."""
        if member.join_reply is not None:
            _complete(member.join_reply, JoinGroupResult(RebalanceInProgress.code,
                                                         member_id=member.member_id))
        member.update(request)
        member.join_reply = reply
        if len(group.members) == 1:
            group.protocol_type = request.protocol_type

    def _join_result(self, group: _Group, member: _Member) -> JoinGroupResult:
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
                                   request.member_id)
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
            group.state = GroupState.STABLE
            log.info("group %s: generation %d is stable with %d members", group.group_id,
                     group.generation_id, len(group.members))
            for m in group.members.values():
                if m.sync_reply is not None:
                    parked, m.sync_reply = m.sync_reply, None
                    self._keep_session(m, now)
                    _complete(parked, self._sync_result(group, m))
        return None

    @staticmethod
    def _sync_result(group: _Group, member: _Member) -> SyncGroupResult:
        return SyncGroupResult(NO_ERROR, member.assignment, group.protocol_type,
                               group.protocol_name)

    # -- rebalancing ---------------------------------------------------------------------

    def _prepare_rebalance(self, group: _Group, now: int, reason: str) -> None:
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
        group.state = GroupState.PREPARING_REBALANCE
        self._rebalances += 1
        log.info("group %s: preparing rebalance of generation %d: %s", group.group_id,
                 group.generation_id, reason)
        self._schedule(group.join_deadline, now)

    def _maybe_complete_join(self, group: _Group, now: int) -> None:
        """Complete the rebalance once every member has joined (never during the initial
        delay, which waits for more members however many have joined)."""
        if (group.state is GroupState.PREPARING_REBALANCE
                and group.initial_delay_left_ms is None and group.all_joined()):
            self._complete_join(group, now)

    def _join_deadline_passed(self, group: _Group, now: int) -> None:
        """The initial delay extends while new members keep coming (up to the rebalance
        timeout); otherwise the rebalance completes with the members that joined."""
        left = group.initial_delay_left_ms or 0
        delay = min(self._config.group_initial_rebalance_delay_ms, left)
        if delay and group.new_member_added:
            group.initial_delay_left_ms = left - delay
            group.new_member_added = False
            group.join_deadline = now + delay
            self._schedule(group.join_deadline, now)
            return
        self._complete_join(group, now)

    def _complete_join(self, group: _Group, now: int) -> None:
        """Start the next generation with the members that joined; answer their JoinGroups."""
        group.join_deadline = None
        group.initial_delay_left_ms = None
        group.new_member_added = False
        for member in [m for m in group.members.values() if m.join_reply is None]:
            log.info("group %s: member %s did not join within the rebalance timeout",
                     group.group_id, member.member_id)
            self._drop_member(group, member.member_id)
        group.generation_id += 1
        if not group.members:
            group.state = GroupState.EMPTY
            group.protocol_name = None
            group.empty_since = now
            log.info("group %s: generation %d is empty", group.group_id, group.generation_id)
            return
        group.state = GroupState.COMPLETING_REBALANCE
        group.protocol_name = group.select_protocol()
        log.info("group %s: generation %d, protocol %s, leader %s, %d members", group.group_id,
                 group.generation_id, group.protocol_name, group.leader_id, len(group.members))
        for member in group.members.values():
            parked, member.join_reply = member.join_reply, None
            self._keep_session(member, now)
            _complete(parked, self._join_result(group, member))

    def _remove_member(self, group: _Group, member_id: str, now: int, reason: str) -> None:
        """A member is gone (left, or its session expired): the others must rebalance."""
        self._drop_member(group, member_id)
        log.info("group %s: member %s %s", group.group_id, member_id, reason)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now, f"member {member_id} {reason}")
        else:
            self._maybe_complete_join(group, now)

    def _drop_member(self, group: _Group, member_id: str) -> None:
        """Forget a member (its parked requests get UNKNOWN_MEMBER_ID); elect a new leader
        if it led. The caller decides what the group's state becomes."""
        member = group.members.pop(member_id)
        self._fail_parked(member, UnknownMemberId.code)
        if group.leader_id == member_id:
            group.leader_id = next(iter(group.members), None)

    @staticmethod
    def _fail_parked(member: _Member, error: int) -> None:
        """Answer the member's parked JoinGroup and SyncGroup with ``error``."""
        if member.join_reply is not None:
            _complete(member.join_reply, JoinGroupResult(error, member_id=member.member_id))
            member.join_reply = None
        if member.sync_reply is not None:
            _complete(member.sync_reply, SyncGroupResult(error))
            member.sync_reply = None

    # -- checks --------------------------------------------------------------------------

    @staticmethod
    def _check_member(group_id: str, group: _Group | None, generation_id: int,
                      member_id: str) -> int:
        """Error code for a request of a current member in a given generation, if any."""
        if not group_id:
            return InvalidGroupId.code
        if group is None or member_id not in group.members:
            return UnknownMemberId.code
        if generation_id != group.generation_id:
            return IllegalGeneration.code
        return NO_ERROR

    def _check_commit(self, group_id: str, generation_id: int, member_id: str, now: int) -> int:
        """Kafka's OffsetCommit checks, in Kafka's order; a valid member's session restarts."""
        group = self._groups.get(group_id)
        if group is None:
            return NO_ERROR if generation_id < 0 else IllegalGeneration.code
        if generation_id < 0 and group.state is GroupState.EMPTY:
            return NO_ERROR
        if group.state is GroupState.COMPLETING_REBALANCE:
            return RebalanceInProgress.code
        member = group.members.get(member_id)
        if member is None:
            return UnknownMemberId.code
        if generation_id != group.generation_id:
            return IllegalGeneration.code
        self._keep_session(member, now)
        return NO_ERROR

    def _check_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, tuple[int, str | None]], now: int
    ) -> tuple[dict[TopicPartition, int], list[CommittedOffset]]:
        """Each partition's error code, and the offsets fit to store (absent metadata is '')."""
        results: dict[TopicPartition, int] = {}
        store = []
        partition_counts: dict[str, int] = {}
        for (topic, partition), (offset, metadata) in offsets.items():
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
                                             now))
                results[(topic, partition)] = NO_ERROR
        return results, store

    # -- time ----------------------------------------------------------------------------

    def _now(self) -> int:
        """The clock, after running whatever deadline has already passed."""
        now = self._clock()
        if now >= self._next_due:
            self._run_timers(now)
        return now

    def _keep_session(self, member: _Member, now: int) -> None:
        member.session_deadline = now + member.session_timeout_ms
        self._schedule(member.session_deadline, now)

    def _schedule(self, deadline: int, now: int) -> None:
        """Make sure the actor wakes up by ``deadline``."""
        if deadline < self._next_due:
            self._next_due = deadline
            self._waker.wake_in(max(deadline - now, 0) / 1000)

    def _run_timers(self, now: int) -> None:
        """Expire sessions and pending members, end rebalance waits, sweep old offsets."""
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
        self._arm(now)

    def _arm(self, now: int) -> None:
        """Ask the timer for the earliest deadline still ahead."""
        deadlines = [self._next_sweep]
        for group in self._groups.values():
            deadlines.extend(group.pending.values())
            deadlines.extend(m.session_deadline for m in group.members.values()
                             if not m.kept_alive)
            if group.join_deadline is not None:
                deadlines.append(group.join_deadline)
        self._next_due = min(deadlines)
        self._waker.wake_in(max(self._next_due - now, 0) / 1000)

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
                del self._groups[gid]
