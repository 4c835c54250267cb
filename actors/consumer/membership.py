"""Group membership: where a consumer stands in its group, and the classic protocol's
steps that move it.

A subscribed consumer with a ``group_id`` is a Kafka-style client of the group
coordinator: it joins (JoinGroup), the member elected leader runs the group's assignor
(``eventstore.groups.assignors``) and hands every member its partitions (SyncGroup).

Threads: a :class:`Membership` is read and changed on the polling thread only (the one
that calls ``poll``, ``commit``, ``close``). The consumer actor learns on its own thread
that the group moved on (a heartbeat or an asynchronous commit refused); it hands that
over with :meth:`Membership.report`, which only queues the refusal and wakes the polling
thread. The polling thread applies queued refusals (:meth:`Membership.apply_reports`)
before it next uses the membership, skipping those about a generation it has left.
:meth:`Membership.send_commit` may run on either thread for the same reason: it reads
nothing that changes and reports what it learns.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pykka

from actors.broker import Broker
from actors.consumer.config import ConsumerConfig
from actors.coordinator import GroupCoordinator
from eventstore.errors import (
    IllegalGeneration,
    IllegalState,
    KafkaTimeoutError,
    MemberIdRequired,
    NotCoordinator,
    RebalanceInProgress,
    UnknownMemberId,
    error_for_code,
)
from eventstore.groups import assignors
from eventstore.groups.consumer_protocol import (
    PROTOCOL_TYPE,
    Assignment,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_sticky_user_data,
    encode_subscription,
)
from eventstore.groups.messages import JoinGroupRequest, JoinGroupResult, SyncGroupRequest
from eventstore.topic_partition import TopicPartition

log = logging.getLogger(__name__)

CLIENT_HOST = "in-process"
_REJOIN = {RebalanceInProgress.code, IllegalGeneration.code, UnknownMemberId.code}
_NEW_MEMBER = {IllegalGeneration.code, UnknownMemberId.code}


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    """One OffsetCommit: ``offsets`` (offset, metadata) of a member of a generation
    (-1 and '' for a consumer that is not a member)."""

    group_id: str
    generation_id: int
    member_id: str
    offsets: Mapping[TopicPartition, tuple[int, str]]


@dataclass(frozen=True, slots=True)
class Refusal:
    """The coordinator refused generation ``generation_id`` of ``member_id`` with ``code``."""

    code: int
    generation_id: int
    member_id: str


class Membership:
    """This consumer's member id, generation and role in its group, and getting them."""

    def __init__(
        self,
        config: ConsumerConfig,
        client_id: str,
        broker: pykka.ActorProxy[Broker],
        coordinator: pykka.ActorProxy[GroupCoordinator],
        wake: Callable[[], None],
    ) -> None:
        self._config = config
        self._client_id = client_id
        self._broker = broker
        self._coordinator = coordinator
        self._wake = wake
        self._reports: deque[Refusal] = deque()  # appended by any thread, applied by ours
        self.rejoin_needed = False
        self.reset()

    def reset(self) -> None:
        """Forget the group: no member id, no generation (after leaving it)."""
        self.member_id = ""
        self.generation_id = -1
        self.leader = False
        self.partition_counts: Mapping[str, int] = {}
        self.previous: tuple[tuple[str, int], ...] = ()  # assignment before this rebalance

    # -- refusals ---------------------------------------------------------------------------

    def report(self, code: int, generation_id: int, member_id: str) -> None:
        """Any thread: the coordinator refused this generation of this member with ``code``;
        the polling thread is woken to join again."""
        self._reports.append(Refusal(code, generation_id, member_id))
        self._wake()

    def apply_reports(self) -> None:
        """Act on the refusals reported so far that are about the current generation."""
        while self._reports:
            refusal = self._reports.popleft()
            if (refusal.generation_id, refusal.member_id) == (self.generation_id,
                                                              self.member_id):
                self.request_rejoin(refusal.code)

    def request_rejoin(self, code: int) -> None:
        """The group needs this member to join again (as a new member, for some codes)."""
        self._forget_member_on(code)
        self.rejoin_needed = True
        self._wake()

    def _forget_member_on(self, code: int) -> None:
        if code in _NEW_MEMBER:
            self.member_id = ""
            self.generation_id = -1

    # -- joining ----------------------------------------------------------------------------

    def rejoin(self, topics: tuple[str, ...], backoff: Callable[[], object],
               is_open: Callable[[], bool]) -> set[TopicPartition] | None:
        """JoinGroup then SyncGroup until both succeed (eager protocol): the partitions the
        leader assigned this member, or None if the consumer closed meanwhile.

        A refusal that asks for it joins again, after ``backoff`` when JoinGroup was refused;
        any other refusal raises its typed error.
        """
        while self.rejoin_needed and is_open():
            self.rejoin_needed = False
            joined = self._call(self._coordinator.join_group, self._join_request(topics))
            code = joined.error_code
            if code == MemberIdRequired.code:
                self.member_id = joined.member_id
                self.rejoin_needed = True
                continue
            if code:
                self._join_refused(code, "join")
                backoff()
                continue
            self.member_id = joined.member_id
            self.generation_id = joined.generation_id
            self.leader = bool(joined.members)
            synced = self._call(self._coordinator.sync_group, SyncGroupRequest(
                group_id=self._config.group_id, generation_id=joined.generation_id,
                member_id=joined.member_id, assignments=self._leader_assignments(joined),
                group_instance_id=self._config.group_instance_id))
            if synced.error_code:
                self._join_refused(synced.error_code, "sync")
                continue
            return {TopicPartition(*tp) for tp in decode_assignment(synced.assignment).partitions}
        return None

    def _join_request(self, topics: tuple[str, ...]) -> JoinGroupRequest:
        config = self._config
        owned = self.previous
        protocols = []
        for name in config.partition_assignment_strategy:
            user_data = (encode_sticky_user_data(owned, self.generation_id)
                         if name == "sticky" else None)
            subscription = Subscription(topics, user_data, owned, self.generation_id)
            protocols.append((name, encode_subscription(subscription)))
        return JoinGroupRequest(
            group_id=config.group_id, member_id=self.member_id,
            group_instance_id=config.group_instance_id, client_id=self._client_id,
            client_host=CLIENT_HOST, session_timeout_ms=config.session_timeout_ms,
            rebalance_timeout_ms=config.max_poll_interval_ms, protocol_type=PROTOCOL_TYPE,
            protocols=tuple(protocols), require_known_member_id=True)

    def _leader_assignments(self, joined: JoinGroupResult) -> tuple[tuple[str, bytes], ...]:
        """As the leader: run the group's assignor over every member's subscription."""
        if not joined.members:
            return ()
        subscriptions = {m.member_id: decode_subscription(m.metadata) for m in joined.members}
        topics = {t for s in subscriptions.values() for t in s.topics}
        counts = self._broker.partition_counts(sorted(topics)).get()
        self.partition_counts = counts
        result = assignors.assign(joined.protocol_name, subscriptions, counts)
        return tuple((member, encode_assignment(Assignment(tuple(parts))))
                     for member, parts in sorted(result.items()))

    def _join_refused(self, code: int, step: str) -> None:
        if code in _REJOIN or code == NotCoordinator.code:
            self._forget_member_on(code)
            self.rejoin_needed = True
            return
        raise error_for_code(code, f"group {self._config.group_id!r}: {step} refused")

    def _call(self, method: Callable[..., Any], request: Any) -> Any:
        """Send a JoinGroup or SyncGroup and wait for its parked answer."""
        reply: Future = Future()
        config = self._config
        timeout = (config.max_poll_interval_ms + config.session_timeout_ms) / 1000
        try:
            method(request, reply).get(timeout=timeout)  # parked, or ActorDeadError
            return reply.result(timeout)
        except pykka.ActorDeadError:
            raise IllegalState("the store is closed: its group coordinator is gone") from None
        except (TimeoutError, pykka.Timeout):
            raise KafkaTimeoutError(
                f"group {config.group_id!r}: no answer to {type(request).__name__}"
                f" within {timeout:.0f} s") from None

    def check_partition_counts(self, topics: tuple[str, ...]) -> None:
        """As the leader, rebalance when a subscribed topic's partition count changed, as
        Kafka's leader does."""
        if self.leader and not self.rejoin_needed:
            counts = self._broker.partition_counts(topics).get()
            if counts != self.partition_counts:
                self.request_rejoin(RebalanceInProgress.code)

    def leave(self) -> None:
        """LeaveGroup, then forget the group."""
        self._coordinator.leave_group(self._config.group_id, [self.member_id]).get()
        self.reset()

    # -- commits ----------------------------------------------------------------------------

    def offset_commit(self, offsets: Mapping[TopicPartition, tuple[int, str]],
                      as_member: bool) -> OffsetCommit:
        """A commit of ``offsets`` by this member (``as_member``), or by a consumer that
        reads assigned partitions outside the group's membership."""
        self.apply_reports()
        if as_member:
            return OffsetCommit(self._config.group_id, self.generation_id, self.member_id,
                                offsets)
        return OffsetCommit(self._config.group_id, -1, "", offsets)

    def commit(self, commit: OffsetCommit) -> None:
        """Send ``commit`` and wait for the answer; raise the typed error of a refusal
        (RebalanceInProgress, IllegalGeneration...), having acted on it when it means
        joining again."""
        try:
            self.send_commit(commit)
        finally:
            self.apply_reports()

    def send_commit(self, commit: OffsetCommit) -> None:
        """Any thread: :meth:`commit`, a refusal that means joining again only reported."""
        results = self._coordinator.commit_offsets(
            commit.group_id, commit.generation_id, commit.member_id, commit.offsets).get()
        for code in results.values():
            if code:
                if code in _REJOIN:
                    self.report(code, commit.generation_id, commit.member_id)
                raise error_for_code(code, f"commit of group {commit.group_id!r} refused")
