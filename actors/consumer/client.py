"""The embedded consumer: kafka-python's KafkaConsumer shape over partition states.

A :class:`Consumer` reads in the thread that calls ``poll``, through its
:class:`~actors.consumer.fetcher.Fetcher`. When nothing is there, ``poll`` long-polls:
listeners on the assigned partitions' states wake it as soon as a high watermark moves,
without a busy loop.

With ``subscribe`` and a ``group_id`` the consumer is a member of its group
(:mod:`actors.consumer.membership`). Joining happens in the polling thread, where the
rebalance listener runs too, so a user can commit before giving a partition up. The
:class:`~actors.consumer.actor.ConsumerActor` sends heartbeats and performs
``commit_async`` commits. Without a ``group_id``, ``subscribe`` takes every partition of
its topics and nothing is committed.

Threads: a Consumer is used from one thread, the polling thread, which owns its
subscription, its fetcher and its membership. Other threads only wake it (the partition
actors when data arrives, the consumer actor when the group moves on) and complete the
futures of asynchronous commits, whose callbacks run in a later ``poll``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any, NamedTuple

import pykka

from actors.broker import Broker
from actors.consumer.actor import CommitAsync, ConsumerActor, HeartbeatsOff, HeartbeatsOn
from actors.consumer.config import ConsumerConfig
from actors.consumer.fetcher import Fetcher
from actors.consumer.membership import Membership, OffsetCommit
from actors.consumer.records import ConsumerRecord, ConsumerRecords
from actors.coordinator import GroupCoordinator
from actors.runtime import Scheduler, stop_actor, tell_if_alive, tell_with_reply
from eventstore.errors import IllegalState, KafkaError, UnknownTopicOrPartition
from eventstore.topic_partition import TopicPartition

log = logging.getLogger(__name__)

_client_ids = itertools.count(1)


class OffsetAndMetadata(NamedTuple):
    """A committed offset (the next offset to read) and its metadata string."""

    offset: int
    metadata: str = ""


class ConsumerRebalanceListener:
    """Told, in the polling thread, which partitions a rebalance takes and gives.

    ``on_partitions_revoked`` runs before the consumer joins the group again, while it can
    still commit what it processed; ``on_partitions_assigned`` once it has its new ones.
    """

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """The consumer is about to give these partitions up."""

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """The consumer now reads these partitions."""


def _offset_and_metadata(value: Any) -> tuple[int, str]:
    if isinstance(value, int):
        return value, ""
    offset, metadata = value[0], (value[1] if len(value) > 1 else "")
    return offset, metadata or ""


class Consumer:
    """Reads records from topics; used from one thread, like kafka-python's KafkaConsumer."""

    def __init__(
        self,
        broker: pykka.ActorProxy[Broker],
        coordinator: pykka.ActorProxy[GroupCoordinator],
        scheduler: Scheduler,
        topics: Iterable[str] = (),
        on_close: Callable[[Consumer], None] = lambda consumer: None,
        **config: Any,
    ) -> None:
        self.config = ConsumerConfig.from_kwargs(**config)
        self.client_id = self.config.client_id or f"eventstore-consumer-{next(_client_ids)}"
        self._broker = broker
        self._coordinator = coordinator
        self._on_close = on_close
        self._wakeup = threading.Event()
        self._fetcher = Fetcher(broker, self.config.auto_offset_reset, self._committed,
                                self._wakeup.set,
                                self.config.isolation_level == "read_committed")
        self._membership = Membership(self.config, self.client_id, broker, coordinator,
                                      self._wakeup.set)
        self._subscription: tuple[str, ...] = ()
        self._listener: ConsumerRebalanceListener | None = None
        self._next_auto_commit = time.monotonic() + self.config.auto_commit_interval_ms / 1000
        self._next_metadata_check = 0.0
        self._commit_callbacks: deque[Callable[[], None]] = deque()
        self._closed = False
        deserializing = self.config.key_deserializer or self.config.value_deserializer
        self._convert = self._deserialize if deserializing else None
        self._actor = ConsumerActor.start(coordinator, self._membership, self.config.group_id,
                                          self.config.heartbeat_interval_ms, scheduler)
        if topics:
            self.subscribe(list(topics))

    # -- assignment -------------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str],
                  listener: ConsumerRebalanceListener | None = None) -> None:
        """Follow ``topics``: with a ``group_id`` the group shares their partitions out;
        without one this consumer takes them all. ``listener`` gets rebalance callbacks."""
        self._check_open()
        topics = tuple(sorted(set(topics)))
        if not topics:
            raise IllegalState("subscribe() needs at least one topic (use unsubscribe())")
        for topic in topics:
            self._ensure_topic(topic)
        self._subscription = topics
        self._listener = listener
        if self.config.group_id is None:
            self._assign_all_partitions()
        else:
            self._membership.rejoin_needed = True
            self._wakeup.set()

    def unsubscribe(self) -> None:
        """Stop following topics: leave the group and give up every partition."""
        self._check_open()
        self._leave_group()
        self._subscription = ()
        self._fetcher.assign(set())

    def subscription(self) -> set[str]:
        return set(self._subscription)

    def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Read exactly these partitions, with no group membership (commits still work)."""
        self._check_open()
        if self._subscription:
            raise IllegalState("assign() on a subscribed consumer: unsubscribe() first")
        wanted = {TopicPartition(*tp) for tp in partitions}
        for tp in wanted:
            info = self._ensure_topic(tp.topic)
            if not 0 <= tp.partition < info.partitions:
                raise UnknownTopicOrPartition(
                    f"topic {tp.topic!r} has no partition {tp.partition}"
                    f" (it has {info.partitions})")
        self._fetcher.assign(wanted)

    def assignment(self) -> set[TopicPartition]:
        return self._fetcher.assigned()

    # -- positions --------------------------------------------------------------------------

    def position(self, partition: tuple[str, int]) -> int:
        """The offset of the next record ``poll`` returns from ``partition``."""
        return self._fetcher.position(partition)

    def end_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[Any, int]:
        """Each assigned partition's end as this consumer reads it (kafka-python's
        ``end_offsets``): the high watermark, the last stable offset under read_committed."""
        self._check_open()
        return {tp: self._fetcher.end_offset(tp) for tp in partitions}

    def seek(self, partition: tuple[str, int], offset: int) -> None:
        """Read ``partition`` from ``offset`` on (out of range: ``auto_offset_reset``)."""
        if not isinstance(offset, int) or offset < 0:
            raise IllegalState(f"seek to {offset!r}: offsets are non-negative integers")
        self._fetcher.seek(partition, offset)

    def seek_to_beginning(self, *partitions: tuple[str, int]) -> None:
        """Read from each partition's log-start-offset (every assigned one if none given)."""
        self._fetcher.seek_to_beginning(partitions)

    def seek_to_end(self, *partitions: tuple[str, int]) -> None:
        """Read only records appended from now on (every assigned partition if none given)."""
        self._fetcher.seek_to_end(partitions)

    def committed(self, partition: tuple[str, int]) -> int | None:
        """The group's committed offset of ``partition``, or None."""
        offset, _ = self._committed([TopicPartition(*partition)])[TopicPartition(*partition)]
        return None if offset < 0 else offset

    # -- polling ----------------------------------------------------------------------------

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> ConsumerRecords:
        """Records from the assigned partitions, in offset order within each partition.

        Waits up to ``timeout_ms`` for some to arrive (woken by the appends themselves).
        Joins the group first when it must (the rebalance listener runs here), and commits
        the positions every ``auto_commit_interval_ms`` when ``enable_auto_commit``.
        """
        self._check_open()
        limit = max_records or self.config.max_poll_records
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            self._wakeup.clear()
            self._maintain()
            records = ConsumerRecords(self._fetcher.fetch(limit), self._convert)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            self._wakeup.wait(remaining)

    def _deserialize(self, record: ConsumerRecord) -> ConsumerRecord:
        """``record`` with ``key_deserializer`` / ``value_deserializer`` applied."""
        key_fn, value_fn = self.config.key_deserializer, self.config.value_deserializer
        offset, timestamp, key, value, headers = record
        return type(record)((
            offset, timestamp,
            key if key_fn is None or key is None else key_fn(key),
            value if value_fn is None or value is None else value_fn(value),
            headers))

    # -- commits ----------------------------------------------------------------------------

    def commit(self, offsets: Mapping[tuple[str, int], Any] | None = None) -> None:
        """Commit ``offsets`` (default: the current positions) and wait for the answer.

        Raises the coordinator's typed error (RebalanceInProgress, IllegalGeneration...)
        when the group no longer lets this member commit.
        """
        self._check_open()
        self._membership.commit(self._offset_commit(offsets))

    def commit_async(
        self,
        offsets: Mapping[tuple[str, int], Any] | None = None,
        callback: Callable[[Mapping[TopicPartition, OffsetAndMetadata], Exception | None],
                           None] | None = None,
    ) -> Future[None]:
        """Commit without waiting; ``callback(offsets, error)`` runs in a later ``poll``."""
        self._check_open()
        commit = self._offset_commit(offsets)
        done: Future[None] = Future()
        if callback is not None:
            committed = {tp: OffsetAndMetadata(*value) for tp, value in commit.offsets.items()}

            def report(future: Future[None]) -> None:
                self._commit_callbacks.append(lambda: callback(committed, future.exception()))
            done.add_done_callback(report)
        tell_with_reply(self._actor, CommitAsync(commit, done), done, lambda: IllegalState(
            "the consumer was closed before this commit was sent"))
        return done

    def _offset_commit(self, offsets: Mapping[tuple[str, int], Any] | None) -> OffsetCommit:
        if self.config.group_id is None:
            raise IllegalState("commit needs a group_id")
        if offsets is None:
            chosen = self._fetcher.positions()
        else:
            chosen = {TopicPartition(*tp): _offset_and_metadata(value)
                      for tp, value in offsets.items()}
        return self._membership.offset_commit(chosen, as_member=bool(self._subscription))

    def _committed(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, str]]:
        if self.config.group_id is None:
            return {tp: (-1, "") for tp in partitions}
        found = self._coordinator.fetch_offsets(self.config.group_id, partitions).get()
        return {TopicPartition(*tp): value for tp, value in found.items()}

    # -- closing ----------------------------------------------------------------------------

    def close(self, autocommit: bool = True) -> None:
        """Commit (when auto-commit is on), leave the group, close every reader."""
        if self._closed:
            return
        try:
            if autocommit and self.config.enable_auto_commit and self.config.group_id:
                self._commit_quietly()
            self._leave_group()
        finally:
            self._closed = True
            stop_actor(self._actor)
            self._fetcher.assign(set())
            self._run_commit_callbacks()
            self._on_close(self)

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- group membership (polling thread) --------------------------------------------------

    def _maintain(self) -> None:
        """What ``poll`` does before reading: callbacks, rejoin, auto-commit, metadata."""
        self._run_commit_callbacks()
        membership = self._membership
        membership.apply_reports()
        if self._subscription:
            if membership.rejoin_needed and self.config.group_id is not None:
                self._join_group()
            now = time.monotonic()
            if now >= self._next_metadata_check:
                self._next_metadata_check = now + self.config.metadata_max_age_ms / 1000
                self._check_metadata()
        if (self.config.enable_auto_commit and self.config.group_id is not None
                and time.monotonic() >= self._next_auto_commit and self._fetcher.assigned()):
            self._next_auto_commit = (time.monotonic()
                                      + self.config.auto_commit_interval_ms / 1000)
            self._commit_quietly()

    def _commit_quietly(self) -> None:
        """Auto-commit: a refused commit is logged (the group rebalances), never raised."""
        try:
            self.commit()
        except KafkaError as exc:
            log.warning("auto-commit refused", extra={"fields": {
                "group": self.config.group_id, "error": str(exc)}})

    def _join_group(self) -> None:
        """Give the partitions up, join, and take what the leader assigns (eager protocol)."""
        membership = self._membership
        revoked = self._fetcher.assigned()
        if revoked:
            if self.config.enable_auto_commit:
                self._commit_quietly()
            if self._listener is not None:
                self._listener.on_partitions_revoked(revoked)
            membership.previous = tuple(sorted(revoked))
            self._fetcher.assign(set())
        tell_if_alive(self._actor, HeartbeatsOff())
        backoff = self.config.retry_backoff_ms / 1000
        assigned = membership.rejoin(self._subscription, lambda: self._wakeup.wait(backoff),
                                     lambda: not self._closed)
        if assigned is None:
            return
        self._fetcher.assign(assigned)
        tell_if_alive(self._actor, HeartbeatsOn(membership.generation_id, membership.member_id))
        log.info("joined group", extra={"fields": {
            "group": self.config.group_id, "member": membership.member_id,
            "generation": membership.generation_id, "partitions": len(assigned)}})
        if self._listener is not None:
            self._listener.on_partitions_assigned(set(assigned))

    def _check_metadata(self) -> None:
        """The leader rebalances when a subscribed topic's partition count changed, as
        Kafka's does; a consumer without a group takes the new partitions itself."""
        if self.config.group_id is None:
            self._assign_all_partitions()
        else:
            self._membership.check_partition_counts(self._subscription)

    def _leave_group(self) -> None:
        membership = self._membership
        membership.apply_reports()
        if self.config.group_id is None or not membership.member_id or not self._subscription:
            return
        assigned = self._fetcher.assigned()
        if self._listener is not None and assigned:
            self._listener.on_partitions_revoked(assigned)
        tell_if_alive(self._actor, HeartbeatsOff())
        membership.leave()

    # -- internals --------------------------------------------------------------------------

    def _assign_all_partitions(self) -> None:
        counts = self._broker.partition_counts(self._subscription).get()
        self._fetcher.assign({TopicPartition(t, p) for t, n in counts.items() for p in range(n)})

    def _ensure_topic(self, topic: str) -> Any:
        return self._broker.ensure_topic(topic, self.config.allow_auto_create_topics).get()

    def _run_commit_callbacks(self) -> None:
        while self._commit_callbacks:
            self._commit_callbacks.popleft()()

    def _check_open(self) -> None:
        if self._closed:
            raise IllegalState("the consumer is closed")
