"""The copy loop: records from the source partitions to the same partitions on the target.

A confluent-kafka consumer (read_committed, assigned, never in a group) reads the source; an
idempotent producer writes each record with its key, value, headers and CreateTime to the
same partition number of the target topic, in order, so a retry never duplicates. Every
record's target offset is known before it is sent (eventstore.mirror.offset_map); the
producer reports only failed deliveries (no Python call per record), and each checkpoint
checks that every target partition ends where the offset map says: another writer on a
target partition stops the mirror before its offset map is stored wrong.

Crash safety (at-least-once sends, with the duplicates a crash would make detected and
skipped): ``checkpoint`` waits for the target to acknowledge everything sent, checks the
target partitions' ends, then commits the positions (eventstore.mirror.checkpoints).
``start`` resumes each partition at its checkpoint and, when the target partition ends past
the checkpoint's target offset (records acknowledged after the last checkpoint, then a
crash), skips that many source records instead of sending them again. A partition never
checkpointed gets its first checkpoint (source log start, target end) before anything is
sent.
"""

from __future__ import annotations

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
    source_dir: str | None = None  # a data directory read instead of the source's servers


def open_producer(sides: Sides) -> Producer:
    """The target's idempotent producer, compressing batches as asked; a record the target
    does not take fails the session (the only delivery reported back: no Python call for
    each record delivered)."""
    return Producer({**sides.target, "enable.idempotence": True,
                     "compression.type": sides.compression, "linger.ms": 5,
                     "delivery.report.only.error": True, "on_delivery": _refused})


def _refused(error: KafkaError, message: Message) -> None:
    raise MirrorError(f"the target refused a record for {message.topic()}-"
                      f"{message.partition()}: {error.name()}: {error.str()}")


def open_consumer(settings: Mapping[str, str], group: str) -> Consumer:
    """A reader of assigned partitions that commits nothing by itself; on the source it
    reports each partition's end (EOF), on the target it reads and writes checkpoints."""
    return Consumer({**settings, "group.id": group, "enable.auto.commit": False,
                     "isolation.level": "read_committed", "enable.partition.eof": True,
                     "auto.offset.reset": "earliest", "on_commit": checkpoints.answered})


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
    ended: set[SourceKey] = field(default_factory=set)  # read to the end, nothing since

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
        for plan in {plan for plan, _ in new}:  # both clients learn the new partitions now,
            self.producer.list_topics(plan.target, timeout=TIMEOUT_S)  # not at their next
            self.consumer.list_topics(plan.source, timeout=TIMEOUT_S)  # refresh (1 s)
        self.consumer.incremental_assign([
            TopicPartition(plan.source, p, self.maps[(plan.source, p)].source_next)
            for plan, p in new])
        return len(new)

    def step(self, batch: int = 1000) -> int:
        """Copy what the source has ready (waiting up to POLL_S for something when nothing
        is); the number of records and events read."""
        messages = (self.consumer.consume(batch, timeout=0)
                    or self.consumer.consume(1, timeout=POLL_S))
        by_key: dict[SourceKey, list[Message]] = {}
        ends: dict[SourceKey, int] = {}
        for message in messages:
            error = message.error()
            if error is None:
                key = (message.topic(), message.partition())
                records = by_key.get(key)
                if records is None:
                    by_key[key] = [message]
                else:
                    records.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                ends[(message.topic(), message.partition())] = message.offset()
            else:
                self.last_error = error.str()
        for key, records in by_key.items():
            self._copy(key, records)
            self.ended.discard(key)
        for key, end in ends.items():  # after the records: an end is at or past them
            self.maps[key] = self.maps[key].passed(end)
            if self.maps[key].source_next == end:  # else records came after the end
                self.ended.add(key)
        if by_key:
            self.producer.poll(0)
        return len(messages)

    def _copy(self, key: SourceKey, records: list[Message]) -> None:
        """Send one partition's ``records`` of a poll (rising offsets), less those before
        its position and those still to skip, and move its offset map past them."""
        position, first = self.maps[key], 0
        while first < len(records) and records[first].offset() < position.source_next:
            first += 1
        skip = min(self.skips.get(key, 0), len(records) - first)
        if skip:
            self.skips[key] -= skip
        topic, partition, produce = self.targets[key[0]], key[1], self.producer.produce
        for message in records[first + skip:]:
            kind, stamp = message.timestamp()
            try:
                produce(topic, message.value(), message.key(), partition,
                        headers=message.headers(), timestamp=stamp if kind else 0)
            except BufferError:
                self._produce_when_room(topic, message, stamp if kind else 0)
        self.copied += len(records) - first - skip
        if first < len(records):
            self.maps[key] = position.copied(*[m.offset() for m in records[first:]])

    def _produce_when_room(self, topic: str, message: Message, stamp: int) -> None:
        """Send ``message`` once the producer's queue has room (the target is slower)."""
        while True:
            self.producer.poll(0.1)
            try:
                self.producer.produce(topic, message.value(), message.key(),
                                      message.partition(), headers=message.headers(),
                                      timestamp=stamp)
                return
            except BufferError:
                continue

    def at_end(self) -> bool:
        """Whether every started partition was read to the end the source reported last
        (its EOF, or the high watermark of its last fetch, known without asking)."""
        return all(key in self.ended or position.source_next >= self.consumer.
                   get_watermark_offsets(TopicPartition(*key), cached=True)[1]
                   for key, position in self.maps.items())

    def caught_up(self) -> bool:
        """Whether every started partition is copied up to the source's end, asked now."""
        return not any(self.lag(watermarks(self.probe, list(self.maps))).values())

    def checkpoint(self, wait: bool = False) -> None:
        """Wait until the target acknowledged every record sent, check that the target
        partitions written to end where the offset maps say, then store the positions that
        moved since the last checkpoint; with ``wait``, until the target stored them (else
        a refusal fails a later checkpoint)."""
        if self.producer.flush(TIMEOUT_S) > 0:
            raise MirrorError("the target did not acknowledge the records in time")
        self.store.poll(0)  # the answers to earlier checkpoints
        moved = {key: m for key, m in self.maps.items() if self.saved.get(key) != m}
        self._check_ends([key for key, m in moved.items()
                          if m.target_next != self.saved[key].target_next])
        self._save(moved, wait)

    def _check_ends(self, keys: list[SourceKey]) -> None:
        """Each target partition of ``keys`` ends where the offset map says (past it by
        the records still to skip), else something else writes to it."""
        ends = watermarks(self.store, [(self.targets[t], p) for t, p in keys])
        for (topic, p), (_low, end) in zip(keys, ends.values(), strict=True):
            expected = self.maps[(topic, p)].target_next + self.skips.get((topic, p), 0)
            if end != expected:
                raise MirrorError(
                    f"{self.targets[topic]}-{p} ends at offset {end} on the target, where"
                    f" the mirror expected {expected}: does something else write to it?")

    def _save(self, maps: Mapping[SourceKey, PartitionMap], wait: bool = True) -> None:
        checkpoints.save(self.store, {(self.targets[t], p): m for (t, p), m in maps.items()},
                         wait)
        self.saved.update(maps)

    def target_maps(self) -> dict[tuple[str, int], PartitionMap]:
        """The checkpointed positions by target partition (what the target holds)."""
        return {(self.targets[t], p): m for (t, p), m in self.saved.items()}

    def lag(self, ends: Mapping[SourceKey, tuple[int, int]]) -> dict[SourceKey, int]:
        """Per source partition, the source offsets between the copy and the source's end
        (an upper bound of the records behind: gaps count)."""
        return {key: max(0, high - max(low, self.maps[key].source_next))
                for key, (low, high) in ends.items() if key in self.maps}
