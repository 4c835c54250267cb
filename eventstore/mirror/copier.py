"""The copy loop: records from the source partitions to the same partitions on the target.

A confluent-kafka consumer assigned every planned source partition reads them; an
idempotent producer writes each record with its key, value, headers and CreateTime to the
same partition number, so a retry never duplicates and the order per partition is kept.

Where to start: a target partition's end, read from the target (no position of our own yet),
taken as the source offset to resume at, which holds while the target partition was empty
when the mirror first ran and the source partition's offsets have no gaps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from eventstore.mirror.plan import TopicPlan
from eventstore.mirror.topics import TIMEOUT_S, MirrorError

POLL_S = 0.2


@dataclass(frozen=True)
class Sides:
    """Client settings of both sides (``bootstrap.servers`` and any passed through)."""

    source: Mapping[str, str]
    target: Mapping[str, str]
    compression: str = "none"


@dataclass
class Progress:
    """Per source partition: the next offset to copy; the last delivery error if any."""

    next_offset: dict[tuple[str, int], int] = field(default_factory=dict)
    copied: int = 0
    last_error: str | None = None


def open_producer(sides: Sides) -> Producer:
    """The target's idempotent producer, compressing batches as asked."""
    return Producer({**sides.target, "enable.idempotence": True,
                     "compression.type": sides.compression, "linger.ms": 5})


def open_consumer(sides: Sides) -> Consumer:
    """The source's reader: assigned partitions, no group commits of its own."""
    return Consumer({**sides.source, "group.id": "eventstore-mirror",
                     "enable.auto.commit": False, "isolation.level": "read_committed",
                     "enable.partition.eof": False})


def target_ends(probe: Consumer, plans: tuple[TopicPlan, ...]) -> dict[tuple[str, int], int]:
    """The end (high watermark) of each target partition of ``plans``, by source partition."""
    return {(plan.source, p): probe.get_watermark_offsets(
                TopicPartition(plan.target, p), timeout=TIMEOUT_S)[1]
            for plan in plans for p in range(plan.partitions)}


def source_ends(consumer: Consumer, plans: tuple[TopicPlan, ...]
                ) -> dict[tuple[str, int], tuple[int, int]]:
    """The (log-start, end) of each planned source partition."""
    return {(plan.source, p): consumer.get_watermark_offsets(
                TopicPartition(plan.source, p), timeout=TIMEOUT_S)
            for plan in plans for p in range(plan.partitions)}


@dataclass
class Copier:
    """Copies the planned partitions; ``step`` moves what one poll brought."""

    sides: Sides
    consumer: Consumer
    producer: Producer
    targets: dict[str, str] = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)

    def assign(self, plans: tuple[TopicPlan, ...], starts: Mapping[tuple[str, int], int]
               ) -> None:
        """Read every partition of ``plans`` from ``starts`` (source offsets; beginning when
        missing), keeping the positions of partitions already read."""
        self.targets = {plan.source: plan.target for plan in plans}
        for key, offset in starts.items():
            self.progress.next_offset.setdefault(key, offset)
        self.consumer.assign([
            TopicPartition(plan.source, p,
                           self.progress.next_offset.get((plan.source, p), OFFSET_BEGINNING))
            for plan in plans for p in range(plan.partitions)])

    def step(self, batch: int = 1000) -> int:
        """Copy what one poll of the source brings; the number of records."""
        messages = self.consumer.consume(batch, timeout=POLL_S)
        count = 0
        for message in messages:
            if message.error() is not None:
                self.progress.last_error = message.error().str()
                continue
            kind, stamp = message.timestamp()
            self._produce(message, stamp if kind != 0 else None)
            self.progress.next_offset[(message.topic(), message.partition())] = (
                message.offset() + 1)
            count += 1
        self.producer.poll(0)
        self.progress.copied += count
        return count

    def _produce(self, message: object, stamp: int | None) -> None:
        extra = {} if stamp is None else {"timestamp": stamp}
        while True:
            try:
                self.producer.produce(
                    self.targets[message.topic()], value=message.value(), key=message.key(),
                    partition=message.partition(), headers=message.headers(),
                    on_delivery=self._delivered, **extra)
                return
            except BufferError:
                self.producer.poll(0.1)

    def _delivered(self, error: KafkaError | None, _message: object) -> None:
        if error is not None:
            self.progress.last_error = error.str()
            if error.fatal() or not error.retriable():
                raise MirrorError(f"the target refused a record: {error.name()}: {error.str()}")

    def flush(self) -> None:
        """Wait until the target acknowledged every record produced."""
        if self.producer.flush(TIMEOUT_S) > 0:
            raise MirrorError("the target did not acknowledge the records in time")


def caught_up(ends: Mapping[tuple[str, int], tuple[int, int]],
              positions: Mapping[tuple[str, int], int]) -> bool:
    """Whether every partition's copy position reached its source end (an empty or fully
    removed partition counts as caught up)."""
    return all(positions.get(key, low) >= high or low >= high
               for key, (low, high) in ends.items())


def run(copier: Copier, refresh: Callable[[], tuple[TopicPlan, ...]],
        until_caught_up: bool, stop: Callable[[], bool], every_s: float = 5.0,
        clock: Callable[[], float] | None = None) -> None:
    """Copy until caught up (when asked) or until ``stop``; ``refresh`` re-plans (new topics,
    new partitions) every ``every_s`` seconds and on start."""
    import time

    now = clock or time.monotonic
    plans = refresh()
    planned_at = now()
    while not stop():
        if now() - planned_at >= every_s:
            fresh = refresh()
            if fresh != plans:
                plans = fresh
                copier.assign(plans, {})
            planned_at = now()
        if copier.step() == 0 and until_caught_up:
            ends = source_ends(copier.consumer, plans)
            if caught_up(ends, _positions(copier, ends)):
                copier.flush()
                return
    copier.flush()


def _positions(copier: Copier, ends: Mapping[tuple[str, int], tuple[int, int]]
               ) -> dict[tuple[str, int], int]:
    """The next offset per partition: copied ones, else where the consumer stands."""
    positions = dict(copier.progress.next_offset)
    for tp in copier.consumer.position([TopicPartition(t, p) for t, p in ends]):
        if tp.offset >= 0:
            positions[(tp.topic, tp.partition)] = max(positions.get((tp.topic, tp.partition),
                                                                    0), tp.offset)
    return positions
