"""The embedded producer: kafka-python's KafkaProducer shape over the partition actors.

``send()`` runs in the caller's thread and does no actor round trip: the
:class:`~actors.producer.batch.RecordAccumulator` picks the partition, stamps the record's
timestamp, builds the stored row once and appends it to that partition's open batch.
Closed batches wait for the :class:`~actors.producer.actor.ProducerActor`, told of them by
a message; it sends them (those of one partition together), retries and runs callbacks.
Each send returns a small :class:`~actors.producer.future.FutureRecordMetadata` sharing
its batch's result.

Threads: a :class:`Producer` is thread-safe. It keeps no state of its own that changes
after it is made; what every thread shares is the accumulator (behind its lock), and the
actor owns everything else it changes.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import pykka

from actors.broker import Broker
from actors.producer.actor import Drain, ProducerActor, Ready
from actors.producer.batch import RecordAccumulator
from actors.producer.config import ProducerConfig
from actors.producer.future import FutureRecordMetadata
from actors.producer.sequencer import Sequencer
from actors.runtime import Scheduler, stop_actor, tell_if_alive
from eventstore.errors import KafkaTimeoutError
from eventstore.storage.records import Headers

_client_ids = itertools.count(1)


class Producer:
    """Sends records to topics; thread-safe, like kafka-python's KafkaProducer."""

    def __init__(
        self,
        broker: pykka.ActorProxy[Broker],
        scheduler: Scheduler,
        on_close: Callable[[Producer], None] = lambda producer: None,
        **config: Any,
    ) -> None:
        self.config = ProducerConfig.from_kwargs(**config)
        self.client_id = self.config.client_id or f"eventstore-producer-{next(_client_ids)}"
        self._scheduler = scheduler
        self._on_close = on_close
        self._accumulator = RecordAccumulator(self.config, broker, self._linger, self._ready)
        sequencer = Sequencer(lambda: broker.allocate_producer_id().get())
        self._actor = ProducerActor.start(self._accumulator, sequencer, self.config, scheduler)
        # an instance's send() is the accumulator's append itself (it takes the same
        # arguments), a Python call less for every record; the method documents it
        if self.config.key_serializer or self.config.value_serializer:
            self.send = self._send_serialized  # type: ignore[method-assign]
        else:
            self.send = self._accumulator.append  # type: ignore[method-assign]

    # -- sending ----------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Headers | Sequence[tuple[str, bytes | None]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> FutureRecordMetadata:
        """Queue one record; the future resolves to its RecordMetadata once it is durable.

        Blocks up to ``max_block_ms`` while ``buffer_memory`` is full, then raises
        KafkaTimeoutError. A record that can never be sent (too large, unknown partition)
        gives a failed future, as kafka-python does.
        """
        return self._accumulator.append(topic, value, key, headers, partition, timestamp_ms)

    def _send_serialized(self, topic: str, value: Any = None, key: Any = None,
                         **kwargs: Any) -> FutureRecordMetadata:
        """``send`` with ``key_serializer`` / ``value_serializer`` applied first."""
        if value is not None and self.config.value_serializer is not None:
            value = self.config.value_serializer(value)
        if key is not None and self.config.key_serializer is not None:
            key = self.config.key_serializer(key)
        return Producer.send(self, topic, value, key, **kwargs)

    def partitions_for(self, topic: str) -> set[int]:
        """The partition numbers of ``topic`` (created if auto-creation is on)."""
        return set(range(self._accumulator.load(topic).count))

    @property
    def buffered_bytes(self) -> int:
        """Bytes of ``buffer_memory`` held by batches not yet acknowledged."""
        return self._accumulator.reserved

    def flush(self, timeout: float | None = None) -> None:
        """Send every open batch now and wait until each sent record is acknowledged."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for batch in self._accumulator.close_all():
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
            if not batch.wait(remaining):
                raise KafkaTimeoutError(f"flush did not finish within {timeout} s")

    def close(self, timeout: float | None = None) -> None:
        """Flush (within ``timeout``), then stop the producer; later sends raise IllegalState."""
        if not self._accumulator.close():
            return
        try:
            self.flush(timeout)
        finally:
            stop_actor(self._actor)
            self._on_close(self)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- batches to the actor (called by the accumulator, with its lock held) ---------------

    def _linger(self, topic: str, partition: int) -> None:
        """A batch opened where no linger timer is set: set it (the actor sets it again
        while batches keep leaving full before their ``linger_ms``). Never raises, as
        ``_ready``."""
        drain, ref = Drain(topic, partition), self._actor
        if self.config.linger_ms:
            self._scheduler.call_later(self.config.linger_ms / 1000,
                                       lambda: tell_if_alive(ref, drain))
        else:
            tell_if_alive(ref, drain)

    def _ready(self, topic: str, partition: int) -> None:
        """A partition's closed batches wait: the actor sends them.

        Never raises (the accumulator's lock is held): once the actor has stopped, its
        ``on_stop`` or ``on_failure`` failed these batches, or will (see
        RecordAccumulator.abort)."""
        tell_if_alive(self._actor, Ready(topic, partition))
