"""What the ``partitions`` and ``segments`` tables show of log compaction.

A partition's cleaning state is read from its folder as the last cleaning left it (the
cleaner's state file, swapped in with the cleaned segments): the end of the cleaned part
and when each cleaning took its span in. The bytes are counted over the sealed segments
only, as Kafka's cleaner counts them (the active segment is never cleaned): a segment
wholly below the cleaned end is clean, any other one is dirty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventstore.config import KEYS
from eventstore.storage.cleaner import CleanedPart, dirty_ratio
from eventstore.storage.segment import SegmentInfo


@dataclass(frozen=True, slots=True)
class CleaningFigures:
    """A compacted partition's cleaning state: bytes of its sealed segments cleaned and
    not yet cleaned, their dirty ratio, where the cleaned part ends and when a cleaning
    last took records into it (None: never cleaned)."""

    cleaned_bytes: int
    dirty_bytes: int
    dirty_ratio: float
    cleaned_through: int
    last_cleaned_ms: int | None


def compacted(config: Mapping[str, Any]) -> bool:
    """Whether a topic's stored config (its overrides) has ``compact`` in ``cleanup.policy``."""
    key = KEYS["cleanup.policy"]
    return "compact" in key.items(str(config.get(key.name, key.default)))


def cleaning_figures(sealed: Sequence[SegmentInfo], cleaned: CleanedPart) -> CleaningFigures:
    """The figures of a partition whose sealed segments are ``sealed`` (oldest first) and
    whose cleaned part is ``cleaned``."""
    dirty = sum(info.bytes for info in sealed if info.next_offset > cleaned.through)
    last = max((entered for _, entered in cleaned.spans), default=None)
    return CleaningFigures(sum(info.bytes for info in sealed) - dirty, dirty,
                           dirty_ratio(sealed, cleaned.through), cleaned.through, last)
