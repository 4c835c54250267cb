"""A segment: one SQLite file holding a contiguous range of a partition's offsets.

The active segment is the only one written; it runs in WAL mode so readers never wait
behind the writer. Sealing checkpoints it and switches it back to a rollback journal, so
a sealed segment is one self-contained file that is never written again and that the
plain ``sqlite3`` tool reads. A batch is appended in one transaction: all or nothing.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter

import apsw

from eventstore.errors import CorruptLog, DiskFull, KafkaStorageError, RecordTooLarge
from eventstore.open_files import at_open_file_limit, is_too_many_open_files, too_many_open_files
from eventstore.storage.records import (
    RECORD_OVERHEAD,
    AppendRow,
    ProducerBatchInfo,
    StoredRow,
)
from eventstore.storage.schema import check_schema_version, schema_sql

SUFFIX = ".db"

# Bytes a stored row counts for (the same count as records.record_size).
ROW_BYTES_SQL = (
    f"{RECORD_OVERHEAD} + coalesce(octet_length(key), 0) + coalesce(octet_length(value), 0)"
    " + coalesce(octet_length(headers), 0)"
)

_SELECT_ROWS = (
    "SELECT offset, timestamp, key, value, headers FROM records"
    " WHERE offset >= ? AND offset < ? ORDER BY offset LIMIT ?"
)


# A transactional batch's stamp in ``txn_batches``: (producer id, epoch, marker or None)
TxnStamp = tuple[int, int, str | None]
# the table's definition, from schema/segment.sql, for segments made before it
TXN_TABLE_SQL = re.search(r"CREATE TABLE IF NOT EXISTS txn_batches .*?\);",
                          schema_sql("segment"), re.S).group(0)

# SQLite's default auto-checkpoint threshold, kept: the WAL stays about 4 MiB.
WAL_CHECKPOINT_PAGES = 1000

# A batch whose records fall into at most this many runs of equal (timestamp, key, headers)
# is inserted one run at a time from an array of its values; any other row by row.
MAX_RUNS = 8

_TIMESTAMP_KEY_HEADERS = itemgetter(0, 1, 3)
_VALUE = itemgetter(2)


def insert_rows(conn: apsw.Connection, rows: Sequence[AppendRow], first_offset: int | None,
                now_ms: int) -> tuple[int, int, int] | None:
    """Insert ``rows`` after the table's last row; a None timestamp is ``now_ms``.

    SQLite numbers the rows (offset is the rowid), so that the caller can check they
    continue where the segment's metadata says; only into an empty table, which SQLite
    would number from 1, the first offset is named (``first_offset``, else None).
    Returns (min timestamp, max timestamp, bytes) of the rows when the insert could count
    them for free, else None (the caller asks SQLite).

    Records sent together mostly share their timestamp (a millisecond holds thousands) and
    carry no key or headers. Such a batch goes in as a few statements that each read a run
    of values from an array (SQLite's carray), stepping through the rows in C without the
    GIL: about half the cost of binding each row from Python, and the caller's thread
    (a producer filling the next batch) runs meanwhile. Other batches are bound row by row.
    """
    runs = _runs(rows)
    values = () if runs is None else tuple(map(_VALUE, rows))
    if runs is None or None in values:
        timestamp = f"coalesce(?1, {int(now_ms)})"
        conn.execute(f"INSERT INTO records VALUES (?5, {timestamp}, ?2, ?3, ?4)",
                     (*rows[0], first_offset))
        conn.executemany(
            f"INSERT INTO records (timestamp, key, value, headers)"
            f" VALUES ({timestamp}, ?2, ?3, ?4)",
            rows[1:],
        )
        return None
    start = 0
    size = RECORD_OVERHEAD * len(rows) + sum(map(len, values))
    stamps = []
    for (timestamp, key, headers), count in runs:
        stamps.append(now_ms if timestamp is None else timestamp)
        size += count * ((len(key) if key else 0) + (len(headers.encode()) if headers else 0))
        conn.execute(  # ?1 NULL: SQLite numbers the row
            "INSERT INTO records SELECT ?1 + rowid - 1, coalesce(?2, ?3), ?4, value, ?5"
            " FROM carray(?6)",
            (first_offset if start == 0 else None, timestamp, now_ms, key, headers,
             apsw.carray(values, start=start, stop=start + count)),
        )
        start += count
    return min(stamps), max(stamps), size


def _runs(rows: Sequence[AppendRow]) -> list[tuple[tuple, int]] | None:
    """Consecutive rows grouped by (timestamp, key, headers), with their counts; None when
    there are more than MAX_RUNS groups."""
    runs = []
    for shared, group in itertools.groupby(map(_TIMESTAMP_KEY_HEADERS, rows)):
        if len(runs) == MAX_RUNS:
            return None
        runs.append((shared, len(list(group))))
    return runs


def segment_name(base_offset: int) -> str:
    """File name of the segment starting at ``base_offset`` (Kafka's 20-digit form)."""
    return f"{base_offset:020d}{SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The base offset a segment file name encodes, or None for any other file."""
    stem, dot, suffix = name.partition(".")
    if dot and "." + suffix == SUFFIX and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A segment's metadata as stored in its ``segment`` table."""

    path: str
    base_offset: int
    next_offset: int
    log_start_offset: int
    bytes: int
    min_timestamp: int | None
    max_timestamp: int | None
    created_ms: int
    first_append_ms: int | None
    sealed_ms: int | None

    @property
    def record_count(self) -> int:
        return self.next_offset - self.base_offset

    @property
    def last_offset(self) -> int:
        """Offset of the last record (base_offset - 1 when empty)."""
        return self.next_offset - 1

    @property
    def is_sealed(self) -> bool:
        return self.sealed_ms is not None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a batch landed: its first and last offset and the timestamp it was stored with.

    ``duplicate``: an idempotent producer's retry of a batch already in the log, answered
    with the original offsets and not written again (``bytes`` is then 0).
    """

    base_offset: int
    last_offset: int
    log_append_time: int
    bytes: int
    log_start_offset: int
    duplicate: bool = False


class SegmentFull(Exception):
    """Internal: this batch would push the active segment past ``segment.bytes``."""


@contextlib.contextmanager
def storage_errors(path: str) -> Iterator[None]:
    """Turn SQLite's errors on ``path`` into KafkaStorageError / CorruptLog / DiskFull
    naming the file.

    On a full disk SQLite rolls the transaction back itself, and apsw's ``with conn:`` then
    fails to roll it back again with SQLError("cannot rollback - no transaction is
    active"), the full disk as its context: that is reported as the full disk it is. So is
    SQLITE_IOERR_SHMSIZE, a WAL's shared-memory file that could not grow. A file that
    cannot be opened at the open-file limit is TooManyOpenFiles, naming the limit.
    """
    try:
        yield
    except (apsw.CorruptError, apsw.NotADBError) as exc:
        raise CorruptLog(f"{path}: {exc}") from exc
    except apsw.FullError as exc:
        raise DiskFull(f"{path}: disk full ({exc})") from exc
    except apsw.IOError as exc:
        if exc.extendedresult == apsw.SQLITE_IOERR_SHMSIZE:
            raise DiskFull(f"{path}: disk full (its shared-memory file cannot grow)") from exc
        raise KafkaStorageError(f"{path}: {exc}") from exc
    except apsw.SQLError as exc:
        if isinstance(exc.__context__, apsw.FullError):
            raise DiskFull(f"{path}: disk full ({exc.__context__})") from exc.__context__
        raise
    except apsw.CantOpenError as exc:
        if at_open_file_limit():
            raise too_many_open_files(path) from exc
        raise KafkaStorageError(f"{path}: {exc}") from exc
    except apsw.ReadOnlyError as exc:
        raise KafkaStorageError(f"{path}: {exc}") from exc


def check_integrity(conn: apsw.Connection, path: str, limit: int = 5) -> None:
    """CorruptLog naming the file unless ``PRAGMA quick_check`` finds every page sound.

    It reads the whole file, so only tools and the catalog's start-up check use it. Up to
    ``limit`` of SQLite's findings make the message, on one line.
    """
    with storage_errors(path):
        findings = [row[0] for row in conn.execute(f"PRAGMA quick_check({int(limit)})")]
    if findings != ["ok"]:
        lines = [line for text in findings for line in text.splitlines()
                 if not line.startswith("*** in database")]
        raise CorruptLog(f"{path}: integrity check failed: {'; '.join(lines)}")


def apply_writer_pragmas(conn: apsw.Connection, *, fsync: bool) -> None:
    """The pragmas of a segment's writer (the storage benchmark's bare loop uses them too)."""
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    conn.execute("PRAGMA journal_mode = WAL").fetchall()
    conn.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}")


# How long a connection waits for a lock another one holds briefly (a seal switching a file
# out of WAL mode, a checkpoint) before it reports the segment busy.
BUSY_TIMEOUT_MS = 5000


def open_readonly(path: str) -> apsw.Connection:
    """A read-only connection to a segment, as every reader (consumer, SQL) uses."""
    with storage_errors(path):
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        return conn


def read_info(conn: apsw.Connection, path: str) -> SegmentInfo:
    """A segment's metadata; CorruptLog if the file is not a segment of this version."""
    with storage_errors(path):
        check_schema_version(conn, "segment", path)
        try:
            row = conn.execute(
                "SELECT base_offset, next_offset, log_start_offset, bytes, min_timestamp,"
                " max_timestamp, created_ms, first_append_ms, sealed_ms FROM segment"
            ).fetchone()
        except apsw.SQLError as exc:
            raise CorruptLog(f"{path}: not a segment file ({exc})") from exc
    if row is None:
        raise CorruptLog(f"{path}: segment metadata row is missing")
    return SegmentInfo(path, *row)


def read_segment_info(path: str) -> SegmentInfo:
    """Open a segment read-only just long enough to read its metadata."""
    conn = open_readonly(path)
    try:
        return read_info(conn, path)
    finally:
        conn.close()


def read_rows(
    conn: apsw.Connection, path: str, start: int, end: int, limit: int
) -> list[StoredRow]:
    """Rows with start <= offset < end, at most ``limit`` of them, in offset order."""
    with storage_errors(path):
        return conn.execute(_SELECT_ROWS, (start, end, limit)).fetchall()


def end_offset_within_bytes(
    conn: apsw.Connection, path: str, start: int, end: int, max_bytes: int, *, at_least_one: bool
) -> tuple[int, int]:
    """(end, bytes): the end (exclusive) of whole batches from ``start`` that fit ``max_bytes``.

    Like Kafka, the first batch of a fetch is returned even when it alone is larger, so a
    consumer always makes progress (``at_least_one``).
    """
    total = 0
    reached = start
    with storage_errors(path):
        for last_offset, size in conn.execute(
            "SELECT last_offset, bytes FROM batches WHERE last_offset >= ? AND base_offset < ?"
            " ORDER BY base_offset",
            (start, end),
        ):
            if total + size > max_bytes and (total or not at_least_one):
                break
            total += size
            reached = min(last_offset + 1, end)
    return reached, total


def first_offset_at_or_after(conn: apsw.Connection, path: str, timestamp: int) -> int | None:
    """The first offset whose timestamp is >= ``timestamp`` in this segment, if any."""
    with storage_errors(path):
        batch = conn.execute(
            "SELECT base_offset, last_offset FROM batches WHERE max_timestamp >= ?"
            " ORDER BY base_offset LIMIT 1",
            (timestamp,),
        ).fetchone()
        if batch is None:
            return None
        (offset,) = conn.execute(
            "SELECT min(offset) FROM records WHERE offset BETWEEN ? AND ? AND timestamp >= ?",
            (*batch, timestamp),
        ).fetchone()
    return offset


def read_producer_batches(
    conn: apsw.Connection, path: str, per_producer: int
) -> list[tuple[int, int, int, int, int, int]]:
    """The newest ``per_producer`` batches of each idempotent producer here, newest first.

    Rows of (producer_id, producer_epoch, base_sequence, base_offset, last_offset,
    appended_ms), from the ``batches`` table alone: what rebuilding producer state reads.
    """
    with storage_errors(path):
        return conn.execute(
            "SELECT producer_id, producer_epoch, base_sequence, base_offset, last_offset,"
            " appended_ms FROM (SELECT *, row_number() OVER (PARTITION BY producer_id"
            " ORDER BY base_offset DESC) AS newest FROM batches WHERE producer_id IS NOT NULL)"
            " WHERE newest <= ? ORDER BY base_offset DESC",
            (per_producer,),
        ).fetchall()


def finish_seal(path: str) -> bool:
    """Checkpoint a sealed segment and leave it a single rollback-journal file.

    Returns False when a reader still holds the WAL open, or the disk has no room for the
    checkpoint; the caller retries later. Readers see the same records either way.
    """
    with storage_errors(path):
        # never create the file: a segment that is gone must stay gone
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                return False
            (mode,) = conn.execute("PRAGMA journal_mode = DELETE").fetchone()
            return mode == "delete"
        except (apsw.BusyError, apsw.FullError):  # a reader holds a lock, a full disk: later
            return False
        finally:
            conn.close()


def write_empty_segment(directory: str, base_offset: int, log_start_offset: int,
                        now_ms: int) -> str:
    """Write a new, empty segment file (open nowhere); its path. It appears under its real
    name only once complete and durable."""
    path = os.path.join(directory, segment_name(base_offset))
    tmp = path + ".creating"
    with storage_errors(path):
        remove_database_files(tmp)
        conn = apsw.Connection(tmp)
        try:
            # one durable write below instead of a sync per statement: the file is not
            # under its name before the rename
            conn.execute("PRAGMA synchronous = OFF")
            with conn:
                conn.execute(schema_sql("segment"))
                conn.execute(
                    "INSERT INTO segment (id, base_offset, next_offset, log_start_offset,"
                    " bytes, created_ms) VALUES (1, ?, ?, ?, 0, ?)",
                    (base_offset, base_offset, log_start_offset, now_ms),
                )
            # made in the mode its writer keeps (a new segment is the active one), so that
            # opening it to write switches nothing: no write, no sync
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
        except BaseException:
            conn.close()
            remove_database_files(tmp)  # a failed creation (a full disk...) leaves nothing
            raise
        conn.close()
        _publish(tmp, path, directory)
    return path


def copy_segment_file(source: str, directory: str) -> str:
    """Copy the closed segment file ``source`` (an empty one :func:`write_empty_segment`
    wrote) into ``directory`` under the same name, durably; its path. Making each new
    partition's first segment this way costs a file copy, not a schema creation."""
    path = os.path.join(directory, os.path.basename(source))
    tmp = path + ".creating"
    with os_errors(path):
        try:
            shutil.copyfile(source, tmp)
            _publish(tmp, path, directory)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return path


@contextlib.contextmanager
def os_errors(path: str) -> Iterator[None]:
    """An OSError on ``path`` as KafkaStorageError naming it (DiskFull for a full disk,
    TooManyOpenFiles at the open-file limit)."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFull(f"{path}: disk full") from exc
        if is_too_many_open_files(exc):
            raise too_many_open_files(path) from exc
        raise KafkaStorageError(f"{path}: {exc.strerror or exc}") from exc


def _publish(tmp: str, path: str, directory: str) -> None:
    """Make the complete file ``tmp`` durable, then durably ``path``."""
    fsync_file(tmp)
    os.rename(tmp, path)
    fsync_directory(directory)


def remove_database_files(path: str) -> None:
    """Delete the database at ``path`` with its WAL, shared-memory and journal files, those
    that exist."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)


FileId = tuple[int, int]


def file_id(path: str) -> FileId | None:
    """(device, inode) of the file at ``path`` now; None if there is none. A file deleted
    or replaced under an open connection shows as None or as another id."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def is_wal_mode(path: str) -> bool:
    """Whether the file still carries WAL mode in its header (a seal not yet finished)."""
    with open(path, "rb") as fh:
        header = fh.read(20)
    return len(header) == 20 and header[18] == 2


class ActiveSegment:
    """The segment being written: the one connection that writes a partition's newest file."""

    def __init__(self, conn: apsw.Connection, info: SegmentInfo) -> None:
        self._conn = conn
        self.info = info
        self.wal_pages = 0
        # the files this connection writes, as opened: the segment and its WAL (which the
        # open's first read in WAL mode created), compared by check_files
        self.file_ids = (file_id(info.path), file_id(info.path + "-wal"))
        # SQLite checkpoints inside the commit that fills the WAL; here the segment's
        # owner decides when (checkpoint_if_due), so that it can answer the append first
        conn.execute("PRAGMA wal_autocheckpoint = 0").fetchall()
        conn.set_wal_hook(self._count_wal)
        # a segment made before transactions gains txn_batches with its first such batch
        self._has_txn_table = bool(conn.execute(
            "SELECT 1 FROM sqlite_schema WHERE name = 'txn_batches'").fetchall())

    def _count_wal(self, _conn: apsw.Connection, _db: str, pages: int) -> int:
        self.wal_pages = pages
        return apsw.SQLITE_OK

    def checkpoint_if_due(self) -> bool:
        """Copy the WAL into the segment once it holds WAL_CHECKPOINT_PAGES pages (PASSIVE,
        as SQLite's auto-checkpoint: readers are never waited for). Returns whether it ran."""
        if self.wal_pages < WAL_CHECKPOINT_PAGES:
            return False
        with storage_errors(self.path):
            self._conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
        self.wal_pages = 0
        return True

    @classmethod
    def create(
        cls, directory: str, base_offset: int, log_start_offset: int, now_ms: int, *, fsync: bool
    ) -> ActiveSegment:
        """A new, empty active segment; it appears under its real name only once complete."""
        return cls.open(write_empty_segment(directory, base_offset, log_start_offset, now_ms),
                        fsync=fsync)

    @classmethod
    def open(cls, path: str, *, fsync: bool) -> ActiveSegment:
        """Open the active segment for writing, recovering its WAL; checks its metadata."""
        with storage_errors(path):
            conn = apsw.Connection(path)
            try:
                info = read_info(conn, path)
                apply_writer_pragmas(conn, fsync=fsync)
                (max_offset,) = conn.execute("SELECT max(offset) FROM records").fetchone()
            except BaseException:
                conn.close()
                raise
        expected = info.next_offset - 1 if info.record_count else None
        if max_offset != expected or info.next_offset < info.base_offset:
            conn.close()
            raise CorruptLog(
                f"{path}: metadata says offsets {info.base_offset}..{info.next_offset - 1},"
                f" records end at {max_offset}"
            )
        return cls(conn, info)

    @property
    def path(self) -> str:
        return self.info.path

    def check_files(self) -> None:
        """CorruptLog unless the segment and its WAL are still the files this connection
        opened: one deleted or replaced under it would take every append from then on with
        it (two stat calls, so callers run it from a timer, a roll or a seal)."""
        path = self.info.path
        for name, opened in zip((path, path + "-wal"), self.file_ids, strict=True):
            now = file_id(name)
            if now != opened:
                # The WAL's pages belong to the file this connection has open: copied into
                # it and the WAL emptied, no file opened at this path later (a replacement)
                # is read with another file's pages, and a deleted WAL's records are kept.
                with contextlib.suppress(apsw.Error):
                    self._conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_TRUNCATE)
                what = "deleted" if now is None else "replaced"
                raise CorruptLog(f"{name}: the active segment's file was {what} while open:"
                                 " appends stop here")

    def append(
        self,
        rows: Sequence[AppendRow],
        now_ms: int,
        *,
        log_append_time: bool,
        max_batch_bytes: int,
        sent_bytes: int | None = None,
        roll_at_bytes: int | None,
        producer: ProducerBatchInfo | None = None,
        txn: TxnStamp | None = None,
    ) -> AppendResult:
        """Append one batch in one transaction.

        ``txn`` (producer id, epoch, marker or None) marks a transactional batch or a
        commit/abort marker: its ``txn_batches`` row is written in the same transaction.

        Raises RecordTooLarge (nothing written) when the batch exceeds ``max_batch_bytes``,
        and SegmentFull (nothing written) when a non-empty segment would pass
        ``roll_at_bytes``: the caller rolls and appends to the next segment.
        """
        info = self.info
        base = info.next_offset
        with self._keeping_info(), storage_errors(info.path), self._conn:
            counted = insert_rows(
                self._conn, rows, base if base == info.base_offset else None, now_ms)
            last = base + len(rows) - 1
            if self._conn.last_insert_rowid() != last:
                raise CorruptLog(f"{info.path}: records do not continue at offset {base}")
            if log_append_time:
                self._conn.execute(
                    "UPDATE records SET timestamp = ? WHERE offset >= ?", (now_ms, base)
                )
            if counted is None:
                counted = self._conn.execute(
                    f"SELECT min(timestamp), max(timestamp), sum({ROW_BYTES_SQL})"
                    " FROM records WHERE offset >= ?",
                    (base,),
                ).fetchone()
            min_ts, max_ts, size = (now_ms, now_ms, counted[2]) if log_append_time else counted
            measured = size if sent_bytes is None else sent_bytes
            if measured > max_batch_bytes:
                raise RecordTooLarge(
                    f"batch of {len(rows)} records is {measured} bytes,"
                    f" over max.message.bytes {max_batch_bytes}"
                )
            if roll_at_bytes is not None and info.bytes and info.bytes + size > roll_at_bytes:
                raise SegmentFull
            stamp = (
                (producer.producer_id, producer.producer_epoch, producer.base_sequence)
                if producer else (None, None, None)
            )
            self._conn.execute(
                "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (base, last, max_ts, size, now_ms, *stamp),
            )
            if txn is not None:
                if not self._has_txn_table:
                    self._conn.execute(TXN_TABLE_SQL)
                self._conn.execute("INSERT INTO txn_batches VALUES (?, ?, ?, ?, ?)",
                                   (base, last, *txn))
            self.info = replace(
                info,
                next_offset=last + 1,
                bytes=info.bytes + size,
                min_timestamp=min_ts if info.min_timestamp is None
                else min(min_ts, info.min_timestamp),
                max_timestamp=max_ts if info.max_timestamp is None
                else max(max_ts, info.max_timestamp),
                first_append_ms=info.first_append_ms if info.first_append_ms is not None
                else now_ms,
            )
            self._write_info()
        if txn is not None:
            self._has_txn_table = True
        return AppendResult(
            base, last, now_ms if log_append_time else -1, size, info.log_start_offset
        )

    def set_log_start_offset(self, offset: int) -> None:
        """Record the partition's log-start-offset durably (before retention deletes files)."""
        self._update_info(log_start_offset=offset)

    def _update_info(self, **changes: int) -> None:
        """Change the metadata row in its own transaction; memory follows only on success."""
        with self._keeping_info(), storage_errors(self.info.path), self._conn:
            self.info = replace(self.info, **changes)
            self._write_info()

    @contextlib.contextmanager
    def _keeping_info(self) -> Iterator[None]:
        """``info`` put back as it was when the block fails, its commit included (a full
        disk fails the commit): memory follows the file only once the file has it."""
        info = self.info
        try:
            yield
        except BaseException:
            self.info = info
            raise

    def _write_info(self) -> None:
        i = self.info
        self._conn.execute(
            "UPDATE segment SET next_offset = ?, log_start_offset = ?, bytes = ?,"
            " min_timestamp = ?, max_timestamp = ?, first_append_ms = ?, sealed_ms = ?",
            (i.next_offset, i.log_start_offset, i.bytes, i.min_timestamp, i.max_timestamp,
             i.first_append_ms, i.sealed_ms),
        )

    def flush(self) -> None:
        """Force appended records to disk (the WAL is synced before a checkpoint)."""
        with storage_errors(self.path):
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def seal(self, now_ms: int) -> SegmentInfo:
        """Mark the segment sealed, close it, and make it one self-contained file."""
        self._update_info(sealed_ms=now_ms)
        self.close()
        finish_seal(self.info.path)
        return self.info

    def close(self) -> None:
        self._conn.close()


def fsync_directory(directory: str) -> None:
    """Make the names in ``directory`` (a rename, a new file) durable."""
    fsync_file(directory)


def fsync_file(path: str) -> None:
    """Force what was written to the file (or folder) at ``path`` to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
