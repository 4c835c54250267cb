"""The group coordinator actor: :mod:`eventstore.groups.coordinator` on a thread of its own.

The group logic is plain synchronous code; this actor gives it one thread (so every call
sees the groups as the previous one left them), the catalog it keeps committed offsets in,
and its wake-ups: when the logic asks to be woken at a clock time, the actor keeps one
timer on the system's :class:`~actors.runtime.Scheduler`, which sends the actor a message
then. Parked JoinGroup and SyncGroup replies are futures the logic completes from this
thread, so neither the caller nor the actor blocks. The ``consumer`` (KIP-848) groups are
written to the catalog's ``consumer_group_state`` after every change and read back at start,
so members keep their epochs and partitions across a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pykka

from actors.runtime import Scheduler, Timer, tell_if_alive
from eventstore.clock import Clock, wall_clock_ms
from eventstore.config import CoordinatorConfig
from eventstore.errors import KafkaStorageError
from eventstore.groups.consumer_coordinator import (
    ConsumerGroupCoordinator,
    ConsumerGroupDescription,
    HeartbeatAnswer,
    HeartbeatCall,
)
from eventstore.groups.consumer_protocol import (
    Assignment,
    Subscription,
    encode_assignment,
    encode_subscription,
)
from eventstore.groups.consumer_store import ConsumerGroupStore
from eventstore.groups.coordinator import ClassicGroupCoordinator
from eventstore.groups.messages import (
    CoordinatorStats,
    GroupDescription,
    JoinGroupRequest,
    JoinGroupResult,
    MemberDescription,
    MemberIdentity,
    SyncGroupRequest,
)
from eventstore.storage.catalog import Catalog
from eventstore.topic_partition import TopicPartition


@dataclass(frozen=True)
class _Tick:
    """Timer: the coordinator's earliest deadline may have come."""


@dataclass(frozen=True)
class _ConsumerTick:
    """Timer: a ``consumer`` group member's session may have ended."""


log = logging.getLogger(__name__)

INCONSISTENT_GROUP_PROTOCOL = 23
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69


class GroupCoordinator(pykka.ThreadingActor):
    """Kafka's group coordinator for every group of one data directory.

    Start with ``GroupCoordinator.start(data_dir, config, scheduler=..., clock=...)`` and
    call it through ``.proxy()``. JoinGroup and SyncGroup answer through the ``reply``
    future they are given; every other method answers through the proxy's future. See
    :class:`~eventstore.groups.coordinator.ClassicGroupCoordinator` for what each does.
    """

    def __init__(
        self,
        data_dir: str,
        config: CoordinatorConfig | None = None,
        *,
        scheduler: Scheduler,
        clock: Clock = wall_clock_ms,
    ) -> None:
        super().__init__()
        self._data_dir = data_dir
        self._config = config or CoordinatorConfig()
        self._scheduler = scheduler
        self._clock = clock
        self._catalog: Catalog | None = None
        self._groups: ClassicGroupCoordinator | None = None
        self._timer: Timer | None = None
        self._consumers = ConsumerGroupCoordinator(self._config, clock)  # KIP-848 groups
        self._consumer_timer: Timer | None = None
        self._consumer_store: ConsumerGroupStore | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def on_start(self) -> None:
        """Open the catalog and hand it to the group logic (which knows its groups)."""
        self._catalog = Catalog.open(self._data_dir)
        try:
            self._groups = ClassicGroupCoordinator(self._catalog, self._config, self._clock,
                                                   self._wake_at)
            self._consumer_store = ConsumerGroupStore.open(self._data_dir)
            for group_id, document in self._consumer_store.load().items():
                self._consumers.restore(group_id, document)
            self._consumer_wake_at(self._consumers.run_timers())
        except BaseException:
            self._shutdown()
            raise

    def on_stop(self) -> None:
        self._shutdown()

    def on_failure(self, *exc_info: object) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        """Drop the timer, answer parked requests NOT_COORDINATOR, close the catalog."""
        for timer in (self._timer, self._consumer_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._consumer_timer = None
        if self._groups is not None:
            self._groups.abandon()
        if self._consumer_store is not None:
            self._consumer_store.close()
            self._consumer_store = None
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Tick):
            self._groups.run_timers()
        elif isinstance(message, _ConsumerTick):
            self._consumer_wake_at(self._consumers.run_timers())
            self._save_consumer_groups()
        else:
            super().on_receive(message)

    def _wake_at(self, deadline_ms: int) -> None:
        """The logic's wake-up: one timer, replaced by each request, telling us ``_Tick``."""
        if self._timer is not None:
            self._timer.cancel()
        ref = self.actor_ref
        delay_s = max(deadline_ms - self._clock(), 0) / 1000
        self._timer = self._scheduler.call_later(delay_s, lambda: tell_if_alive(ref, _Tick()))

    def _consumer_wake_at(self, deadline_ms: int | None) -> None:
        """The consumer groups' one timer, at their earliest session deadline."""
        if self._consumer_timer is not None:
            self._consumer_timer.cancel()
            self._consumer_timer = None
        if deadline_ms is not None:
            ref = self.actor_ref
            delay_s = max(deadline_ms - self._clock(), 0) / 1000
            self._consumer_timer = self._scheduler.call_later(
                delay_s, lambda: tell_if_alive(ref, _ConsumerTick()))

    def _save_consumer_groups(self) -> None:
        """Write the consumer groups changed since the last write; a failed write is
        logged and the groups go on from memory (a restart then finds the last written)."""
        try:
            self._consumer_store.write(self._consumers.take_changes())
        except KafkaStorageError:
            log.exception("writing the consumer groups' state to the catalog failed")

    def _classic_has_members(self, group_id: str) -> bool:
        return bool(self._groups.describe_group(group_id).members)

    # -- KIP-848 consumer groups ---------------------------------------------------------

    def consumer_heartbeat(self, call: HeartbeatCall, topics: Mapping[str, int]
                           ) -> HeartbeatAnswer:
        """ConsumerGroupHeartbeat; a classic group of that id with members refuses it."""
        if self._classic_has_members(call.group_id):
            return HeartbeatAnswer(
                INCONSISTENT_GROUP_PROTOCOL, call.member_id, call.member_epoch,
                self._config.group_consumer_heartbeat_interval_ms,
                f"Group {call.group_id} is a classic group with members.")
        answer = self._consumers.heartbeat(call, topics)
        self._consumer_wake_at(self._consumers.run_timers())
        self._save_consumer_groups()
        return answer

    def consumer_describe(self, group_id: str) -> ConsumerGroupDescription | None:
        """ConsumerGroupDescribe: the group, None if no consumer group has that id."""
        return self._consumers.describe(group_id)

    # -- the coordinator's API, forwarded --------------------------------------------------

    def join_group(self, request: JoinGroupRequest, reply: Future) -> None:
        """JoinGroup: completes ``reply`` with a JoinGroupResult, now or after the rebalance
        (INCONSISTENT_GROUP_PROTOCOL for a ``consumer`` group with members)."""
        if self._consumers.has_members(request.group_id):
            reply.set_result(JoinGroupResult(INCONSISTENT_GROUP_PROTOCOL,
                                             member_id=request.member_id))
            return
        self._groups.join_group(request, reply)

    def sync_group(self, request: SyncGroupRequest, reply: Future) -> None:
        """SyncGroup: completes ``reply`` with a SyncGroupResult once the assignment is known."""
        self._groups.sync_group(request, reply)

    def heartbeat(self, group_id: str, generation_id: int, member_id: str,
                  group_instance_id: str | None = None) -> int:
        """Heartbeat: an error code; REBALANCE_IN_PROGRESS means join again."""
        return self._groups.heartbeat(group_id, generation_id, member_id, group_instance_id)

    def leave_group(self, group_id: str, members: Iterable[str | MemberIdentity]) -> int:
        """LeaveGroup: the error of a member that could not leave, if any."""
        return self._groups.leave_group(group_id, members)

    def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        offsets: Mapping[TopicPartition, tuple[int, str | None] | tuple[int, str | None, int]],
        group_instance_id: str | None = None,
        api_version: int = 8,
    ) -> dict[TopicPartition, int]:
        """OffsetCommit of (offset, metadata[, leader epoch]): an error code per partition;
        to a ``consumer`` group ``generation_id`` is the member epoch. From v9 a group no
        coordinator knows refuses a commit of an epoch >= 0 with GROUP_ID_NOT_FOUND (below
        v9 the classic coordinator's ILLEGAL_GENERATION), as Kafka's OffsetMetadataManager."""
        checked = self._consumers.check_commit(group_id, member_id, generation_id, api_version)
        if checked is not None:
            if checked:
                return dict.fromkeys(offsets, checked)
            generation_id, member_id = -1, ""  # checked here: stored as a standalone commit
        elif (api_version >= 9 and generation_id >= 0
              and group_id not in self._consumers.group_ids()
              and self._groups.describe_group(group_id).state == "Dead"):
            return dict.fromkeys(offsets, GROUP_ID_NOT_FOUND)
        return self._groups.commit_offsets(group_id, generation_id, member_id, offsets,
                                           group_instance_id)

    def fetch_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, tuple[int, str]]:
        """OffsetFetch: (offset, metadata) per partition, (-1, '') where none is committed."""
        return self._groups.fetch_offsets(group_id, partitions)

    def check_fetch(self, group_id: str, member_id: str | None, member_epoch: int) -> int:
        """OffsetFetch v9's member check against a ``consumer`` group: 0 or the group's
        error (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH)."""
        return self._consumers.check_fetch(group_id, member_id, member_epoch)

    def delete_offsets(self, group_id: str, partitions: Iterable[TopicPartition]
                       ) -> tuple[int, dict[TopicPartition, int]]:
        """OffsetDelete: the group's error code, else an error code per partition."""
        return self._groups.delete_offsets(group_id, partitions)

    def leader_epochs(self, group_id: str) -> dict[TopicPartition, int]:
        """OffsetFetch: the committed leader epoch of each partition committed with one."""
        return self._groups.leader_epochs(group_id)

    def list_groups(self) -> list[tuple[str, str, str]]:
        """ListGroups: (group id, protocol type, state) of every group, by id."""
        return [listed[:3] for listed in self.listed_groups()]

    def listed_groups(self) -> list[tuple[str, str, str, str]]:
        """ListGroups v5: (group id, protocol type, state, group type) of every group, by
        id; the type is Kafka's ``classic`` or ``consumer`` (a KIP-848 group)."""
        consumers = {g: ("consumer", self._consumers.describe(g).state, "consumer")
                     for g in self._consumers.group_ids()}
        classic = [(*g, "classic") for g in self._groups.list_groups() if g[0] not in consumers]
        return sorted(classic + [(g, *rest) for g, rest in consumers.items()])

    def describe_group(self, group_id: str) -> GroupDescription:
        """DescribeGroups: state and members (an unknown group is Dead); a ``consumer``
        group with its protocol type ``consumer``, each member's subscribed names and
        assigned partitions in the consumer protocol's bytes, as Kafka 4.0 describes one."""
        consumer = self._consumers.describe(group_id)
        if consumer is None:
            return self._groups.describe_group(group_id)
        members = tuple(MemberDescription(
            m.member_id, m.instance_id, m.client_id, m.client_host,
            encode_subscription(Subscription(m.topic_names)),
            encode_assignment(Assignment(tuple(TopicPartition(*tp) for tp in sorted(m.assigned)))))
            for m in consumer.members)
        return GroupDescription(group_id, consumer.state, "consumer", consumer.assignor,
                                members)

    def delete_group(self, group_id: str) -> int:
        """DeleteGroups: an error code (NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND). An empty
        ``consumer`` group goes with its committed offsets and its ``consumer_group_state``
        row, in that order, so a failed write leaves the group to be deleted again."""
        consumer = self._consumers.describe(group_id)
        if consumer is None:
            return self._groups.delete_group(group_id)
        if consumer.members or self._classic_has_members(group_id):
            return NON_EMPTY_GROUP
        self._catalog.delete_group_offsets(group_id)
        self._consumer_store.delete(group_id)
        self._groups.delete_group(group_id)  # its Empty classic entry, if it has one
        log.info("consumer group %s: deleted", group_id)
        return self._consumers.delete(group_id)

    def stats(self) -> CoordinatorStats:
        """Rebalances started so far, members of every group (``consumer`` groups too),
        and the consumer groups' epochs."""
        classic = self._groups.stats()
        consumers = [self._consumers.describe(g) for g in self._consumers.group_ids()]
        members = {**classic.members_per_group, **{d.group_id: len(d.members) for d in consumers}}
        return CoordinatorStats(classic.rebalances_total, members,
                                {d.group_id: d.group_epoch for d in consumers})
