"""Idempotent numbering: the producer id, epoch and sequence number each batch is stamped with.

The producer is idempotent, as Kafka's is by default: it gets a producer id from the
broker and stamps each batch, when first sent, with that id, an epoch and the partition's
next sequence number. A retry carries the same stamp, so a batch whose append was written
but not acknowledged (the partition failed right after) is recognised by the partition,
restarted from disk, and answered with its original offsets.

Threads: a :class:`Sequencer` is used by the producer actor (stamping, renewing) and by
the partition actors' replies (``is_stale``, ``abandon``); its lock makes that safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from eventstore.storage.producer_state import add_sequence
from eventstore.storage.records import ProducerBatchInfo

PartitionKey = tuple[str, int]


class Sequencer:
    """An idempotent producer's numbering: per partition, the producer id, epoch and next
    sequence number a batch is stamped with when it is first sent.

    A retry keeps its batch's stamp, so the partition recognises it if it was written. A
    batch that fails for good may leave a hole in the partition's sequence, so the
    partition is :meth:`abandon`-ed: its batches wait until :meth:`renew` gives it a new
    producer id (the producer actor does, after ``retry_backoff_ms``), under which the
    partition, which does not know that id, takes sequence 0. Batches stamped before that,
    which the partition then refuses as out of order, are :meth:`is_stale` and are
    stamped afresh on their retry. Thread-safe; ``allocate`` asks the broker for an id.
    """

    def __init__(self, allocate: Callable[[], int]) -> None:
        self._allocate = allocate
        self._lock = threading.Lock()
        self._first = ProducerBatchInfo(allocate(), 0, 0)
        self._next: dict[PartitionKey, ProducerBatchInfo | None] = {}  # None: abandoned

    def stamp(self, key: PartitionKey, count: int) -> ProducerBatchInfo | None:
        """The stamp of a batch of ``count`` records sent now; None while the partition
        waits for a new producer id."""
        with self._lock:
            stamp = self._next.get(key, self._first)
            if stamp is not None:
                self._next[key] = replace(
                    stamp, base_sequence=add_sequence(stamp.base_sequence, count))
        return stamp

    def is_stale(self, key: PartitionKey, stamp: ProducerBatchInfo | None) -> bool:
        """Whether ``stamp`` is of a producer id the partition was abandoned under."""
        with self._lock:
            current = self._next.get(key, self._first)
        return stamp is not None and (current is None or current.producer_id != stamp.producer_id)

    def abandon(self, key: PartitionKey, stamp: ProducerBatchInfo | None) -> None:
        """The batch stamped ``stamp`` failed for good: stop numbering under its id."""
        with self._lock:
            current = self._next.get(key, self._first)
            if (stamp is not None and current is not None
                    and current.producer_id == stamp.producer_id):
                self._next[key] = None

    def renew(self, key: PartitionKey) -> None:
        """Give an abandoned partition a new producer id (asks the broker: not on a
        partition actor's thread)."""
        with self._lock:
            abandoned = key in self._next and self._next[key] is None
        if abandoned:
            fresh = ProducerBatchInfo(self._allocate(), 0, 0)
            with self._lock:
                self._next[key] = fresh
