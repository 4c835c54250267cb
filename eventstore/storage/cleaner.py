"""The log cleaner's plan (Kafka's log compaction), as plain logic with no files.

Given the records of a partition's sealed segments, the plan says which offsets survive a
cleaning: for every key the last record written before the cleanable end, every record at or
past that end, and tombstones only until they have been in the cleaned part longer than
``delete.retention.ms``. A record with no key below the end is dropped, as Kafka's cleaner
drops it (a compacted topic refuses such records; these predate the policy). Offsets are
never changed: what is dropped leaves a gap. The plan also says which segments are
rewritten together (small neighbours merge, as Kafka groups them) and which ``batches``
rows stay: those still holding a record, and each idempotent producer's last batch, so
that its state is rebuilt after a cleaning as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from eventstore.storage.records import LogRecord
from eventstore.storage.segment import SegmentInfo


@dataclass(frozen=True, slots=True)
class CleanedPart:
    """The part of a log cleaned so far, as the cleanings that grew it: ``spans`` are
    (end offset, time it entered the cleaned part), ends increasing.

    A tombstone's ``delete.retention.ms`` counts from the cleaning that first took it into
    the cleaned part (Kafka's delete horizon), so each cleaning adds its own span.
    """

    spans: tuple[tuple[int, int], ...] = ()

    @property
    def through(self) -> int:
        """End (exclusive) of the cleaned part; 0 before the first cleaning."""
        return self.spans[-1][0] if self.spans else 0

    def entered_ms(self, offset: int) -> int | None:
        """When ``offset`` entered the cleaned part, None if it has not."""
        for end, entered in self.spans:
            if offset < end:
                return entered
        return None

    def extended(self, end: int, now_ms: int, delete_retention_ms: int) -> CleanedPart:
        """The cleaned part after a cleaning up to ``end`` at ``now_ms``.

        Neighbouring spans whose tombstones are all past ``delete.retention.ms`` merge
        into one (they stay past it), so the list does not grow with every cleaning.
        """
        spans = list(self.spans)
        if end > self.through:
            spans.append((end, now_ms))
        merged: list[tuple[int, int]] = []
        for span in spans:
            if merged and now_ms - span[1] >= delete_retention_ms:
                merged[-1] = span
            else:
                merged.append(span)
        return CleanedPart(tuple(merged))


@dataclass(frozen=True, slots=True)
class CleaningPlan:
    """The outcome of one cleaning: surviving offsets, and the cleaned part after it."""

    kept: tuple[int, ...]
    removed: tuple[int, ...]
    cleaned: CleanedPart


def cleanable_end(records: Sequence[LogRecord], active_base: int, now_ms: int,
                  min_lag_ms: int) -> int:
    """First offset the cleaner must not touch: the active segment's base, or the first
    record newer than ``min.compaction.lag.ms`` if that comes earlier."""
    for record in records:
        if record.offset >= active_base:
            break
        if now_ms - record.timestamp < min_lag_ms:
            return record.offset
    return active_base


def plan_cleaning(records: Iterable[LogRecord], end: int, cleaned: CleanedPart, now_ms: int,
                  delete_retention_ms: int) -> CleaningPlan:
    """Plan a cleaning of the records below ``end``.

    ``cleaned`` is the part cleaned before; a tombstone in it is dropped once
    ``delete.retention.ms`` has passed since it entered it, so a consumer had time to
    see it. One entering the cleaned part now is kept.
    """
    ordered = sorted(records, key=lambda record: record.offset)
    latest: dict[bytes, int] = {}
    for record in ordered:
        if record.offset < end and record.key is not None:
            latest[record.key] = record.offset
    kept: list[int] = []
    removed: list[int] = []
    for record in ordered:
        if _survives(record, end, latest, cleaned, now_ms, delete_retention_ms):
            kept.append(record.offset)
        else:
            removed.append(record.offset)
    return CleaningPlan(tuple(kept), tuple(removed),
                        cleaned.extended(end, now_ms, delete_retention_ms))


def _survives(record: LogRecord, end: int, latest: dict[bytes, int], cleaned: CleanedPart,
              now_ms: int, delete_retention_ms: int) -> bool:
    if record.offset >= end:
        return True
    if record.key is None or latest[record.key] != record.offset:
        return False
    if record.value is None:
        entered = cleaned.entered_ms(record.offset)
        return entered is None or now_ms - entered < delete_retention_ms
    return True


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One row of a segment's ``batches`` table, as the cleaner reads and rewrites it."""

    base_offset: int
    last_offset: int
    max_timestamp: int
    bytes: int
    appended_ms: int
    producer_id: int | None
    producer_epoch: int | None
    base_sequence: int | None


def kept_batches(batches: Iterable[BatchRow], kept: Iterable[int]) -> tuple[int, ...]:
    """Base offsets of the batches a cleaning keeps: those still holding a kept offset,
    and each idempotent producer's last batch even when emptied (Kafka keeps it so that
    the producer's sequence survives)."""
    ordered = sorted(batches, key=lambda batch: batch.base_offset)
    survivors = sorted(kept)
    keep: set[int] = set()
    last_of_producer: dict[int, int] = {}
    index = 0
    for batch in ordered:
        while index < len(survivors) and survivors[index] < batch.base_offset:
            index += 1
        if index < len(survivors) and survivors[index] <= batch.last_offset:
            keep.add(batch.base_offset)
        if batch.producer_id is not None:
            last_of_producer[batch.producer_id] = batch.base_offset
    keep.update(last_of_producer.values())
    return tuple(sorted(keep))


def group_segments(sizes: Sequence[int], max_bytes: int) -> list[range]:
    """Consecutive segments (by index, oldest first, ``sizes`` their bytes) rewritten
    into one file each: neighbours are merged while together they stay within
    ``max_bytes`` (``segment.bytes``), as Kafka's cleaner groups them."""
    groups: list[range] = []
    start = 0
    total = 0
    for index, size in enumerate(sizes):
        if index > start and total + size > max_bytes:
            groups.append(range(start, index))
            start, total = index, 0
        total += size
    if sizes:
        groups.append(range(start, len(sizes)))
    return groups


def dirty_ratio(sealed: Sequence[SegmentInfo], cleaned_through: int) -> float:
    """Bytes not yet cleaned over all bytes of the sealed segments (the active one is not
    cleanable, so not counted), as Kafka's cleaner ranks partitions; 0 when empty. A
    segment the cleaned part ends inside counts as dirty."""
    total = sum(info.bytes for info in sealed)
    dirty = sum(info.bytes for info in sealed if info.next_offset > cleaned_through)
    return dirty / total if total else 0.0


def cleaning_due(sealed: Sequence[SegmentInfo], cleaned_through: int, now_ms: int,
                 min_dirty_ratio: float, max_lag_ms: int) -> bool:
    """Whether a partition is to be cleaned now: its dirty ratio reached
    ``min.cleanable.dirty.ratio``, or its oldest dirty record is older than
    ``max.compaction.lag.ms`` whatever the ratio; never with nothing dirty."""
    dirty = [info for info in sealed if info.next_offset > cleaned_through and info.bytes]
    if not dirty:
        return False
    oldest = dirty[0].min_timestamp
    overdue = oldest is not None and now_ms - oldest > max_lag_ms
    return overdue or dirty_ratio(sealed, cleaned_through) >= min_dirty_ratio


Key = TypeVar("Key")


@dataclass(frozen=True, slots=True)
class Candidate(Generic[Key]):
    """A compacted partition as the cleaner weighs it: ``key`` names it; its sealed chain,
    the end of its cleaned part, and its topic's ``min.cleanable.dirty.ratio`` and
    ``max.compaction.lag.ms``."""

    key: Key
    sealed: Sequence[SegmentInfo]
    cleaned_through: int
    min_dirty_ratio: float
    max_lag_ms: int


def dirtiest_first(candidates: Iterable[Candidate[Key]], now_ms: int) -> list[Key]:
    """The keys of the candidates due for a cleaning now (see :func:`cleaning_due`),
    dirtiest first, as Kafka's cleaner picks the log with the highest dirty ratio."""
    due = [(dirty_ratio(c.sealed, c.cleaned_through), index, c.key)
           for index, c in enumerate(candidates)
           if cleaning_due(c.sealed, c.cleaned_through, now_ms, c.min_dirty_ratio, c.max_lag_ms)]
    due.sort(key=lambda entry: (-entry[0], entry[1]))
    return [key for _, _, key in due]
