"""One producer and consumer shape over both targets: the embedded store and a Kafka server.

The workers (``workers.py``) only see the small interfaces below, so a scenario runs
unchanged in-process (``EventStore.open``) or over the wire (confluent-kafka against
``eventstore serve``). Acknowledgements go to an :class:`AckSink` as (topic, partition,
offset, record id); consumers yield (topic, partition, offset, value) and report
rebalances to a :class:`RebalanceHooks`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import KafkaException
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from eventstore import EventStore
from eventstore.errors import KafkaError

from .scenario import GroupSpec, TopicSpec

Record = tuple[str, int, int, bytes]  # topic, partition, offset, value
TP = tuple[str, int]
AUTO_COMMIT_MS = 1000
ADMIN_TIMEOUT_S = 10.0
MIN_MESSAGE_MAX_BYTES = 1000  # librdkafka's least message.max.bytes


class AckSink(Protocol):
    def acked(self, topic: str, partition: int, offset: int, ident: int) -> None: ...

    def failed(self, error: str) -> None: ...


class RebalanceHooks(Protocol):
    def revoked(self, partitions: set[TP]) -> None: ...

    def assigned(self, partitions: set[TP]) -> None: ...


@dataclass(frozen=True)
class PartitionOffsets:
    """What the store says about one partition; ``segments`` is None over the wire."""

    log_start_offset: int
    log_end_offset: int
    segments: int | None = None


class ProducerClient(Protocol):
    def send(self, topic: str, value: bytes, key: bytes | None, ident: int) -> None:
        """Queue one record (blocks while the client's buffer is full)."""

    def service(self) -> None:
        """Hand finished acknowledgements to the sink without blocking."""

    def flush(self, timeout_s: float) -> None:
        """Wait for every queued record's acknowledgement and hand them over."""

    def close(self) -> None: ...


class ConsumerClient(Protocol):
    errors: Counter[str]

    def poll(self, timeout_s: float) -> Iterable[Record]:
        """Wait up to ``timeout_s`` for records; the waiting is over when this returns."""

    def log_start(self, topic: str, partition: int) -> int:
        """The partition's log-start-offset now (asked only when offsets jump)."""

    def close(self) -> None: ...


class Target(Protocol):
    name: str

    def create_topics(self, topics: Iterable[TopicSpec]) -> None: ...

    def producer(self, linger_ms: int, sink: AckSink) -> ProducerClient: ...

    def consumer(self, group: GroupSpec, hooks: RebalanceHooks) -> ConsumerClient: ...

    def log_offsets(self, topics: Iterable[TopicSpec]) -> dict[TP, PartitionOffsets]: ...

    def high_watermarks(self, topics: Iterable[TopicSpec]) -> dict[TP, int]:
        """Each partition's log-end-offset now; asked every tick, so it must be cheap."""

    def committed(self, group: str, partitions: Iterable[TP]) -> dict[TP, int | None]: ...

    def close(self) -> None: ...


# -- the embedded store ---------------------------------------------------------------------


class EmbeddedProducer:
    """``store.producer()``; futures are checked in send order, none waited for."""

    def __init__(self, store: EventStore, linger_ms: int, sink: AckSink) -> None:
        self._producer = store.producer(linger_ms=linger_ms, batch_size=256 * 1024)
        self._sink = sink
        self._pending: deque[tuple[Any, int]] = deque()

    def send(self, topic: str, value: bytes, key: bytes | None, ident: int) -> None:
        try:
            self._pending.append((self._producer.send(topic, value, key=key), ident))
        except KafkaError as exc:
            self._sink.failed(type(exc).__name__)

    def service(self) -> None:
        pending, sink = self._pending, self._sink
        while pending and pending[0][0].is_done:
            future, ident = pending.popleft()
            meta = future.value
            if meta is None:
                sink.failed(type(future.exception).__name__)
            else:
                sink.acked(meta.topic, meta.partition, meta.offset, ident)

    def flush(self, timeout_s: float) -> None:
        self._producer.flush(timeout_s)
        self.service()

    def close(self) -> None:
        self._producer.close()
        self.service()


class _Listener:
    """The embedded consumer's rebalance listener, passing topic-partition pairs on."""

    def __init__(self, hooks: RebalanceHooks) -> None:
        self._hooks = hooks

    def on_partitions_revoked(self, revoked: set) -> None:
        self._hooks.revoked({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned: set) -> None:
        self._hooks.assigned({(tp.topic, tp.partition) for tp in assigned})


class EmbeddedConsumer:
    """``store.consumer()`` in a group, auto-committing (also on revoke and close)."""

    def __init__(self, store: EventStore, group: GroupSpec, hooks: RebalanceHooks) -> None:
        self._store = store
        self.errors: Counter[str] = Counter()
        self._consumer = store.consumer(
            group_id=group.name, auto_offset_reset="earliest", enable_auto_commit=True,
            auto_commit_interval_ms=AUTO_COMMIT_MS, max_poll_records=group.max_poll_records,
            heartbeat_interval_ms=group.heartbeat_interval_ms,
            session_timeout_ms=group.session_timeout_ms)
        self._consumer.subscribe(group.topics, listener=_Listener(hooks))

    def poll(self, timeout_s: float) -> Iterator[Record]:
        records = self._consumer.poll(timeout_ms=int(timeout_s * 1000))
        return ((r.topic, r.partition, r.offset, r.value) for r in records)

    def log_start(self, topic: str, partition: int) -> int:
        return self._store.describe_topic(topic).partitions[partition].log_start_offset

    def close(self) -> None:
        self._consumer.close()


class EmbeddedTarget:
    """An in-process store on ``data_dir`` with the scenario's server keys."""

    name = "embedded"

    def __init__(self, data_dir: str, config: Mapping[str, Any]) -> None:
        self.store = EventStore.open(data_dir, config=config)
        self._states: dict[str, list[Any]] = {}

    def create_topics(self, topics: Iterable[TopicSpec]) -> None:
        for topic in topics:
            self.store.create_topic(topic.name, topic.partitions, topic.config)

    def producer(self, linger_ms: int, sink: AckSink) -> EmbeddedProducer:
        return EmbeddedProducer(self.store, linger_ms, sink)

    def consumer(self, group: GroupSpec, hooks: RebalanceHooks) -> EmbeddedConsumer:
        return EmbeddedConsumer(self.store, group, hooks)

    def log_offsets(self, topics: Iterable[TopicSpec]) -> dict[TP, PartitionOffsets]:
        return {(p.topic, p.partition): PartitionOffsets(p.log_start_offset, p.log_end_offset,
                                                         p.segments)
                for topic in topics for p in self.store.describe_topic(topic.name).partitions}

    def high_watermarks(self, topics: Iterable[TopicSpec]) -> dict[TP, int]:
        """Read from the partitions' published states: no actor round trip."""
        found = {}
        for topic in topics:
            states = self._states.get(topic.name)
            if states is None:
                handles = self.store.system.broker.partitions(topic.name).get()
                states = self._states[topic.name] = [h.state for h in handles]
            for state in states:
                found[topic.name, state.partition] = state.high_watermark
        return found

    def committed(self, group: str, partitions: Iterable[TP]) -> dict[TP, int | None]:
        found = {(p.topic, p.partition): p.committed_offset
                 for p in self.store.describe_group(group).partitions}
        return {tp: found.get(tp) for tp in partitions}

    def close(self) -> None:
        self.store.close()


# -- a server over the Kafka protocol (confluent-kafka) -------------------------------------

_COMMON = {"log.connection.close": False}


class WireProducer:
    """A confluent-kafka Producer; delivery reports arrive in ``poll``."""

    def __init__(self, bootstrap: str, linger_ms: int, sink: AckSink) -> None:
        self._sink = sink
        self._producer = KafkaProducer({
            "bootstrap.servers": bootstrap, "linger.ms": linger_ms, "acks": "all",
            "batch.size": 256 * 1024, **_COMMON})

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self._sink.failed(error.name())
        else:
            ident = int.from_bytes(message.value()[:8], "big")
            self._sink.acked(message.topic(), message.partition(), message.offset(), ident)

    def send(self, topic: str, value: bytes, key: bytes | None, ident: int) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._delivered)
                return
            except BufferError:  # the local queue is full: serve deliveries, then retry
                self._producer.poll(0.01)

    def service(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        self._producer.flush(timeout_s)

    def close(self) -> None:
        self._producer.flush(ADMIN_TIMEOUT_S)


def _read_ahead(kbytes: int | None) -> dict[str, int]:
    """librdkafka settings that keep a consumer from fetching more than ``kbytes`` KiB
    ahead of its polls. By default it queues up to 64 MiB (100,000 records) in the background,
    so a slow reader holds in memory what retention then deletes from the log, and never
    sees a record lost to retention."""
    if kbytes is None:
        return {}
    limit = max(kbytes * 1024, MIN_MESSAGE_MAX_BYTES)
    return {"queued.max.messages.kbytes": kbytes, "fetch.max.bytes": limit,
            "max.partition.fetch.bytes": limit, "message.max.bytes": limit}


class WireConsumer:
    """A confluent-kafka Consumer in a group; commits what it read when it gives
    partitions up, and every second."""

    def __init__(self, bootstrap: str, group: GroupSpec, hooks: RebalanceHooks) -> None:
        self.errors: Counter[str] = Counter()
        self._hooks = hooks
        self._max = group.max_poll_records
        self._consumer = KafkaConsumer({
            "bootstrap.servers": bootstrap, "group.id": group.name,
            "auto.offset.reset": "earliest", "enable.auto.commit": True,
            "auto.commit.interval.ms": AUTO_COMMIT_MS,
            "heartbeat.interval.ms": group.heartbeat_interval_ms,
            "session.timeout.ms": group.session_timeout_ms,
            **_read_ahead(group.read_ahead_kb), **_COMMON})
        self._consumer.subscribe(list(group.topics), on_assign=self._on_assign,
                                 on_revoke=self._on_revoke)

    def _on_assign(self, consumer: Any, partitions: list) -> None:
        self._hooks.assigned({(tp.topic, tp.partition) for tp in partitions})

    def _on_revoke(self, consumer: Any, partitions: list) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:  # nothing read since the last commit, or fenced
            if exc.args[0].name() != "_NO_OFFSET":
                self.errors[exc.args[0].name()] += 1
        self._hooks.revoked({(tp.topic, tp.partition) for tp in partitions})

    def poll(self, timeout_s: float) -> Iterator[Record]:
        return self._records(self._consumer.consume(self._max, timeout_s))

    def _records(self, messages: list) -> Iterator[Record]:
        for message in messages:
            error = message.error()
            if error is not None:
                self.errors[error.name()] += 1
                continue
            yield message.topic(), message.partition(), message.offset(), message.value()

    def log_start(self, topic: str, partition: int) -> int:
        low, _ = self._consumer.get_watermark_offsets(
            KafkaTopicPartition(topic, partition), timeout=ADMIN_TIMEOUT_S, cached=False)
        return low

    def close(self) -> None:
        self._consumer.close()


class WireTarget:
    """A server at ``bootstrap``, driven with confluent-kafka."""

    name = "kafka"

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._watermarks: KafkaConsumer | None = None

    def create_topics(self, topics: Iterable[TopicSpec]) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, **_COMMON})
        new = [NewTopic(t.name, t.partitions, config={k: str(v) for k, v in t.config.items()})
               for t in topics]
        for future in admin.create_topics(new, request_timeout=ADMIN_TIMEOUT_S).values():
            future.result()

    def producer(self, linger_ms: int, sink: AckSink) -> WireProducer:
        return WireProducer(self.bootstrap, linger_ms, sink)

    def consumer(self, group: GroupSpec, hooks: RebalanceHooks) -> WireConsumer:
        return WireConsumer(self.bootstrap, group, hooks)

    def _client(self, group: str) -> KafkaConsumer:
        """A consumer that never subscribes: it asks offsets and joins no group."""
        return KafkaConsumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                              "enable.auto.commit": False, **_COMMON})

    def log_offsets(self, topics: Iterable[TopicSpec]) -> dict[TP, PartitionOffsets]:
        return {tp: PartitionOffsets(low, high)
                for tp, (low, high) in self._watermark_offsets(topics).items()}

    def high_watermarks(self, topics: Iterable[TopicSpec]) -> dict[TP, int]:
        return {tp: high for tp, (_, high) in self._watermark_offsets(topics).items()}

    def _watermark_offsets(self, topics: Iterable[TopicSpec]) -> dict[TP, tuple[int, int]]:
        """(log-start, log-end) of every partition: one ListOffsets round trip each."""
        if self._watermarks is None:
            self._watermarks = self._client("workload-watermarks")
        return {(topic.name, partition): self._watermarks.get_watermark_offsets(
                    KafkaTopicPartition(topic.name, partition), timeout=ADMIN_TIMEOUT_S)
                for topic in topics for partition in range(topic.partitions)}

    def committed(self, group: str, partitions: Iterable[TP]) -> dict[TP, int | None]:
        client = self._client(group)
        try:
            answer = client.committed([KafkaTopicPartition(t, p) for t, p in partitions],
                                      timeout=ADMIN_TIMEOUT_S)
            return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None
                    for tp in answer}
        finally:
            client.close()

    def close(self) -> None:
        if self._watermarks is not None:
            self._watermarks.close()
