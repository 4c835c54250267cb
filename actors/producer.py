"""The embedded producer: kafka-python's KafkaProducer shape over the partition actors.

``send()`` runs in the caller's thread and does no actor round trip: it picks the
partition (Kafka's default partitioner: murmur2 of the key, sticky for null keys), stamps
the record's timestamp, builds the stored row once, and appends it to that partition's
open batch under one lock. A batch is closed when the next record does not fit in
``batch_size``, when its ``linger_ms`` runs out, or on ``flush``; the
:class:`ProducerActor` then sends it to the partition actor as one message. Each send
returns a small :class:`FutureRecordMetadata` sharing its batch's result.

``buffer_memory`` bounds the bytes of records sent but not yet acknowledged: ``send()``
blocks while the buffer is full and raises KafkaTimeoutError after ``max_block_ms``.
Retriable errors (a partition restarting, for instance) are retried by the producer actor
with ``retry_backoff_ms`` until ``delivery_timeout_ms``; batches of one partition are
retried in the order they failed.

The producer is idempotent, as Kafka's is by default: it gets a producer id from the
broker and stamps each batch, when first sent, with that id, an epoch and the partition's
next sequence number (see :class:`Sequencer`). A retry carries the same stamp, so a batch
whose append was written but not acknowledged (the partition failed right after) is
recognised by the partition, restarted from disk, and answered with its original offsets.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import pykka

from actors.broker import Broker
from actors.partition import PartitionHandle
from actors.runtime import Actor, Scheduler, stop_actor, tell_if_alive
from eventstore.errors import (
    IllegalState,
    InvalidConfig,
    KafkaError,
    KafkaStorageError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    RecordTooLarge,
    UnknownTopicOrPartition,
)
from eventstore.storage.partitioner import StickyPartitioner, partition_for_key
from eventstore.storage.producer_state import add_sequence
from eventstore.storage.records import (
    RECORD_OVERHEAD,
    Headers,
    ProducerBatchInfo,
    encode_headers,
)
from eventstore.storage.segment import AppendResult

log = logging.getLogger(__name__)

_client_ids = itertools.count(1)


class RecordMetadata(NamedTuple):
    """Where an acknowledged record landed, as kafka-python's RecordMetadata says."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class ProducerBatch:
    """Records of one partition that travel to its actor as one append.

    A batch reserves ``reserved`` bytes of ``buffer_memory`` when it opens (``batch_size``,
    or one larger record) and gives them back once its append is answered, as Kafka's
    buffer pool does; ``room`` is what is left of the reservation.
    """

    __slots__ = ("topic", "partition", "rows", "reserved", "room", "created", "done",
                 "result", "error", "callbacks", "attempts", "stamp")

    def __init__(self, topic: str, partition: int, reserved: int) -> None:
        self.topic = topic
        self.partition = partition
        self.rows: list[tuple] | None = []
        self.reserved = self.room = reserved
        self.created = time.monotonic()
        self.done = threading.Event()
        self.result: AppendResult | None = None
        self.error: KafkaError | None = None
        self.callbacks: list[tuple[int, int, bool, Callable[..., Any], tuple]] = []
        self.attempts = 0
        self.stamp: ProducerBatchInfo | None = None  # set when first sent, kept by retries

    def metadata(self, index: int, timestamp: int) -> RecordMetadata:
        result = self.result
        if result.log_append_time != -1:
            timestamp = result.log_append_time
        return RecordMetadata(self.topic, self.partition, result.base_offset + index, timestamp)


class FutureRecordMetadata(tuple):
    """The future of one ``send()``: (batch, index in batch, timestamp), resolved by its batch.

    A tuple so that creating one per record costs next to nothing.
    """

    __slots__ = ()

    @property
    def is_done(self) -> bool:
        return self[0].done.is_set()

    def succeeded(self) -> bool:
        return self.is_done and self[0].error is None

    def failed(self) -> bool:
        return self.is_done and self[0].error is not None

    @property
    def exception(self) -> KafkaError | None:
        return self[0].error if self.is_done else None

    @property
    def value(self) -> RecordMetadata | None:
        return self[0].metadata(self[1], self[2]) if self.succeeded() else None

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """Wait for the acknowledgement: RecordMetadata, the batch's typed error, or
        KafkaTimeoutError after ``timeout`` seconds."""
        batch, index, timestamp = self
        if not batch.done.wait(timeout):
            raise KafkaTimeoutError(f"no acknowledgement within {timeout} s")
        if batch.error is not None:
            raise batch.error
        return batch.metadata(index, timestamp)

    def add_callback(self, fn: Callable[..., Any], *args: Any) -> FutureRecordMetadata:
        """Call ``fn(*args, metadata)`` on success: on the producer actor's thread, or at
        once in this one if the record is already acknowledged."""
        self._add(fn, args, on_success=True)
        return self

    def add_errback(self, fn: Callable[..., Any], *args: Any) -> FutureRecordMetadata:
        """Call ``fn(*args, error)`` on failure (on the same threads as ``add_callback``)."""
        self._add(fn, args, on_success=False)
        return self

    def _add(self, fn: Callable[..., Any], args: tuple, *, on_success: bool) -> None:
        batch, index, timestamp = self
        batch.callbacks.append((index, timestamp, on_success, fn, args))
        if batch.done.is_set():
            _run_callbacks(batch)


def _failed_future(topic: str, partition: int, error: KafkaError) -> FutureRecordMetadata:
    batch = ProducerBatch(topic, partition, 0)
    batch.error = error
    batch.done.set()
    return FutureRecordMetadata((batch, 0, -1))


def _run_callbacks(batch: ProducerBatch) -> None:
    """Run (and forget) the callbacks registered on a finished batch's records."""
    while True:
        try:  # the sending thread and the actor may both run them: each pop is one callback
            index, timestamp, on_success, fn, args = batch.callbacks.pop(0)
        except IndexError:
            return
        if on_success != (batch.error is None):
            continue
        try:
            fn(*args, batch.metadata(index, timestamp) if on_success else batch.error)
        except Exception:
            log.exception("producer callback failed")


PartitionKey = tuple[str, int]


class Sequencer:
    """An idempotent producer's numbering: per partition, the producer id, epoch and next
    sequence number a batch is stamped with when it is first sent.

    A retry keeps its batch's stamp, so the partition recognises it if it was written. A
    batch that fails for good may leave a hole in the partition's sequence, so the
    partition is :meth:`abandon`-ed: its batches wait until :meth:`renew` gives it a new
    producer id (the producer actor does, after ``retry_backoff_ms``), under which the
    partition, which does not know that id, takes sequence 0. Batches stamped before that,
    which the partition then refuses as out of order, are :meth:`is_stale` and are
    stamped afresh on their retry. Thread-safe; ``allocate`` asks the broker for an id.
    """

    def __init__(self, allocate: Callable[[], int]) -> None:
        self._allocate = allocate
        self._lock = threading.Lock()
        self._first = ProducerBatchInfo(allocate(), 0, 0)
        self._next: dict[PartitionKey, ProducerBatchInfo | None] = {}  # None: abandoned

    def stamp(self, key: PartitionKey, count: int) -> ProducerBatchInfo | None:
        """The stamp of a batch of ``count`` records sent now; None while the partition
        waits for a new producer id."""
        with self._lock:
            stamp = self._next.get(key, self._first)
            if stamp is not None:
                self._next[key] = replace(
                    stamp, base_sequence=add_sequence(stamp.base_sequence, count))
        return stamp

    def is_stale(self, key: PartitionKey, stamp: ProducerBatchInfo | None) -> bool:
        """Whether ``stamp`` is of a producer id the partition was abandoned under."""
        with self._lock:
            current = self._next.get(key, self._first)
        return stamp is not None and (current is None or current.producer_id != stamp.producer_id)

    def abandon(self, key: PartitionKey, stamp: ProducerBatchInfo | None) -> None:
        """The batch stamped ``stamp`` failed for good: stop numbering under its id."""
        with self._lock:
            current = self._next.get(key, self._first)
            if (stamp is not None and current is not None
                    and current.producer_id == stamp.producer_id):
                self._next[key] = None

    def renew(self, key: PartitionKey) -> None:
        """Give an abandoned partition a new producer id (asks the broker: not on a
        partition actor's thread)."""
        with self._lock:
            abandoned = key in self._next and self._next[key] is None
        if abandoned:
            fresh = ProducerBatchInfo(self._allocate(), 0, 0)
            with self._lock:
                self._next[key] = fresh


@dataclass(frozen=True)
class ProducerConfig:
    """The producer settings eventstore implements, under kafka-python's names."""

    client_id: str | None = None
    key_serializer: Callable[[Any], bytes] | None = None
    value_serializer: Callable[[Any], bytes] | None = None
    batch_size: int = 16384
    linger_ms: int = 0
    buffer_memory: int = 33554432
    max_block_ms: int = 60000
    max_request_size: int = 1048576
    retries: float = float("inf")
    retry_backoff_ms: int = 100
    delivery_timeout_ms: int = 120000
    metadata_max_age_ms: int = 300000

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ProducerConfig:
        """Checked settings; an unknown name or a negative size raises InvalidConfig."""
        known = cls.__dataclass_fields__
        for name, value in kwargs.items():
            if name not in known:
                raise InvalidConfig(
                    f"unknown producer setting {name!r} (known: {', '.join(sorted(known))})")
            if name.endswith(("_size", "_ms", "_memory", "retries")) and (
                    not isinstance(value, int | float) or value < 0):
                raise InvalidConfig(f"{name}: must be a non-negative number, got {value!r}")
        if kwargs.get("batch_size", 1) < 1:
            raise InvalidConfig("batch_size: must be at least 1")
        return cls(**kwargs)


class _TopicMeta:
    """What ``send()`` needs about one topic: its partitions and their open batches.

    Updated in place (under the producer's lock) when the partitions change, so a sender
    holding it never loses a batch; ``open`` never shrinks.
    """

    __slots__ = ("name", "handles", "count", "sticky", "open")

    def __init__(self, name: str) -> None:
        self.name = name
        self.handles: tuple[PartitionHandle, ...] = ()
        self.count = 0
        self.sticky = 0
        self.open: list[ProducerBatch | None] = []

    def update(self, handles: Sequence[PartitionHandle], sticky: int) -> None:
        self.handles = tuple(handles)
        self.count = len(self.handles)
        self.sticky = sticky
        self.open.extend([None] * (self.count - len(self.open)))


class Producer:
    """Sends records to topics; thread-safe, like kafka-python's KafkaProducer."""

    def __init__(
        self,
        broker: pykka.ActorProxy[Broker],
        scheduler: Scheduler,
        on_close: Callable[[Producer], None] = lambda producer: None,
        **config: Any,
    ) -> None:
        self.config = ProducerConfig.from_kwargs(**config)
        self.client_id = self.config.client_id or f"eventstore-producer-{next(_client_ids)}"
        self._broker = broker
        self._scheduler = scheduler
        self._on_close = on_close
        self._lock = threading.Lock()
        self._memory_freed = threading.Condition(self._lock)
        self._topics: dict[str, _TopicMeta] = {}
        self._sticky = StickyPartitioner()
        self._reserved = 0
        self._incomplete: set[ProducerBatch] = set()
        self._closed = False
        self._max_request_size = min(self.config.max_request_size, self.config.buffer_memory)
        self._batch_reservation = min(self.config.batch_size, self.config.buffer_memory)
        self.sequencer = Sequencer(lambda: broker.allocate_producer_id().get())
        self._actor = ProducerActor.start(self, scheduler)
        if self.config.key_serializer or self.config.value_serializer:
            self.send = self._send_serialized  # type: ignore[method-assign]

    # -- sending ----------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Headers | Sequence[tuple[str, bytes | None]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> FutureRecordMetadata:
        """Queue one record; the future resolves to its RecordMetadata once it is durable.

        Blocks up to ``max_block_ms`` while ``buffer_memory`` is full, then raises
        KafkaTimeoutError. A record that can never be sent (too large, unknown partition)
        gives a failed future, as kafka-python does. This is the hot path: one lock, one
        row tuple, one future tuple.
        """
        meta = self._topics.get(topic) or self._load_topic(topic)
        if partition is not None:
            index = partition
            if not 0 <= index < meta.count:
                meta = self._load_topic(topic)  # it may have grown
                if not 0 <= index < meta.count:
                    return _failed_future(topic, index, UnknownTopicOrPartition(
                        f"topic {topic!r} has no partition {index} (it has {meta.count})"))
        elif key is None:
            index = meta.sticky
        else:
            index = partition_for_key(key, meta.count)
        size = RECORD_OVERHEAD + (len(value) if value else 0) + (len(key) if key else 0)
        if headers:
            headers = encode_headers(headers)
            size += len(headers.encode())
        else:
            headers = None
        if timestamp_ms is None:
            timestamp_ms = time.time_ns() // 1_000_000
        lock = self._lock
        lock.acquire()
        batch = meta.open[index]
        if batch is None or batch.room < size:
            batch = self._next_batch(meta, index, size, partition is None and key is None)
            if batch is None:
                return _failed_future(topic, index, RecordTooLarge(
                    f"record of {size} bytes is larger than max_request_size"
                    f" {self.config.max_request_size} or buffer_memory"
                    f" {self.config.buffer_memory}"))
        rows = batch.rows
        rows.append((timestamp_ms, key, value, headers))
        batch.room -= size
        lock.release()
        return FutureRecordMetadata((batch, len(rows) - 1, timestamp_ms))

    def _send_serialized(self, topic: str, value: Any = None, key: Any = None,
                         **kwargs: Any) -> FutureRecordMetadata:
        """``send`` with ``key_serializer`` / ``value_serializer`` applied first."""
        if value is not None and self.config.value_serializer is not None:
            value = self.config.value_serializer(value)
        if key is not None and self.config.key_serializer is not None:
            key = self.config.key_serializer(key)
        return Producer.send(self, topic, value, key, **kwargs)

    def partitions_for(self, topic: str) -> set[int]:
        """The partition numbers of ``topic`` (created if auto-creation is on)."""
        return set(range(self._load_topic(topic).count))

    @property
    def buffered_bytes(self) -> int:
        """Bytes of ``buffer_memory`` held by batches not yet acknowledged."""
        return self._reserved

    def flush(self, timeout: float | None = None) -> None:
        """Send every open batch now and wait until each sent record is acknowledged."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._close_all()
            waiting = list(self._incomplete)
        for batch in waiting:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
            if not batch.done.wait(remaining):
                raise KafkaTimeoutError(f"flush did not finish within {timeout} s")

    def close(self, timeout: float | None = None) -> None:
        """Flush (within ``timeout``), then stop the producer; later sends raise IllegalState."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._memory_freed.notify_all()
        try:
            self.flush(timeout)
        finally:
            stop_actor(self._actor)
            self._on_close(self)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- batches (called with the lock held) ------------------------------------------------

    def _next_batch(
        self, meta: _TopicMeta, partition: int, size: int, sticky: bool
    ) -> ProducerBatch | None:
        """A batch with room for ``size`` bytes, after closing the partition's full one.

        A ``sticky`` record (null key, no partition asked for) follows the sticky partition
        when closing the batch moves it on, as Kafka's sticky partitioner does; otherwise
        it would open a batch of one record behind. A new batch reserves its memory, waiting
        up to ``max_block_ms``. ``send`` holds the lock without a ``with`` block (it is
        faster): this releases it before raising, and before returning None for a record
        too large to send at all.
        """
        if size > self._max_request_size:
            self._lock.release()
            return None
        try:
            if self._closed:
                raise IllegalState("send() on a closed producer")
            full = meta.open[partition]
            if full is not None:
                self._close_batch(meta, full)
                if sticky and meta.sticky != partition:
                    partition = meta.sticky
                    batch = meta.open[partition]
                    if batch is not None and batch.room >= size:
                        return batch
                    if batch is not None:
                        self._close_batch(meta, batch)
            need = max(self._batch_reservation, size)
            if self._reserved + need > self.config.buffer_memory:
                self._wait_for_memory(need)
        except BaseException:
            self._lock.release()
            raise
        self._reserved += need
        batch = meta.open[partition] = ProducerBatch(meta.name, partition, need)
        self._incomplete.add(batch)
        drain = Drain(batch)
        ref = self._actor
        if self.config.linger_ms:
            self._scheduler.call_later(self.config.linger_ms / 1000,
                                       lambda: tell_if_alive(ref, drain))
        else:
            ref.tell(drain)
        return batch

    def _close_batch(self, meta: _TopicMeta, batch: ProducerBatch) -> None:
        """Take ``batch`` out of the open ones and have the producer actor send it."""
        meta.open[batch.partition] = None
        if batch.partition == meta.sticky:
            meta.sticky = self._sticky.on_new_batch(meta.name, meta.count, batch.partition)
        self._actor.tell(Submit(batch))

    def _close_all(self) -> None:
        for meta in self._topics.values():
            for batch in meta.open:
                if batch is not None:
                    self._close_batch(meta, batch)

    def _linger_expired(self, batch: ProducerBatch) -> None:
        """Send ``batch`` if it is still open (it may have filled up and left already)."""
        with self._lock:
            meta = self._topics[batch.topic]
            if meta.open[batch.partition] is batch:
                self._close_batch(meta, batch)

    def _wait_for_memory(self, need: int) -> None:
        """Block until ``need`` bytes fit in ``buffer_memory``; KafkaTimeoutError after
        ``max_block_ms``. When no batch is in flight to free memory, the open ones leave at
        once (waiting for their linger would not help); otherwise they keep filling."""
        open_batches = sum(b is not None for meta in self._topics.values() for b in meta.open)
        if open_batches == len(self._incomplete):
            self._close_all()
        deadline = time.monotonic() + self.config.max_block_ms / 1000
        while self._reserved + need > self.config.buffer_memory:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaTimeoutError(
                    f"buffer_memory ({self.config.buffer_memory} bytes) stayed full for"
                    f" max_block_ms ({self.config.max_block_ms} ms)")
            self._memory_freed.wait(remaining)
            if self._closed:
                raise IllegalState("the producer was closed while send() waited for memory")

    # -- batches in flight (on the producer actor, and the partition actor's reply) ---------

    def _submit(self, batch: ProducerBatch) -> None:
        """Send a closed batch to its partition actor, stamped for idempotence."""
        handles = self._topics[batch.topic].handles
        if batch.partition >= len(handles):  # the topic was deleted and made again, smaller
            batch.error = UnknownTopicOrPartition(
                f"topic {batch.topic!r} has no partition {batch.partition} any more")
            self._finish(batch)
            return
        if batch.stamp is None:
            batch.stamp = self.sequencer.stamp((batch.topic, batch.partition), len(batch.rows))
            if batch.stamp is None:  # held until the partition has a new producer id
                tell_if_alive(self._actor, Retry(batch))
                return
        batch.attempts += 1
        handles[batch.partition].append(batch.rows, batch.stamp).add_done_callback(
            lambda reply: self._on_reply(batch, reply))

    def _on_reply(self, batch: ProducerBatch, reply: Future[AppendResult]) -> None:
        """The partition actor answered (on its thread): finish, or retry if it may."""
        error = reply.exception()
        if error is None:
            batch.result = reply.result()
            self._finish(batch)
            return
        key = (batch.topic, batch.partition)
        retriable = getattr(error, "retriable", False)
        if isinstance(error, OutOfOrderSequenceNumber) and self.sequencer.is_stale(
                key, batch.stamp):
            # refused because a batch before it failed for good: renumber it on its retry
            batch.stamp = None
            retriable = True
        if (retriable and batch.attempts <= self.config.retries
                and time.monotonic() - batch.created < self.config.delivery_timeout_ms / 1000
                and self._actor.is_alive()):
            tell_if_alive(self._actor, Retry(batch))
            return
        self.sequencer.abandon(key, batch.stamp)
        batch.error = error if isinstance(error, KafkaError) else KafkaStorageError(repr(error))
        self._finish(batch)

    def _finish(self, batch: ProducerBatch) -> None:
        batch.rows = None
        with self._lock:
            self._reserved -= batch.reserved
            self._incomplete.discard(batch)
            self._memory_freed.notify_all()
        batch.done.set()
        if batch.callbacks:
            tell_if_alive(self._actor, RunCallbacks(batch))

    def _load_topic(self, topic: str) -> _TopicMeta:
        """Fetch ``topic``'s partitions from the broker (creating it if allowed) and cache them."""
        self._broker.ensure_topic(topic).get()
        handles: tuple[PartitionHandle, ...] = self._broker.partitions(topic).get()
        with self._lock:
            meta = self._topics.get(topic) or self._topics.setdefault(topic, _TopicMeta(topic))
            meta.update(handles, self._sticky.partition(topic, len(handles)))
        return meta


@dataclass(frozen=True, slots=True)
class Drain:
    """``linger_ms`` of ``batch`` ran out: send it if it is still open."""

    batch: ProducerBatch


@dataclass(frozen=True, slots=True)
class Submit:
    """Send ``batch``, closed by a thread that could not send it itself."""

    batch: ProducerBatch


@dataclass(frozen=True, slots=True)
class Retry:
    """``batch`` failed with a retriable error: send it again after ``retry_backoff_ms``."""

    batch: ProducerBatch


@dataclass(frozen=True, slots=True)
class Resend:
    """The retry backoff of partition ``topic``-``partition`` is over."""

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class RunCallbacks:
    """Run the callbacks of a finished ``batch``'s records, away from the partition actor."""

    batch: ProducerBatch


@dataclass(frozen=True, slots=True)
class RefreshMetadata:
    """``metadata_max_age_ms`` passed: reload every topic's partitions."""


class ProducerActor(Actor):
    """The producer's background half: linger timers, sending, retries, callbacks, metadata.

    While a partition has batches waiting to be retried, or waits for a new producer id
    after a batch failed for good, later batches of that partition wait behind them, so a
    retry never reorders a partition's records.
    """

    def __init__(self, producer: Producer, scheduler: Scheduler) -> None:
        super().__init__()
        self._producer = producer
        self._scheduler = scheduler
        self._refresh_s = producer.config.metadata_max_age_ms / 1000
        self._held: dict[tuple[str, int], list[ProducerBatch]] = {}

    def on_start(self) -> None:
        self._later(self._refresh_s, RefreshMetadata())

    def on_receive(self, message: object) -> None:
        producer = self._producer
        if isinstance(message, Drain):
            producer._linger_expired(message.batch)
        elif isinstance(message, Submit):
            batch = message.batch
            if (batch.topic, batch.partition) in self._held:
                self._hold(batch)
            else:
                producer._submit(batch)
        elif isinstance(message, Retry):
            self._hold(message.batch)
        elif isinstance(message, Resend):
            # the partition's actor may have restarted: send to a fresh handle, in order
            key = (message.topic, message.partition)
            self._reload(message.topic)
            held = self._held.pop(key)
            try:
                producer.sequencer.renew(key)
            except KafkaError as error:  # no producer id to send them under
                for batch in held:
                    batch.error = error
                    producer._finish(batch)
                return
            for batch in held:
                producer._submit(batch)
        elif isinstance(message, RunCallbacks):
            _run_callbacks(message.batch)
        elif isinstance(message, RefreshMetadata):
            for topic in list(producer._topics):
                self._reload(topic)
            self._later(self._refresh_s, RefreshMetadata())
        else:
            super().on_receive(message)

    def _hold(self, batch: ProducerBatch) -> None:
        """Keep ``batch`` back, in send order, until its partition's retry backoff is over."""
        key = (batch.topic, batch.partition)
        if key not in self._held:
            self._held[key] = []
            self._later(self._producer.config.retry_backoff_ms / 1000, Resend(*key))
        self._held[key].append(batch)
        self._held[key].sort(key=lambda b: b.created)  # failures arrive in send order

    def _reload(self, topic: str) -> None:
        """Refresh a topic's partitions; on failure keep the old ones (a retry will tell)."""
        try:
            self._producer._load_topic(topic)
        except KafkaError as exc:
            log.warning("producer metadata refresh failed", extra={"fields": {
                "topic": topic, "error": str(exc)}})

    def _later(self, delay_s: float, message: object) -> None:
        ref = self.actor_ref
        self._scheduler.call_later(delay_s, lambda: tell_if_alive(ref, message))
