"""The copy loop: records from the source partitions to the same partitions on the target.

A confluent-kafka consumer (read_committed, assigned, never in a group) reads the source; an
idempotent producer writes each record with its key, value, headers and CreateTime to the
same partition number of the target topic, in order, so a retry never duplicates. Every
record's target offset is known before it is sent (eventstore.mirror.offset_map) and checked
when the target acknowledges it: another writer on a target partition stops the mirror
rather than making its offset map wrong.

Crash safety (at-least-once sends, with the duplicates a crash would make detected and
skipped): ``checkpoint`` waits for the target to acknowledge everything sent, then commits
the positions (eventstore.mirror.checkpoints). ``start`` resumes each partition at its
checkpoint and, when the target partition ends past the checkpoint's target offset (records
acknowledged after the last checkpoint, then a crash), skips that many source records
instead of sending them again. A partition never checkpointed gets its first checkpoint
(source log start, target end) before anything is sent.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from eventstore.mirror import checkpoints
from eventstore.mirror.offset_map import PartitionMap, resume
from eventstore.mirror.plan import TopicPlan
from eventstore.mirror.topics import TIMEOUT_S, MirrorError

POLL_S = 0.2
SourceKey = tuple[str, int]


@dataclass(frozen=True)
class Sides:
    """Client settings of both sides (``bootstrap.servers`` and any passed through)."""

    source: Mapping[str, str]
    target: Mapping[str, str]
    compression: str = "none"
    group: str = "eventstore-mirror"


def open_producer(sides: Sides) -> Producer:
    """The target's idempotent producer, compressing batches as asked."""
    return Producer({**sides.target, "enable.idempotence": True,
                     "compression.type": sides.compression, "linger.ms": 5})


def open_consumer(settings: Mapping[str, str], group: str) -> Consumer:
    """A reader of assigned partitions that commits nothing by itself; on the source it
    reports each partition's end (EOF), on the target it reads and writes checkpoints."""
    return Consumer({**settings, "group.id": group, "enable.auto.commit": False,
                     "isolation.level": "read_committed", "enable.partition.eof": True,
                     "auto.offset.reset": "earliest"})


def watermarks(consumer: Consumer, keys: list[tuple[str, int]]
               ) -> dict[tuple[str, int], tuple[int, int]]:
    """The (log-start, end) of each partition ``keys`` names, asked of the broker."""
    try:
        return {(topic, p): _watermarks(consumer, topic, p) for topic, p in keys}
    except Exception as error:  # KafkaException, or None unpacked after a timeout
        raise MirrorError(f"cannot read the partitions' offsets: {error}") from error


def _watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    """One partition's; a partition added since the client last read the topic's metadata
    is unknown to it until it reads them again."""
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                              timeout=TIMEOUT_S)
    except KafkaException as error:
        if error.args[0].code() != KafkaError._UNKNOWN_PARTITION:
            raise
        consumer.list_topics(topic, timeout=TIMEOUT_S)
        return consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                              timeout=TIMEOUT_S)


@dataclass
class Copier:
    """Copies the started partitions; ``step`` moves what one poll brought."""

    consumer: Consumer
    producer: Producer
    store: Consumer
    probe: Consumer  # the source's offsets, asked on a connection no fetch long-polls
    targets: dict[str, str] = field(default_factory=dict)
    maps: dict[SourceKey, PartitionMap] = field(default_factory=dict)
    skips: dict[SourceKey, int] = field(default_factory=dict)
    saved: dict[SourceKey, PartitionMap] = field(default_factory=dict)
    copied: int = 0
    last_error: str | None = None

    def start(self, plans: tuple[TopicPlan, ...]) -> int:
        """Start copying the partitions of ``plans`` not copied yet, each from its
        checkpoint; the number started."""
        new = [(plan, p) for plan in plans for p in range(plan.partitions)
               if (plan.source, p) not in self.maps]
        if not new:
            return 0
        self.targets.update({plan.source: plan.target for plan, _ in new})
        stored = checkpoints.load(self.store, [(plan.target, p) for plan, p in new])
        target_ends = watermarks(self.store, [(plan.target, p) for plan, p in new])
        source_ends = watermarks(self.probe, [(plan.source, p) for plan, p in new])
        first = {}
        for plan, p in new:
            key, low = (plan.source, p), source_ends[(plan.source, p)][0]
            end = target_ends[(plan.target, p)][1]
            checkpoint = stored.get((plan.target, p))
            if checkpoint is None:
                self.maps[key] = first[key] = PartitionMap(low, end)
                continue
            try:
                skip = resume(checkpoint, end)
            except ValueError as error:
                raise MirrorError(f"{plan.target}-{p}: {error}") from error
            if skip and low > checkpoint.source_next:
                raise MirrorError(
                    f"{plan.source}-{p}: the source's log start moved to {low}, past the"
                    f" checkpoint ({checkpoint.source_next}), while {skip} records sent after"
                    " it are on the target: which source records they were is lost")
            self.maps[key] = self.saved[key] = checkpoint
            if skip:
                self.skips[key] = skip
        self._save(first)
        for target in {plan.target for plan, _ in new}:  # the producer learns new partitions
            self.producer.list_topics(target, timeout=TIMEOUT_S)
        self.consumer.incremental_assign([
            TopicPartition(plan.source, p, self.maps[(plan.source, p)].source_next)
            for plan, p in new])
        return len(new)

    def step(self, batch: int = 1000) -> int:
        """Copy what one poll of the source brings; the number of records read."""
        messages = self.consumer.consume(batch, timeout=POLL_S)
        maps, skips = self.maps, self.skips
        for message in messages:
            key = (message.topic(), message.partition())
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    maps[key] = maps[key].passed(message.offset())
                else:
                    self.last_error = error.str()
                continue
            offset, position = message.offset(), maps[key]
            if offset < position.source_next:
                continue
            if skips.get(key):
                skips[key] -= 1
            else:
                self._produce(message, position.target_next)
                self.copied += 1
            maps[key] = position.copied(offset)
        self.producer.poll(0)
        return len(messages)

    def _produce(self, message: Message, expected: int) -> None:
        kind, stamp = message.timestamp()
        extra = {} if kind == 0 else {"timestamp": stamp}
        target = self.targets[message.topic()]
        while True:
            try:
                self.producer.produce(
                    target, value=message.value(), key=message.key(),
                    partition=message.partition(), headers=message.headers(),
                    on_delivery=functools.partial(self._delivered, expected), **extra)
                return
            except BufferError:
                self.producer.poll(0.1)

    def _delivered(self, expected: int, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.last_error = error.str()
            raise MirrorError(f"the target refused a record for {message.topic()}-"
                              f"{message.partition()}: {error.name()}: {error.str()}")
        if message.offset() != expected:
            raise MirrorError(
                f"the target wrote a record to {message.topic()}-{message.partition()} at"
                f" offset {message.offset()}, where the mirror expected {expected}: does"
                " something else write to it?")

    def checkpoint(self) -> None:
        """Wait until the target acknowledged every record sent, then store the positions
        that moved since the last checkpoint."""
        if self.producer.flush(TIMEOUT_S) > 0:
            raise MirrorError("the target did not acknowledge the records in time")
        self._save({key: m for key, m in self.maps.items() if self.saved.get(key) != m})

    def _save(self, maps: Mapping[SourceKey, PartitionMap]) -> None:
        checkpoints.save(self.store, {(self.targets[t], p): m for (t, p), m in maps.items()})
        self.saved.update(maps)

    def target_maps(self) -> dict[tuple[str, int], PartitionMap]:
        """The checkpointed positions by target partition (what the target holds)."""
        return {(self.targets[t], p): m for (t, p), m in self.saved.items()}

    def lag(self, ends: Mapping[SourceKey, tuple[int, int]]) -> dict[SourceKey, int]:
        """Per source partition, the source offsets between the copy and the source's end
        (an upper bound of the records behind: gaps count)."""
        return {key: max(0, high - max(low, self.maps[key].source_next))
                for key, (low, high) in ends.items() if key in self.maps}
