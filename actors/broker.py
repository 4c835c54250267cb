"""The broker actor: Kafka's topic manager and the supervisor of every partition actor.

It owns its own connection to the catalog and the partition actors: at start-up it opens
every partition's log and starts one actor per partition; it creates, describes and
deletes topics, increases partition counts and applies config changes live; when a
partition actor fails it reopens the log from disk and starts a new actor. A partition
whose files cannot be opened (CorruptLog, KafkaStorageError) is reported offline with its
error while every other partition keeps serving; one a full disk kept from opening is
tried again, soon and then every REOPEN_MAX_S, until it opens. Its DiskWatch logs the disk
filling and recovering once each, for the partition actors and the catalog alike.

Topic creation writes the partition folders before the catalog row and deletion removes
the row before the folders, so a crash in between leaves at worst stray folders, which
the next creation of that name clears; a creation that fails (a full disk) removes the
folders it made before it answers.

Limits keep a request from taking the server down: one request adds at most
``max.partitions.per.request`` partitions (INVALID_PARTITIONS past it), the server holds at
most ``max.partitions`` (by default what the open-file limit holds) and a topic is created
only while the open files it needs are free (POLICY_VIOLATION past either, naming the
limit). At start-up, partitions the open-file limit has no room for are left offline,
with one line saying how many and which limit to raise, so that the listener and the
catalog keep the files they need.

It also hands out idempotent producers' ids (Kafka's InitProducerId), unique and never
reused: blocks of them are reserved from the catalog's durable counter, so a restart
skips what was left of a block rather than handing any id out twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pykka

from actors.disk import DiskWatch
from actors.partition import (
    PartitionActor,
    PartitionFailed,
    PartitionHandle,
    PartitionState,
    offline_error,
)
from actors.runtime import Actor, Scheduler, stop_actor, tell_if_alive
from eventstore.clock import wall_clock_ms
from eventstore.config import ServerConfig, TopicConfig, validate_topic_config
from eventstore.errors import (
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
    check_room,
    default_max_partitions,
    is_too_many_open_files,
    open_file_limit,
    partitions_with_room,
    too_many_open_files,
)
from eventstore.storage.catalog import Catalog, TopicInfo, partition_dir, validate_topic_name
from eventstore.storage.compaction import is_compacted
from eventstore.storage.log import PartitionLog

log = logging.getLogger(__name__)

PRODUCER_ID_SEQUENCE = "producer.id"
PRODUCER_ID_BLOCK = 1000  # ids reserved per catalog write, as Kafka's ProducerIdManager does
# A partition a full disk kept from opening is tried again after REOPEN_FIRST_S, then after
# twice as long each time, up to REOPEN_MAX_S: back soon after space is freed, cheap before.
REOPEN_FIRST_S = 0.25
REOPEN_MAX_S = 2.0


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
class _Partition:
    state: PartitionState
    handle: PartitionHandle


@dataclass
class _Topic:
    info: TopicInfo
    config: TopicConfig
    partitions: list[_Partition] = field(default_factory=list)


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
        self.max_partitions = (default_max_partitions() if config.max_partitions == -1
                               else config.max_partitions)
        self._files_limit_logged = False
        self._topics: dict[str, _Topic] = {}
        self._producer_ids = range(0)  # what is left of the reserved block

    # -- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        room = partitions_with_room()
        unopened = 0
        for info in self._catalog.topics():
            topic = self._topics[info.name] = _Topic(info, self.config.topic_config(info.config))
            for index in range(info.partitions):
                if room > 0:
                    room -= 1
                    partition = self._open_partition(topic, index, create=False)
                else:
                    partition = self._offline(PartitionState(info.name, index),
                                              too_many_open_files(f"{info.name}-{index}"))
                topic.partitions.append(partition)
                unopened += isinstance(partition.state.error, TooManyOpenFiles)
                self._reopen_when_space(partition)
        if unopened:
            log.error("partitions left offline: too many open files", extra={"fields": {
                "offline": unopened, "open_file_limit": open_file_limit(),
                "hint": "raise the open-file limit (ulimit -n) and restart"}})

    def on_stop(self) -> None:
        for topic in self._topics.values():
            self._stop_partitions(topic.partitions)
        self._topics.clear()
        self._catalog.close()

    def on_receive(self, message: object) -> None:
        if isinstance(message, PartitionFailed):
            self._restart(message)
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
        """Create a topic (``num.partitions`` partitions unless told) and start its actors.

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
        for partition in topic.partitions:
            partition.state.set_offline(gone)
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
        applying = [(partition, partition.handle.actor.update_config(config))
                    for partition in topic.partitions if partition.handle.actor is not None]
        for partition, future in applying:
            self._check_applied(name, partition.handle.state.partition, future)
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
        """The handle of one online partition; UnknownTopicOrPartition or KafkaStorageError."""
        found = self._topic(topic)
        if not 0 <= partition < len(found.partitions):
            raise UnknownTopicOrPartition(
                f"topic {topic!r} has no partition {partition}"
                f" (it has {len(found.partitions)})")
        handle = found.partitions[partition].handle
        if handle.actor is None:
            raise offline_error(handle.state)
        return handle

    def partitions(self, topic: str) -> tuple[PartitionHandle, ...]:
        """Every partition's handle, offline ones included (their ``actor`` is None)."""
        return tuple(p.handle for p in self._topic(topic).partitions)

    def compacted_partitions(self) -> tuple[tuple[PartitionHandle, TopicConfig, str], ...]:
        """For the log cleaner: each online partition of a topic whose cleanup.policy has
        ``compact``, with the topic's config and the partition's folder."""
        return tuple(
            (partition.handle, topic.config,
             partition_dir(self.data_dir, topic.info.name, index))
            for topic in self._topics.values() if is_compacted(topic.config)
            for index, partition in enumerate(topic.partitions)
            if partition.handle.actor is not None)

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
        if total > self.max_partitions:
            derived = (f", derived from the open-file limit {open_file_limit()} (ulimit -n)"
                       if self.config.max_partitions == -1 else "")
            raise PolicyViolation(
                f"topic {name!r}: {adding} more partitions would make {total}, over"
                f" max.partitions {self.max_partitions}{derived}")
        check_room(adding, f"topic {name!r}")

    def _add_partitions(self, topic: _Topic, total: int) -> None:
        """Create partitions up to ``total``; raises the first one's failure to open."""
        name = topic.info.name
        for index in range(len(topic.partitions), total):
            self._remove_folders(name, [index])  # left by a crash after an earlier delete
            topic.partitions.append(self._open_partition(topic, index, create=True))

    def _open_partition(self, topic: _Topic, index: int, *, create: bool,
                        state: PartitionState | None = None) -> _Partition:
        """Open one partition's log and start its actor; offline with the error if it fails,
        or, with ``create``, raise the error (the caller refuses the creation)."""
        name = topic.info.name
        state = state or PartitionState(name, index)
        directory = partition_dir(self.data_dir, name, index)
        try:
            partition_log = PartitionLog.open(
                directory, topic.config, create=create,
                producer_id_expiration_ms=self.config.producer_id_expiration_ms)
        except KafkaError as exc:
            if create:
                raise
            return self._offline(state, exc)
        except Exception as exc:
            error = (too_many_open_files(directory) if is_too_many_open_files(exc)
                     else KafkaStorageError(f"{directory}: {exc!r}"))
            if create:
                raise error from exc
            return self._offline(state, error)
        broker = self.actor_ref
        ref = PartitionActor.start(
            state, partition_log, self._scheduler, self.config.log_retention_check_interval_ms,
            lambda failed: tell_if_alive(broker, failed), self._disk,
        )
        return _Partition(state, PartitionHandle(state, ref.proxy()))

    def _offline(self, state: PartitionState, error: KafkaError) -> _Partition:
        """``state``'s partition offline with ``error``: one log line (for a full disk, the
        disk watch's, once for every partition; for the open-file limit, the first time
        only: start-up counts the rest)."""
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
        return _Partition(state, PartitionHandle(state, None))

    def _reopen_when_space(self, partition: _Partition, delay_s: float = REOPEN_FIRST_S
                           ) -> None:
        """If a full disk kept ``partition`` from opening, try again in ``delay_s``."""
        if partition.handle.actor is None and isinstance(partition.state.error, DiskFull):
            retry = ReopenPartition(partition.state.topic, partition.state.partition, delay_s)
            broker = self.actor_ref
            self._scheduler.call_later(delay_s, lambda: tell_if_alive(broker, retry))

    def _reopen(self, retry: ReopenPartition) -> None:
        """Try again to open a partition a full disk kept from opening (if it still is)."""
        topic = self._topics.get(retry.topic)
        if topic is None or retry.partition >= len(topic.partitions):
            return  # deleted meanwhile
        current = topic.partitions[retry.partition]
        if current.handle.actor is not None or not isinstance(current.state.error, DiskFull):
            return
        reopened = self._open_partition(
            topic, retry.partition, create=False, state=current.state)
        topic.partitions[retry.partition] = reopened
        if reopened.handle.actor is not None:
            self._disk.has_space()
        self._reopen_when_space(reopened, min(retry.waited_s * 2, REOPEN_MAX_S))

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
        current = topic.partitions[failed.partition]
        actor = current.handle.actor
        if actor is None or actor.actor_ref.actor_urn != failed.actor_urn:
            return
        stop_actor(actor.actor_ref)
        current.state.stats.restarts += 1
        restarted = self._open_partition(
            topic, failed.partition, create=False, state=current.state)
        topic.partitions[failed.partition] = restarted
        self._reopen_when_space(restarted)
        log.warning("partition restarted from disk", extra={"fields": {
            "topic": failed.topic, "partition": failed.partition,
            "online": restarted.handle.actor is not None}})

    @staticmethod
    def _stop_partitions(partitions: Iterable[_Partition]) -> None:
        refs = [p.handle.actor.actor_ref for p in partitions if p.handle.actor is not None]
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
        return TopicDescription(
            name=topic.info.name,
            partitions=tuple(_describe_partition(p.state) for p in topic.partitions),
            config=topic.config.to_mapping(),
            overrides=dict(topic.info.config),
            created_ms=topic.info.created_ms,
        )


def _describe_partition(state: PartitionState) -> PartitionDescription:
    """``error``: why it is offline, or what of it cannot be read (a damaged segment)."""
    view = state.view
    error = str(state.error) if state.error is not None else view and view.problem
    if view is None:
        return PartitionDescription(state.topic, state.partition, -1, -1, 0, 0, error)
    return PartitionDescription(
        state.topic, state.partition, view.log_start_offset, view.high_watermark,
        len(view.segments), sum(s.bytes for s in view.segments), error,
    )
