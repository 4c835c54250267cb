"""Reading sealed segments for the cleaner, and writing the cleaned files that replace them.

A cleaned file is an ordinary sealed segment (the schema segment.py writes, one rollback
journal file that ``sqlite3`` and every reader open) covering the same offsets as the
segments it replaces, from the first one's base to the last one's end; it holds only the
surviving rows, each at its original offset, so it has gaps. Its ``batches`` rows keep
their original offset ranges with the bytes and newest timestamp of what is left, and the
``txn_batches`` rows of the batches kept (a transaction's batches and markers) stay as
they were.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

import apsw

from eventstore.storage.cleaner import BatchRow
from eventstore.storage.records import StoredRow
from eventstore.storage.schema import create_schema
from eventstore.storage.segment import (
    ROW_BYTES_SQL,
    SegmentInfo,
    fsync_file,
    open_readonly,
    remove_database_files,
    storage_errors,
)


@dataclass(frozen=True, slots=True)
class SegmentContents:
    """Everything a sealed segment holds: its metadata, rows and batches, oldest first."""

    info: SegmentInfo
    rows: tuple[StoredRow, ...]
    batches: tuple[BatchRow, ...]
    # rows of txn_batches (base, last, producer id, epoch, marker): transactional batches
    txn_batches: tuple[tuple[int, int, int, int, str | None], ...] = ()

    def transactional(self) -> set[int]:
        """Offsets of the records in transactional batches and markers, which a cleaning
        leaves as they are (see compaction.prepare_cleaning)."""
        found: set[int] = set()
        ranges = iter(self.txn_batches)  # both in offset order: one pass
        current = next(ranges, None)
        for offset, *_ in self.rows:
            while current is not None and current[1] < offset:
                current = next(ranges, None)
            if current is None:
                break
            if current[0] <= offset:
                found.add(offset)
        return found


def read_contents(info: SegmentInfo) -> SegmentContents:
    """Read a sealed segment whole, in one read transaction."""
    conn = open_readonly(info.path)
    try:
        with storage_errors(info.path), conn:
            rows = conn.execute(
                "SELECT offset, timestamp, key, value, headers FROM records ORDER BY offset"
            ).fetchall()
            batches = conn.execute(
                "SELECT base_offset, last_offset, max_timestamp, bytes, appended_ms,"
                " producer_id, producer_epoch, base_sequence FROM batches ORDER BY base_offset"
            ).fetchall()
            txn = conn.execute(
                "SELECT base_offset, last_offset, producer_id, producer_epoch, marker"
                " FROM txn_batches ORDER BY base_offset").fetchall() if conn.execute(
                "SELECT 1 FROM sqlite_schema WHERE name = 'txn_batches'").fetchall() else []
    finally:
        conn.close()
    return SegmentContents(info, tuple(rows), tuple(BatchRow(*batch) for batch in batches),
                           tuple(txn))


def write_cleaned(group: Sequence[SegmentContents], kept: Container[int],
                  kept_batches: Container[int], path: str, final_path: str) -> SegmentInfo:
    """Write at ``path`` (a pending name, see cleaning_swap) the one file that replaces the
    segments of ``group`` (consecutive, oldest first): their rows at ``kept`` offsets and
    their batches at ``kept_batches`` base offsets. Fsynced before it returns; its
    metadata, as the file will be known under ``final_path``, is returned."""
    first, last = group[0].info, group[-1].info
    rows = [row for part in group for row in part.rows if row[0] in kept]
    batches = [batch for part in group for batch in part.batches
               if batch.base_offset in kept_batches]
    txn = [row for part in group for row in part.txn_batches if row[0] in kept_batches]
    with storage_errors(path):
        remove_database_files(path)
        try:
            size, min_ts, max_ts = _fill(path, rows, batches, txn, first, last)
        except BaseException:
            remove_database_files(path)  # a failed write (a full disk...) leaves nothing
            raise
    fsync_file(path)
    return SegmentInfo(final_path, first.base_offset, last.next_offset, last.log_start_offset,
                       size, min_ts, max_ts, first.created_ms, first.first_append_ms,
                       last.sealed_ms)


def _fill(path: str, rows: Sequence[StoredRow], batches: Sequence[BatchRow],
          txn: Sequence[tuple[int, int, int, int, str | None]], first: SegmentInfo,
          last: SegmentInfo) -> tuple[int, int | None, int | None]:
    """Create the segment file at ``path`` with these rows and batches, in one
    transaction; returns its (bytes, min timestamp, max timestamp)."""
    conn = apsw.Connection(path)
    try:
        create_schema(conn, "segment")
        with conn:
            conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", rows)
            for batch in batches:
                conn.execute(
                    "INSERT INTO batches VALUES (?1, ?2, coalesce((SELECT max(timestamp)"
                    " FROM records WHERE offset BETWEEN ?1 AND ?2), ?3),"
                    f" (SELECT coalesce(sum({ROW_BYTES_SQL}), 0) FROM records"
                    " WHERE offset BETWEEN ?1 AND ?2), ?4, ?5, ?6, ?7)",
                    (batch.base_offset, batch.last_offset, batch.max_timestamp,
                     batch.appended_ms, batch.producer_id, batch.producer_epoch,
                     batch.base_sequence),
                )
            if txn:
                conn.executemany("INSERT INTO txn_batches VALUES (?, ?, ?, ?, ?)", txn)
            size, min_ts, max_ts = conn.execute(
                f"SELECT coalesce(sum({ROW_BYTES_SQL}), 0), min(timestamp), max(timestamp)"
                " FROM records").fetchone()
            conn.execute(
                "INSERT INTO segment VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (first.base_offset, last.next_offset, last.log_start_offset, size,
                 min_ts, max_ts, first.created_ms, first.first_append_ms, last.sealed_ms),
            )
    finally:
        conn.close()
    return size, min_ts, max_ts
