"""Reading a partition: the snapshot readers see (``LogView``) and the reader that reads
records through its own read-only connections (``LogReader``).

A view shows only acknowledged records (up to the high watermark) and none of a segment
marked damaged: a read stops before such a segment, and a read at it raises CorruptLog
(KAFKA_STORAGE_ERROR), while the offsets before and after it are served. A read that a
storage error stops is reported through the view, so the partition's owner learns of
damage it did not know.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import apsw

from eventstore.errors import CorruptLog, KafkaError, KafkaStorageError, OffsetOutOfRange
from eventstore.storage.records import StoredRow
from eventstore.storage.segment import (
    SegmentInfo,
    end_offset_within_bytes,
    first_offset_at_or_after,
    open_readonly,
    read_rows,
)
from eventstore.storage.transaction_index import AbortedTxn, TxnBatch, read_txn_batches


@dataclass(frozen=True, slots=True)
class Damage:
    """One segment whose records cannot be read (its file is gone, replaced or damaged)."""

    path: str
    base_offset: int
    next_offset: int
    reason: str  # what found it, one line naming the file (the error's message)

    def error(self) -> CorruptLog:
        """A fresh error for a read that reaches this segment (KAFKA_STORAGE_ERROR)."""
        return CorruptLog(f"offsets {self.base_offset}..{self.next_offset - 1} cannot be read:"
                          f" {self.reason}")


# Told of each read a storage error stopped: the segment and the error; returns the error
# the reader raises (OffsetOutOfRange when retention, not damage, removed the segment).
ReadFailureHook = Callable[[SegmentInfo, KafkaStorageError], KafkaError]


@dataclass(frozen=True, slots=True)
class LogView:
    """A consistent snapshot of a partition for readers: its segments and bounds.

    Readers never see past ``high_watermark``: only acknowledged records are visible, and
    none of a ``damage``d segment. A read a storage error stops is reported to
    ``on_read_failure``, which the partition's owner sets to learn of damage it has not.
    """

    segments: tuple[SegmentInfo, ...]
    log_start_offset: int
    high_watermark: int
    # the topic's message.timestamp.type: what the stored timestamps are, for fetches
    timestamp_type: str = "CreateTime"
    damage: tuple[Damage, ...] = ()
    on_read_failure: ReadFailureHook | None = field(default=None, compare=False)
    # the topic's compression.type: the codec of the batches fetches encode
    compression: str = "producer"
    # transactions (see transaction_index): the last stable offset (the high watermark
    # when none is open), the aborted-transaction index, and whether the partition ever
    # had a transactional batch (only then do reads look for them)
    last_stable_offset: int = -1
    aborted: tuple[AbortedTxn, ...] = ()
    transactional: bool = False

    def segment_index(self, offset: int) -> int:
        """Index of the segment holding ``offset``."""
        bases = [s.base_offset for s in self.segments]
        return max(bisect.bisect_right(bases, offset) - 1, 0)

    def damaged(self, segment: SegmentInfo) -> Damage | None:
        """The damage recorded for ``segment``, if any."""
        for damage in self.damage:
            if damage.base_offset == segment.base_offset:
                return damage
        return None

    @property
    def problem(self) -> str | None:
        """What of this partition cannot be read, in one line (None: all of it can)."""
        if not self.damage:
            return None
        return "; ".join(str(damage.error()) for damage in self.damage)

    def read_failed(self, segment: SegmentInfo, error: KafkaStorageError) -> KafkaError:
        """Report a failed read of ``segment``; the error the reader should raise."""
        hook = self.on_read_failure
        return error if hook is None else hook(segment, error)


# Most connections one reader keeps: past it the least recently used is closed, so that a
# client reading thousands of partitions does not hold thousands of files open.
MAX_READER_CONNECTIONS = 64


class LogReader:
    """Reads records through its own read-only connections, so a read never waits on a write.

    Each consumer (and the log itself) has one; connections are kept per segment file, at
    most ``max_connections`` (the least recently used closed first), and dropped once a
    segment leaves the view.
    """

    def __init__(self, max_connections: int = MAX_READER_CONNECTIONS) -> None:
        self._max = max_connections
        self._conns: dict[str, apsw.Connection] = {}  # least recently used first
        # the segment each connection was opened for: a cleaning puts a new file under an
        # old name, with other metadata, and the old file's connection must not read it
        self._opened_for: dict[str, SegmentInfo] = {}

    def _conn(self, view: LogView, segment: SegmentInfo) -> apsw.Connection:
        """The connection to read ``segment`` through; CorruptLog if it cannot be read.

        A connection opened for an older file of the same name (one a cleaning replaced)
        is dropped for a new one once a view names the new file."""
        if view.damage and (damage := view.damaged(segment)) is not None:
            raise damage.error()
        conn = self._conns.get(segment.path)
        if conn is not None and (opened := self._opened_for[segment.path]) is not segment:
            if opened.is_sealed and segment.is_sealed and opened != segment:
                self.forget(segment.path)
                conn = None
            else:
                self._opened_for[segment.path] = segment
        if conn is None:
            if not os.path.exists(segment.path):
                raise CorruptLog(f"{segment.path}: missing: the segment file was deleted")
            if len(self._conns) >= self._max:
                self.forget(next(iter(self._conns)))
            conn = self._conns[segment.path] = open_readonly(segment.path)
            self._opened_for[segment.path] = segment
        elif len(self._conns) > 1:
            self._conns[segment.path] = self._conns.pop(segment.path)  # most recently used
        return conn

    def _failed(self, view: LogView, segment: SegmentInfo, error: KafkaStorageError
                ) -> KafkaError:
        """The error to raise for a read of ``segment`` that ``error`` stopped, reported."""
        self.forget(segment.path)  # a damaged file is not read through an old connection
        return view.read_failed(segment, error)

    def read(
        self, view: LogView, offset: int, max_records: int, max_bytes: int | None = None
    ) -> list[StoredRow]:
        """Rows from ``offset`` on, up to the high watermark, within both limits.

        A fetch at the high watermark returns nothing; below the log-start-offset or past
        the high watermark raises OffsetOutOfRange, as Kafka does. A segment that cannot be
        read ends the read before it, or, when the read starts there, raises CorruptLog
        (KAFKA_STORAGE_ERROR): the rows before a damaged segment are still served.
        """
        check_offset(view, offset)
        rows: list[StoredRow] = []
        budget = max_bytes
        index = view.segment_index(offset)
        while offset < view.high_watermark and len(rows) < max_records:
            segment = view.segments[index]
            segment_end = min(
                segment.next_offset if segment.is_sealed else view.high_watermark,
                view.high_watermark,
            )
            end = segment_end
            try:
                conn = self._conn(view, segment)
                used = 0
                if budget is not None:
                    end, used = end_offset_within_bytes(
                        conn, segment.path, offset, end, budget, at_least_one=not rows
                    )
                chunk = read_rows(conn, segment.path, offset, end, max_records - len(rows))
            except KafkaStorageError as error:
                failure = self._failed(view, segment, error)
                if not rows:
                    _raise(failure, error)
                break  # hand out what was read; the next read starts at the damage
            if budget is not None:
                budget -= used
            rows.extend(chunk)
            if chunk:
                offset = chunk[-1][0] + 1
            elif end > offset or (not rows and used == 0):
                # nothing kept up to ``end``, or in the rest of the segment (no batch left):
                # a gap a cleaning left; read on past it
                offset = end if end > offset else segment_end
                if offset < segment_end:
                    continue
            # stop unless this segment was read to its end: the byte budget may have cut it
            # short, and moving on to the next segment would then skip records
            if offset < segment_end or (budget is not None and budget <= 0):
                break
            index += 1
            if index == len(view.segments):
                break
        return rows

    def offset_for_timestamp(self, view: LogView, timestamp: int) -> int | None:
        """The first offset whose timestamp is >= ``timestamp``; None if there is none."""
        for segment in view.segments:
            if segment.max_timestamp is None and segment.is_sealed:
                continue
            if segment.is_sealed and segment.max_timestamp < timestamp:
                continue
            try:
                found = first_offset_at_or_after(
                    self._conn(view, segment), segment.path, timestamp)
            except KafkaStorageError as error:
                _raise(self._failed(view, segment, error), error)
            if found is not None and found < view.high_watermark:
                return max(found, view.log_start_offset)
        return None

    def txn_batches(self, view: LogView, start: int, end: int) -> list[TxnBatch]:
        """The transactional batches and markers overlapping offsets [start, end), in
        offset order (none unless the partition has had any: no query then)."""
        if not view.transactional or start >= end:
            return []
        found: list[TxnBatch] = []
        for segment in view.segments[view.segment_index(start):]:
            if segment.base_offset >= end:
                break
            try:
                found.extend(read_txn_batches(self._conn(view, segment), segment.path,
                                              start, end))
            except KafkaStorageError as error:
                _raise(self._failed(view, segment, error), error)
        return found

    def forget(self, path: str) -> None:
        """Close the connection to one segment file, if open (the log is about to seal it)."""
        self._opened_for.pop(path, None)
        conn = self._conns.pop(path, None)
        if conn is not None:
            conn.close()

    def prune(self, view: LogView) -> None:
        """Close connections to segments that are no longer part of ``view``."""
        live = {s.path for s in view.segments}
        for path in [p for p in self._conns if p not in live]:
            self.forget(path)

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        self._opened_for.clear()


def _raise(failure: KafkaError, cause: KafkaStorageError) -> NoReturn:
    """Raise ``failure``, chained to ``cause`` unless it is ``cause`` itself."""
    if failure is cause:
        raise cause
    raise failure from cause


def check_offset(view: LogView, offset: int) -> None:
    """OffsetOutOfRange unless log-start-offset <= offset <= high watermark."""
    if offset < view.log_start_offset or offset > view.high_watermark:
        raise OffsetOutOfRange(
            f"offset {offset} is outside the log: log-start-offset {view.log_start_offset},"
            f" log-end-offset {view.high_watermark}"
        )
