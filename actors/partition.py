"""The partition actor, the only writer of one partition log, and the state it publishes.

Writers send whole batches to the :class:`PartitionActor` (one message per batch). After
each durable append it publishes the log's new :class:`~eventstore.storage.log.LogView`
on the partition's :class:`PartitionState`, which readers share without any message:

- a reader (consumer, SQL, the wire Fetch handler) takes ``state.view`` and reads rows
  through its own :class:`~eventstore.storage.log.LogReader`, so a read never waits
  behind a write, and nothing past the view's high watermark (nothing unacknowledged)
  is ever visible;
- a reader thread long-polls with ``state.wait_for(offset, timeout)``;
- code that must not block (the asyncio wire server, a consumer watching several
  partitions) registers a no-argument listener with ``state.add_listener``; it runs on
  the actor's thread after the high watermark moves, so it must only hand the news on
  (``loop.call_soon_threadsafe``, ``Event.set``).

Timers send the actor messages: ``segment.ms`` rolls an idle segment with no traffic at
all, and retention runs every ``log.retention.check.interval.ms``, which also forgets
idempotent producers idle past ``producer.id.expiration.ms`` and checks that every segment
file is still the one the log opened. The active segment's file is checked the same way
before the first append of each second and a second later (two stat calls, never per
append): one deleted or replaced under the log takes the partition offline before more
appends are acknowledged into it.

A reader that finds a segment gone or damaged tells the actor (through the view's
``on_read_failure``), which marks it damaged and publishes that: fetches stop before it and
get KAFKA_STORAGE_ERROR at it, the offsets before and after it are served, appends go on,
and metrics count the partition offline. Each cause is logged once, then with a count
(see actors.failures), however often consumers retry. An idempotent producer's
batch is checked against its sequence before it is written (see the log's append): a
retry of an appended batch is answered with the original offsets, not written again.
A typed KafkaError (RecordTooLarge, InvalidRecord, OutOfOrderSequenceNumber...) is
replied to its caller, and so is DiskFull: a write the disk had no room for changed
nothing, so the log stays open and appends resume by themselves once space is freed (the
broker's DiskWatch logs the disk filling and recovering, once each). Anything else, or
another storage error, takes the partition offline: the error is replied, the broker is
told, the actor stops, and the broker reopens the log from disk, where every acknowledged
batch (and every producer's sequence) is.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import pykka

from actors.disk import DiskWatch
from actors.failures import FailureLog
from actors.replies import LoopReply
from actors.runtime import Actor, Scheduler, Timer, tell_if_alive, tell_or_refuse
from eventstore.clock import wall_clock_ms
from eventstore.config import TopicConfig
from eventstore.errors import (
    CorruptLog,
    DiskFull,
    KafkaError,
    KafkaStorageError,
    OffsetOutOfRange,
)
from eventstore.storage.compaction import (
    CleanerState,
    CleaningStatus,
    PreparedCleaning,
    status_of,
)
from eventstore.storage.log import PartitionLog
from eventstore.storage.log_reader import Damage, LogView
from eventstore.storage.log_summary import LogSummary
from eventstore.storage.producer_state import ProducerEntry
from eventstore.storage.records import AppendRow, ProducerBatchInfo
from eventstore.storage.segment import AppendResult, SegmentInfo, segment_name
from eventstore.topic_partition import TopicPartition

log = logging.getLogger(__name__)

Listener = Callable[[], None]
P = ParamSpec("P")
R = TypeVar("R")


# apsw releases the GIL around every SQLite call, so for a batch it gives the GIL up and
# takes it back once per row. Two partition actors appending at once then hand the GIL to
# each other row by row, each handover a thread switch costing more than the row: 8
# partitions appended far slower than 1. Appends that do not wait on the disk (no fsync)
# therefore take turns, process-wide; fsynced appends overlap, as their disk waits should.
APPEND_TURN = threading.Lock()

# How long after an append the active segment's file is checked (see CheckFiles).
FILE_CHECK_DELAY_S = 1.0

# Append latency buckets, in seconds (Prometheus' default buckets, finer at the low end).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0)


class LatencyHistogram:
    """Cumulative-ready histogram counts: ``counts[i]`` observations <= ``bounds[i]``.

    The last count is for observations above every bound (Prometheus' ``+Inf``).
    Written by one thread (the partition actor), read by anyone.
    """

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1


class PartitionStats:
    """Counters of one partition, kept across actor restarts for the metrics actor.

    The write-side counters are updated by the partition actor only; fetch counters are
    added by any reader through :meth:`add_fetched` and :meth:`add_failed_read`.
    """

    def __init__(self) -> None:
        self.appends = 0
        self.records_appended = 0
        self.bytes_appended = 0
        self.append_latency = LatencyHistogram()
        self.rolls: dict[str, int] = {"size": 0, "age": 0}
        self.segments_deleted = 0
        self.restarts = 0
        self.records_fetched = 0
        self.bytes_fetched = 0
        self.failed_reads = 0
        self.cleaner = CleanerState()  # cleaner.json as the last cleaning swapped in
        self._fetch_lock = threading.Lock()

    def add_fetched(self, records: int, size: int) -> None:
        """Count records a reader handed out (thread-safe)."""
        with self._fetch_lock:
            self.records_fetched += records
            self.bytes_fetched += size

    def add_failed_read(self) -> None:
        """Count a read a storage error stopped (thread-safe)."""
        with self._fetch_lock:
            self.failed_reads += 1


class PartitionState:
    """What a partition shows its readers: the latest view, its health, a way to wait.

    ``view`` is replaced atomically after every durable append (None until the log is
    first opened; kept while its actor is stopped for idleness, as nothing writes it
    then); ``summary`` is what the segments' metadata say of a log not opened yet
    (figures only: readers wait for a view); ``error`` is set while the partition is
    offline (failed, corrupt, deleted). The same object lives as long as the partition,
    across actor restarts and idle stops, so waiters and listeners stay attached.
    """

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.view: LogView | None = None
        self.summary: LogSummary | None = None
        self.error: KafkaError | None = None
        self.stats = PartitionStats()
        self._cond = threading.Condition()
        self._waiters = 0
        self._listeners: tuple[Listener, ...] = ()

    def __repr__(self) -> str:
        return f"PartitionState({self.topic}-{self.partition})"

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def high_watermark(self) -> int:
        """The offset the next record will get (-1 while nothing of the log is known)."""
        known = self.known
        return -1 if known is None else known.high_watermark

    @property
    def known(self) -> LogView | LogSummary | None:
        """The latest view, else the summary of a log not opened yet: figures to show."""
        view = self.view
        return self.summary if view is None else view

    def cleaning_status(self) -> CleaningStatus | None:
        """Log compaction's status of this partition (cleaned and dirty bytes, runs,
        bytes removed...) from the latest view, with no file read; None while the log
        is not open."""
        view = self.view
        return None if view is None else status_of(view.segments[:-1], self.stats.cleaner)

    def wait_for(self, offset: int, timeout: float | None) -> bool:
        """Block until the high watermark passes ``offset`` (a record at ``offset`` exists).

        Returns True when it has; False at the timeout, or at once when the partition is
        offline (read ``error``). Meant for reader threads; never call it on an actor.
        """
        if self.high_watermark > offset:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._waiters += 1
            try:
                while self.high_watermark <= offset:
                    if self.error is not None:
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._waiters -= 1

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener()`` after every move of the high watermark or of ``error``.

        It runs on the partition actor's thread: it must return at once (hand the news
        on with ``loop.call_soon_threadsafe`` or ``Event.set``).
        """
        with self._cond:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._cond:
            listeners = list(self._listeners)
            if listener in listeners:
                listeners.remove(listener)
            self._listeners = tuple(listeners)

    # -- for the partition actor and the broker ---------------------------------------------

    def publish(self, view: LogView) -> None:
        """Make ``view`` the one readers see (the partition is online) and wake them."""
        self.view = view
        self.error = None
        self._wake()

    def set_offline(self, error: KafkaError) -> None:
        """Mark the partition offline with ``error`` and wake readers so they see it."""
        self.error = error
        self._wake()

    def _wake(self) -> None:
        # A waiter registers under the lock before it reads the view, so one that this
        # check misses has not read the view yet and will see the new one.
        if self._waiters:
            with self._cond:
                self._cond.notify_all()
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("partition listener failed", extra={"fields": {
                    "topic": self.topic, "partition": self.partition}})


def offline_error(state: PartitionState) -> KafkaStorageError:
    """A fresh error saying why ``state``'s partition is offline (retriable, as in Kafka)."""
    reason = f": {state.error}" if state.error is not None else ""
    return KafkaStorageError(f"partition {state.topic}-{state.partition} is offline{reason}")


@dataclass(frozen=True, slots=True)
class Append:
    """Append one batch; ``reply`` completes with its AppendResult or a typed error."""

    rows: Sequence[AppendRow]
    producer: ProducerBatchInfo | None
    reply: Future[AppendResult] | LoopReply[AppendResult]
    sent_bytes: int | None = None
    transactional: bool = False  # a transactional producer's batch (KIP-98)
    # called on the actor's thread once the batch is written, before readers can see it
    # (the Kafka front end keeps the producer's bytes for the fetches it wakes)
    written: Callable[[AppendResult], None] | None = None


@dataclass(frozen=True, slots=True)
class CheckRoll:
    """Timer: the active segment may have reached ``segment.ms``."""


@dataclass(frozen=True, slots=True)
class CheckRetention:
    """Timer: ``log.retention.check.interval.ms`` has passed."""


@dataclass(frozen=True, slots=True)
class CheckFiles:
    """Timer, a second after a checked append: is the active segment still the file being
    written? (The next append checks again before it is written.)"""


@dataclass(frozen=True, slots=True)
class ReadFailed:
    """From a reader's thread: a storage error stopped a read of ``segment``."""

    segment: SegmentInfo
    error: KafkaStorageError


@dataclass(frozen=True, slots=True)
class PartitionFailed:
    """To the broker: the actor ``actor_urn`` of this partition failed and stopped."""

    topic: str
    partition: int
    actor_urn: str
    error: KafkaError


@dataclass(frozen=True, slots=True)
class Wake:
    """To the broker: start ``handle``'s partition actor if it is not running, then hand it
    ``message`` (an Append), whose reply fails if the partition cannot be opened."""

    handle: PartitionHandle
    message: Append


class PartitionSlot:
    """Where one partition's actor runs, if it does. The broker starts it on first use and
    stops it once idle (``actor`` is set and cleared by the broker only, read by anyone);
    ``used`` is when a handle last reached for it (monotonic seconds), the broker's idle
    check; ``wake`` sends a :class:`Wake` to the broker."""

    __slots__ = ("actor", "used", "wake")

    def __init__(self, wake: Callable[[Wake], None]) -> None:
        self.actor: pykka.ActorProxy[PartitionActor] | None = None
        self.used = time.monotonic()
        self.wake = wake


@dataclass(frozen=True)
class PartitionHandle:
    """What the broker hands out for one partition: its state and where its actor runs.

    The same handle lasts as long as the partition: appends through it reach whichever
    actor runs it, started first when none does. ``actor`` is the running one (None while
    it is stopped or offline); callers that message it directly ask the broker's
    ``partition`` first, which starts it.
    """

    state: PartitionState
    slot: PartitionSlot

    @property
    def topic_partition(self) -> TopicPartition:
        return self.state.topic_partition

    @property
    def actor(self) -> pykka.ActorProxy[PartitionActor] | None:
        """The running actor (this counts as a use: see PartitionSlot.used)."""
        slot = self.slot
        slot.used = time.monotonic()
        return slot.actor

    @property
    def offline(self) -> bool:
        return self.state.error is not None

    def append(
        self,
        rows: Sequence[AppendRow],
        producer: ProducerBatchInfo | None = None,
        sent_bytes: int | None = None,
        transactional: bool = False,
    ) -> Future[AppendResult]:
        """Send one batch to the partition actor; the future completes once it is durable.

        ``sent_bytes``: the batch's size as a Kafka client sent it, which is what
        ``max.message.bytes`` limits (see PartitionLog.append).

        A concurrent.futures.Future: block on ``result()``, chain ``add_done_callback``, or
        ``asyncio.wrap_future`` it on an event loop without blocking the loop.
        """
        reply: Future[AppendResult] = Future()
        self.send(Append(rows, producer, reply, sent_bytes, transactional))
        return reply

    def send(self, append: Append) -> None:
        """Send an append whose reply the caller made: a concurrent Future (see
        :meth:`append`) or, for a caller on an event loop, a LoopReply, which the actor
        completes with one wake-up of that loop (see actors.replies). A stopped actor is
        started first (the broker gets the append in a Wake)."""
        slot = self.slot
        slot.used = time.monotonic()
        actor = slot.actor
        if actor is None:
            if self.state.error is not None:
                append.reply.set_exception(offline_error(self.state))
            else:
                slot.wake(Wake(self, append))
        else:
            # an actor stopping (idle) or failing before it takes the batch: the broker
            # starts the next one and hands it the batch
            tell_or_refuse(actor.actor_ref, append, lambda: slot.wake(Wake(self, append)))

    def restarting(self) -> KafkaStorageError:
        """What an append gets when the actor stopped before taking it and none could take
        it instead: retriable, as Kafka's NOT_LEADER_OR_FOLLOWER is."""
        return KafkaStorageError(f"partition {self.state.topic}-{self.state.partition}"
                                 " stopped before this append: it is restarting")


class PartitionActor(Actor):
    """The only writer of one PartitionLog; publishes each durable append on its state."""

    def __init__(
        self,
        state: PartitionState,
        partition_log: PartitionLog,
        scheduler: Scheduler,
        retention_check_interval_ms: int,
        report_failure: Callable[[PartitionFailed], None],
        disk: DiskWatch | None = None,
    ) -> None:
        super().__init__()
        self.state = state
        self._log = partition_log
        self._disk = disk or DiskWatch(partition_log.directory)
        self._scheduler = scheduler
        self._retention_interval_s = retention_check_interval_ms / 1000
        self._report_failure = report_failure
        self._failure: KafkaError | None = None
        self._roll_timer: Timer | None = None
        self._roll_due_ms: int | None = None
        self._retention_timer: Timer | None = None
        self._files_timer: Timer | None = None
        self._rolls_before = dict(state.stats.rolls)
        self._deleted_before = state.stats.segments_deleted
        self._name = f"{state.topic}-{state.partition}"
        self._read_failures = FailureLog(log)

    # -- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        self.state.stats.cleaner = self._log.cleaner_state
        self._log.set_read_failure_hook(self._read_failed)
        self.state.publish(self._log.view())
        self._schedule_roll()
        self._schedule_retention()

    def on_stop(self) -> None:
        # appends still in the inbox, and any sent from now on, are refused by the
        # handle's tell_or_refuse (see actors.runtime), which has the broker
        # start the next actor for them
        self._cancel_timers()
        self._log.close()

    def on_failure(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        # Every message is guarded, so this is a bug in the guard itself; still recover.
        self._log.close()
        self._report(KafkaStorageError(f"partition {self._name} failed: {exc!r}"))

    # -- messages ---------------------------------------------------------------------------

    def on_receive(self, message: object) -> None:
        if isinstance(message, Append):
            if message.reply.set_running_or_notify_cancel():
                try:
                    message.reply.set_result(
                        self.append(message.rows, message.producer, message.sent_bytes,
                                    message.transactional, message.written))
                except KafkaError as exc:
                    message.reply.set_exception(exc)
                else:
                    self._checkpoint()
        elif isinstance(message, CheckRoll):
            self._guard(self._check_roll)
        elif isinstance(message, CheckRetention):
            self._guard(self._check_retention)
        elif isinstance(message, CheckFiles):
            self._files_timer = None
            with contextlib.suppress(KafkaError):  # offline now, and logged: no one to answer
                self._guard(self._log.check_files, sealed=False)
        elif isinstance(message, ReadFailed):
            self._note_read_failure(message.segment, message.error)
        else:
            super().on_receive(message)

    def append(
        self,
        rows: Sequence[AppendRow],
        producer: ProducerBatchInfo | None = None,
        sent_bytes: int | None = None,
        transactional: bool = False,
        written: Callable[[AppendResult], None] | None = None,
    ) -> AppendResult:
        """Append one batch durably and publish the new high watermark (after calling
        ``written``, if given, with the result)."""
        return self._guard(self._append, rows, producer, sent_bytes, transactional, written)

    def write_marker(self, producer_id: int, producer_epoch: int, marker: str) -> bool:
        """The transaction coordinator's COMMIT or ABORT marker for the producer's open
        transaction here, written durably and published (the last stable offset moves);
        False when it had none open."""
        return self._guard(self._write_marker, producer_id, producer_epoch, marker)

    def update_config(self, config: TopicConfig) -> None:
        """Apply a topic's changed config from the next append or timer on."""
        self._guard(self._update_config, config)

    def active_producers(self) -> tuple[ProducerEntry, ...]:
        """DescribeProducers: the idempotent producers this partition remembers, read on
        the actor's thread, which owns the producer state."""
        return self._log.producers.active()

    def delete_records(self, offset: int) -> int:
        """DeleteRecords: move the log-start-offset to ``offset`` (-1: the high watermark)
        and delete the segments wholly below it (see PartitionLog.delete_records); returns
        the log-start-offset after, Kafka's low watermark. Readers see the new start before
        any file goes."""
        return self._guard(self._delete_records, offset)

    def cleanable(self) -> tuple[tuple[SegmentInfo, ...], int, TopicConfig]:
        """For the log cleaner: the sealed chain a cleaning may rewrite now, the base of
        the segment after it, and the topic's config (see PartitionLog.cleanable)."""
        return self._guard(lambda: (*self._log.cleanable(), self._log.config))

    def install_cleaning(self, prepared: PreparedCleaning) -> bool:
        """Swap in a cleaning the log cleaner prepared off this thread (its files
        written), and publish the log as it left it; False, with nothing changed, when
        the chain changed meanwhile (see PartitionLog.install_cleaning). Appends wait only
        for the swap's renames, never for the cleaning itself."""
        return self._guard(self._install_cleaning, prepared)

    # -- work -------------------------------------------------------------------------------

    def _install_cleaning(self, prepared: PreparedCleaning) -> bool:
        if not self._log.install_cleaning(prepared):
            return False
        self.state.stats.cleaner = self._log.cleaner_state
        self.state.publish(self._log.view())
        return True

    def _write_marker(self, producer_id: int, producer_epoch: int, marker: str) -> bool:
        if self._log.append_marker(producer_id, producer_epoch, marker) is None:
            return False
        self.state.publish(self._log.view())
        self._schedule_roll()
        return True

    def _append(
        self, rows: Sequence[AppendRow], producer: ProducerBatchInfo | None,
        sent_bytes: int | None, transactional: bool = False,
        written: Callable[[AppendResult], None] | None = None,
    ) -> AppendResult:
        partition_log = self._log
        if self._files_timer is None:  # the first append in a second: its files checked
            partition_log.check_files(sealed=False)  # first, so none is acked into a gone one
            self._files_timer = self._timer(FILE_CHECK_DELAY_S, CheckFiles())
        before = partition_log.view()
        started = time.perf_counter()
        if partition_log.config.flush_messages == 1:  # waits on the disk
            result = partition_log.append(rows, producer, sent_bytes, checkpoint=False,
                                          transactional=transactional)
        else:
            with APPEND_TURN:
                result = partition_log.append(rows, producer, sent_bytes, checkpoint=False,
                                              transactional=transactional)
        if result.duplicate:
            return result  # nothing was written: no new view, nothing to count
        stats = self.state.stats
        stats.append_latency.observe(time.perf_counter() - started)
        stats.appends += 1
        stats.records_appended += len(rows)
        stats.bytes_appended += result.bytes
        self._disk.has_space()
        if written is not None:
            try:
                written(result)
            except Exception:  # the caller's bug: the append itself is done and durable
                log.exception("partition %s: an append's written callback failed", self._name)
        view = partition_log.view()
        self.state.publish(view)
        if view.segments[-1].base_offset != before.segments[-1].base_offset:
            self._sync_log_stats()
        self._schedule_roll()
        return result

    def _checkpoint(self) -> None:
        """Checkpoint the WAL once the append is answered, where SQLite would have done it
        inside the commit: it copies with the GIL released, so a producer in this process
        fills its next batch meanwhile. A failure takes the partition offline (and is
        logged) like any other storage error; there is no one to answer."""
        with contextlib.suppress(KafkaError):
            self._guard(self._log.checkpoint_if_due)

    def _update_config(self, config: TopicConfig) -> None:
        self._log.update_config(config)
        self.state.publish(self._log.view())
        self._schedule_roll()

    def _delete_records(self, offset: int) -> int:
        start = self._log.delete_records(offset, self.state.publish)
        self._sync_log_stats()
        self.state.publish(self._log.view())
        return start

    def _check_roll(self) -> None:
        self._roll_timer = self._roll_due_ms = None
        self._maintain(retention=False)

    def _check_retention(self) -> None:
        # first: work a full disk refuses below is tried again at the next check
        self._schedule_retention()
        self._log.expire_producers()
        found = self._log.check_files(sealed=True)
        if found:
            self.state.publish(self._log.view())
        for damage in found:
            self._log_damage(damage)
        self._maintain(retention=True)

    def _maintain(self, *, retention: bool) -> None:
        """Roll an idle segment past ``segment.ms`` (which also finishes seals readers
        delayed) and, on the retention timer, delete expired segments (readers see the
        new log-start-offset before any file goes)."""
        deleted = self._log.apply_retention(self.state.publish) if retention else []
        if self._log.maybe_roll() or deleted:
            self._sync_log_stats()
            self.state.publish(self._log.view())
        self._schedule_roll()

    # -- damage -----------------------------------------------------------------------------

    def _read_failed(self, segment: SegmentInfo, error: KafkaStorageError) -> KafkaError:
        """The views' ``on_read_failure``; runs on the reader's thread. A segment below the
        latest log-start-offset was deleted by retention after the reader took its view
        (retention publishes before it deletes): OffsetOutOfRange, as Kafka answers. Any
        other failure is told to the actor and raised as it is."""
        view = self.state.view
        if view is not None and segment.next_offset <= view.log_start_offset:
            return OffsetOutOfRange(
                f"segment {segment_name(segment.base_offset)} was deleted by retention:"
                f" the log starts at offset {view.log_start_offset}")
        if view is not None and segment.is_sealed and segment not in view.segments:
            # a cleaning replaced it after the reader took its view: retriable, the next
            # read takes the new view and its files
            return KafkaStorageError(
                f"segment {segment_name(segment.base_offset)} was replaced by the log"
                " cleaner during the read: retry")
        self.state.stats.add_failed_read()
        tell_if_alive(self.actor_ref, ReadFailed(segment, error))
        return error

    def _note_read_failure(self, segment: SegmentInfo, error: KafkaStorageError) -> None:
        """Mark a segment a reader found gone or damaged (CorruptLog), so that reads stop
        before it; log each cause once, then with a count."""
        if isinstance(error, CorruptLog):
            damage = self._log.view().damaged(segment)  # known: a read that reached it
            if damage is None:
                damage = self._log.mark_damaged(segment, error)
                if damage is not None:
                    self.state.publish(self._log.view())
            if damage is not None:
                self._log_damage(damage)
                return
        self._read_failures.note(f"{segment.path}: {error.name}", "read failed", {
            "topic": self.state.topic, "partition": self.state.partition,
            "segment": segment.path, "error": str(error)})

    def _log_damage(self, damage: Damage) -> None:
        self._read_failures.note(damage.path, "segment damaged, fetches stop before it", {
            "topic": self.state.topic, "partition": self.state.partition,
            "offsets": f"{damage.base_offset}..{damage.next_offset - 1}",
            "error": damage.reason})

    def _sync_log_stats(self) -> None:
        stats = self.state.stats
        log_stats = self._log.stats
        stats.rolls = {
            reason: self._rolls_before.get(reason, 0) + count
            for reason, count in log_stats.rolls.items()
        }
        stats.segments_deleted = self._deleted_before + log_stats.segments_deleted

    # -- timers -----------------------------------------------------------------------------

    def _schedule_roll(self) -> None:
        """Keep one timer at the active segment's ``segment.ms`` deadline, if it has records."""
        first = self._log.view().segments[-1].first_append_ms
        due = None if first is None else first + self._log.config.segment_ms
        if due == self._roll_due_ms:
            return
        if self._roll_timer is not None:
            self._roll_timer.cancel()
            self._roll_timer = None
        self._roll_due_ms = due
        if due is not None:
            self._roll_timer = self._timer((due - wall_clock_ms()) / 1000, CheckRoll())

    def _schedule_retention(self) -> None:
        self._retention_timer = self._timer(self._retention_interval_s, CheckRetention())

    def _timer(self, delay_s: float, message: object) -> Timer:
        ref = self.actor_ref
        return self._scheduler.call_later(delay_s, lambda: tell_if_alive(ref, message))

    def _cancel_timers(self) -> None:
        for timer in (self._roll_timer, self._retention_timer, self._files_timer):
            if timer is not None:
                timer.cancel()
        self._roll_timer = self._retention_timer = self._files_timer = None

    # -- failure ----------------------------------------------------------------------------

    def _guard(self, work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``work`` on the log; take the partition offline on anything but a typed error
        or a full disk (which leaves the log as it was: see the module doc)."""
        if self._failure is not None:
            raise KafkaStorageError(
                f"partition {self._name} is offline, restarting after: {self._failure}")
        try:
            return work(*args, **kwargs)
        except DiskFull as exc:
            self._disk.full(exc)
            raise
        except KafkaStorageError as exc:
            self._fail(exc, unexpected=False)
            raise
        except KafkaError:
            raise
        except Exception as exc:
            error = KafkaStorageError(f"partition {self._name} failed: {exc!r}")
            self._fail(error, unexpected=True)
            raise error from exc

    def _fail(self, error: KafkaError, *, unexpected: bool) -> None:
        """Stop and have the broker reopen the log from disk, the one state to trust after
        a failed write. A storage error (disk full, I/O) is one log line; anything else is
        a bug, logged with its traceback."""
        log.error("partition failed, restarting from disk", exc_info=error if unexpected else None,
                  extra={"fields": {"topic": self.state.topic, "partition": self.state.partition,
                                    "error": str(error)}})
        self._failure = error
        self._cancel_timers()
        self._report(error)
        self.stop()

    def _report(self, error: KafkaError) -> None:
        self.state.set_offline(error)
        self._report_failure(
            PartitionFailed(self.state.topic, self.state.partition, self.actor_urn, error))
