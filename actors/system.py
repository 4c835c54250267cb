"""Start and stop the whole actor system of one data directory, in order.

Start: the timer thread, the broker (which opens the catalog and starts one actor per
partition), the group coordinator, the metrics actor. ``registry`` is the system's
Prometheus registry: each scrape of it asks the metrics actor for current figures, so it
is what ``/metrics`` serves and what an embedded user can render. Producers and consumers
made here are tracked so that stopping first flushes every producer and closes every
consumer (committing when auto-commit is on), then stops the metrics actor, the
coordinator, the broker (every partition actor closes its files) and the timer thread.
Every thread is joined: nothing is left running and no file stays open. Both front ends
(the embedded EventStore and ``eventstore serve``) run on this.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pykka
from prometheus_client import CollectorRegistry

from actors.broker import Broker
from actors.cleaner import LogCleaner, start_cleaners
from actors.consumer.client import Consumer
from actors.coordinator import GroupCoordinator
from actors.exposition import StoreCollector
from actors.metrics import SNAPSHOT_TIMEOUT_S, MetricsActor, MetricsSnapshot
from actors.producer.client import Producer
from actors.runtime import Actor, Scheduler, stop_actor
from actors.transactions import TransactionCoordinator
from eventstore.config import ServerConfig
from eventstore.errors import KafkaStorageError
from eventstore.groups.consumer_protocol import decode_assignment
from eventstore.topic_partition import TopicPartition

log = logging.getLogger(__name__)


class Coordinator(Actor, GroupCoordinator):
    """The group coordinator on a thread that :func:`stop_actor` joins."""


@dataclass(frozen=True)
class GroupPartition:
    """One partition of a group, as ``kafka-consumer-groups --describe`` shows it.

    ``committed_offset`` and ``lag`` are None where nothing is committed (Kafka prints
    ``-``); ``member_id`` is None when no member holds the partition.
    """

    topic: str
    partition: int
    committed_offset: int | None
    log_end_offset: int
    lag: int | None
    member_id: str | None = None
    client_id: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class GroupMember:
    member_id: str
    client_id: str
    host: str
    partitions: tuple[TopicPartition, ...]


@dataclass(frozen=True)
class ConsumerGroupDescription:
    """A group's state, members, and per partition its committed offset and lag."""

    group_id: str
    state: str
    protocol: str
    members: tuple[GroupMember, ...]
    partitions: tuple[GroupPartition, ...]


@dataclass(frozen=True)
class GroupListing:
    group_id: str
    protocol_type: str
    state: str


class ActorSystem:
    """Every actor of one data directory; ``start()`` it, ``stop()`` it once."""

    def __init__(self, data_dir: str, config: Mapping[str, Any] | ServerConfig | None = None
                 ) -> None:
        self.data_dir = data_dir
        self.config = (config if isinstance(config, ServerConfig)
                       else ServerConfig.from_mapping(config))
        self.scheduler: Scheduler | None = None
        self.broker: pykka.ActorProxy[Broker] | None = None
        self.coordinator: pykka.ActorProxy[GroupCoordinator] | None = None
        self.metrics: pykka.ActorProxy[MetricsActor] | None = None
        # the log cleaner's threads; cleaners[0].clean_now(topic, partition) cleans one now
        self.cleaners: list[pykka.ActorProxy[LogCleaner]] = []
        self._cleaners_stopping = threading.Event()
        self.transactions: pykka.ActorProxy[TransactionCoordinator] | None = None
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(self._metrics_snapshot))
        self._clients_lock = threading.Lock()
        self._producers: set[Producer] = set()
        self._consumers: set[Consumer] = set()

    def start(self) -> ActorSystem:
        """Start the timer thread, the broker, the coordinator and the metrics actor;
        raise if one fails."""
        config = self.config
        self.scheduler = Scheduler()
        try:
            self.broker = Broker.start(self.data_dir, config, self.scheduler).proxy()
            self.cleaners = start_cleaners(self.broker, self.scheduler, config, self.data_dir,
                                           self._cleaners_stopping)
            self.coordinator = Coordinator.start(self.data_dir, config.coordinator_config(),
                                                 scheduler=self.scheduler).proxy()
            self.transactions = TransactionCoordinator.start(
                self.data_dir, config, self.broker, self.scheduler).proxy()
            self.metrics = MetricsActor.start(self.broker, self.coordinator,
                                              transactions=self.transactions).proxy()
            # pykka logs and swallows an actor's failure to start: make each one answer
            self._check_started("broker", self.broker.list_topics)
            self._check_started("coordinator", self.coordinator.list_groups)
            self._check_started("transaction coordinator", self.transactions.stats)
        except BaseException:
            self.stop()
            raise
        log.info("actor system started", extra={"fields": {"data_dir": self.data_dir}})
        return self

    def _check_started(self, name: str, query: Any) -> None:
        try:
            query().get()
        except pykka.ActorDeadError:
            raise KafkaStorageError(
                f"the {name} of {self.data_dir} failed to start (see the log)") from None

    def _metrics_snapshot(self) -> MetricsSnapshot | None:
        """The metrics actor's snapshot for one scrape; None while the system is stopped."""
        metrics = self.metrics
        if metrics is None:
            return None
        # the actor bounds its own work; a scrape may also wait for the one before it
        return metrics.snapshot().get(timeout=2 * SNAPSHOT_TIMEOUT_S)

    # -- clients ----------------------------------------------------------------------------

    def producer(self, **config: Any) -> Producer:
        """A new producer (kafka-python's KafkaProducer settings); closed by ``stop()``."""
        producer = Producer(self.broker, self.scheduler, self._forget, **config)
        with self._clients_lock:
            self._producers.add(producer)
        return producer

    def consumer(self, *topics: str, **config: Any) -> Consumer:
        """A new consumer (kafka-python's KafkaConsumer settings); closed by ``stop()``."""
        consumer = Consumer(self.broker, self.coordinator, self.scheduler, topics,
                            self._forget, **config)
        with self._clients_lock:
            self._consumers.add(consumer)
        return consumer

    def _forget(self, client: Producer | Consumer) -> None:
        with self._clients_lock:
            self._producers.discard(client)
            self._consumers.discard(client)

    # -- groups -----------------------------------------------------------------------------

    def list_groups(self) -> list[GroupListing]:
        return [GroupListing(*entry) for entry in self.coordinator.list_groups().get()]

    def describe_group(self, group_id: str) -> ConsumerGroupDescription:
        """Members, and per partition: committed offset, log-end-offset, lag, owner."""
        described = self.coordinator.describe_group(group_id).get()
        committed = self.coordinator.fetch_offsets(group_id, None).get()
        members = tuple(
            GroupMember(m.member_id, m.client_id, m.client_host,
                        tuple(TopicPartition(*tp)
                              for tp in decode_assignment(m.assignment).partitions))
            for m in described.members
        )
        owners = {tp: m for m in members for tp in m.partitions}
        partitions = []
        for tp in sorted({*(TopicPartition(*tp) for tp in committed), *owners}):
            offset = committed.get(tp, (-1, ""))[0]
            end = self._log_end_offset(tp)
            owner = owners.get(tp)
            partitions.append(GroupPartition(
                tp.topic, tp.partition, None if offset < 0 else offset, end,
                None if offset < 0 or end < 0 else max(end - offset, 0),
                owner and owner.member_id, owner and owner.client_id, owner and owner.host,
            ))
        return ConsumerGroupDescription(group_id, described.state, described.protocol,
                                        members, tuple(partitions))

    def _log_end_offset(self, tp: TopicPartition) -> int:
        """The partition's log-end-offset, durable on disk even while no actor has it
        open (none is started for this); -1 if it is unknown (deleted, unreadable)."""
        return self.broker.log_end_offset(tp.topic, tp.partition).get()

    # -- stopping ---------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> None:
        """Flush producers, close consumers, stop every actor and thread; idempotent."""
        with self._clients_lock:
            producers, consumers = list(self._producers), list(self._consumers)
        _close_all(producers, lambda p: p.close(timeout))
        _close_all(consumers, lambda c: c.close())
        self._cleaners_stopping.set()  # a cleaning in progress gives up: the old set stands
        for cleaner in self.cleaners:
            stop_actor(cleaner.actor_ref, timeout)
        self.cleaners = []
        for actor in (self.metrics, self.transactions, self.coordinator, self.broker):
            if actor is not None:
                stop_actor(actor.actor_ref, timeout)
        self.metrics = self.transactions = self.coordinator = self.broker = None
        if self.scheduler is not None:
            self.scheduler.close()
            self.scheduler = None
        log.info("actor system stopped", extra={"fields": {"data_dir": self.data_dir}})


def _close_all(clients: Iterable[Any], close: Any) -> None:
    """Close each client; one failing to close does not keep the others open."""
    for client in clients:
        try:
            close(client)
        except Exception:
            log.exception("closing a client failed")
