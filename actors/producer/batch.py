"""Batches being filled: ``send()`` picks each record's partition (Kafka's default
partitioner: murmur2 of the key, sticky for null keys) and puts the record in that
partition's open batch, which leaves as one append.

A batch is closed when the next record does not fit in ``batch_size``, when its
``linger_ms`` runs out, or on ``flush``; its accumulator then hands it to ``send``, the
producer actor's way in. ``buffer_memory`` bounds the bytes of batches not yet
acknowledged: a batch reserves ``batch_size`` (or one larger record) when it opens and
gives it back once its append is answered, as Kafka's buffer pool does; ``append`` blocks
while the buffer is full and raises KafkaTimeoutError after ``max_block_ms``.

Threads: a :class:`RecordAccumulator` is shared by every thread that sends, the producer
actor (closing lingering batches, refreshing partitions) and the partition actors' replies
(releasing memory); its one lock guards the open batches, the topics' partitions and the
reserved memory. An open batch is filled under that lock. A closed one belongs to the
producer actor, and while its append is in flight to that append's reply, so its fields
are written by one thread at a time; ``done`` tells the others when it is finished.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import pykka

from actors.broker import Broker
from actors.partition import PartitionHandle
from actors.producer.config import ProducerConfig
from actors.producer.future import FutureRecordMetadata
from eventstore.errors import (
    IllegalState,
    KafkaError,
    KafkaTimeoutError,
    RecordTooLarge,
    UnknownTopicOrPartition,
)
from eventstore.storage.partitioner import StickyPartitioner, partition_for_key
from eventstore.storage.records import (
    RECORD_OVERHEAD,
    Headers,
    ProducerBatchInfo,
    encode_headers,
)
from eventstore.storage.segment import AppendResult

log = logging.getLogger(__name__)


class ProducerBatch:
    """Records of one partition that travel to its actor as one append.

    ``reserved`` is the batch's share of ``buffer_memory``, ``room`` what is left of it.
    Once ``done`` is set, either ``result`` or ``error`` says how the append went.
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
        self.callbacks: list[Callable[[], None]] = []
        self.attempts = 0
        self.stamp: ProducerBatchInfo | None = None  # set when first sent, kept by retries

    @classmethod
    def failed(cls, topic: str, partition: int, error: KafkaError) -> ProducerBatch:
        """A batch finished with ``error`` before any record went in (the record that
        would have gone in can never be sent)."""
        batch = cls(topic, partition, 0)
        batch.error = error
        batch.done.set()
        return batch

    def run_callbacks(self) -> None:
        """Run (and forget) the callbacks registered on this finished batch's records."""
        while True:
            try:  # the sending thread and the actor may both run them: each pop is one callback
                callback = self.callbacks.pop(0)
            except IndexError:
                return
            try:
                callback()
            except Exception:
                log.exception("producer callback failed")


def _failed(topic: str, partition: int, error: KafkaError) -> FutureRecordMetadata:
    """The future of a record that can never be sent: done, with ``error``."""
    return FutureRecordMetadata((ProducerBatch.failed(topic, partition, error), 0, -1))


class TopicBatches:
    """What ``send()`` needs about one topic: its partitions and their open batches.

    Updated in place (under the accumulator's lock) when the partitions change, so a sender
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


class RecordAccumulator:
    """The open batches of every partition a producer writes, and the memory they hold.

    ``linger(batch)`` is called when a batch opens, so that :meth:`close_if_open` is called
    on it ``linger_ms`` later; ``send(batch)`` when one closes. Both are called with the
    lock held and must only pass the batch on (to the producer actor).
    """

    def __init__(
        self,
        config: ProducerConfig,
        broker: pykka.ActorProxy[Broker],
        linger: Callable[[ProducerBatch], None],
        send: Callable[[ProducerBatch], None],
    ) -> None:
        self._config = config
        self._broker = broker
        self._linger = linger
        self._send = send
        self._lock = threading.Lock()
        self._memory_freed = threading.Condition(self._lock)
        self._topics: dict[str, TopicBatches] = {}
        self._sticky = StickyPartitioner()
        self._reserved = 0
        self._incomplete: set[ProducerBatch] = set()
        self._closed = False
        self._max_request_size = min(config.max_request_size, config.buffer_memory)
        self._batch_reservation = min(config.batch_size, config.buffer_memory)

    # -- topics -----------------------------------------------------------------------------

    def load(self, name: str) -> TopicBatches:
        """Fetch ``name``'s partitions from the broker (creating it if allowed) and cache them."""
        self._broker.ensure_topic(name).get()
        handles: tuple[PartitionHandle, ...] = self._broker.partitions(name).get()
        with self._lock:
            meta = self._topics.get(name) or self._topics.setdefault(name, TopicBatches(name))
            meta.update(handles, self._sticky.partition(name, len(handles)))
        return meta

    def topic_names(self) -> list[str]:
        """Every topic this producer has sent to."""
        with self._lock:
            return list(self._topics)

    def handles(self, topic: str) -> tuple[PartitionHandle, ...]:
        """The partition handles of a topic already loaded, as last refreshed."""
        return self._topics[topic].handles

    @property
    def reserved(self) -> int:
        """Bytes of ``buffer_memory`` held by batches not yet acknowledged."""
        return self._reserved

    # -- filling ----------------------------------------------------------------------------

    def append(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers | Sequence[tuple[str, bytes | None]] | None,
        partition: int | None,
        timestamp_ms: int | None,
    ) -> FutureRecordMetadata:
        """Put one record in its partition's open batch; its future.

        The partition is ``partition``, else murmur2 of the key, else the sticky one (which
        moves on when closing a full batch moves it, as Kafka's sticky partitioner does). A
        record that can never be sent (too large, unknown partition) gets a failed future.
        This is the hot path: one lock, one row tuple, one future tuple; the lock is held
        without a ``with`` block, which is faster.
        """
        meta = self._topics.get(topic) or self.load(topic)
        if partition is not None:
            index = partition
            if not 0 <= index < meta.count:
                meta = self.load(topic)  # it may have grown
                if not 0 <= index < meta.count:
                    return _failed(topic, index, UnknownTopicOrPartition(
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
                return _failed(topic, index, RecordTooLarge(
                    f"record of {size} bytes is larger than max_request_size"
                    f" {self._config.max_request_size} or buffer_memory"
                    f" {self._config.buffer_memory}"))
        rows = batch.rows
        position = len(rows)
        rows.append((timestamp_ms, key, value, headers))
        batch.room -= size
        lock.release()
        return FutureRecordMetadata((batch, position, timestamp_ms))

    def _next_batch(
        self, meta: TopicBatches, partition: int, size: int, sticky: bool
    ) -> ProducerBatch | None:
        """A batch with room for ``size`` bytes, after closing the partition's full one.

        A ``sticky`` record (null key, no partition asked for) follows the sticky partition
        when closing the batch moves it on; otherwise it would open a batch of one record
        behind. A new batch reserves its memory, waiting up to ``max_block_ms``. Called
        with the lock held by ``append``: this releases it before raising, and before
        returning None for a record too large to send at all.
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
            if self._reserved + need > self._config.buffer_memory:
                self._wait_for_memory(need)
        except BaseException:
            self._lock.release()
            raise
        self._reserved += need
        batch = meta.open[partition] = ProducerBatch(meta.name, partition, need)
        self._incomplete.add(batch)
        self._linger(batch)
        return batch

    def _wait_for_memory(self, need: int) -> None:
        """Block until ``need`` bytes fit in ``buffer_memory``; KafkaTimeoutError after
        ``max_block_ms``. When no batch is in flight to free memory, the open ones leave at
        once (waiting for their linger would not help); otherwise they keep filling."""
        config = self._config
        open_batches = sum(b is not None for meta in self._topics.values() for b in meta.open)
        if open_batches == len(self._incomplete):
            self._close_open()
        deadline = time.monotonic() + config.max_block_ms / 1000
        while self._reserved + need > config.buffer_memory:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaTimeoutError(
                    f"buffer_memory ({config.buffer_memory} bytes) stayed full for"
                    f" max_block_ms ({config.max_block_ms} ms)")
            self._memory_freed.wait(remaining)
            if self._closed:
                raise IllegalState("the producer was closed while send() waited for memory")

    # -- closing ----------------------------------------------------------------------------

    def _close_batch(self, meta: TopicBatches, batch: ProducerBatch) -> None:
        """Take ``batch`` out of the open ones and pass it to ``send`` (lock held)."""
        meta.open[batch.partition] = None
        if batch.partition == meta.sticky:
            meta.sticky = self._sticky.on_new_batch(meta.name, meta.count, batch.partition)
        self._send(batch)

    def _close_open(self) -> None:
        """Close every open batch (lock held)."""
        for meta in self._topics.values():
            for batch in meta.open:
                if batch is not None:
                    self._close_batch(meta, batch)

    def close_if_open(self, batch: ProducerBatch) -> None:
        """``batch``'s linger is over: close it if it is still open (it may have filled up
        and left already)."""
        with self._lock:
            meta = self._topics[batch.topic]
            if meta.open[batch.partition] is batch:
                self._close_batch(meta, batch)

    def close_all(self) -> list[ProducerBatch]:
        """Close every open batch now; the batches not yet acknowledged, to wait for."""
        with self._lock:
            self._close_open()
            return list(self._incomplete)

    def release(self, batch: ProducerBatch) -> None:
        """``batch``'s append was answered: give its memory back to waiting senders."""
        with self._lock:
            self._reserved -= batch.reserved
            self._incomplete.discard(batch)
            self._memory_freed.notify_all()

    def close(self) -> bool:
        """Refuse new batches from now on (and wake senders waiting for memory, to fail);
        False if this was done already."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._memory_freed.notify_all()
            return True
