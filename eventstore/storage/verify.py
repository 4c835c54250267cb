"""Check a data directory end to end, reading only: what `eventstore verify` runs.

Start-up opens only what it must (the catalog, each segment's metadata row, the active
segment), so damage inside a sealed segment's pages goes unnoticed until a read reaches
it. This checker reads everything and reports each problem with the file it is in:

- the catalog: SQLite's integrity check, its schema version, every topic row;
- every partition of every topic: its folder, each segment file (integrity check, schema
  version, metadata row, name), each segment's rows against its metadata (offsets
  contiguous from its base to its high watermark, the byte count, the timestamps, batches
  covering every record exactly once), the chain and its anchor (the same checks start-up
  makes: no gap, and no newest segment missing), and that no group committed an offset
  past the log-end-offset (records the group read would be gone);
- folders named as partitions that no topic of the catalog owns (a creation that failed
  or was cut short by a crash left them, and a later topic of that name would take them);
- without a readable catalog, the partition folders found on disk instead.

It never deletes, repairs or rewrites anything: files are opened read-only (immutable
unless a ``-wal`` beside them holds committed transactions, which SQLite then reads
through its ``-shm`` index), so it is safe while a server runs and after a crash.
SQLite keeps no checksum of record contents, so bytes changed inside a key or value,
with the page structure intact, cannot be told apart from what a producer wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import apsw

from eventstore.errors import KafkaStorageError
from eventstore.storage.anchor import anchor_path, check_anchor, read_anchor
from eventstore.storage.catalog import (
    CATALOG_FILE,
    Catalog,
    CommittedOffset,
    TopicInfo,
    partition_dir,
    partition_folders,
)
from eventstore.storage.compaction import STATE_FILE, read_cleaned_part
from eventstore.storage.readonly import open_database, reading
from eventstore.storage.recovery import check_chain, split_expired
from eventstore.storage.schema import check_schema_version
from eventstore.storage.segment import (
    ROW_BYTES_SQL,
    SegmentInfo,
    check_integrity,
    parse_segment_name,
    read_info,
    segment_name,
)
from eventstore.storage.transaction_index import control_marker


@dataclass(frozen=True)
class Problem:
    """One thing wrong, and the file (or folder) it is in."""

    path: str
    message: str
    topic: str | None = None
    partition: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class Report:
    """What was checked and every problem found (none: the directory is sound)."""

    data_dir: str
    topics: int = 0
    partitions: int = 0
    segments: int = 0
    records: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {
            "data_dir": self.data_dir, "ok": self.ok, "topics": self.topics,
            "partitions": self.partitions, "segments": self.segments, "records": self.records,
            "problems": [{"path": p.path, "topic": p.topic, "partition": p.partition,
                          "problem": p.message} for p in self.problems],
        }


class _Found(Exception):
    """Internal: a check failed; carries the problem's message."""


def verify(data_dir: str) -> Report:
    """Check every file of ``data_dir`` (read-only) and report what is wrong."""
    report = Report(data_dir)
    if not os.path.isdir(data_dir):
        report.problems.append(Problem(data_dir, "data directory does not exist"))
        return report
    catalog = _check_catalog(data_dir, report)
    commits: list[CommittedOffset] = []
    if catalog is None:
        partitions = _folders_on_disk(data_dir)
        report.topics = len({topic for topic, _ in partitions})
    else:
        topics, commits = catalog
        partitions = [(t.name, p) for t in topics for p in range(t.partitions)]
        report.topics = len(topics)
        report.problems += [
            Problem(path, "no topic owns this partition folder (a topic creation failed or"
                    " a crash cut it short): remove it unless it holds records wanted")
            for path in _unowned_folders(data_dir, set(partitions))]
    ends = {(topic, partition): _check_partition(
        partition_dir(data_dir, topic, partition), topic, partition, report)
        for topic, partition in partitions}
    for commit in commits:
        end = ends.get((commit.topic, commit.partition))
        if end is not None and commit.offset > end:
            report.problems.append(Problem(
                partition_dir(data_dir, commit.topic, commit.partition),
                f"group {commit.group_id!r} committed offset {commit.offset}, past the"
                f" log-end-offset {end}: records it read are gone", commit.topic,
                commit.partition))
    return report


# -- catalog -----------------------------------------------------------------------------------


def _check_catalog(data_dir: str, report: Report
                   ) -> tuple[list[TopicInfo], list[CommittedOffset]] | None:
    """The catalog's topics and committed offsets, or None (with the problem reported)
    when it cannot be read."""
    path = os.path.join(data_dir, CATALOG_FILE)
    if not os.path.exists(path):
        if partition_folders(data_dir):
            report.problems.append(Problem(path, "catalog is missing: the topics are unknown"))
        return None
    try:
        conn = open_database(path)
    except (FileNotFoundError, KafkaStorageError) as exc:
        report.problems.append(Problem(path, _message(exc, path)))
        return None
    try:
        check_integrity(conn, path)
        with reading(path), conn:  # one read transaction: a server may be writing
            check_schema_version(conn, "catalog", path)
            catalog = Catalog(conn, path)
            topics = catalog.topics()
            commits = catalog.committed_offsets()
    except (KafkaStorageError, ValueError) as exc:
        # ValueError: a topic's config column is not JSON
        report.problems.append(Problem(path, _message(exc, path)))
        return None
    finally:
        conn.close()
    return topics, commits


def _folders_on_disk(data_dir: str) -> list[tuple[str, int]]:
    """(topic, partition) of each partition folder, for when the catalog is lost."""
    found = []
    for name in partition_folders(data_dir):
        topic, _, partition = name.rpartition("-")
        if topic and partition.isdigit():
            found.append((topic, int(partition)))
    return found


def _unowned_folders(data_dir: str, owned: set[tuple[str, int]]) -> list[str]:
    """Folders of ``data_dir`` named as a partition (``<topic>-<n>``) not in ``owned``."""
    found = []
    for entry in sorted(os.scandir(data_dir), key=lambda entry: entry.name):
        topic, _, partition = entry.name.rpartition("-")
        if (entry.is_dir() and topic and partition.isdigit()
                and (topic, int(partition)) not in owned):
            found.append(entry.path)
    return found


# -- partitions --------------------------------------------------------------------------------


def _check_partition(directory: str, topic: str, partition: int, report: Report
                     ) -> int | None:
    """Check one partition's files; its log-end-offset, or None if it cannot be told."""
    report.partitions += 1

    def problem(path: str, message: str) -> None:
        report.problems.append(Problem(path, message, topic, partition))

    if not os.path.isdir(directory):
        problem(directory, "partition folder is missing")
        return None
    try:
        # read before the folder is listed: a server anchors a segment only once its file
        # exists, so what the anchor names is in the listing unless it was deleted
        anchor = read_anchor(directory)
    except KafkaStorageError as exc:
        problem(anchor_path(directory), _message(exc, anchor_path(directory)))
        return None
    bases = sorted(b for b in map(parse_segment_name, os.listdir(directory)) if b is not None)
    if not bases:
        problem(directory, "no segment file: the partition's data is gone")
        return None
    try:
        cleaned_through = read_cleaned_part(directory).through
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problem(os.path.join(directory, STATE_FILE), f"the cleaner's state cannot be read ({exc})")
        return None
    infos: list[SegmentInfo] = []
    sound = True
    for base in bases:
        path = os.path.join(directory, segment_name(base))
        try:
            info = _check_segment(path, cleaned_through)
        except FileNotFoundError:
            continue  # retention deleted it while a server runs: not a problem
        except (_Found, KafkaStorageError) as exc:
            report.segments += 1
            problem(path, _message(exc, path))
            sound = False
            continue
        report.segments += 1
        report.records += info.records
        infos.append(info.info)
    if not sound or not infos:
        return None  # the chain cannot be judged with a segment unread: its problem stands
    *older, newest = infos
    _, kept = split_expired(older, newest)
    try:
        check_chain([*kept, newest], newest.log_start_offset)
        check_anchor(anchor, newest)
    except KafkaStorageError as exc:
        # the check names the file at fault first: "CorruptLog: <path>: <what>"
        path = str(exc).partition(": ")[2].partition(": ")[0]
        problem(path, _message(exc, path))
        return None
    return newest.next_offset


@dataclass(frozen=True)
class _Checked:
    """A checked segment: its metadata and how many records it holds."""

    info: SegmentInfo
    records: int


def _check_segment(path: str, cleaned_through: int) -> _Checked:
    """A segment's metadata, once its file and its rows agree with it; _Found otherwise.

    Below ``cleaned_through`` (the end of the part the log cleaner rewrote) records may be
    missing, as compaction leaves gaps; every offset at or past it must be there."""
    conn = open_database(path)
    try:
        check_integrity(conn, path)
        with reading(path), conn:  # one read transaction: a server may be appending
            info = read_info(conn, path)
            contiguous_from = min(max(cleaned_through, info.base_offset), info.next_offset)
            count, low, high, size, min_ts, max_ts, tail = conn.execute(
                f"SELECT count(*), min(offset), max(offset), sum({ROW_BYTES_SQL}),"
                " min(timestamp), max(timestamp), count(*) FILTER (WHERE offset >= ?)"
                " FROM records", (contiguous_from,)).fetchone()
            batches = conn.execute(
                "SELECT base_offset, last_offset, bytes FROM batches ORDER BY base_offset"
            ).fetchall()
            txn_rows = _txn_rows(conn)
    finally:
        conn.close()
    described = f"metadata says offsets {info.base_offset}..{info.next_offset - 1}"
    if contiguous_from == info.base_offset:
        if count != info.record_count or (count and (low, high) != (info.base_offset,
                                                                  info.next_offset - 1)):
            raise _Found(f"{described} ({info.record_count} records), the file holds {count}"
                         + (f" from {low} to {high}" if count else ""))
    elif (count and (low < info.base_offset or high >= info.next_offset)) or (
            tail != info.next_offset - contiguous_from):
        raise _Found(f"{described}, cleaned up to {contiguous_from}: the file holds {count}"
                     + (f" from {low} to {high}" if count else "")
                     + f", {tail} of them from {contiguous_from} on")
    if (size or 0) != info.bytes:
        raise _Found(f"metadata says {info.bytes} bytes of records, the records add up to "
                     f"{size or 0}")
    if (min_ts, max_ts) != (info.min_timestamp, info.max_timestamp):
        raise _Found(f"metadata says timestamps {info.min_timestamp}..{info.max_timestamp},"
                     f" the records hold {min_ts}..{max_ts}")
    _check_batches(batches, info, contiguous_from)
    _check_txn_rows(txn_rows)
    return _Checked(info, count)


# each txn_batches row, the batch starting at its offset and the first record there
_TXN_ROWS = (
    "SELECT t.base_offset, t.last_offset, t.producer_id, t.producer_epoch, t.marker,"
    " b.last_offset, b.producer_id, b.producer_epoch,"
    " (SELECT key FROM records r WHERE r.offset = t.base_offset)"
    " FROM txn_batches t LEFT JOIN batches b ON b.base_offset = t.base_offset"
    " ORDER BY t.base_offset")


def _txn_rows(conn: apsw.Connection) -> list[tuple]:
    """The segment's transactional rows with what they describe (none before the table)."""
    if not conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'txn_batches'").fetchall():
        return []
    return conn.execute(_TXN_ROWS).fetchall()


def _check_txn_rows(rows: list[tuple]) -> None:
    """Each ``txn_batches`` row (what the LSO and the aborted-transaction index are rebuilt
    from) must describe a batch of the segment: a transactional batch its producer's, of
    the same offsets, producer id and epoch; a marker a one-record batch whose record is
    the control record of that marker (COMMIT or ABORT)."""
    for base, last, pid, epoch, marker, b_last, b_pid, b_epoch, key in rows:
        if marker is not None:
            said = control_marker(key)
            if b_last != base or last != base:
                raise _Found(f"marker at offset {base} ({base}..{last}) is not a batch of"
                             " one record")
            if said != marker:
                record = (f"its control record says {said}" if said
                          else "the record there is not a control record")
                raise _Found(f"marker at offset {base} says {marker} in txn_batches, {record}")
        elif (b_last, b_pid, b_epoch) != (last, pid, epoch):
            there = ("no batch starts there" if b_last is None else
                     f"the batch there is {base}..{b_last} of producer {b_pid} epoch {b_epoch}")
            raise _Found(f"transactional batch {base}..{last} of producer {pid} epoch"
                         f" {epoch}: {there}")


def _check_batches(batches: list[tuple[int, int, int]], info: SegmentInfo,
                   contiguous_from: int) -> None:
    """Batches must cover the segment's offsets in order, none twice, none left out; below
    ``contiguous_from`` (cleaned) a batch the cleaner emptied may be gone, leaving a gap."""
    expected = info.base_offset
    for base, last, _ in batches:
        gap_allowed = expected < contiguous_from and expected < base <= contiguous_from
        if (base != expected and not gap_allowed) or last < base:
            raise _Found(f"batch {base}..{last} does not follow the batch ending at"
                         f" {expected - 1}")
        expected = last + 1
    if expected < contiguous_from:
        expected = contiguous_from  # the cleaned part's last batches may all be gone
    if expected != info.next_offset:
        raise _Found(f"batches end at offset {expected - 1}, the records at "
                     f"{info.next_offset - 1}")
    total = sum(size for _, _, size in batches)
    if total != info.bytes:
        raise _Found(f"batches add up to {total} bytes, the metadata says {info.bytes}")


# -- messages ----------------------------------------------------------------------------------


def _message(exc: Exception, path: str) -> str:
    """An error's text without the error's name and ``path``, which the report shows."""
    if isinstance(exc, FileNotFoundError):
        return "file vanished while being checked"
    if isinstance(exc, ValueError):
        return f"a topic's config is not JSON ({exc})"
    text = str(exc)
    if isinstance(exc, KafkaStorageError):
        text = text.partition(": ")[2]  # "CorruptLog: <path>: <what>"
    return text.removeprefix(f"{path}: ")
