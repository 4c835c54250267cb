"""Idempotent producers' state in one partition: what each producer id wrote last.

Kafka's idempotent producer stamps every batch with its producer id, an epoch and the
sequence number of the batch's first record; sequences count a producer's records in one
partition from 0 and wrap to 0 after 2**31 - 1. A partition remembers, per producer id,
the epoch and its last five batches (first and last sequence, first and last offset):
Kafka clients keep at most five requests in flight to a partition, so a retry is always
one of them. :meth:`ProducerStateTable.check` judges an incoming batch before anything is
written, as Kafka's ``ProducerStateManager`` does:

- the sequence after the producer's last batch (or 0 under a newer epoch): append it;
- one of the five remembered batches again: a duplicate, answered with its original
  offsets and not written again;
- a batch from before the remembered ones: DUPLICATE_SEQUENCE_NUMBER (it was written, its
  offsets are no longer known; Kafka clients count it as delivered);
- any other sequence: OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch: INVALID_PRODUCER_EPOCH;
- a producer id the partition does not know (new here, expired, or its batches deleted by
  retention before a restart) is accepted at any sequence, as Kafka has done since 2.x
  ("if there is no current producer epoch ... accept writes with any sequence number"):
  refusing it with UNKNOWN_PRODUCER_ID makes clients drop the batch or reset the
  producer, for a state the broker is meant to forget.

What is remembered is defined so that the log alone can rebuild it: per producer, the
last (at most five) batches of its newest epoch that were appended within the last
``producer.id.expiration.ms``; a producer with none is unknown. Each batch's stamp is
written with its records in one transaction (the segment's ``batches`` table), and
:func:`load_producer_state` reads those rows (never the records) from the segments that
can hold such batches, newest first, when a partition opens. So a retry is recognised
after a crash too, and start-up reads only the segments of the last expiration window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eventstore.errors import (
    DuplicateSequenceNumber,
    InvalidProducerEpoch,
    InvalidRecord,
    OutOfOrderSequenceNumber,
)
from eventstore.storage.records import ProducerBatchInfo
from eventstore.storage.segment import SegmentInfo, open_readonly, read_producer_batches

SEQUENCE_MODULUS = 1 << 31  # sequences are int32 >= 0 and wrap to 0 after 2**31 - 1
MAX_EPOCH = (1 << 15) - 1  # epochs are int16 >= 0
CACHED_BATCHES = 5  # Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN


def add_sequence(sequence: int, delta: int) -> int:
    """``sequence`` moved on by ``delta`` records, wrapping as Kafka's sequences do."""
    return (sequence + delta) % SEQUENCE_MODULUS


def _precedes(earlier: int, later: int) -> bool:
    """Whether sequence ``earlier`` comes before ``later`` (within half the wrap-around)."""
    return 0 < (later - earlier) % SEQUENCE_MODULUS < SEQUENCE_MODULUS // 2


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    """One appended batch of a producer: its sequences, its offsets, when it was appended."""

    first_seq: int
    last_seq: int
    base_offset: int
    last_offset: int
    appended_ms: int


@dataclass(frozen=True, slots=True)
class ProducerEntry:
    """A producer id's epoch and its remembered batches, oldest first (never empty)."""

    producer_id: int
    epoch: int
    batches: tuple[BatchMetadata, ...]


class ProducerStateTable:
    """Per producer id, the epoch and last batches of one partition; owned by its writer."""

    def __init__(self, expiration_ms: int, entries: Iterable[ProducerEntry] = ()) -> None:
        self.expiration_ms = expiration_ms
        self._entries = {entry.producer_id: entry for entry in entries}

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, producer_id: int, now_ms: int) -> ProducerEntry | None:
        """What is remembered of ``producer_id`` at ``now_ms``; None if it is unknown."""
        entry = self._entries.get(producer_id)
        if entry is None:
            return None
        cutoff = now_ms - self.expiration_ms  # remembered while appended after it
        if entry.batches[0].appended_ms > cutoff:
            return entry
        kept = tuple(b for b in entry.batches if b.appended_ms > cutoff)
        return ProducerEntry(producer_id, entry.epoch, kept) if kept else None

    def active(self) -> tuple[ProducerEntry, ...]:
        """Every producer id remembered, by id, as DescribeProducers lists them: like
        Kafka's activeProducers, those the periodic :meth:`expire` has not dropped yet."""
        return tuple(self._entries[pid] for pid in sorted(self._entries))

    def check(self, stamp: ProducerBatchInfo, count: int, now_ms: int) -> BatchMetadata | None:
        """Judge a batch of ``count`` records before it is written.

        Returns None when it is to be appended, the remembered batch when it is a
        duplicate of one, and raises (nothing written) when it must be refused.
        """
        if not 0 <= stamp.producer_epoch <= MAX_EPOCH or not (
                0 <= stamp.base_sequence < SEQUENCE_MODULUS):
            raise InvalidRecord(
                f"producer {stamp.producer_id}: epoch {stamp.producer_epoch} and base sequence"
                f" {stamp.base_sequence} must not be negative")
        entry = self.entry(stamp.producer_id, now_ms)
        if entry is None:
            return None
        first = stamp.base_sequence
        if stamp.producer_epoch < entry.epoch:
            raise InvalidProducerEpoch(
                f"producer {stamp.producer_id}: epoch {stamp.producer_epoch} is older than"
                f" the current epoch {entry.epoch}")
        if stamp.producer_epoch > entry.epoch:
            if first != 0:
                raise OutOfOrderSequenceNumber(
                    f"producer {stamp.producer_id}: a new epoch {stamp.producer_epoch} must"
                    f" start at sequence 0, got {first}")
            return None
        last = add_sequence(first, count - 1)
        for batch in entry.batches:
            if batch.first_seq == first and batch.last_seq == last:
                return batch
        expected = add_sequence(entry.batches[-1].last_seq, 1)
        if first == expected:
            return None
        if _precedes(last, entry.batches[0].first_seq):
            raise DuplicateSequenceNumber(
                f"producer {stamp.producer_id}: sequences {first}..{last} were written before"
                f" the last {len(entry.batches)} batches this partition remembers")
        raise OutOfOrderSequenceNumber(
            f"producer {stamp.producer_id}: expected sequence {expected}, got {first}..{last}")

    def record(
        self, stamp: ProducerBatchInfo, base_offset: int, last_offset: int, now_ms: int
    ) -> None:
        """Remember a batch that :meth:`check` let through and the log then appended."""
        last = add_sequence(stamp.base_sequence, last_offset - base_offset)
        batch = BatchMetadata(stamp.base_sequence, last, base_offset, last_offset, now_ms)
        entry = self.entry(stamp.producer_id, now_ms)
        if entry is None or entry.epoch != stamp.producer_epoch:
            batches: tuple[BatchMetadata, ...] = (batch,)
        else:
            batches = (*entry.batches, batch)[-CACHED_BATCHES:]
        self._entries[stamp.producer_id] = ProducerEntry(
            stamp.producer_id, stamp.producer_epoch, batches)

    def expire(self, now_ms: int) -> int:
        """Forget batches older than ``producer.id.expiration.ms``; returns producers dropped."""
        before = len(self._entries)
        kept = (self.entry(pid, now_ms) for pid in list(self._entries))
        self._entries = {entry.producer_id: entry for entry in kept if entry is not None}
        return before - len(self._entries)


def load_producer_state(
    segments: Sequence[SegmentInfo], now_ms: int, expiration_ms: int
) -> ProducerStateTable:
    """Rebuild a partition's producer state from its segments' ``batches`` rows.

    ``segments`` is the chain, oldest first. They are read newest first, and reading stops
    at the first segment sealed before the expiration window began: no batch in it or
    before it can still be remembered. Per producer, the batches collected are its newest
    epoch's, at most :data:`CACHED_BATCHES`, each within the window.
    """
    cutoff = now_ms - expiration_ms
    newest_first: dict[int, list[tuple[int, BatchMetadata]]] = {}
    for segment in reversed(segments):
        if segment.is_sealed and segment.sealed_ms <= cutoff:
            break
        conn = open_readonly(segment.path)
        try:
            rows = read_producer_batches(conn, segment.path, CACHED_BATCHES)
        finally:
            conn.close()
        for producer_id, epoch, base_sequence, base_offset, last_offset, appended_ms in rows:
            kept = newest_first.setdefault(producer_id, [])
            if len(kept) == CACHED_BATCHES or (kept and kept[0][0] != epoch):
                continue
            last_seq = add_sequence(base_sequence, last_offset - base_offset)
            kept.append(
                (epoch, BatchMetadata(base_sequence, last_seq, base_offset, last_offset,
                                      appended_ms)))
    entries = []
    for producer_id, kept in newest_first.items():
        batches = tuple(b for _, b in reversed(kept) if b.appended_ms > cutoff)
        if batches:
            entries.append(ProducerEntry(producer_id, kept[0][0], batches))
    return ProducerStateTable(expiration_ms, entries)
