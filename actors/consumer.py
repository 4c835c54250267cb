"""The embedded consumer: kafka-python's KafkaConsumer shape over partition states.

A :class:`Consumer` reads in the thread that calls ``poll``: for each assigned partition
it takes the published ``state.view`` and reads rows through its own LogReader (one per
partition, holding connections only to the segments at or after its position), so it
never waits behind a write and never sees an unacknowledged record. When nothing is
there, ``poll`` long-polls: listeners on the assigned partitions' states wake it as soon
as a high watermark moves, without a busy loop.

With ``subscribe`` the consumer is a Kafka-style client of the group coordinator: it
joins (JoinGroup), the member elected leader runs the group's assignor
(``eventstore.groups.assignors``) and hands every member its partitions (SyncGroup). Joining
happens in the polling thread, where the rebalance listener runs too, so a user can
commit before giving a partition up. The :class:`ConsumerActor` sends heartbeats every
``heartbeat_interval_ms`` and performs ``commit_async`` commits; when a heartbeat says the
group rebalances, it wakes the polling thread to join again. Without a ``group_id``,
``subscribe`` takes every partition of its topics and nothing is committed.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import Any, NamedTuple

import pykka

from actors.broker import Broker
from actors.coordinator import GroupCoordinator
from actors.partition import PartitionState
from actors.runtime import Actor, Scheduler, Timer, stop_actor, tell_if_alive
from eventstore.errors import (
    IllegalGeneration,
    IllegalState,
    InvalidConfig,
    KafkaError,
    KafkaTimeoutError,
    MemberIdRequired,
    NoOffsetForPartition,
    NotCoordinator,
    OffsetOutOfRange,
    RebalanceInProgress,
    UnknownMemberId,
    UnknownTopicOrPartition,
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
from eventstore.storage.log import LogReader, LogView
from eventstore.storage.records import RECORD_OVERHEAD, Headers, StoredRow, decode_headers
from eventstore.topic_partition import TopicPartition

log = logging.getLogger(__name__)

_client_ids = itertools.count(1)
CLIENT_HOST = "in-process"
_REJOIN = {RebalanceInProgress.code, IllegalGeneration.code, UnknownMemberId.code}
_NEW_MEMBER = {IllegalGeneration.code, UnknownMemberId.code}


class ConsumerRecord(tuple):
    """One record as ``poll`` returns it: ``topic``, ``partition``, ``offset``,
    ``timestamp``, ``key``, ``value`` and ``headers`` (a tuple of (key, value) pairs, ()
    when there are none).

    Underneath it is the stored row, the tuple (offset, timestamp, key, value, headers),
    and its class knows the topic and partition: each assigned partition has its own
    subclass (see :meth:`of`), so that making a record is one C call and no Python code,
    as building records is most of what a consumer does.
    """

    __slots__ = ()
    _fields = ("topic", "partition", "offset", "timestamp", "key", "value", "headers")
    topic: str = ""
    partition: int = -1

    offset = property(itemgetter(0))
    timestamp = property(itemgetter(1))
    key = property(itemgetter(2))
    value = property(itemgetter(3))

    @property
    def headers(self) -> Headers:
        return self[4] or ()

    @staticmethod
    def of(topic: str, partition: int) -> type[ConsumerRecord]:
        """The record class of one partition."""
        return type("ConsumerRecord", (ConsumerRecord,),
                    {"__slots__": (), "topic": topic, "partition": partition})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConsumerRecord):
            return NotImplemented
        return (tuple.__eq__(self, other) and self.topic == other.topic
                and self.partition == other.partition)

    def __hash__(self) -> int:
        return hash((self.topic, self.partition, *self))

    def __reduce__(self) -> tuple:
        return _restore_record, (self.topic, self.partition, tuple(self))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"ConsumerRecord({fields})"


def _restore_record(topic: str, partition: int, row: tuple) -> ConsumerRecord:
    """Unpickle a record (its partition's class is made per consumer, so not importable)."""
    return ConsumerRecord.of(topic, partition)(row)


_stored_headers = itemgetter(4)
_STORED_FIELDS = (itemgetter(2), itemgetter(3), _stored_headers)


def _stored_bytes(rows: list[StoredRow]) -> int:
    """Bytes the rows count for (``records.record_size`` of each), summed without a Python
    call per row."""
    size = RECORD_OVERHEAD * len(rows)
    for field_of in _STORED_FIELDS:
        size += sum(map(len, filter(None, map(field_of, rows))))
    return size


def _records(record: type[ConsumerRecord], rows: list[StoredRow]) -> Iterator[ConsumerRecord]:
    """Records of one partition from its stored rows, made as they are iterated; headers
    are decoded only where there are some."""
    if not any(map(_stored_headers, rows)):
        return map(record, rows)
    return (record((*row[:4], decode_headers(row[4]) if row[4] else None)) for row in rows)


class ConsumerRecords:
    """What ``poll`` returns: each partition's records in offset order, as Java's
    ConsumerRecords; iterate it, index it, or ask for one partition's ``records``.

    Records are made while you iterate, from the rows as read, so a record is a short-lived
    object and a large poll does not pile up work for Python's garbage collector.
    """

    __slots__ = ("_chunks", "_count", "_convert")

    def __init__(self, chunks: list[tuple[type[ConsumerRecord], list[StoredRow]]],
                 convert: Callable[[ConsumerRecord], ConsumerRecord] | None = None) -> None:
        self._chunks = chunks
        self._count = sum(len(rows) for _, rows in chunks)
        self._convert = convert

    def __iter__(self) -> Iterator[ConsumerRecord]:
        records = itertools.chain.from_iterable(
            _records(record, rows) for record, rows in self._chunks)
        return records if self._convert is None else map(self._convert, records)

    def __len__(self) -> int:
        return self._count

    def count(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> ConsumerRecord:
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("ConsumerRecords index out of range")
        for record, rows in self._chunks:
            if index < len(rows):
                return next(iter(ConsumerRecords([(record, rows[index:index + 1])],
                                                 self._convert)))
            index -= len(rows)
        raise AssertionError("unreachable: the index was checked")

    def partitions(self) -> set[TopicPartition]:
        """The partitions this poll returned records of."""
        return {TopicPartition(record.topic, record.partition) for record, _ in self._chunks}

    def records(self, partition: tuple[str, int]) -> list[ConsumerRecord]:
        """One partition's records, in offset order."""
        tp = TopicPartition(*partition)
        return list(ConsumerRecords(
            [c for c in self._chunks if (c[0].topic, c[0].partition) == tp], self._convert))

    def __repr__(self) -> str:
        return f"ConsumerRecords({self._count} records from {len(self._chunks)} partitions)"


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


@dataclass(frozen=True)
class ConsumerConfig:
    """The consumer settings eventstore implements, under kafka-python's names."""

    group_id: str | None = None
    client_id: str | None = None
    group_instance_id: str | None = None
    key_deserializer: Callable[[bytes], Any] | None = None
    value_deserializer: Callable[[bytes], Any] | None = None
    auto_offset_reset: str = "latest"
    enable_auto_commit: bool = True
    auto_commit_interval_ms: int = 5000
    max_poll_records: int = 500
    max_poll_interval_ms: int = 300000
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 3000
    retry_backoff_ms: int = 100
    metadata_max_age_ms: int = 300000
    allow_auto_create_topics: bool = True
    partition_assignment_strategy: tuple[str, ...] = ("range", "roundrobin")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ConsumerConfig:
        """Checked settings; unknown names and out-of-range values raise InvalidConfig."""
        known = cls.__dataclass_fields__
        for name, value in kwargs.items():
            if name not in known:
                raise InvalidConfig(
                    f"unknown consumer setting {name!r} (known: {', '.join(sorted(known))})")
            if name.endswith(("_ms", "_records")) and (
                    not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InvalidConfig(f"{name}: must be a positive integer, got {value!r}")
        strategy = kwargs.get("partition_assignment_strategy", ("range", "roundrobin"))
        if isinstance(strategy, str):
            strategy = (strategy,)
        kwargs["partition_assignment_strategy"] = tuple(strategy)
        config = cls(**kwargs)
        if config.auto_offset_reset not in ("earliest", "latest", "none"):
            raise InvalidConfig(f"auto_offset_reset: must be earliest, latest or none, got"
                                f" {config.auto_offset_reset!r}")
        for name in config.partition_assignment_strategy:
            if name not in assignors.ASSIGNORS:
                raise InvalidConfig(f"partition_assignment_strategy: unknown assignor {name!r}"
                                    f" (known: {', '.join(assignors.ASSIGNORS)})")
        if not config.partition_assignment_strategy:
            raise InvalidConfig("partition_assignment_strategy: name at least one assignor")
        if config.heartbeat_interval_ms >= config.session_timeout_ms:
            raise InvalidConfig("heartbeat_interval_ms: must be lower than session_timeout_ms")
        return config


class _Fetch:
    """One assigned partition: its state, the consumer's reader on it, and the position."""

    __slots__ = ("tp", "state", "record", "reader", "position", "prune_at", "segments_seen")

    def __init__(self, tp: TopicPartition, state: PartitionState) -> None:
        self.tp = tp
        self.state = state
        self.record = ConsumerRecord.of(*tp)
        self.reader = LogReader()
        self.position: int | None = None
        self.prune_at = -1  # position at which the reader drops segments behind it
        self.segments_seen = (-1, 0)  # (first base offset, count) of the view last pruned

    def seek(self, offset: int) -> None:
        self.position = offset
        self.prune_at = -1  # prune again from the new position on

    def prune(self, view: LogView) -> None:
        """Close connections to segments wholly behind the position (or deleted)."""
        index = view.segment_index(self.position)
        self.reader.prune(replace(view, segments=view.segments[index:]))
        following = view.segments[index + 1:index + 2]
        self.prune_at = following[0].base_offset if following else view.high_watermark + 1
        self.segments_seen = (view.segments[0].base_offset, len(view.segments))


@dataclass
class _Membership:
    """Where this consumer stands in its group."""

    member_id: str = ""
    generation_id: int = -1
    leader: bool = False
    partition_counts: Mapping[str, int] = field(default_factory=dict)
    previous: tuple[tuple[str, int], ...] = ()  # assignment before this rebalance (sticky)


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
        self._fetches: dict[TopicPartition, _Fetch] = {}
        self._order: list[_Fetch] = []
        self._next = 0
        self._wakeup = threading.Event()
        self._subscription: tuple[str, ...] = ()
        self._listener: ConsumerRebalanceListener | None = None
        self._membership = _Membership()
        self._rejoin_needed = False
        self._next_auto_commit = time.monotonic() + self.config.auto_commit_interval_ms / 1000
        self._next_metadata_check = 0.0
        self._commit_callbacks: deque[Callable[[], None]] = deque()
        self._closed = False
        deserializing = self.config.key_deserializer or self.config.value_deserializer
        self._convert = self._deserialize if deserializing else None
        self._actor = ConsumerActor.start(self, coordinator, scheduler)
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
            self._rejoin_needed = True
            self._wakeup.set()

    def unsubscribe(self) -> None:
        """Stop following topics: leave the group and give up every partition."""
        self._check_open()
        self._leave_group()
        self._subscription = ()
        self._set_assignment(set())

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
        self._set_assignment(wanted)

    def assignment(self) -> set[TopicPartition]:
        return set(self._fetches)

    # -- positions --------------------------------------------------------------------------

    def position(self, partition: tuple[str, int]) -> int:
        """The offset of the next record ``poll`` returns from ``partition``."""
        fetch = self._fetch_of(partition)
        if fetch.position is None:
            self._resolve_positions([fetch])
        return fetch.position

    def seek(self, partition: tuple[str, int], offset: int) -> None:
        """Read ``partition`` from ``offset`` on (out of range: ``auto_offset_reset``)."""
        if not isinstance(offset, int) or offset < 0:
            raise IllegalState(f"seek to {offset!r}: offsets are non-negative integers")
        self._fetch_of(partition).seek(offset)

    def seek_to_beginning(self, *partitions: tuple[str, int]) -> None:
        """Read from each partition's log-start-offset (every assigned one if none given)."""
        for fetch in self._fetches_of(partitions):
            fetch.seek(self._view(fetch).log_start_offset)

    def seek_to_end(self, *partitions: tuple[str, int]) -> None:
        """Read only records appended from now on (every assigned partition if none given)."""
        for fetch in self._fetches_of(partitions):
            fetch.seek(self._view(fetch).high_watermark)

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
            records = ConsumerRecords(self._fetch(limit), self._convert)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            self._wakeup.wait(remaining)

    def _fetch(self, limit: int) -> list[tuple[type[ConsumerRecord], list[StoredRow]]]:
        """Rows of up to ``limit`` records, taking partitions in turn so none starves."""
        order = self._order
        if not order:
            return []
        unresolved = [f for f in order if f.position is None and f.state.view is not None]
        if unresolved:
            self._resolve_positions(unresolved)
        chunks = []
        wanted = limit
        start = self._next
        self._next = (start + 1) % len(order)
        for i in range(len(order)):
            fetch = order[(start + i) % len(order)]
            state = fetch.state
            view = state.view
            position = fetch.position
            if view is None or state.error is not None or position is None:
                continue
            if (position >= fetch.prune_at
                    or (view.segments[0].base_offset, len(view.segments)) != fetch.segments_seen):
                fetch.prune(view)
            if position == view.high_watermark:
                continue
            try:
                rows = fetch.reader.read(view, position, wanted)
            except OffsetOutOfRange:
                self._reset_position(fetch, "is out of range")
                continue
            except KafkaError:
                if chunks:  # hand out what was read (positions moved); the error comes next
                    break
                raise
            if rows:
                fetch.position = rows[-1][0] + 1
                state.stats.add_fetched(len(rows), _stored_bytes(rows))
                chunks.append((fetch.record, rows))
                wanted -= len(rows)
                if not wanted:
                    break
        return chunks

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
        results = self._coordinator.commit_offsets(*self._commit_args(offsets)).get()
        self._raise_commit_errors(results)

    def commit_async(
        self,
        offsets: Mapping[tuple[str, int], Any] | None = None,
        callback: Callable[[Mapping[TopicPartition, OffsetAndMetadata], Exception | None],
                           None] | None = None,
    ) -> Future[None]:
        """Commit without waiting; ``callback(offsets, error)`` runs in a later ``poll``."""
        self._check_open()
        args = self._commit_args(offsets)
        done: Future[None] = Future()
        if callback is not None:
            committed = {tp: OffsetAndMetadata(*value) for tp, value in args[3].items()}

            def report(future: Future[None]) -> None:
                self._commit_callbacks.append(lambda: callback(committed, future.exception()))
            done.add_done_callback(report)
        self._actor.tell(CommitAsync(args, done))
        return done

    def _commit_args(self, offsets: Mapping[tuple[str, int], Any] | None) -> tuple:
        if self.config.group_id is None:
            raise IllegalState("commit needs a group_id")
        if offsets is None:
            chosen = {f.tp: (f.position, "") for f in self._order if f.position is not None}
        else:
            chosen = {TopicPartition(*tp): _offset_and_metadata(value)
                      for tp, value in offsets.items()}
        membership = self._membership
        if self._subscription:
            return (self.config.group_id, membership.generation_id, membership.member_id,
                    chosen)
        return self.config.group_id, -1, "", chosen

    def _raise_commit_errors(self, results: Mapping[TopicPartition, int]) -> None:
        for code in results.values():
            if code:
                if code in _REJOIN:
                    self._request_rejoin(code)
                raise error_for_code(code, f"commit of group {self.config.group_id!r} refused")

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
            self._set_assignment(set())
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
        if self._subscription:
            if self._rejoin_needed and self.config.group_id is not None:
                self._join_group()
            now = time.monotonic()
            if now >= self._next_metadata_check:
                self._next_metadata_check = now + self.config.metadata_max_age_ms / 1000
                self._check_metadata()
        if (self.config.enable_auto_commit and self.config.group_id is not None
                and self._order and time.monotonic() >= self._next_auto_commit):
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
        revoked = set(self._fetches)
        if revoked:
            if self.config.enable_auto_commit:
                self._commit_quietly()
            if self._listener is not None:
                self._listener.on_partitions_revoked(revoked)
            membership.previous = tuple(sorted(revoked))
            self._set_assignment(set())
        tell_if_alive(self._actor, HeartbeatsOff())
        backoff = self.config.retry_backoff_ms / 1000
        while self._rejoin_needed and not self._closed:
            self._rejoin_needed = False
            joined = self._call(self._coordinator.join_group, self._join_request())
            code = joined.error_code
            if code == MemberIdRequired.code:
                membership.member_id = joined.member_id
                self._rejoin_needed = True
                continue
            if code:
                self._on_join_error(code, "join")
                self._wakeup.wait(backoff)
                continue
            membership.member_id = joined.member_id
            membership.generation_id = joined.generation_id
            membership.leader = bool(joined.members)
            synced = self._call(self._coordinator.sync_group, SyncGroupRequest(
                group_id=self.config.group_id, generation_id=joined.generation_id,
                member_id=joined.member_id, assignments=self._leader_assignments(joined),
                group_instance_id=self.config.group_instance_id))
            if synced.error_code:
                self._on_join_error(synced.error_code, "sync")
                continue
            assigned = {TopicPartition(*tp)
                        for tp in decode_assignment(synced.assignment).partitions}
            self._set_assignment(assigned)
            tell_if_alive(self._actor, HeartbeatsOn(joined.generation_id, joined.member_id))
            log.info("joined group", extra={"fields": {
                "group": self.config.group_id, "member": joined.member_id,
                "generation": joined.generation_id, "partitions": len(assigned)}})
            if self._listener is not None:
                self._listener.on_partitions_assigned(set(assigned))

    def _join_request(self) -> JoinGroupRequest:
        membership = self._membership
        owned = membership.previous
        protocols = []
        for name in self.config.partition_assignment_strategy:
            user_data = (encode_sticky_user_data(owned, membership.generation_id)
                         if name == "sticky" else None)
            subscription = Subscription(self._subscription, user_data, owned,
                                        membership.generation_id)
            protocols.append((name, encode_subscription(subscription)))
        return JoinGroupRequest(
            group_id=self.config.group_id, member_id=membership.member_id,
            group_instance_id=self.config.group_instance_id, client_id=self.client_id,
            client_host=CLIENT_HOST, session_timeout_ms=self.config.session_timeout_ms,
            rebalance_timeout_ms=self.config.max_poll_interval_ms, protocol_type=PROTOCOL_TYPE,
            protocols=tuple(protocols), require_known_member_id=True)

    def _leader_assignments(self, joined: JoinGroupResult) -> tuple[tuple[str, bytes], ...]:
        """As the leader: run the group's assignor over every member's subscription."""
        if not joined.members:
            return ()
        subscriptions = {m.member_id: decode_subscription(m.metadata) for m in joined.members}
        topics = {t for s in subscriptions.values() for t in s.topics}
        counts = self._broker.partition_counts(sorted(topics)).get()
        self._membership.partition_counts = counts
        result = assignors.assign(joined.protocol_name, subscriptions, counts)
        return tuple((member, encode_assignment(Assignment(tuple(parts))))
                     for member, parts in sorted(result.items()))

    def _check_metadata(self) -> None:
        """The leader rebalances when a subscribed topic's partition count changed, as
        Kafka's does; a consumer without a group takes the new partitions itself."""
        if self.config.group_id is None:
            self._assign_all_partitions()
        elif self._membership.leader and not self._rejoin_needed:
            counts = self._broker.partition_counts(self._subscription).get()
            if counts != self._membership.partition_counts:
                self._request_rejoin(RebalanceInProgress.code)

    def _call(self, method: Callable[..., Any], request: Any) -> Any:
        """Send a JoinGroup or SyncGroup and wait for its parked answer."""
        reply: Future = Future()
        timeout = (self.config.max_poll_interval_ms + self.config.session_timeout_ms) / 1000
        try:
            method(request, reply).get(timeout=timeout)  # parked, or ActorDeadError
            return reply.result(timeout)
        except pykka.ActorDeadError:
            raise IllegalState("the store is closed: its group coordinator is gone") from None
        except (TimeoutError, pykka.Timeout):
            raise KafkaTimeoutError(
                f"group {self.config.group_id!r}: no answer to {type(request).__name__}"
                f" within {timeout:.0f} s") from None

    def _on_join_error(self, code: int, step: str) -> None:
        if code in _REJOIN or code == NotCoordinator.code:
            if code in _NEW_MEMBER:
                self._membership.member_id = ""
                self._membership.generation_id = -1
            self._rejoin_needed = True
            return
        raise error_for_code(code, f"group {self.config.group_id!r}: {step} refused")

    def _request_rejoin(self, code: int) -> None:
        """Called from any thread: the group needs this member to join again."""
        if code in _NEW_MEMBER:
            self._membership.member_id = ""
            self._membership.generation_id = -1
        self._rejoin_needed = True
        self._wakeup.set()

    def _leave_group(self) -> None:
        membership = self._membership
        if self.config.group_id is None or not membership.member_id or not self._subscription:
            return
        if self._listener is not None and self._fetches:
            self._listener.on_partitions_revoked(set(self._fetches))
        tell_if_alive(self._actor, HeartbeatsOff())
        self._coordinator.leave_group(self.config.group_id, [membership.member_id]).get()
        self._membership = _Membership()

    # -- internals --------------------------------------------------------------------------

    def _assign_all_partitions(self) -> None:
        counts = self._broker.partition_counts(self._subscription).get()
        self._set_assignment({TopicPartition(t, p) for t, n in counts.items() for p in range(n)})

    def _set_assignment(self, partitions: set[TopicPartition]) -> None:
        """Keep the readers of partitions still assigned; open, close the others."""
        for tp in [tp for tp in self._fetches if tp not in partitions]:
            fetch = self._fetches.pop(tp)
            fetch.state.remove_listener(self._wakeup.set)
            fetch.reader.close()
        for topic in sorted({tp.topic for tp in partitions if tp not in self._fetches}):
            handles = self._broker.partitions(topic).get()
            for tp in partitions:
                if tp.topic == topic and tp not in self._fetches:
                    fetch = self._fetches[tp] = _Fetch(tp, handles[tp.partition].state)
                    fetch.state.add_listener(self._wakeup.set)
        self._order = [self._fetches[tp] for tp in sorted(self._fetches)]
        self._next = 0

    def _resolve_positions(self, fetches: list[_Fetch]) -> None:
        """Positions from the committed offsets, else by ``auto_offset_reset``."""
        committed = self._committed([f.tp for f in fetches])
        for fetch in fetches:
            offset, _ = committed.get(fetch.tp, (-1, ""))
            if offset >= 0:
                fetch.seek(offset)
            else:
                self._reset_position(fetch, "has no committed offset")

    def _reset_position(self, fetch: _Fetch, why: str) -> None:
        policy = self.config.auto_offset_reset
        if policy == "none":
            error = NoOffsetForPartition if fetch.position is None else OffsetOutOfRange
            raise error(f"{fetch.tp.topic}-{fetch.tp.partition} {why} and auto_offset_reset"
                        " is none")
        view = self._view(fetch)
        fetch.seek(view.log_start_offset if policy == "earliest" else view.high_watermark)

    def _view(self, fetch: _Fetch) -> LogView:
        view = fetch.state.view
        if view is None:
            raise fetch.state.error or IllegalState(f"{fetch.tp} is not open")
        return view

    def _fetch_of(self, partition: tuple[str, int]) -> _Fetch:
        fetch = self._fetches.get(TopicPartition(*partition))
        if fetch is None:
            raise IllegalState(f"partition {partition} is not assigned to this consumer")
        return fetch

    def _fetches_of(self, partitions: tuple[tuple[str, int], ...]) -> list[_Fetch]:
        return [self._fetch_of(tp) for tp in partitions] if partitions else list(self._order)

    def _ensure_topic(self, topic: str) -> Any:
        return self._broker.ensure_topic(topic, self.config.allow_auto_create_topics).get()

    def _run_commit_callbacks(self) -> None:
        while self._commit_callbacks:
            self._commit_callbacks.popleft()()

    def _check_open(self) -> None:
        if self._closed:
            raise IllegalState("the consumer is closed")


def _offset_and_metadata(value: Any) -> tuple[int, str]:
    if isinstance(value, int):
        return value, ""
    offset, metadata = value[0], (value[1] if len(value) > 1 else "")
    return offset, metadata or ""


@dataclass(frozen=True, slots=True)
class HeartbeatsOn:
    """The member joined generation ``generation_id``: keep its session alive."""

    generation_id: int
    member_id: str


@dataclass(frozen=True, slots=True)
class HeartbeatsOff:
    """The member is (re)joining or leaving: stop heartbeats."""


@dataclass(frozen=True, slots=True)
class Beat:
    """Timer: send the heartbeat of round ``round``."""

    round: int


@dataclass(frozen=True, slots=True)
class CommitAsync:
    """Commit ``args`` (group, generation, member, offsets); complete ``done``."""

    args: tuple
    done: Future[None]


class ConsumerActor(Actor):
    """A consumer's background half: heartbeats on a timer, and asynchronous commits."""

    def __init__(self, consumer: Consumer, coordinator: pykka.ActorProxy[GroupCoordinator],
                 scheduler: Scheduler) -> None:
        super().__init__()
        self._consumer = consumer
        self._coordinator = coordinator
        self._scheduler = scheduler
        self._group_id = consumer.config.group_id
        self._interval_s = consumer.config.heartbeat_interval_ms / 1000
        self._member: HeartbeatsOn | None = None
        self._round = 0
        self._timer: Timer | None = None

    def on_stop(self) -> None:
        self._stop_beating()

    def on_receive(self, message: object) -> None:
        if isinstance(message, HeartbeatsOn):
            self._stop_beating()
            self._member = message
            self._schedule()
        elif isinstance(message, HeartbeatsOff):
            self._stop_beating()
        elif isinstance(message, Beat):
            if message.round == self._round and self._member is not None:
                self._beat(self._member)
        elif isinstance(message, CommitAsync):
            self._commit(message)
        else:
            super().on_receive(message)

    def _beat(self, member: HeartbeatsOn) -> None:
        try:
            code = self._coordinator.heartbeat(
                self._group_id, member.generation_id, member.member_id).get()
        except pykka.ActorDeadError:
            return
        if code:
            log.info("heartbeat: group rebalances", extra={"fields": {
                "group": self._group_id, "member": member.member_id, "code": code}})
            self._stop_beating()
            self._consumer._request_rejoin(code)
        else:
            self._schedule()

    def _commit(self, message: CommitAsync) -> None:
        try:
            results = self._coordinator.commit_offsets(*message.args).get()
            self._consumer._raise_commit_errors(results)
        except Exception as exc:
            message.done.set_exception(exc)
        else:
            message.done.set_result(None)

    def _schedule(self) -> None:
        self._round += 1
        ref, beat = self.actor_ref, Beat(self._round)
        self._timer = self._scheduler.call_later(self._interval_s,
                                                 lambda: tell_if_alive(ref, beat))

    def _stop_beating(self) -> None:
        self._member = None
        self._round += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
