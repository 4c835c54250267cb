"""One cleaning of a partition's sealed segments (Kafka's log compaction), on its files.

It reads the sealed segments, plans which records survive (cleaner.py), writes the cleaned
files under pending names (cleaned_segments.py) and swaps them in crash-safely together
with the cleaner's state (cleaning_swap.py). The active segment is never read or written.
The cleaner's state, ``cleaner.json`` beside the segments, is the cleaned part (see
CleanedPart): it changes in the same swap as the files, so the two always agree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from eventstore.storage.cleaned_segments import SegmentContents, read_contents, write_cleaned
from eventstore.storage.cleaner import (
    CleanedPart,
    cleanable_end,
    group_segments,
    kept_batches,
    plan_cleaning,
)
from eventstore.storage.cleaning_swap import Swap, pending_path, swap_in, write_pending_json
from eventstore.storage.records import LogRecord
from eventstore.storage.segment import SegmentInfo, segment_name

STATE_FILE = "cleaner.json"


@dataclass(frozen=True, slots=True)
class CleaningSettings:
    """The topic keys a cleaning follows, with Kafka's defaults."""

    delete_retention_ms: int = 86_400_000  # delete.retention.ms
    min_compaction_lag_ms: int = 0  # min.compaction.lag.ms
    segment_bytes: int = 1 << 30  # segment.bytes: merged files stay within it


@dataclass(frozen=True, slots=True)
class PreparedCleaning:
    """A cleaning whose new files are written and fsynced, not yet swapped in.

    ``segments`` is the sealed chain as it will be once ``swap`` is done, oldest first.
    """

    swap: Swap
    segments: tuple[SegmentInfo, ...]
    cleaned: CleanedPart
    records_removed: int
    bytes_removed: int


def read_cleaned_part(directory: str) -> CleanedPart:
    """The cleaned part as the last cleaning left it (nothing cleaned if never)."""
    try:
        with open(os.path.join(directory, STATE_FILE), encoding="utf-8") as fh:
            spans = json.load(fh)["spans"]
    except FileNotFoundError:
        return CleanedPart()
    return CleanedPart(tuple((int(end), int(entered)) for end, entered in spans))


def prepare_cleaning(directory: str, sealed: Sequence[SegmentInfo], active_base: int,
                     now_ms: int, settings: CleaningSettings) -> PreparedCleaning:
    """Plan a cleaning of ``sealed`` (the partition's sealed chain, oldest first, all
    below ``active_base``) at ``now_ms`` and write its new files under pending names.

    A folder may hold no unfinished swap (cleaning_swap.recover_swap runs first).
    """
    contents = [read_contents(info) for info in sealed]
    records = [LogRecord(*row[:4]) for part in contents for row in part.rows]
    end = cleanable_end(records, active_base, now_ms, settings.min_compaction_lag_ms)
    cleaned = read_cleaned_part(directory)
    plan = plan_cleaning(records, end, cleaned, now_ms, settings.delete_retention_ms)
    kept = set(plan.kept)
    batches = set(kept_batches((b for part in contents for b in part.batches), kept))
    segments: list[SegmentInfo] = []
    old: list[str] = []
    new: list[str] = []
    for group in group_segments([part.info.bytes for part in contents], settings.segment_bytes):
        parts = contents[group.start:group.stop]
        if len(parts) == 1 and _unchanged(parts[0], kept, batches):
            segments.append(parts[0].info)
            continue
        name = segment_name(parts[0].info.base_offset)
        segments.append(write_cleaned(parts, kept, batches, pending_path(directory, name),
                                      os.path.join(directory, name)))
        old += [os.path.basename(part.info.path) for part in parts]
        new.append(name)
    write_pending_json(directory, STATE_FILE, {"spans": [list(s) for s in plan.cleaned.spans]})
    if os.path.exists(os.path.join(directory, STATE_FILE)):
        old.append(STATE_FILE)
    new.append(STATE_FILE)
    removed_bytes = (sum(info.bytes for info in sealed)
                     - sum(info.bytes for info in segments))
    return PreparedCleaning(Swap(directory, tuple(old), tuple(new)), tuple(segments),
                            plan.cleaned, len(plan.removed), removed_bytes)


def _unchanged(part: SegmentContents, kept: set[int], batches: set[int]) -> bool:
    """Whether a cleaning keeps every row and batch of this segment (no rewrite needed)."""
    return (all(row[0] in kept for row in part.rows)
            and all(batch.base_offset in batches for batch in part.batches))


def clean_segments(directory: str, sealed: Sequence[SegmentInfo], active_base: int,
                   now_ms: int, settings: CleaningSettings) -> PreparedCleaning:
    """One whole cleaning: :func:`prepare_cleaning`, then the swap. The caller (the log's
    owner) then reads the log as ``segments`` and the active segment."""
    prepared = prepare_cleaning(directory, sealed, active_base, now_ms, settings)
    swap_in(prepared.swap)
    return prepared
