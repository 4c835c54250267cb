"""The broker actor: Kafka's topic manager and the supervisor of every partition actor.

It owns its own connection to the catalog and the partition actors: it creates,
describes and deletes topics, increases partition counts and applies config changes live;
when a partition actor fails it reopens the log from disk and starts a new actor. A
partition whose files cannot be opened (CorruptLog, KafkaStorageError) is reported offline
with its error while every other partition keeps serving; one a full disk kept from
opening is tried again, soon and then every REOPEN_MAX_S, until it opens. Its DiskWatch
logs the disk filling and recovering once each, for the partition actors and the catalog
alike.

A partition costs files and a thread only while it is used. Start-up reads the catalog and
opens no log; creating a topic writes its partitions' first segments and closes them. A
partition's actor is started on first use (``partition``, or an append through any handle,
which the handle hands to the broker in a Wake) and stopped once nothing used it for
``partition.idle.close.ms`` (one sweep on the scheduler; never with a transaction open, or
messages in its inbox), its files closed and its last view kept for readers. At most
``partition.open.max`` run at once: opening one more first closes the least recently used.
Figures of a partition not opened since start-up come from its segments' metadata rows,
read in the background after start-up (a LogSummary), without opening it. While a
partition's actor is stopped, its ``segment.ms`` and retention work is due at a time its
segments' metadata say: one heap of those times, with one timer for the earliest, starts
the actor then (which does the work, then idles out again); running actors keep their own
timers.

Topic creation writes the partition folders before the catalog row and deletion removes
the row before the folders, so a crash in between leaves at worst stray folders, which
the next creation of that name clears; a creation that fails (a full disk) removes the
folders it made before it answers.

Limits keep a request from taking the server down: one request adds at most
``max.partitions.per.request`` partitions (INVALID_PARTITIONS past it) and the server holds at
most ``max.partitions`` (POLICY_VIOLATION past it, naming the limit; no limit by default, as
a partition holds files only while open).

It also hands out idempotent producers' ids (Kafka's InitProducerId), unique and never
reused: blocks of them are reserved from the catalog's durable counter, so a restart
skips what was left of a block rather than handing any id out twice.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pykka

from actors.disk import DiskWatch
from actors.partition import (
    CheckRetention,
    PartitionActor,
    PartitionFailed,
    PartitionHandle,
    PartitionSlot,
    PartitionState,
    Wake,
    offline_error,
)
from actors.runtime import (
    Actor,
    Scheduler,
    Timer,
    fail_future,
    stop_actor,
    tell_if_alive,
    tell_or_refuse,
    tell_with_reply,
)
from eventstore.clock import wall_clock_ms
from eventstore.config import ServerConfig, TopicConfig, validate_topic_config
from eventstore.errors import (
    CorruptLog,
    DiskFull,
    InvalidPartitions,
    KafkaError,
    KafkaStorageError,
    PolicyViolation,
    TooManyOpenFiles,
    TopicAlreadyExists,
    UnknownTopicOrPartition,
)
from eventstore.open_files import (
    default_max_partitions,
    is_too_many_open_files,
    too_many_open_files,
)
from eventstore.storage.catalog import Catalog, TopicInfo, partition_dir, validate_topic_name
from eventstore.storage.cleaning_swap import recover_swap
from eventstore.storage.compaction import is_compacted, read_cleaner_state
from eventstore.storage.log import PartitionLog, create_partition
from eventstore.storage.log_summary import (
    LogSummary,
    maintenance_due_ms,
    read_summary,
    retention_due_ms,
)
from eventstore.storage.segment import SegmentInfo

log = logging.getLogger(__name__)

PRODUCER_ID_SEQUENCE = "producer.id"
PRODUCER_ID_BLOCK = 1000  # ids reserved per catalog write, as Kafka's ProducerIdManager does
# A partition a full disk kept from opening is tried again after REOPEN_FIRST_S, then after
# twice as long each time, up to REOPEN_MAX_S: back soon after space is freed, cheap before.
REOPEN_FIRST_S = 0.25
REOPEN_MAX_S = 2.0
SURVEY_CHUNK = 64  # partitions summarized per broker message, so requests interleave
IDLE_SWEEP_MAX_S = 30.0
EVICT_FRACTION = 16  # past partition.open.max, this share of the limit is closed at once


@dataclass(frozen=True)
class Survey:
    """To the broker itself: summarize the next partitions not opened since start-up."""


@dataclass(frozen=True)
class SweepIdle:
    """Timer: stop the actors of partitions idle past ``partition.idle.close.ms``."""


@dataclass(frozen=True)
class DueCheck:
    """Timer: the earliest maintenance due of a stopped partition has come."""


@dataclass(frozen=True)
class ReopenPartition:
    """To the broker itself: try again to open a partition a full disk kept from opening."""

    topic: str
    partition: int
    waited_s: float  # before this try; the next waits twice as long (at most REOPEN_MAX_S)


@dataclass(frozen=True)
class PartitionDescription:
    """One partition as ``describe`` shows it; offsets are -1 while it has never opened."""

    topic: str
    partition: int
    log_start_offset: int
    log_end_offset: int
    segments: int
    bytes: int
    error: str | None = None

    @property
    def offline(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class TopicDescription:
    """A topic: its partitions, its effective config, and which keys it overrides."""

    name: str
    partitions: tuple[PartitionDescription, ...]
    config: Mapping[str, Any]
    overrides: Mapping[str, Any]
    created_ms: int


@dataclass
class _Topic:
    info: TopicInfo
    config: TopicConfig
    partitions: list[PartitionHandle] = field(default_factory=list)


Key = tuple[str, int]


class Broker(Actor):
    """Topic manager and partition supervisor; every method runs on the broker's thread."""

    def __init__(self, data_dir: str, config: ServerConfig, scheduler: Scheduler) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.config = config
        self._scheduler = scheduler
        # opened here, in the starting thread, so a broken catalog fails start() itself
        self._catalog = Catalog.open(data_dir)
        self._disk = DiskWatch(data_dir)
        self.max_partitions = config.max_partitions  # -1: no limit
        self.max_open = (default_max_partitions() if config.partition_open_max == -1
                         else config.partition_open_max)
        self._idle_s = config.partition_idle_close_ms / 1000
        self._files_limit_logged = False
        self._topics: dict[str, _Topic] = {}
        self._producer_ids = range(0)  # what is left of the reserved block
        self._running: dict[Key, PartitionHandle] = {}
        self._stopping: dict[Key, pykka.ActorRef[PartitionActor]] = {}  # closing while idle
        self._unsurveyed: deque[Key] = deque()
        self._due: list[tuple[int, int, str, int]] = []  # (due ms, order, topic, partition)
        self._due_order = itertools.count()
        self._due_timer: Timer | None = None
        self._due_at = 0
        # retention's first run comes a check interval after start-up, as it did when each
        # partition was opened at start-up with its own timer (Kafka waits 30 s)
        self._retention_from_ms = wall_clock_ms() + config.log_retention_check_interval_ms

    # -- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        for info in self._catalog.topics():
            topic = self._topics[info.name] = _Topic(info, self.config.topic_config(info.config))
            topic.partitions.extend(self._new_handle(info.name, index)
                                    for index in range(info.partitions))
            self._unsurveyed.extend((info.name, index) for index in range(info.partitions))
            for index in range(info.partitions):
                self._finish_swap(topic, index)
        tell_if_alive(self.actor_ref, Survey())
        self._schedule_sweep()

    def on_stop(self) -> None:
        for topic in self._topics.values():
            self._stop_partitions(topic.partitions)
        self._topics.clear()
        self._catalog.close()

    def on_receive(self, message: object) -> None:
        if isinstance(message, Wake):
            self._wake(message)
        elif isinstance(message, PartitionFailed):
            self._restart(message)
        elif isinstance(message, SweepIdle):
            self._sweep_idle()
        elif isinstance(message, DueCheck):
            self._due_check()
        elif isinstance(message, Survey):
            self._survey()
        elif isinstance(message, ReopenPartition):
            self._reopen(message)
        else:
            super().on_receive(message)

    # -- topics -----------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        validate_only: bool = False,
    ) -> TopicDescription:
        """Create a topic (``num.partitions`` partitions unless told): its partitions'
        first segments are written and closed; no actor starts before their first use.

        With ``validate_only`` (Kafka's CreateTopics flag) everything is checked and
        nothing is created; the description shows what would be.
        """
        count = self.config.num_partitions if partitions is None else partitions
        overrides = dict(config or {})
        validate_topic_name(name)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise InvalidPartitions(f"topic {name!r}: partitions must be at least 1, got {count}")
        if name in self._topics:
            raise TopicAlreadyExists(f"topic {name!r} already exists")
        self._check_limits(name, count)
        topic = _Topic(
            TopicInfo(name, count, validate_topic_config(overrides), wall_clock_ms()),
            self.config.topic_config(overrides),
        )
        if validate_only:
            empty = (PartitionDescription(name, i, 0, 0, 0, 0) for i in range(count))
            return replace(self._describe(topic), partitions=tuple(empty))
        try:
            with self._disk_writes():
                self._add_partitions(topic, count)
                topic.info = self._catalog.create_topic(
                    name, count, overrides, topic.info.created_ms)
        except BaseException:
            self._stop_partitions(topic.partitions)
            self._remove_folders(name, range(count))
            raise
        self._topics[name] = topic
        log.info("topic created", extra={"fields": {"topic": name, "partitions": count}})
        return self._describe(topic)

    def ensure_topic(self, name: str, allow_create: bool = True) -> TopicInfo:
        """Topic ``name``, created first if it is missing, ``allow_create`` (the client's
        ``allow.auto.create.topics``) and ``auto.create.topics.enable`` both say so."""
        topic = self._topics.get(name)
        if topic is None:
            if not (allow_create and self.config.auto_create_topics_enable):
                raise UnknownTopicOrPartition(f"topic {name!r} does not exist")
            self.create_topic(name)
            topic = self._topics[name]
        return topic.info

    def describe_topic(self, name: str) -> TopicDescription:
        return self._describe(self._topic(name))

    def describe_topics(self, names: Iterable[str] | None = None) -> list[TopicDescription]:
        """Every topic (or the ones named), by name; an unknown name raises."""
        wanted = sorted(self._topics) if names is None else list(names)
        return [self._describe(self._topic(name)) for name in wanted]

    def list_topics(self) -> list[TopicInfo]:
        """Every topic's catalog entry (name, partition count, overrides), by name."""
        return [self._topics[name].info for name in sorted(self._topics)]

    def delete_topic(self, name: str) -> None:
        """Forget a topic, stop its actors and remove its folders."""
        topic = self._topic(name)
        self._catalog.delete_topic(name)
        del self._topics[name]
        self._stop_partitions(topic.partitions)
        gone = UnknownTopicOrPartition(f"topic {name!r} was deleted")
        for handle in topic.partitions:
            handle.state.set_offline(gone)
        self._remove_folders(name, range(len(topic.partitions)))
        log.info("topic deleted", extra={"fields": {"topic": name}})

    def create_partitions(
        self, name: str, total: int, *, validate_only: bool = False
    ) -> TopicDescription:
        """Grow ``name`` to ``total`` partitions (Kafka's CreatePartitions); never shrinks."""
        topic = self._topic(name)
        current = topic.info.partitions
        if not isinstance(total, int) or total <= current:
            raise InvalidPartitions(
                f"topic {name!r} has {current} partitions; the count can only grow"
                f" (asked for {total})")
        self._check_limits(name, total - current)
        if validate_only:
            return self._describe(topic)
        try:
            with self._disk_writes():
                self._add_partitions(topic, total)
                topic.info = self._catalog.set_partitions(name, total)
        except BaseException:
            added = topic.partitions[current:]
            del topic.partitions[current:]
            self._stop_partitions(added)
            self._remove_folders(name, range(current, total))
            raise
        log.info("partitions added", extra={"fields": {"topic": name, "partitions": total}})
        return self._describe(topic)

    def alter_topic_config(
        self, name: str, changes: Mapping[str, Any | None]
    ) -> TopicDescription:
        """Set topic config overrides (a value of None removes one) and apply them live."""
        topic = self._topic(name)
        overrides = dict(topic.info.config)
        for key, value in changes.items():
            if value is None:
                overrides.pop(key, None)
            else:
                overrides[key] = value
        config = self.config.topic_config(overrides)
        topic.info = self._catalog.set_topic_config(name, overrides)
        topic.config = config
        applying = [(handle, handle.slot.actor.update_config(config))
                    for handle in topic.partitions if handle.slot.actor is not None]
        for handle, future in applying:
            self._check_applied(name, handle.state.partition, future)
        for handle in topic.partitions:  # stopped ones: their maintenance may be due sooner
            if handle.slot.actor is None:
                self._schedule_due(handle)
        log.info("topic config altered", extra={"fields": {"topic": name, **changes}})
        return self._describe(topic)

    @staticmethod
    def _check_applied(topic: str, partition: int, future: pykka.Future[None]) -> None:
        """Wait for a partition actor to take a config change; log it if it did not. The
        change is in the catalog either way: a partition that failed or stopped takes it
        when it is opened again. (A partition actor never waits for the broker.)"""
        try:
            future.get()
        except (KafkaError, pykka.ActorDeadError) as exc:
            log.warning("partition did not take the config change now (it will when it"
                        " reopens)", extra={"fields": {
                            "topic": topic, "partition": partition, "error": repr(exc)}})

    # -- partitions -------------------------------------------------------------------------

    def partition(self, topic: str, partition: int) -> PartitionHandle:
        """The handle of one online partition, its actor started if it was not running;
        UnknownTopicOrPartition or KafkaStorageError (offline, or it failed to open)."""
        found = self._topic(topic)
        if not 0 <= partition < len(found.partitions):
            raise UnknownTopicOrPartition(
                f"topic {topic!r} has no partition {partition}"
                f" (it has {len(found.partitions)})")
        handle = found.partitions[partition]
        if self._running_actor(found, partition) is None:
            raise offline_error(handle.state)
        return handle

    def partitions(self, topic: str) -> tuple[PartitionHandle, ...]:
        """Every partition's handle, starting none (``offline`` says which are offline)."""
        return tuple(self._topic(topic).partitions)

    def log_end_offset(self, topic: str, partition: int) -> int:
        """A partition's log-end-offset, from its view or its segments' metadata (read now
        if the background survey has not reached it), starting no actor; -1 if unknown."""
        found = self._topics.get(topic)
        if found is None or not 0 <= partition < len(found.partitions):
            return -1
        handle = found.partitions[partition]
        if handle.state.known is None and handle.slot.actor is None:
            self._summarize(found, partition)
        return handle.state.high_watermark

    def compacted_partitions(self) -> tuple[tuple[PartitionHandle, TopicConfig, str], ...]:
        """For the log cleaner: each partition not offline of a topic whose cleanup.policy
        has ``compact``, with the topic's config and the partition's folder."""
        return tuple(
            (handle, topic.config, partition_dir(self.data_dir, topic.info.name, index))
            for topic in self._topics.values() if is_compacted(topic.config)
            for index, handle in enumerate(topic.partitions) if not handle.offline)

    def topic_partitions(
        self, names: Iterable[str] | None = None, allow_create: bool = False
    ) -> dict[str, tuple[TopicInfo, tuple[PartitionHandle, ...]] | KafkaError]:
        """Metadata in one call: each topic's entry and partition handles, every topic's
        (by name) or the ones ``names`` asks for, each ensured as :meth:`ensure_topic`
        does, a refusal (unknown, invalid name, disk full) in place of a topic."""
        found: dict[str, tuple[TopicInfo, tuple[PartitionHandle, ...]] | KafkaError] = {}
        for name in sorted(self._topics) if names is None else names:
            try:
                found[name] = (self.ensure_topic(name, allow_create), self.partitions(name))
            except KafkaError as error:
                found[name] = error
        return found

    def partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        """Partition count of each existing topic among ``topics``."""
        return {t: self._topics[t].info.partitions for t in topics if t in self._topics}

    def allocate_producer_id(self) -> int:
        """A producer id no producer has had, in this run or any before it."""
        if not self._producer_ids:
            with self._disk_writes():
                first = self._catalog.next_in_sequence(PRODUCER_ID_SEQUENCE, PRODUCER_ID_BLOCK)
            self._producer_ids = range(first, first + PRODUCER_ID_BLOCK)
        producer_id = self._producer_ids[0]
        self._producer_ids = self._producer_ids[1:]
        return producer_id

    # -- internals --------------------------------------------------------------------------

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            raise UnknownTopicOrPartition(f"topic {name!r} does not exist")
        return topic

    def _check_limits(self, name: str, adding: int) -> None:
        """Refuse to add ``adding`` partitions to topic ``name`` past a limit (module doc)."""
        per_request = self.config.max_partitions_per_request
        if adding > per_request:
            raise InvalidPartitions(
                f"topic {name!r}: {adding} partitions asked for, one request may add at most"
                f" {per_request} (max.partitions.per.request)")
        total = sum(len(topic.partitions) for topic in self._topics.values()) + adding
        if 0 <= self.max_partitions < total:
            raise PolicyViolation(
                f"topic {name!r}: {adding} more partitions would make {total}, over"
                f" max.partitions {self.max_partitions}")

    def _add_partitions(self, topic: _Topic, total: int) -> None:
        """Create partitions up to ``total``, their first segments written, none opened;
        raises the first one's failure to be made."""
        name = topic.info.name
        first: SegmentInfo | None = None  # copied as every other one's first segment
        for index in range(len(topic.partitions), total):
            self._remove_folders(name, [index])  # left by a crash after an earlier delete
            directory = partition_dir(self.data_dir, name, index)
            try:
                created = create_partition(directory, first)
            except KafkaError:
                raise
            except Exception as exc:
                raise KafkaStorageError(f"{directory}: {exc!r}") from exc
            first = first or created
            handle = self._new_handle(name, index)
            handle.state.summary = LogSummary((created,))
            topic.partitions.append(handle)

    def _new_handle(self, topic: str, index: int) -> PartitionHandle:
        return PartitionHandle(PartitionState(topic, index), PartitionSlot(self._send_wake))

    def _send_wake(self, wake: Wake) -> None:
        """A handle's way to the broker (any thread): start my actor, hand it this append."""
        tell_or_refuse(self.actor_ref, wake,
                       lambda: fail_future(wake.message.reply, wake.handle.restarting()))

    def _wake(self, wake: Wake) -> None:
        handle, message = wake.handle, wake.message
        state = handle.state
        topic = self._topics.get(state.topic)
        if (topic is None or state.partition >= len(topic.partitions)
                or topic.partitions[state.partition] is not handle):
            fail_future(message.reply, offline_error(state))  # deleted: says so
            return
        actor = self._running_actor(topic, state.partition)
        if actor is None:
            fail_future(message.reply, offline_error(state))
        else:
            tell_with_reply(actor.actor_ref, message, message.reply, handle.restarting)

    def _running_actor(self, topic: _Topic, index: int) -> Any:
        """The partition's running actor (a proxy), started first if none runs; None while
        it is offline (a full disk is tried again by its own timer)."""
        handle = topic.partitions[index]
        slot = handle.slot
        slot.used = time.monotonic()
        actor = slot.actor
        if actor is not None:
            if not actor.actor_ref.is_alive():  # failed: restart it now, not at its report
                self._restart_failed(topic, index)
            return slot.actor
        error = handle.state.error
        if error is not None and not isinstance(error, TooManyOpenFiles):
            return None
        self._open(topic, index)
        return slot.actor

    def _open(self, topic: _Topic, index: int) -> None:
        """Open one partition's log and start its actor; offline with the error if it fails."""
        handle = topic.partitions[index]
        key = (topic.info.name, index)
        closing = self._stopping.pop(key, None)
        if closing is not None:
            stop_actor(closing)  # its files are closed before they are opened again
        self._make_room()
        state = handle.state
        try:
            partition_log = self._open_log(partition_dir(self.data_dir, *key), topic.config)
        except KafkaError as exc:
            self._offline(state, exc)
            return
        broker = self.actor_ref
        ref = PartitionActor.start(
            state, partition_log, self._scheduler, self.config.log_retention_check_interval_ms,
            lambda failed: tell_if_alive(broker, failed), self._disk,
        )
        state.summary = None  # the view it published says more
        handle.slot.actor = ref.proxy()
        handle.slot.used = time.monotonic()
        self._running[key] = handle

    def _open_log(self, directory: str, config: TopicConfig) -> PartitionLog:
        """PartitionLog.open, any failure a KafkaError (EMFILE named as TooManyOpenFiles)."""
        try:
            return PartitionLog.open(
                directory, config,
                producer_id_expiration_ms=self.config.producer_id_expiration_ms)
        except KafkaError:
            raise
        except Exception as exc:
            raise (too_many_open_files(directory) if is_too_many_open_files(exc)
                   else KafkaStorageError(f"{directory}: {exc!r}")) from exc

    def _offline(self, state: PartitionState, error: KafkaError) -> None:
        """``state``'s partition offline with ``error``: one log line (for a full disk, the
        disk watch's, once for every partition; for the open-file limit, the first time
        only)."""
        if isinstance(error, DiskFull):
            self._disk.full(error)
        elif isinstance(error, TooManyOpenFiles):
            if not self._files_limit_logged:
                self._files_limit_logged = True
                log.error("partition offline", extra={"fields": {
                    "topic": state.topic, "partition": state.partition, "error": str(error)}})
        else:
            log.error("partition offline", extra={"fields": {
                "topic": state.topic, "partition": state.partition, "error": str(error)}})
        state.set_offline(error)

    # -- idle partitions --------------------------------------------------------------------

    def _quiet(self, handle: PartitionHandle) -> bool:
        """Whether the running actor may stop now: nothing in its inbox, no transaction
        open in its log (the last stable offset at the high watermark)."""
        actor, view = handle.slot.actor, handle.state.view
        return (actor is not None and view is not None
                and view.last_stable_offset >= view.high_watermark
                and actor.actor_ref.actor_inbox.qsize() == 0)

    def _make_room(self) -> None:
        """With ``partition.open.max`` running, close the least recently used quiet ones:
        a batch of them (1/EVICT_FRACTION of the limit), stopping side by side, so that
        opening partitions past the limit one after the other neither looks through every
        running one for each nor waits for each close's fsyncs in turn."""
        if len(self._running) < self.max_open:
            return
        quiet = sorted((handle for handle in self._running.values() if self._quiet(handle)),
                       key=lambda handle: handle.slot.used)
        batch = quiet[:max(len(self._running) - self.max_open + 1,
                           self.max_open // EVICT_FRACTION)]
        refs = [self._detach(handle) for handle in batch]
        for ref in refs:
            ref.stop(block=False)
        for ref, handle in zip(refs, batch, strict=True):
            stop_actor(ref)  # its files closed before more are opened
            self._schedule_due(handle)

    def _close(self, handle: PartitionHandle) -> None:
        """Begin stopping a running partition's actor (its files closed, its view kept);
        from now on its next use starts a new one; the idle sweep finishes the stop."""
        ref = self._detach(handle)
        ref.stop(block=False)
        self._stopping[(handle.state.topic, handle.state.partition)] = ref

    def _detach(self, handle: PartitionHandle) -> pykka.ActorRef[PartitionActor]:
        """Take a running partition's actor off its handle (its next use starts another)."""
        ref = handle.slot.actor.actor_ref
        handle.slot.actor = None
        del self._running[(handle.state.topic, handle.state.partition)]
        return ref

    def _schedule_sweep(self) -> None:
        broker = self.actor_ref
        delay = min(max(self._idle_s / 2, 0.05), IDLE_SWEEP_MAX_S)
        self._scheduler.call_later(delay, lambda: tell_if_alive(broker, SweepIdle()))

    def _sweep_idle(self) -> None:
        """Stop the actors unused for ``partition.idle.close.ms``; finish the stops begun."""
        now = time.monotonic()
        for handle in [h for h in self._running.values()
                       if now - h.slot.used >= self._idle_s and self._quiet(h)]:
            self._close(handle)
            log.debug("partition closed while idle", extra={"fields": {
                "topic": handle.state.topic, "partition": handle.state.partition}})
        for key, ref in [(k, r) for k, r in self._stopping.items() if not r.is_alive()]:
            del self._stopping[key]
            stop_actor(ref)  # its thread has ended, or ends once its files are closed
            topic = self._topics.get(key[0])
            if topic is not None and key[1] < len(topic.partitions):
                self._schedule_due(topic.partitions[key[1]])
        self._schedule_sweep()

    def _schedule_due(self, handle: PartitionHandle) -> None:
        """Note when a stopped partition's segment.ms or retention work is due, if ever."""
        state = handle.state
        known, topic = state.known, self._topics.get(state.topic)
        if known is None or topic is None:
            return
        due = maintenance_due_ms(known.segments, topic.config, self._retention_from_ms)
        if due is None:
            return
        heapq.heappush(self._due, (due, next(self._due_order), state.topic, state.partition))
        self._arm_due()

    def _arm_due(self) -> None:
        """Keep one timer at the earliest due time."""
        if not self._due:
            return
        first = self._due[0][0]
        if self._due_timer is not None:
            if self._due_at <= first:
                return
            self._due_timer.cancel()
        self._due_at = first
        broker = self.actor_ref
        self._due_timer = self._scheduler.call_later(
            max(first - wall_clock_ms(), 0) / 1000, lambda: tell_if_alive(broker, DueCheck()))

    def _due_check(self) -> None:
        """Start the stopped partitions whose maintenance is due, and have them do it."""
        self._due_timer = None
        now = wall_clock_ms()
        while self._due and self._due[0][0] <= now:
            _, _, name, index = heapq.heappop(self._due)
            topic = self._topics.get(name)
            if topic is None or index >= len(topic.partitions) or (name, index) in self._stopping:
                continue  # deleted; or closing, and scheduled again once closed
            handle = topic.partitions[index]
            known = handle.state.known
            if handle.slot.actor is not None or handle.offline or known is None:
                continue  # a running actor keeps its own timers
            due = maintenance_due_ms(known.segments, topic.config, self._retention_from_ms)
            if due is None:
                continue
            if due > now:  # the config changed meanwhile
                heapq.heappush(self._due, (due, next(self._due_order), name, index))
                continue
            retention = retention_due_ms(known.segments, topic.config)
            actor = self._running_actor(topic, index)  # its own timer rolls a segment due
            if actor is not None and retention is not None and max(
                    retention, self._retention_from_ms) <= now:
                tell_if_alive(actor.actor_ref, CheckRetention())
        self._arm_due()

    def _survey(self) -> None:
        """Summarize the next SURVEY_CHUNK partitions not opened since start-up, then let
        requests in before the next chunk."""
        for _ in range(SURVEY_CHUNK):
            if not self._unsurveyed:
                return
            name, index = self._unsurveyed.popleft()
            topic = self._topics.get(name)
            if topic is not None and index < len(topic.partitions):
                handle = topic.partitions[index]
                if handle.state.known is None and handle.slot.actor is None:
                    self._summarize(topic, index)
        tell_if_alive(self.actor_ref, Survey())

    def _finish_swap(self, topic: _Topic, index: int) -> None:
        """At start-up, before any reader looks at a partition's files: finish or undo a
        cleaning's swap a crash cut short (what opening the log does first), so that a
        restart leaves every folder whole, as it did when start-up opened each log."""
        directory = partition_dir(self.data_dir, topic.info.name, index)
        try:
            recover_swap(directory)
        except CorruptLog as exc:
            self._offline(topic.partitions[index].state, exc)
        except OSError:
            pass  # a missing folder or the open-file limit: its first use says which

    def _summarize(self, topic: _Topic, index: int) -> None:
        """A partition's figures and due maintenance from its segments' metadata rows. One
        whose files are damaged (CorruptLog) goes offline, alone; one that cannot be read
        for another reason (the open-file limit) stays unknown until its first use."""
        handle = topic.partitions[index]
        directory = partition_dir(self.data_dir, topic.info.name, index)
        try:
            handle.state.summary = read_summary(directory)
            handle.state.stats.cleaner = read_cleaner_state(directory)
        except CorruptLog as exc:
            self._offline(handle.state, exc)
            return
        except (KafkaError, OSError):
            return
        self._schedule_due(handle)

    # -- failures ---------------------------------------------------------------------------

    def _reopen_when_space(self, handle: PartitionHandle, delay_s: float = REOPEN_FIRST_S
                           ) -> None:
        """If a full disk kept the partition from opening, try again in ``delay_s``."""
        if handle.slot.actor is None and isinstance(handle.state.error, DiskFull):
            retry = ReopenPartition(handle.state.topic, handle.state.partition, delay_s)
            broker = self.actor_ref
            self._scheduler.call_later(delay_s, lambda: tell_if_alive(broker, retry))

    def _reopen(self, retry: ReopenPartition) -> None:
        """Try again to open a partition a full disk kept from opening (if it still is)."""
        topic = self._topics.get(retry.topic)
        if topic is None or retry.partition >= len(topic.partitions):
            return  # deleted meanwhile
        handle = topic.partitions[retry.partition]
        if handle.slot.actor is not None or not isinstance(handle.state.error, DiskFull):
            return
        self._open(topic, retry.partition)
        if handle.slot.actor is not None:
            self._disk.has_space()
        self._reopen_when_space(handle, min(retry.waited_s * 2, REOPEN_MAX_S))

    @contextlib.contextmanager
    def _disk_writes(self) -> Iterator[None]:
        """Tell the disk watch whether the writes of the block found room on the disk."""
        try:
            yield
        except DiskFull as exc:
            self._disk.full(exc)
            raise
        self._disk.has_space()

    def _restart(self, failed: PartitionFailed) -> None:
        """Reopen a failed partition's log from disk and start a new actor on it."""
        topic = self._topics.get(failed.topic)
        if topic is None or failed.partition >= len(topic.partitions):
            return
        actor = topic.partitions[failed.partition].slot.actor
        if actor is None or actor.actor_ref.actor_urn != failed.actor_urn:
            return
        self._restart_failed(topic, failed.partition)

    def _restart_failed(self, topic: _Topic, index: int) -> None:
        handle = topic.partitions[index]
        ref = handle.slot.actor.actor_ref
        handle.slot.actor = None
        self._running.pop((topic.info.name, index), None)
        stop_actor(ref)
        handle.state.stats.restarts += 1
        self._open(topic, index)
        self._reopen_when_space(handle)
        log.warning("partition restarted from disk", extra={"fields": {
            "topic": topic.info.name, "partition": index,
            "online": handle.slot.actor is not None}})

    def _stop_partitions(self, handles: Iterable[PartitionHandle]) -> None:
        refs = []
        for handle in handles:
            key = (handle.state.topic, handle.state.partition)
            if handle.slot.actor is not None:
                refs.append(handle.slot.actor.actor_ref)
                handle.slot.actor = None
            self._running.pop(key, None)
            closing = self._stopping.pop(key, None)
            if closing is not None:
                refs.append(closing)
        for ref in refs:
            ref.stop(block=False)
        for ref in refs:
            stop_actor(ref)

    def _remove_folders(self, topic: str, indexes: Iterable[int]) -> None:
        for index in indexes:
            directory = partition_dir(self.data_dir, topic, index)
            if os.path.isdir(directory):
                shutil.rmtree(directory)

    def _describe(self, topic: _Topic) -> TopicDescription:
        for index, handle in enumerate(topic.partitions):
            if handle.state.known is None and handle.slot.actor is None and not handle.offline:
                self._summarize(topic, index)  # not reached by the survey yet
        return TopicDescription(
            name=topic.info.name,
            partitions=tuple(_describe_partition(h.state) for h in topic.partitions),
            config=topic.config.to_mapping(),
            overrides=dict(topic.info.config),
            created_ms=topic.info.created_ms,
        )


def _describe_partition(state: PartitionState) -> PartitionDescription:
    """``error``: why it is offline, or what of it cannot be read (a damaged segment)."""
    view = state.known
    error = str(state.error) if state.error is not None else view and view.problem
    if view is None:
        return PartitionDescription(state.topic, state.partition, -1, -1, 0, 0, error)
    return PartitionDescription(
        state.topic, state.partition, view.log_start_offset, view.high_watermark,
        len(view.segments), sum(s.bytes for s in view.segments), error,
    )
