"""The ``records`` virtual table: every acknowledged record of every topic, read from segments.

A scan walks the partitions its plan allows, by topic then partition, and in each the
segments that can hold matching rows: offsets come from the segment file names (a segment
ends where the next begins, the active one at the high watermark), timestamps from each
segment's metadata. Each chosen segment is opened read-only and asked for exactly the
matching rows, in offset order, with only the stored columns the statement uses.

The per-row path is what a full scan costs, so it stays minimal: rows of consecutive
segments are chained in C (``itertools.chain``), ``Next``/``Eof``/``Column`` are a line or
two each, and a segment query reads nothing the statement does not use. Topic and partition
are not read per row at all: they are the same for every row of a segment, and making a
Python string of the topic for each row alone costs about as much as reading its value.
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import apsw

from eventstore.sql.coerce import FULL_RANGE, Affinity, SqlValue, intersect
from eventstore.sql.plan import COLUMNS, OFFSET, TXN_STATE, ScanPlan, best_index, scan_plan
from eventstore.sql.reader import DataReader, PartitionState
from eventstore.sql.snapshot import Snapshot, SnapshotScope
from eventstore.sql.txn_states import segment_states, with_states
from eventstore.storage.readonly import reading

SCHEMA = (
    "CREATE TABLE records (topic TEXT, partition INTEGER, offset INTEGER, timestamp INTEGER,"
    " key BLOB, value BLOB, headers TEXT, txn_state TEXT,"
    " PRIMARY KEY (topic, partition, offset)) WITHOUT ROWID"
)


@dataclass(frozen=True, slots=True)
class SegmentScan:
    """The rows to read from one segment: offsets ``low``..``high``, maybe only ``points``."""

    state: PartitionState
    index: int
    low: int
    high: int
    points: tuple[int, ...] | None

    @property
    def path(self) -> str:
        return self.state.path(self.index)


def segment_scans(
    state: PartitionState, plan: ScanPlan, reader: DataReader
) -> Iterator[SegmentScan]:
    """The segments of one partition that can hold rows of ``plan``, in scan order."""
    bounds = intersect(plan.offsets, (state.log_start_offset, state.high_watermark - 1))
    if bounds is None or not state.bases:
        return
    points: list[int] | None = None
    if plan.offset_points is not None:
        points = sorted(p for p in plan.offset_points if bounds[0] <= p <= bounds[1])
        if not points:
            return
        bounds = (points[0], points[-1])
    low, high = bounds
    first, last = state.index_of(low), state.index_of(high)
    indexes = range(last, first - 1, -1) if plan.descending else range(first, last + 1)
    for index in indexes:
        seg_low, seg_high = max(low, state.bases[index]), min(high, state.end(index) - 1)
        if seg_low > seg_high:
            continue
        seg_points = None
        if points is not None:
            seg_points = tuple(
                points[bisect.bisect_left(points, seg_low):bisect.bisect_right(points, seg_high)]
            )
            if not seg_points:
                continue
        if plan.timestamps != FULL_RANGE and not _may_hold(state, index, plan, reader):
            continue
        yield SegmentScan(state, index, seg_low, seg_high, seg_points)


def _may_hold(state: PartitionState, index: int, plan: ScanPlan, reader: DataReader) -> bool:
    """Whether the segment's timestamps overlap the plan's (False if it was deleted)."""
    info = reader.segment_info(state, index)
    if info is None or info.min_timestamp is None or plan.timestamps is None:
        return False
    low, high = plan.timestamps
    return info.min_timestamp <= high and info.max_timestamp >= low


def stored_columns(plan: ScanPlan) -> tuple[int, ...]:
    """The columns a segment query reads for ``plan``: the used ones a segment stores (and
    the offset for ``txn_state``, which is told by offset), then ``txn_state``'s place."""
    used = plan.columns | {OFFSET} if TXN_STATE in plan.columns else plan.columns
    return tuple(c for c in range(OFFSET, len(COLUMNS)) if c in used)


def column_positions(plan: ScanPlan) -> tuple[int, ...]:
    """Where each table column is in a segment query's row; -1: not read per row."""
    read = stored_columns(plan)
    return tuple(read.index(c) if c in read else -1 for c in range(len(COLUMNS)))


def segment_query(plan: ScanPlan, scan: SegmentScan) -> tuple[str, list[SqlValue]]:
    """The SELECT (and its arguments) that reads a scan's rows, ``stored_columns`` only
    (``txn_state`` as a NULL placeholder, which ``with_states`` fills)."""
    select = [COLUMNS[c] if c != TXN_STATE else "NULL" for c in stored_columns(plan)]
    select = select or ["NULL"]
    where = "offset >= ? AND offset <= ?"
    args: list[SqlValue] = [scan.low, scan.high]
    if scan.points is not None:
        where += " AND offset IN (SELECT value FROM json_each(?))"
        args.append(json.dumps(scan.points))
    if plan.timestamps is not None and plan.timestamps != FULL_RANGE:
        where += " AND timestamp >= ? AND timestamp <= ?"
        args += list(plan.timestamps)
    order = "DESC" if plan.descending else "ASC"
    return f"SELECT {', '.join(select)} FROM records WHERE {where} ORDER BY offset {order}", args


class SegmentReads:
    """Iterates, for one plan, over a cursor per segment read; closes each when done.

    ``path`` names the segment being read, for error messages; ``constants`` holds, by
    column number, the topic and partition of its rows (None for the other columns). A
    segment deleted by retention after the partition was listed is skipped: its records are
    below the log-start-offset by now. Offsets no segment file holds (a segment deleted from
    the middle or the front of a chain, or its newest ones) are left out with a warning
    (DataReader.warn); so is a sealed segment that ends before the next one begins.
    """

    def __init__(self, snapshot: Snapshot, plan: ScanPlan) -> None:
        self.path = ""
        self.constants: tuple[SqlValue, ...] = (None,) * len(COLUMNS)
        self._snapshot = snapshot
        self._plan = plan
        self._cursors = self._read()

    def __iter__(self) -> Iterator[Iterable[tuple]]:
        return self._cursors

    def close(self) -> None:
        self._cursors.close()

    def _partitions(self) -> Iterator[PartitionState]:
        plan = self._plan
        topics = [
            t for t in self._snapshot.catalog.topics
            if plan.topics is None or t.name in plan.topics
        ]
        for topic in reversed(topics) if plan.descending else topics:
            numbers = [
                p for p in range(topic.partitions)
                if plan.partitions is None or p in plan.partitions
            ]
            for partition in reversed(numbers) if plan.descending else numbers:
                yield self._snapshot.partition(topic.name, partition)

    def _read(self) -> Iterator[Iterable[tuple]]:
        if self._plan.matches_nothing:
            return
        reader = self._snapshot.reader
        for state in self._partitions():
            for scan in segment_scans(state, self._plan, reader):
                self.path = scan.path
                self.constants = (state.topic, state.partition) + (None,) * (len(COLUMNS) - 2)
                _warn_of_missing(reader, state, scan, self._plan)
                try:
                    conn = reader.open_segment(scan.path)
                except FileNotFoundError:
                    continue
                try:
                    sql, args = segment_query(self._plan, scan)
                    with reading(scan.path):
                        if not state.is_active(scan.index):
                            (end,) = conn.execute("SELECT next_offset FROM segment").fetchone()
                            _warn_of_gap(reader, state, scan, end)
                        cursor = conn.execute(sql, args)
                        if TXN_STATE in self._plan.columns:
                            cursor = self._with_states(cursor, conn, state, scan)
                    yield cursor
                finally:
                    conn.close()

    def _with_states(self, cursor: apsw.Cursor, conn: apsw.Connection, state: PartitionState,
                     scan: SegmentScan) -> Iterator[tuple]:
        """The cursor's rows with their ``txn_state``; the cursor itself (its placeholder a
        constant NULL) when the segment holds no transactional records from the scan on."""
        later = [state.path(i) for i in range(scan.index + 1, len(state.bases))]
        ranges = segment_states(conn, scan.path, scan.low, state.high_watermark, later,
                                self._snapshot.reader.open_segment)
        return with_states(cursor, ranges) if ranges else cursor


def _warn_of_missing(reader: DataReader, state: PartitionState, scan: SegmentScan,
                     plan: ScanPlan) -> None:
    """Warn when a scan's partition ends before its anchor, or when the scan of its first
    segment should have begun below it (a segment missing at the front)."""
    if state.problem is not None:
        reader.warn(f"partition {state.name}: {state.problem}")
    first = state.bases[0]
    wanted = intersect(plan.offsets, (state.log_start_offset, first - 1))
    if scan.index == 0 and wanted is not None:
        reader.warn(f"partition {state.name}: offsets {state.log_start_offset}..{first - 1}"
                    f" are missing (no segment file holds them): results leave them out")


def _warn_of_gap(reader: DataReader, state: PartitionState, scan: SegmentScan,
                 end: int) -> None:
    """Warn when the sealed segment of ``scan`` ends (``end``) before the next one begins
    and the scan reaches past it: a segment in between is missing."""
    following = state.end(scan.index)
    if end < following and scan.high >= end:
        reader.warn(f"partition {state.name}: offsets {end}..{following - 1} are missing"
                    f" (no segment file holds them): results leave them out")


class RecordsCursor:
    """A scan of ``records``; SQLite calls Filter, then Next/Eof/Column per row."""

    def __init__(self, scope: SnapshotScope, affinity: Affinity) -> None:
        self._scope = scope
        self._snapshot = scope.acquire()
        self._affinity = affinity
        self._reads: SegmentReads | None = None
        self._rows: Iterator[tuple] = iter(())
        self._row: tuple | None = None
        self._positions: tuple[int, ...] = ()

    def Filter(self, idx_num: int, idx_str: str | None, args: tuple) -> None:
        self._stop()
        plan = scan_plan(idx_num, idx_str, args, self._affinity)
        self._reads = SegmentReads(self._snapshot, plan)
        self._positions = column_positions(plan)
        self._rows = itertools.chain.from_iterable(self._reads)
        self.Next()

    def Next(self) -> None:
        try:
            self._row = next(self._rows, None)
        except apsw.Error:
            with reading(self._reads.path if self._reads else ""):  # re-raised, naming the file
                raise

    def Eof(self) -> bool:
        return self._row is None

    def Column(self, number: int) -> SqlValue:
        at = self._positions[number]
        return self._row[at] if at >= 0 else self._reads.constants[number]  # type: ignore

    def Close(self) -> None:
        self._stop()
        self._scope.release()

    def _stop(self) -> None:
        if self._reads is not None:
            self._reads.close()
            self._reads = None


class RecordsTable:
    """The ``records`` table object SQLite plans and opens cursors with."""

    def __init__(self, scope: SnapshotScope, affinity: Affinity) -> None:
        self._scope = scope
        self._affinity = affinity

    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:
        return best_index(info)

    def Open(self) -> RecordsCursor:
        return RecordsCursor(self._scope, self._affinity)

    def Disconnect(self) -> None:
        """Nothing to release: the engine owns the files and caches."""

    Destroy = Disconnect
