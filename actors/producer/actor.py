"""The producer's background half: linger timers, sending, retries, callbacks, metadata.

The client tells a :class:`ProducerActor` about batches through messages: ``Drain`` when
a batch's ``linger_ms`` is over, ``Submit`` when a batch closed. The actor stamps each batch
for idempotence when it is first sent (see :mod:`actors.producer.sequencer`) and sends it
to its partition actor as one append. Retriable errors (a partition restarting, for
instance) are retried with ``retry_backoff_ms`` until ``delivery_timeout_ms``; batches of
one partition are retried in the order they failed, and while a partition has batches
waiting to be retried (or waits for a new producer id after a batch failed for good),
later batches of that partition wait behind them, so a retry never reorders a partition's
records.

Threads: the actor's own thread owns the batches waiting to be retried (``_held``) and
every closed batch until it is sent. A partition actor's reply runs on that partition
actor's thread (:meth:`ProducerActor._replied`): it touches only its batch, which nobody
else holds while the append is in flight, and the thread-safe accumulator and sequencer;
what must happen on the producer's thread (a retry, the callbacks) it sends as a message.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass

from actors.producer.batch import ProducerBatch, RecordAccumulator
from actors.producer.config import ProducerConfig
from actors.producer.sequencer import Sequencer
from actors.runtime import Actor, Scheduler, tell_if_alive
from eventstore.errors import (
    KafkaError,
    KafkaStorageError,
    OutOfOrderSequenceNumber,
    UnknownTopicOrPartition,
)
from eventstore.storage.segment import AppendResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Drain:
    """``linger_ms`` of ``batch`` ran out: send it if it is still open."""

    batch: ProducerBatch


@dataclass(frozen=True, slots=True)
class Submit:
    """Send ``batch``, closed by a thread that could not send it itself."""

    batch: ProducerBatch


@dataclass(frozen=True, slots=True)
class Retry:
    """``batch`` failed with a retriable error: send it again after ``retry_backoff_ms``."""

    batch: ProducerBatch


@dataclass(frozen=True, slots=True)
class Resend:
    """The retry backoff of partition ``topic``-``partition`` is over."""

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class RunCallbacks:
    """Run the callbacks of a finished ``batch``'s records, away from the partition actor."""

    batch: ProducerBatch


@dataclass(frozen=True, slots=True)
class RefreshMetadata:
    """``metadata_max_age_ms`` passed: reload every topic's partitions."""


class ProducerActor(Actor):
    """Sends the batches of one producer's accumulator, stamped by its sequencer."""

    def __init__(self, accumulator: RecordAccumulator, sequencer: Sequencer,
                 config: ProducerConfig, scheduler: Scheduler) -> None:
        super().__init__()
        self._accumulator = accumulator
        self._sequencer = sequencer
        self._config = config
        self._scheduler = scheduler
        self._refresh_s = config.metadata_max_age_ms / 1000
        self._held: dict[tuple[str, int], list[ProducerBatch]] = {}

    def on_start(self) -> None:
        self._later(self._refresh_s, RefreshMetadata())

    def on_receive(self, message: object) -> None:
        if isinstance(message, Drain):
            self._accumulator.close_if_open(message.batch)
        elif isinstance(message, Submit):
            batch = message.batch
            if (batch.topic, batch.partition) in self._held:
                self._hold(batch)
            else:
                self._send(batch)
        elif isinstance(message, Retry):
            self._hold(message.batch)
        elif isinstance(message, Resend):
            self._resend(message.topic, message.partition)
        elif isinstance(message, RunCallbacks):
            message.batch.run_callbacks()
        elif isinstance(message, RefreshMetadata):
            for topic in self._accumulator.topic_names():
                self._reload(topic)
            self._later(self._refresh_s, RefreshMetadata())
        else:
            super().on_receive(message)

    # -- sending (the actor's thread) -------------------------------------------------------

    def _send(self, batch: ProducerBatch) -> None:
        """Send a closed batch to its partition actor, stamped for idempotence."""
        handles = self._accumulator.handles(batch.topic)
        if batch.partition >= len(handles):  # the topic was deleted and made again, smaller
            batch.error = UnknownTopicOrPartition(
                f"topic {batch.topic!r} has no partition {batch.partition} any more")
            self._finish(batch)
            return
        if batch.stamp is None:
            batch.stamp = self._sequencer.stamp((batch.topic, batch.partition), len(batch.rows))
            if batch.stamp is None:  # held until the partition has a new producer id
                tell_if_alive(self.actor_ref, Retry(batch))
                return
        batch.attempts += 1
        handles[batch.partition].append(batch.rows, batch.stamp).add_done_callback(
            lambda reply: self._replied(batch, reply))

    def _hold(self, batch: ProducerBatch) -> None:
        """Keep ``batch`` back, in send order, until its partition's retry backoff is over."""
        key = (batch.topic, batch.partition)
        if key not in self._held:
            self._held[key] = []
            self._later(self._config.retry_backoff_ms / 1000, Resend(*key))
        self._held[key].append(batch)
        self._held[key].sort(key=lambda b: b.created)  # failures arrive in send order

    def _resend(self, topic: str, partition: int) -> None:
        """Send a partition's held batches again, in order, to a fresh handle (its actor
        may have restarted), under a new producer id if the partition was abandoned."""
        key = (topic, partition)
        self._reload(topic)
        held = self._held.pop(key)
        try:
            self._sequencer.renew(key)
        except KafkaError as error:  # no producer id to send them under
            for batch in held:
                batch.error = error
                self._finish(batch)
            return
        for batch in held:
            self._send(batch)

    def _reload(self, topic: str) -> None:
        """Refresh a topic's partitions; on failure keep the old ones (a retry will tell)."""
        try:
            self._accumulator.load(topic)
        except KafkaError as exc:
            log.warning("producer metadata refresh failed", extra={"fields": {
                "topic": topic, "error": str(exc)}})

    def _later(self, delay_s: float, message: object) -> None:
        ref = self.actor_ref
        self._scheduler.call_later(delay_s, lambda: tell_if_alive(ref, message))

    # -- answers (the partition actor's thread) ---------------------------------------------

    def _replied(self, batch: ProducerBatch, reply: Future[AppendResult]) -> None:
        """The partition actor answered, on its own thread: finish, or retry if it may."""
        error = reply.exception()
        if error is None:
            batch.result = reply.result()
            self._finish(batch)
            return
        key = (batch.topic, batch.partition)
        retriable = getattr(error, "retriable", False)
        if isinstance(error, OutOfOrderSequenceNumber) and self._sequencer.is_stale(
                key, batch.stamp):
            # refused because a batch before it failed for good: renumber it on its retry
            batch.stamp = None
            retriable = True
        config = self._config
        if (retriable and batch.attempts <= config.retries
                and time.monotonic() - batch.created < config.delivery_timeout_ms / 1000
                and self.actor_ref.is_alive()):
            tell_if_alive(self.actor_ref, Retry(batch))
            return
        self._sequencer.abandon(key, batch.stamp)
        batch.error = error if isinstance(error, KafkaError) else KafkaStorageError(repr(error))
        self._finish(batch)

    def _finish(self, batch: ProducerBatch) -> None:
        """``batch`` is done, either way: free its memory, wake its waiters, queue its
        callbacks for this actor's thread (either thread may call this)."""
        batch.rows = None
        self._accumulator.release(batch)
        batch.done.set()
        if batch.callbacks:
            tell_if_alive(self.actor_ref, RunCallbacks(batch))
