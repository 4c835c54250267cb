"""The producer's background half: linger timers, sending, retries, callbacks, metadata.

The client tells a :class:`ProducerActor` about batches through messages: ``Drain`` when
a partition's linger timer fired, ``Ready`` when a partition has closed batches waiting.
The actor takes all of them and sends them to the partition actor as one append (a
:class:`~actors.producer.batch.ProduceRequest`, up to ``max_request_size``), stamped for
idempotence when first sent (see :mod:`actors.producer.sequencer`). Retriable errors (a
partition restarting, for instance) are retried with ``retry_backoff_ms`` until
``delivery_timeout_ms``; requests of one partition are retried in the order they failed,
and while a partition has requests waiting to be retried (or waits for a new producer id
after one failed for good), later ones of that partition wait behind them, so a retry
never reorders a partition's records.

Threads: the actor's own thread owns the requests waiting to be retried (``_held``) and
every batch it took until it is sent. A partition actor's reply runs on that partition
actor's thread (:meth:`ProducerActor._replied`): it touches only its request, which
nobody else holds while the append is in flight, and the thread-safe accumulator and
sequencer; what must happen on the producer's thread (a retry, the callbacks) it sends as
a message.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass

from actors.producer.batch import ProducerBatch, ProduceRequest, RecordAccumulator
from actors.producer.config import ProducerConfig
from actors.producer.sequencer import Sequencer
from actors.runtime import Actor, Scheduler, tell_if_alive, tell_or_refuse
from eventstore.errors import (
    IllegalState,
    KafkaError,
    KafkaStorageError,
    OutOfOrderSequenceNumber,
    UnknownTopicOrPartition,
)
from eventstore.storage.segment import AppendResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Drain:
    """The linger timer of ``topic``-``partition`` fired: send its open batch if that has
    lingered ``linger_ms``, else set the timer again."""

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Ready:
    """``topic``-``partition`` has closed batches waiting: send them."""

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Retry:
    """``request`` failed with a retriable error: send it again after ``retry_backoff_ms``."""

    request: ProduceRequest


@dataclass(frozen=True, slots=True)
class Resend:
    """The retry backoff of partition ``topic``-``partition`` is over."""

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class RunCallbacks:
    """Run the callbacks of finished ``batches``' records, away from the partition actor."""

    batches: tuple[ProducerBatch, ...]


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
        self._max_request_bytes = min(config.max_request_size, config.buffer_memory)
        self._batch_bytes = min(config.batch_size, config.buffer_memory)
        self._held: dict[tuple[str, int], list[ProduceRequest]] = {}

    def on_start(self) -> None:
        self._later(self._refresh_s, RefreshMetadata())

    def on_stop(self) -> None:
        self._abandon(IllegalState("the producer is closed: its batches were not sent"))

    def on_failure(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self._abandon(IllegalState(f"the producer's sender failed ({exc!r}): send() refused"))

    def _abandon(self, error: KafkaError) -> None:
        """This actor stopped (closed, or failed): fail every batch it would have sent, so
        no ``send()``, ``flush()`` or future waits for it, and refuse later sends. Requests
        in flight are still answered by their partitions (a retry is then refused, see
        ``_retry``); messages left in the inbox are refused by the runtime."""
        for batch in self._accumulator.abort(error):
            batch.run_callbacks()
        held, self._held = self._held, {}
        for requests in held.values():
            for request in requests:
                self._give_up(request, error)

    def on_receive(self, message: object) -> None:
        if isinstance(message, Drain):
            left = self._accumulator.linger_over(message.topic, message.partition)
            if left is not None:
                self._later(left, message)
        elif isinstance(message, Ready):
            self._send_ready(message.topic, message.partition)
        elif isinstance(message, Retry):
            self._hold(message.request)
        elif isinstance(message, Resend):
            self._resend(message.topic, message.partition)
        elif isinstance(message, RunCallbacks):
            for batch in message.batches:
                batch.run_callbacks()
        elif isinstance(message, RefreshMetadata):
            for topic in self._accumulator.topic_names():
                self._reload(topic)
            self._later(self._refresh_s, RefreshMetadata())
        else:
            super().on_receive(message)

    # -- sending (the actor's thread) -------------------------------------------------------

    def _send_ready(self, topic: str, partition: int) -> None:
        """Send the batches waiting for a partition, as few requests as fit, behind any
        held for a retry."""
        batches = self._accumulator.take_ready(topic, partition)
        held = (topic, partition) in self._held
        for request in ProduceRequest.of(batches, self._max_request_bytes, self._batch_bytes):
            if held:
                self._hold(request)
            else:
                self._send(request)

    def _send(self, request: ProduceRequest) -> None:
        """Send a request to its partition actor, stamped for idempotence.

        ``sent_bytes`` is its largest batch, so that ``max.message.bytes`` limits each
        batch as if it were sent alone.
        """
        handles = self._accumulator.handles(request.topic)
        if request.partition >= len(handles):  # the topic was deleted and made again, smaller
            request.fail(UnknownTopicOrPartition(
                f"topic {request.topic!r} has no partition {request.partition} any more"))
            self._finish(request)
            return
        if request.stamp is None:
            request.stamp = self._sequencer.stamp((request.topic, request.partition),
                                                  len(request.rows))
            if request.stamp is None:  # held until the partition has a new producer id
                self._retry(request, IllegalState(
                    "the producer stopped before a producer id was renewed"))
                return
        request.attempts += 1
        sent_bytes = request.largest if len(request.batches) > 1 else None
        handles[request.partition].append(request.rows, request.stamp, sent_bytes
                                          ).add_done_callback(
            lambda reply: self._replied(request, reply))

    def _hold(self, request: ProduceRequest) -> None:
        """Keep ``request`` back, in send order, until its partition's retry backoff is
        over."""
        key = (request.topic, request.partition)
        if key not in self._held:
            self._held[key] = []
            self._later(self._config.retry_backoff_ms / 1000, Resend(*key))
        self._held[key].append(request)
        self._held[key].sort(key=lambda r: r.created)  # failures arrive in send order

    def _resend(self, topic: str, partition: int) -> None:
        """Send a partition's held requests again, in order, to a fresh handle (its actor
        may have restarted), under a new producer id if the partition was abandoned."""
        key = (topic, partition)
        self._reload(topic)
        held = self._held.pop(key)
        try:
            self._sequencer.renew(key)
        except KafkaError as error:  # no producer id to send them under
            for request in held:
                request.fail(error)
                self._finish(request)
            return
        for request in held:
            self._send(request)

    def _retry(self, request: ProduceRequest, error: KafkaError) -> None:
        """Hold ``request`` for a retry on this actor's thread; if this actor stopped, or
        stops before taking it, it fails with ``error`` instead (either thread)."""
        tell_or_refuse(self.actor_ref, Retry(request), lambda: self._give_up(request, error))

    def _give_up(self, request: ProduceRequest, error: KafkaError) -> None:
        """``request`` failed for good with ``error``: later ones of its partition get a
        new sequence, its batches finish."""
        self._sequencer.abandon((request.topic, request.partition), request.stamp)
        request.fail(error)
        self._finish(request)

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

    def _replied(self, request: ProduceRequest, reply: Future[AppendResult]) -> None:
        """The partition actor answered, on its own thread: finish, or retry if it may."""
        error = reply.exception()
        if error is None:
            request.succeed(reply.result())
            self._finish(request)
            return
        key = (request.topic, request.partition)
        retriable = getattr(error, "retriable", False)
        if isinstance(error, OutOfOrderSequenceNumber) and self._sequencer.is_stale(
                key, request.stamp):
            # refused because a request before it failed for good: renumber it on its retry
            request.stamp = None
            retriable = True
        config = self._config
        typed = error if isinstance(error, KafkaError) else KafkaStorageError(repr(error))
        if (retriable and request.attempts <= config.retries
                and time.monotonic() - request.created < config.delivery_timeout_ms / 1000):
            self._retry(request, typed)
            return
        self._give_up(request, typed)

    def _finish(self, request: ProduceRequest) -> None:
        """``request`` is done, either way: free its batches' memory, wake their waiters,
        queue their callbacks for this actor's thread (either thread may call this)."""
        batches = request.batches
        for batch in batches:
            batch.rows = None
        request.rows = None
        self._accumulator.finish(batches)
        with_callbacks = tuple(batch for batch in batches if batch.callbacks)
        if with_callbacks:  # run here if this actor stopped: no callback is lost
            def run_here() -> None:
                for batch in with_callbacks:
                    batch.run_callbacks()
            tell_or_refuse(self.actor_ref, RunCallbacks(with_callbacks), run_here)
