"""The log cleaner's plan (Kafka's log compaction), as plain logic with no files.

Given the records of a partition's sealed segments, the plan says which offsets survive a
cleaning: for every key the last record written before the cleanable end, every record at or
past that end, and tombstones only until they have been in the cleaned part longer than
``delete.retention.ms``. Offsets are never changed: what is dropped leaves a gap. This module
does not yet rewrite segment files; it is the rule a rewrite follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eventstore.storage.records import LogRecord


@dataclass(frozen=True, slots=True)
class CleaningPlan:
    """The outcome of one cleaning: surviving offsets, and the new cleaned point."""

    kept: tuple[int, ...]
    removed: tuple[int, ...]
    cleaned_through: int


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


def plan_cleaning(records: Iterable[LogRecord], end: int, cleaned_through: int,
                  cleaned_at_ms: int | None, now_ms: int,
                  delete_retention_ms: int) -> CleaningPlan:
    """Plan a cleaning of the records below ``end``.

    ``cleaned_through`` is the end of the part cleaned before (0 if never) and
    ``cleaned_at_ms`` when that was; a tombstone in that part is dropped once
    ``delete.retention.ms`` has passed since, so a consumer had time to see it.
    """
    ordered = sorted(records, key=lambda record: record.offset)
    latest: dict[bytes, int] = {}
    for record in ordered:
        if record.offset < end and record.key is not None:
            latest[record.key] = record.offset
    tombstones_expired = (cleaned_at_ms is not None
                          and now_ms - cleaned_at_ms >= delete_retention_ms)
    kept: list[int] = []
    removed: list[int] = []
    for record in ordered:
        if _survives(record, end, latest, cleaned_through, tombstones_expired):
            kept.append(record.offset)
        else:
            removed.append(record.offset)
    return CleaningPlan(tuple(kept), tuple(removed), max(end, cleaned_through))


def _survives(record: LogRecord, end: int, latest: dict[bytes, int], cleaned_through: int,
              tombstones_expired: bool) -> bool:
    if record.offset >= end or record.key is None:
        return True
    if latest[record.key] != record.offset:
        return False
    if record.value is None:
        return not (record.offset < cleaned_through and tombstones_expired)
    return True
