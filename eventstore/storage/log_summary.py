"""A closed partition log as its segments' metadata rows tell it, and when it next has work.

A partition no actor holds open (never used since start-up, or closed while idle) still
has figures to show (log-start-offset, log-end-offset, segments, bytes) and maintenance
due (``segment.ms`` rolling its active segment, retention deleting its oldest sealed one).
:func:`read_summary` reads the first from each segment's metadata row, opening nothing for
writing and recovering nothing, so a server can show every partition without opening its
log; :func:`maintenance_due_ms` says, from the same metadata, when the log must be opened
for its owner to do that work, so one scheduler can wake it then instead of a timer per
partition.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from eventstore.config import TopicConfig
from eventstore.errors import CorruptLog
from eventstore.storage.anchor import check_anchor, read_anchor
from eventstore.storage.compaction import deletes
from eventstore.storage.readonly import open_database
from eventstore.storage.recovery import check_chain, split_expired
from eventstore.storage.segment import (
    SegmentInfo,
    parse_segment_name,
    read_info,
    segment_name,
)

DUE_NOW = 0


@dataclass(frozen=True)
class LogSummary:
    """The segments of a closed log, oldest first; bounds as a LogView names them.

    Not something to read records through (no damage marks, no transactions): readers
    wait for the log to be opened, which publishes a LogView.
    """

    segments: tuple[SegmentInfo, ...]
    damage: tuple[()] = ()
    problem: None = None
    transactional: bool = False  # transactions are read when the log is opened

    @property
    def log_start_offset(self) -> int:
        return self.segments[-1].log_start_offset

    @property
    def high_watermark(self) -> int:
        return self.segments[-1].next_offset


def read_summary(directory: str) -> LogSummary:
    """The summary of the closed log in ``directory``: one metadata row per segment.

    CorruptLog (or KafkaStorageError) when a segment cannot be read or there is none, the
    chain has a gap or ends before its anchor, as opening the log would find.
    """
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        raise CorruptLog(f"{directory}: partition directory is missing") from None
    bases = sorted(b for b in map(parse_segment_name, names) if b is not None)
    if not bases:
        raise CorruptLog(f"{directory}: no segment file: the partition's data is gone")
    infos = [_read_info(os.path.join(directory, segment_name(b))) for b in bases]
    active = infos[-1]
    # the checks opening the log makes first, all pure: no gap, nothing lost past the anchor
    check_chain([*split_expired(infos[:-1], active)[1], active], active.log_start_offset)
    check_anchor(read_anchor(directory), active)
    return LogSummary(tuple(infos))


def _read_info(path: str) -> SegmentInfo:
    """A closed segment's metadata, read creating no file (no ``-wal`` beside an active
    segment in WAL mode: see readonly.py)."""
    conn = open_database(path)
    try:
        return read_info(conn, path)
    finally:
        conn.close()


def maintenance_due_ms(segments: Sequence[SegmentInfo], config: TopicConfig,
                       retention_from_ms: int = 0) -> int | None:
    """The wall-clock time (ms) from which the closed log of ``segments`` has work for its
    owner, as PartitionLog.maybe_roll and apply_retention decide it: a roll to finish (now),
    its active segment past ``segment.ms``, or retention (:func:`retention_due_ms`, not
    before ``retention_from_ms``). None: nothing, until the next append."""
    active = segments[-1]
    if active.is_sealed:
        return DUE_NOW
    due = [active.first_append_ms + config.segment_ms] if active.first_append_ms is not None \
        else []
    retention = retention_due_ms(segments, config)
    if retention is not None:
        due.append(max(retention, retention_from_ms))
    return min(due, default=None)


def retention_due_ms(segments: Sequence[SegmentInfo], config: TopicConfig) -> int | None:
    """When retention has a sealed segment of ``segments`` to delete: now (DUE_NOW) when
    the log is past ``retention.bytes``, else once its oldest sealed segment is past
    ``retention.ms``; None if neither ever applies before the next roll."""
    sealed = segments[:-1]
    if not sealed or not deletes(config):
        return None
    oldest = sealed[0]
    if config.retention_bytes >= 0 and (
            sum(s.bytes for s in segments) - oldest.bytes >= config.retention_bytes):
        return DUE_NOW
    newest = oldest.sealed_ms if oldest.max_timestamp is None else oldest.max_timestamp
    if config.retention_ms >= 0 and newest is not None:
        return newest + config.retention_ms + 1
    return None
