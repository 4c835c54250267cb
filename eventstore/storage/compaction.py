"""One cleaning of a partition's sealed segments (Kafka's log compaction), on its files.

It reads the sealed segments, plans which records survive (cleaner.py), writes the cleaned
files under pending names (cleaned_segments.py) and swaps them in crash-safely together
with the cleaner's state (cleaning_swap.py). The active segment is never read or written.
The cleaner's state, ``cleaner.json`` beside the segments, is the cleaned part (see
CleanedPart) and the cleanings' totals (runs, records and bytes removed, the last one's
time): it changes in the same swap as the files, so the two always agree.
:func:`cleaning_status` reads it with the segments' metadata, from the folder alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eventstore.config import KEYS, TopicConfig
from eventstore.errors import KafkaStorageError
from eventstore.storage.cleaned_segments import SegmentContents, read_contents, write_cleaned
from eventstore.storage.cleaner import (
    CleanedPart,
    cleanable_end,
    dirty_ratio,
    group_segments,
    kept_batches,
    plan_cleaning,
)
from eventstore.storage.cleaning_swap import Swap, pending_path, swap_in, write_pending_json
from eventstore.storage.records import LogRecord
from eventstore.storage.segment import (
    SegmentInfo,
    parse_segment_name,
    read_segment_info,
    segment_name,
)

STATE_FILE = "cleaner.json"


@dataclass(frozen=True, slots=True)
class CleaningSettings:
    """The topic keys a cleaning follows, with Kafka's defaults."""

    delete_retention_ms: int = 86_400_000  # delete.retention.ms
    min_compaction_lag_ms: int = 0  # min.compaction.lag.ms
    segment_bytes: int = 1 << 30  # segment.bytes: merged files stay within it

    @classmethod
    def of(cls, config: TopicConfig) -> CleaningSettings:
        """The settings a topic's config gives."""
        return cls(config.delete_retention_ms, config.min_compaction_lag_ms,
                   config.segment_bytes)


def policies(config: TopicConfig) -> frozenset[str]:
    """The items of a topic's ``cleanup.policy`` (``delete``, ``compact`` or both)."""
    return frozenset(KEYS["cleanup.policy"].items(config.cleanup_policy))


def is_compacted(config: TopicConfig) -> bool:
    """Whether the log cleaner compacts this topic (its cleanup.policy has ``compact``)."""
    return "compact" in policies(config)


def deletes(config: TopicConfig) -> bool:
    """Whether retention by time and size applies (its cleanup.policy has ``delete``)."""
    return "delete" in policies(config)


@dataclass(frozen=True, slots=True)
class CleanerState:
    """What ``cleaner.json`` holds: the cleaned part and the totals of every cleaning."""

    cleaned: CleanedPart = CleanedPart()
    runs: int = 0
    records_removed: int = 0
    bytes_removed: int = 0
    last_cleaned_ms: int | None = None

    def after(self, cleaned: CleanedPart, records: int, size: int, now_ms: int
              ) -> CleanerState:
        """The state once one more cleaning, at ``now_ms``, removed ``records`` (``size``
        bytes) and left ``cleaned``."""
        return CleanerState(cleaned, self.runs + 1, self.records_removed + records,
                            self.bytes_removed + size, now_ms)

    def to_json(self) -> dict:
        return {"spans": [list(span) for span in self.cleaned.spans], "runs": self.runs,
                "records_removed": self.records_removed,
                "bytes_removed": self.bytes_removed, "last_cleaned_ms": self.last_cleaned_ms}


@dataclass(frozen=True, slots=True)
class CleaningStatus:
    """One partition's cleaning, as its folder shows it (what SQL, metrics and the CLI
    report): bytes of sealed segments wholly in the cleaned part and the rest (the
    active segment is never cleaned, so not counted), their dirty ratio, the offset the
    cleaned part ends at, and the totals of the cleanings so far."""

    cleaned_bytes: int
    dirty_bytes: int
    dirty_ratio: float
    cleaned_through: int
    runs: int
    records_removed: int
    bytes_removed: int
    last_cleaned_ms: int | None


@dataclass(frozen=True, slots=True)
class CleaningResult:
    """What one cleaning did: records and bytes removed, sealed files before and after,
    and where the cleaned part ends now."""

    records_removed: int
    bytes_removed: int
    segments_before: int
    segments_after: int
    cleaned_through: int


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
    replaced: tuple[SegmentInfo, ...] = ()  # the sealed chain it was planned on
    state: CleanerState = CleanerState()  # cleaner.json once it is swapped in

    @property
    def result(self) -> CleaningResult:
        return CleaningResult(self.records_removed, self.bytes_removed, len(self.replaced),
                              len(self.segments), self.cleaned.through)


def read_cleaner_state(directory: str) -> CleanerState:
    """The cleaner's state as the last cleaning left it (nothing cleaned if never)."""
    try:
        with open(os.path.join(directory, STATE_FILE), encoding="utf-8") as fh:
            state = json.load(fh)
    except FileNotFoundError:
        return CleanerState()
    last = state.get("last_cleaned_ms")
    return CleanerState(
        CleanedPart(tuple((int(end), int(entered)) for end, entered in state["spans"])),
        int(state.get("runs", 0)), int(state.get("records_removed", 0)),
        int(state.get("bytes_removed", 0)), None if last is None else int(last))


def read_cleaned_part(directory: str) -> CleanedPart:
    """The cleaned part as the last cleaning left it (nothing cleaned if never)."""
    return read_cleaner_state(directory).cleaned


def cleaning_status(directory: str) -> CleaningStatus:
    """A partition's cleaning status from its folder alone, reading only (each sealed
    segment's metadata row and ``cleaner.json``): safe beside a running server, and on a
    data directory with none. A segment retention deletes meanwhile is left out."""
    names = sorted(name for name in os.listdir(directory)
                   if parse_segment_name(name) is not None)
    sealed = []
    for name in names[:-1]:  # the newest file is the active segment
        try:
            sealed.append(read_segment_info(os.path.join(directory, name)))
        except KafkaStorageError:
            if os.path.exists(os.path.join(directory, name)):
                raise
    return status_of(sealed, read_cleaner_state(directory))


def status_of(sealed: Sequence[SegmentInfo], state: CleanerState) -> CleaningStatus:
    """The cleaning status of a partition whose sealed chain is ``sealed`` (oldest first,
    the active segment left out) and whose cleaner's state is ``state``: what a running
    server reports from its view, with no file read."""
    through = state.cleaned.through
    total = sum(info.bytes for info in sealed)
    cleaned = sum(info.bytes for info in sealed if info.next_offset <= through)
    return CleaningStatus(cleaned, total - cleaned, dirty_ratio(sealed, through), through,
                          state.runs, state.records_removed, state.bytes_removed,
                          state.last_cleaned_ms)


def prepare_cleaning(directory: str, sealed: Sequence[SegmentInfo], active_base: int,
                     now_ms: int, settings: CleaningSettings,
                     throttle: Callable[[int], None] | None = None) -> PreparedCleaning:
    """Plan a cleaning of ``sealed`` (the partition's sealed chain, oldest first, all
    below ``active_base``) at ``now_ms`` and write its new files under pending names.

    A folder may hold no unfinished swap (cleaning_swap.recover_swap runs first).
    ``throttle`` is told the bytes of each segment read and each file written, and may
    sleep to hold the cleaner to ``log.cleaner.io.max.bytes.per.second``.
    """
    contents = []
    for info in sealed:
        contents.append(read_contents(info))
        if throttle is not None:
            throttle(info.bytes)
    records = [LogRecord(*row[:4]) for part in contents for row in part.rows]
    end = cleanable_end(records, active_base, now_ms, settings.min_compaction_lag_ms)
    # a transaction's records and markers are left as they are: they neither go nor make
    # an older record of their key go (a record of an aborted one is not a key's last)
    transactional = set().union(*(part.transactional() for part in contents))
    state = read_cleaner_state(directory)
    plan = plan_cleaning([r for r in records if r.offset not in transactional], end,
                         state.cleaned, now_ms, settings.delete_retention_ms)
    kept = set(plan.kept) | transactional
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
        if throttle is not None:
            throttle(segments[-1].bytes)
        old += [os.path.basename(part.info.path) for part in parts]
        new.append(name)
    removed_bytes = (sum(info.bytes for info in sealed)
                     - sum(info.bytes for info in segments))
    after = state.after(plan.cleaned, len(plan.removed), removed_bytes, now_ms)
    write_pending_json(directory, STATE_FILE, after.to_json())
    if os.path.exists(os.path.join(directory, STATE_FILE)):
        old.append(STATE_FILE)
    new.append(STATE_FILE)
    return PreparedCleaning(Swap(directory, tuple(old), tuple(new)), tuple(segments),
                            plan.cleaned, len(plan.removed), removed_bytes, tuple(sealed),
                            after)


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
