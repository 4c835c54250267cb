"""What ``send()`` returns: a :class:`FutureRecordMetadata`, resolved with a
:class:`RecordMetadata` (or a typed error) when its batch's append is answered.

A future is a tuple (batch, index in batch, timestamp) made per record on the hot path;
everything it says it reads from its batch once the batch is done. Its callbacks run on
the producer actor's thread, or at once on the caller's if the batch is done already.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from eventstore.errors import KafkaError, KafkaTimeoutError


class RecordMetadata(NamedTuple):
    """Where an acknowledged record landed, as kafka-python's RecordMetadata says."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class FutureRecordMetadata(tuple):
    """The future of one ``send()``: (batch, index in batch, timestamp), resolved by its batch.

    A tuple so that creating one per record costs next to nothing.
    """

    __slots__ = ()

    @property
    def is_done(self) -> bool:
        return self[0].finished

    def succeeded(self) -> bool:
        return self.is_done and self[0].error is None

    def failed(self) -> bool:
        return self.is_done and self[0].error is not None

    @property
    def exception(self) -> KafkaError | None:
        return self[0].error if self.is_done else None

    @property
    def value(self) -> RecordMetadata | None:
        return self._metadata() if self.succeeded() else None

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """Wait for the acknowledgement: RecordMetadata, the batch's typed error, or
        KafkaTimeoutError after ``timeout`` seconds."""
        batch = self[0]
        if not batch.wait(timeout):
            raise KafkaTimeoutError(f"no acknowledgement within {timeout} s")
        if batch.error is not None:
            raise batch.error
        return self._metadata()

    def add_callback(self, fn: Callable[..., Any], *args: Any) -> FutureRecordMetadata:
        """Call ``fn(*args, metadata)`` on success: on the producer actor's thread, or at
        once in this one if the record is already acknowledged."""
        self._add(fn, args, on_success=True)
        return self

    def add_errback(self, fn: Callable[..., Any], *args: Any) -> FutureRecordMetadata:
        """Call ``fn(*args, error)`` on failure (on the same threads as ``add_callback``)."""
        self._add(fn, args, on_success=False)
        return self

    def _add(self, fn: Callable[..., Any], args: tuple, *, on_success: bool) -> None:
        batch = self[0]
        batch.callbacks.append(partial(self._call, fn, args, on_success))
        if batch.finished:
            batch.run_callbacks()

    def _call(self, fn: Callable[..., Any], args: tuple, on_success: bool) -> None:
        """Run a callback of the outcome it was registered for (the batch is done)."""
        error = self[0].error
        if on_success == (error is None):
            fn(*args, self._metadata() if on_success else error)

    def _metadata(self) -> RecordMetadata:
        """This record's place, from its batch's result (the batch succeeded)."""
        batch, index, timestamp = self
        result = batch.result
        if result.log_append_time != -1:
            timestamp = result.log_append_time
        return RecordMetadata(batch.topic, batch.partition, batch.base_offset + index, timestamp)
