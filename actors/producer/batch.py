"""Batches being filled: ``send()`` picks each record's partition (Kafka's default
partitioner: murmur2 of the key, sticky for null keys) and puts the record in that
partition's open batch, which leaves as one append.

A batch is closed when the next record does not fit in ``batch_size``, when its
``linger_ms`` runs out, or on ``flush``. Each partition has at most one linger timer: when
it fires, the batch open then leaves if it is ``linger_ms`` old, else the timer is set
again for when it will be, so that batches which fill up sooner cost no timer of their
own. A closed batch waits in its partition's ready list, and the accumulator calls
``ready`` (the producer actor's way in) when that list stops being empty. The actor takes
the whole list at once, so the batches that closed while it was busy leave together as
one :class:`ProduceRequest`: one append, one SQLite transaction, for what would otherwise
be one each. That is what makes Kafka's small default ``batch_size`` (16 KiB) cost about
what a large one does when records come fast, without reserving more memory per batch or
holding any batch back. ``buffer_memory`` bounds the bytes of batches not yet
acknowledged: a batch reserves ``batch_size`` (or one larger record) when it opens and
gives it back once its append is answered, as Kafka's buffer pool does; ``append`` blocks
while the buffer is full and raises KafkaTimeoutError after ``max_block_ms``.

Threads: a :class:`RecordAccumulator` is shared by every thread that sends, the producer
actor (closing lingering batches, taking ready ones, refreshing partitions) and the
partition actors' replies (releasing memory); its one lock guards the open and ready
batches, the linger timers' flags, the topics' partitions and the reserved memory. An open
batch is filled under that lock. Replies give memory back without it (see
:meth:`RecordAccumulator.release`). Once the actor takes a ready one it belongs to the actor,
and while its request is in flight to that request's reply, so its fields are written by
one thread at a time; its ``finished`` flag tells the others when it is, and they wait
for it on the producer's one :class:`Completions`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
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
from eventstore.storage.segment import MAX_RUNS, AppendResult

log = logging.getLogger(__name__)


class Completions:
    """Where threads wait for a producer's batches to finish: one condition for them all.

    An Event per batch would be eight objects for the garbage collector to track (the
    Event, its Condition, lock, deque and bound methods), made thousands of times a second
    by a fast producer, and whole collections of the heap came that much more often.
    Waiting is rare (``flush``, a future's ``get``); finishing notifies only while someone
    waits. A waiter counts itself under the lock before it looks at the batch, so a batch
    finished meanwhile either is seen finished or wakes it.
    """

    __slots__ = ("_cond", "_waiting")

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting = 0

    def wait(self, batch: ProducerBatch, timeout: float | None) -> bool:
        """Whether ``batch`` finished within ``timeout`` seconds (None: however long)."""
        with self._cond:
            self._waiting += 1
            try:
                return self._cond.wait_for(lambda: batch.finished, timeout)
            finally:
                self._waiting -= 1

    def notify(self) -> None:
        """Batches have just finished (``finished`` set): wake whoever waits for one."""
        if self._waiting:
            with self._cond:
                self._cond.notify_all()


class ProducerBatch:
    """Records of one partition, filled up to ``batch_size``, that go to its actor in one
    append (with the batches that closed after it, see :class:`ProduceRequest`).

    ``reserved`` is the batch's share of ``buffer_memory``, ``room`` what is left of it.
    Once ``finished``, either ``result`` (of the append, shared by the batches sent with
    this one) and ``base_offset`` (where this batch's first record landed), or ``error``
    says how the append went.
    """

    __slots__ = ("topic", "partition", "rows", "reserved", "room", "created", "finished",
                 "completions", "result", "base_offset", "error", "callbacks")

    def __init__(self, topic: str, partition: int, reserved: int,
                 completions: Completions | None) -> None:
        self.topic = topic
        self.partition = partition
        self.rows: list[tuple] | None = []
        self.reserved = self.room = reserved
        self.created = time.monotonic()
        self.finished = False
        self.completions = completions
        self.result: AppendResult | None = None
        self.base_offset = -1
        self.error: KafkaError | None = None
        self.callbacks: list[Callable[[], None]] = []

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the batch finished within ``timeout`` seconds (None: however long)."""
        return self.finished or self.completions.wait(self, timeout)

    @property
    def size(self) -> int:
        """Bytes of the records in the batch, as the partition counts them."""
        return self.reserved - self.room

    @classmethod
    def failed(cls, topic: str, partition: int, error: KafkaError) -> ProducerBatch:
        """A batch finished with ``error`` before any record went in (the record that
        would have gone in can never be sent)."""
        batch = cls(topic, partition, 0, None)
        batch.error = error
        batch.finished = True
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


class ProduceRequest:
    """Consecutive closed batches of one partition, sent to its actor as one append.

    The partition holds ``max.message.bytes`` to the largest batch (``largest``), as it
    would hold each batch sent alone: the request is a transaction, not a batch a client
    made. A batch made for one record larger than ``batch_size`` goes alone, so that a
    record the topic refuses fails alone; batches of up to ``batch_size`` can only be
    refused together when ``batch_size`` itself is over the topic's ``max.message.bytes``,
    where a full batch fails anyway. A request is stamped for idempotence as a whole
    when first sent; a retry sends the same batches under the same ``stamp``, so the
    partition recognises them.
    """

    __slots__ = ("topic", "partition", "batches", "rows", "largest", "created", "attempts",
                 "stamp")

    def __init__(self, batches: list[ProducerBatch]) -> None:
        first = batches[0]
        self.topic = first.topic
        self.partition = first.partition
        self.batches = batches
        self.rows: list[tuple] | None = (
            first.rows if len(batches) == 1
            else list(itertools.chain.from_iterable(batch.rows for batch in batches)))
        self.largest = max(batch.size for batch in batches)
        self.created = first.created
        self.attempts = 0
        self.stamp: ProducerBatchInfo | None = None  # set when first sent, kept by retries

    @staticmethod
    def of(batches: list[ProducerBatch], max_bytes: int, batch_bytes: int
           ) -> list[ProduceRequest]:
        """``batches`` (of one partition, in order) as requests of up to ``max_bytes``
        (``max_request_size``) each; a batch that reserved more than ``batch_bytes`` (the
        batch reservation) holds one oversized record and goes alone.

        A request also ends before its records would span ``MAX_RUNS`` milliseconds: a
        segment inserts records that share their timestamp (and have no key or headers)
        from an array, a run at a time, only up to that many runs, and binds any other
        append row by row, at twice the cost. Timestamps are the ones ``send()`` stamped
        (first and last of each batch); where they are the caller's, or keys break the
        runs anyway, this only sets where requests end.
        """
        requests, group, size, first = [], [], 0, 0
        for batch in batches:
            alone = batch.reserved > batch_bytes
            if group and (alone or size + batch.size > max_bytes
                          or batch.rows[-1][0] - first >= MAX_RUNS):
                requests.append(ProduceRequest(group))
                group, size = [], 0
            if not group:
                first = batch.rows[0][0]
            group.append(batch)
            size += batch.size
            if alone:
                requests.append(ProduceRequest(group))
                group, size = [], 0
        if group:
            requests.append(ProduceRequest(group))
        return requests

    def succeed(self, result: AppendResult) -> None:
        """Give each batch ``result`` and the offset its records start at."""
        base = result.base_offset
        for batch in self.batches:
            batch.result = result
            batch.base_offset = base
            base += len(batch.rows)

    def fail(self, error: KafkaError) -> None:
        """Every batch of the request failed with ``error``."""
        for batch in self.batches:
            batch.error = error


def _failed(topic: str, partition: int, error: KafkaError) -> FutureRecordMetadata:
    """The future of a record that can never be sent: done, with ``error``."""
    return FutureRecordMetadata((ProducerBatch.failed(topic, partition, error), 0, -1))


class TopicBatches:
    """What ``send()`` needs about one topic: its partitions, their open batches, their
    closed ones waiting to be sent (``ready``) and whether their linger timer is set.

    Updated in place (under the accumulator's lock) when the partitions change, so a sender
    holding it never loses a batch; ``open``, ``ready`` and ``lingering`` never shrink.
    """

    __slots__ = ("name", "handles", "count", "sticky", "open", "ready", "lingering")

    def __init__(self, name: str) -> None:
        self.name = name
        self.handles: tuple[PartitionHandle, ...] = ()
        self.count = 0
        self.sticky = 0
        self.open: list[ProducerBatch | None] = []
        self.ready: list[list[ProducerBatch]] = []
        self.lingering: list[bool] = []

    def update(self, handles: Sequence[PartitionHandle], sticky: int) -> None:
        self.handles = tuple(handles)
        self.count = len(self.handles)
        self.sticky = sticky
        self.open.extend([None] * (self.count - len(self.open)))
        self.ready.extend([] for _ in range(self.count - len(self.ready)))
        self.lingering.extend([False] * (self.count - len(self.lingering)))


class RecordAccumulator:
    """The open and ready batches of every partition a producer writes, and the memory
    they hold.

    ``linger(topic, partition)`` is called when a batch opens in a partition whose linger
    timer is not set, so that :meth:`linger_over` is called ``linger_ms`` later;
    ``ready(topic, partition)`` when a closed batch is the first to wait in its
    partition's ready list, so that :meth:`take_ready` is called. Both are called with the
    lock held and must only pass the news on (to the producer actor).
    """

    def __init__(
        self,
        config: ProducerConfig,
        broker: pykka.ActorProxy[Broker],
        linger: Callable[[str, int], None],
        ready: Callable[[str, int], None],
    ) -> None:
        self._config = config
        self._broker = broker
        self._linger = linger
        self._ready = ready
        self._lock = threading.Lock()
        self._memory_freed = threading.Condition(self._lock)
        self._topics: dict[str, TopicBatches] = {}
        self._sticky = StickyPartitioner()
        self._reserved = 0
        self._incomplete: set[ProducerBatch] = set()
        self._returned: deque[ProducerBatch] = deque()  # answered; memory not yet taken back
        self._completions = Completions()
        self._waiting = 0  # senders waiting for memory
        self._closed = False
        self._refusal: KafkaError | None = None  # what send() raises, once closed or aborted
        self._max_request_size = min(config.max_request_size, config.buffer_memory)
        self._batch_reservation = min(config.batch_size, config.buffer_memory)
        self._linger_s = config.linger_ms / 1000

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
        with self._lock:
            self._take_back()
            return self._reserved

    # -- filling ----------------------------------------------------------------------------

    def append(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Headers | Sequence[tuple[str, bytes | None]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> FutureRecordMetadata:
        """Put one record in its partition's open batch; its future. (``Producer.send``
        is this method itself, so it takes ``send()``'s arguments.)

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
            if self._refusal is not None:
                raise type(self._refusal)(str(self._refusal))
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
            self._take_back()
            if self._reserved + need > self._config.buffer_memory:
                self._wait_for_memory(need)
        except BaseException:
            self._lock.release()
            raise
        self._reserved += need
        batch = meta.open[partition] = ProducerBatch(meta.name, partition, need,
                                                     self._completions)
        self._incomplete.add(batch)
        if not meta.lingering[partition]:
            meta.lingering[partition] = True
            self._linger(meta.name, partition)
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
        self._waiting += 1
        try:
            self._take_back()  # after counting itself: a batch answered since is seen, or wakes it
            while self._reserved + need > config.buffer_memory:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise KafkaTimeoutError(
                        f"buffer_memory ({config.buffer_memory} bytes) stayed full for"
                        f" max_block_ms ({config.max_block_ms} ms)")
                self._memory_freed.wait(remaining)
                if self._refusal is not None:
                    raise type(self._refusal)(
                        f"while send() waited for memory: {self._refusal}")
                self._take_back()
        finally:
            self._waiting -= 1

    def _take_back(self) -> None:
        """Count the memory of the batches answered since last time as free (lock held)."""
        returned = self._returned
        while returned:
            batch = returned.popleft()
            self._reserved -= batch.reserved
            self._incomplete.discard(batch)

    # -- closing ----------------------------------------------------------------------------

    def _close_batch(self, meta: TopicBatches, batch: ProducerBatch) -> None:
        """Move ``batch`` from the open ones to its partition's ready list; call ``ready``
        if it is the first one waiting there (lock held)."""
        partition = batch.partition
        meta.open[partition] = None
        if partition == meta.sticky:
            meta.sticky = self._sticky.on_new_batch(meta.name, meta.count, partition)
        waiting = meta.ready[partition]
        waiting.append(batch)
        if len(waiting) == 1:
            self._ready(meta.name, partition)

    def _close_open(self) -> None:
        """Close every open batch (lock held)."""
        for meta in self._topics.values():
            for batch in meta.open:
                if batch is not None:
                    self._close_batch(meta, batch)

    def linger_over(self, topic: str, partition: int) -> float | None:
        """The linger timer of ``topic``-``partition`` fired: close the open batch if it is
        ``linger_ms`` old and return None (the next batch to open sets the timer again);
        else the seconds until it is, for the timer to be set again."""
        with self._lock:
            meta = self._topics[topic]
            batch = meta.open[partition]
            if batch is not None:
                left = batch.created + self._linger_s - time.monotonic()
                if left > 0:
                    return left
                self._close_batch(meta, batch)
            meta.lingering[partition] = False
            return None

    def take_ready(self, topic: str, partition: int) -> list[ProducerBatch]:
        """The closed batches waiting for ``topic``-``partition``, in the order they closed;
        the list starts again empty."""
        with self._lock:
            meta = self._topics[topic]
            waiting, meta.ready[partition] = meta.ready[partition], []
            return waiting

    def close_all(self) -> list[ProducerBatch]:
        """Close every open batch now; the batches not yet acknowledged, to wait for."""
        with self._lock:
            self._close_open()
            self._take_back()
            return list(self._incomplete)

    def finish(self, batches: list[ProducerBatch]) -> None:
        """The append of ``batches`` was answered (each has its result or its error): they
        are finished, their waiters woken, and their memory is free again.

        Called on the partition actor's thread, which must not queue for the lock behind
        senders (a sending thread takes it for every record, and under the GIL the wait
        can last a thread switch interval, with the partition idle): the batches go into
        a queue the lock's holders take from (a deque's ``extend`` is atomic), and the
        lock is taken only to wake senders waiting for memory. A sender counts itself
        waiting, under the lock, before it takes from that queue, so a release it missed
        wakes it."""
        for batch in batches:
            batch.finished = True
        self._completions.notify()
        self._returned.extend(batches)
        if self._waiting:
            with self._lock:
                self._memory_freed.notify_all()

    def close(self) -> bool:
        """Refuse new batches from now on (and wake senders waiting for memory, to fail);
        False if this was done already."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._refusal = self._refusal or IllegalState("send() on a closed producer")
            self._memory_freed.notify_all()
            return True

    def abort(self, error: KafkaError) -> list[ProducerBatch]:
        """The producer actor stopped, so nothing will send the batches not yet taken: from
        now on ``send()`` raises ``error`` (a fresh one each time; or, once ``close`` was
        called, the closed producer's IllegalState), and the open and ready
        batches are finished with it, their memory free. Returns them, for their callbacks.

        Under the lock, so a sender either put its record in before (and its batch is
        failed here) or raises; a ``ready`` message it sent to the stopped actor is moot.
        """
        with self._lock:
            self._refusal = self._refusal or error  # a closed producer says it is closed
            failed = []
            for meta in self._topics.values():
                failed.extend(batch for batch in meta.open if batch is not None)
                for waiting in meta.ready:
                    failed.extend(waiting)
                meta.open[:] = [None] * len(meta.open)
                meta.ready[:] = [[] for _ in meta.ready]
            for batch in failed:
                batch.error = error
            self._memory_freed.notify_all()
        self.finish(failed)
        return failed
