"""The embedded API: ``EventStore.open(data_dir)`` runs the whole actor system in-process.

    from eventstore import EventStore

    with EventStore.open("data", config={"segment.bytes": 1 << 20}) as store:
        store.create_topic("clicks", partitions=3, config={"retention.ms": 3_600_000})
        producer = store.producer(linger_ms=5)
        meta = producer.send("clicks", b'{"page": "/"}', key=b"user-1").get(timeout=5)
        consumer = store.consumer("clicks", group_id="analytics", auto_offset_reset="earliest")
        for record in consumer.poll(timeout_ms=1000):
            ...
        consumer.commit()

Producers and consumers have kafka-python's shapes (``send`` returns a future; ``poll``,
``commit``, ``seek``); topic and group administration mirror Kafka's admin tools. The
store holds the data directory's lock while open, so a server or a second store cannot
write to it at the same time. Closing flushes producers, commits for auto-committing
consumers, stops every actor and closes every file.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from actors.broker import TopicDescription
from actors.consumer.client import Consumer
from actors.producer.client import Producer
from actors.system import ActorSystem, ConsumerGroupDescription, GroupListing
from eventstore.sql import SqlEngine
from eventstore.storage.lock import DataDirLock


class EventStore:
    """An open data directory with its actor system running; use ``EventStore.open``."""

    def __init__(self, system: ActorSystem, lock: DataDirLock) -> None:
        self._system = system
        self._lock = lock
        self._sql: SqlEngine | None = None
        self._closed = False
        atexit.register(self.close)

    @classmethod
    def open(cls, data_dir: str, config: Mapping[str, Any] | None = None) -> EventStore:
        """Lock ``data_dir`` (created if missing) and start its actors.

        ``config`` holds server keys (``auto.create.topics.enable``, ``num.partitions``,
        ``group.*``...) and topic keys, which are defaults for every topic. Raises
        DataDirLocked if another process has the directory, InvalidConfig for a bad key.
        """
        lock = DataDirLock(data_dir, "eventstore embedded").acquire()
        try:
            system = ActorSystem(data_dir, config).start()
        except BaseException:
            lock.release()
            raise
        return cls(system, lock)

    @property
    def data_dir(self) -> str:
        return self._system.data_dir

    @property
    def system(self) -> ActorSystem:
        """The actor system underneath (for front ends that share the store)."""
        return self._system

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The store's Prometheus registry (what ``eventstore serve`` serves on /metrics):
        ``prometheus_client.generate_latest(store.metrics_registry)`` renders it."""
        return self._system.registry

    # -- topics -----------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int | None = None,
                     config: Mapping[str, Any] | None = None) -> TopicDescription:
        """Create a topic (``num.partitions`` partitions unless told) with config overrides."""
        return self._system.broker.create_topic(name, partitions, config).get()

    def describe_topic(self, name: str) -> TopicDescription:
        """Partitions (log-start/end offsets, segments, bytes, offline error) and config."""
        return self._system.broker.describe_topic(name).get()

    def describe_topics(self, names: Iterable[str] | None = None) -> list[TopicDescription]:
        return self._system.broker.describe_topics(names).get()

    def list_topics(self) -> list[str]:
        return [info.name for info in self._system.broker.list_topics().get()]

    def delete_topic(self, name: str) -> None:
        """Delete a topic, its files and its groups' committed offsets."""
        self._system.broker.delete_topic(name).get()

    def create_partitions(self, name: str, total: int) -> TopicDescription:
        """Grow a topic to ``total`` partitions (never shrinks, as in Kafka)."""
        return self._system.broker.create_partitions(name, total).get()

    def alter_topic_config(self, name: str, config: Mapping[str, Any | None]
                           ) -> TopicDescription:
        """Set per-topic overrides (None removes one); applied live to the partitions."""
        return self._system.broker.alter_topic_config(name, config).get()

    # -- clients ----------------------------------------------------------------------------

    def producer(self, **config: Any) -> Producer:
        """A producer with kafka-python's KafkaProducer settings (``linger_ms``...)."""
        return self._system.producer(**config)

    def consumer(self, *topics: str, group_id: str | None = None, **config: Any) -> Consumer:
        """A consumer of ``topics`` (in group ``group_id`` if given) with kafka-python's
        KafkaConsumer settings (``auto_offset_reset``, ``enable_auto_commit``...)."""
        return self._system.consumer(*topics, group_id=group_id, **config)

    # -- groups -----------------------------------------------------------------------------

    def list_groups(self) -> list[GroupListing]:
        return self._system.list_groups()

    def describe_group(self, group_id: str) -> ConsumerGroupDescription:
        """Per partition: committed offset, log-end-offset, lag, and the member holding it."""
        return self._system.describe_group(group_id)

    # -- SQL --------------------------------------------------------------------------------

    def sql(self, query: str, params: Any = (), timeout: float | None = None) -> list[tuple]:
        """Rows of a read-only SQL query over every segment (tables ``records``, ``topics``,
        ``partitions``, ``segments``, ``consumer_groups``); only acknowledged records.

        Anything that would write is refused with InvalidRequest; a query still running
        after ``timeout`` seconds is stopped with KafkaTimeoutError.
        """
        if self._sql is None:
            self._sql = SqlEngine(self._system.data_dir)
        return self._sql.query(query, params, timeout)[1]

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Flush producers, commit auto-committing consumers, stop everything, unlock."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self._sql is not None:
            self._sql.close()
        try:
            self._system.stop()
        finally:
            self._lock.release()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
