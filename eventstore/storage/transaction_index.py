"""A partition's transactions: open ones, its last stable offset, the aborted index.

A transactional producer's batches are appended like any batch, each with a row in its
segment's ``txn_batches`` table (producer id and epoch); the coordinator ends the
transaction with a marker, a control batch of one record whose ``txn_batches`` row says
COMMIT or ABORT. From those rows alone, read in offset order, a partition knows:

- the transactions open in it: per producer id, the first offset of its open transaction;
- its last stable offset (LSO): the first offset of the oldest open transaction, else the
  high watermark. read_committed consumers read only below it;
- the aborted-transaction index, Kafka's ``.txnindex``: per aborted transaction its
  producer id, first offset and the offset of its abort marker. read_committed fetches
  list the ones their records overlap, and clients drop those records;
- each transactional producer's newest epoch: a batch or marker of an older one is a
  zombie's (INVALID_PRODUCER_EPOCH).

:func:`load_transactions` rebuilds it when the log opens, so it is durable with the
segments. The rows are in the segments as plain SQL (``sqlite3 <segment>
"SELECT * FROM txn_batches"``).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import apsw

from eventstore.errors import InvalidProducerEpoch
from eventstore.storage.segment import SegmentInfo, open_readonly, storage_errors

COMMIT = "COMMIT"
ABORT = "ABORT"

# Kafka's control record: key (version int16 0, type int16: 0 abort, 1 commit) and the
# end-transaction marker value (version int16 0, coordinator epoch int32)
_CONTROL_KEY = struct.Struct(">hh")
_MARKER_VALUE = struct.Struct(">hi")
CONTROL_TYPES = {ABORT: 0, COMMIT: 1}


def control_record(marker: str, coordinator_epoch: int = 0) -> tuple[bytes, bytes]:
    """The (key, value) of the control record a COMMIT or ABORT marker holds."""
    return (_CONTROL_KEY.pack(0, CONTROL_TYPES[marker]),
            _MARKER_VALUE.pack(0, coordinator_epoch))


def control_marker(key: bytes | None) -> str | None:
    """The marker (COMMIT or ABORT) a control record's key says, None if it is not one."""
    if key is None or len(key) != _CONTROL_KEY.size:
        return None
    version, kind = _CONTROL_KEY.unpack(key)
    return next((m for m, t in CONTROL_TYPES.items() if t == kind and version == 0), None)


@dataclass(frozen=True, slots=True)
class TxnBatch:
    """One ``txn_batches`` row: a transactional batch or (``marker`` set) a marker."""

    base_offset: int
    last_offset: int
    producer_id: int
    producer_epoch: int
    marker: str | None = None


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    """One aborted transaction in a partition: Kafka's AbortedTransaction entry."""

    producer_id: int
    first_offset: int
    last_offset: int  # its abort marker's offset


def read_txn_batches(conn: apsw.Connection, path: str, start: int = 0,
                     end: int = 1 << 62) -> list[TxnBatch]:
    """The ``txn_batches`` rows of one segment overlapping offsets [start, end), in offset
    order; none from a segment that predates the table."""
    with storage_errors(path):
        try:
            rows = conn.execute(
                "SELECT base_offset, last_offset, producer_id, producer_epoch, marker"
                " FROM txn_batches WHERE base_offset < ? AND last_offset >= ?"
                " ORDER BY base_offset", (end, start)).fetchall()
        except apsw.SQLError as exc:
            if "no such table" in str(exc):
                return []
            raise
    return [TxnBatch(*row) for row in rows]


class PartitionTransactions:
    """What the log's writer knows of its partition's transactions (not thread-safe;
    readers get the immutable parts through the log's view)."""

    def __init__(self) -> None:
        self.open: dict[int, int] = {}  # producer id: first offset of its open transaction
        self.epochs: dict[int, int] = {}  # producer id: newest epoch seen
        self.aborted: tuple[AbortedTxn, ...] = ()  # by last offset
        self.seen = False  # any transactional batch ever: fetches then look for them

    def check_epoch(self, producer_id: int, producer_epoch: int) -> None:
        """INVALID_PRODUCER_EPOCH for a batch of a fenced (older) epoch."""
        newest = self.epochs.get(producer_id, -1)
        if producer_epoch < newest:
            raise InvalidProducerEpoch(
                f"producer {producer_id}: epoch {producer_epoch} is fenced by epoch {newest}")

    def apply(self, batch: TxnBatch) -> None:
        """Take in one appended row (in offset order)."""
        self.seen = True
        pid = batch.producer_id
        self.epochs[pid] = max(self.epochs.get(pid, -1), batch.producer_epoch)
        if batch.marker is None:
            self.open.setdefault(pid, batch.base_offset)
            return
        first = self.open.pop(pid, None)
        if batch.marker == ABORT and first is not None:
            self.aborted = (*self.aborted, AbortedTxn(pid, first, batch.base_offset))

    def has_open(self, producer_id: int) -> bool:
        return producer_id in self.open

    def last_stable_offset(self, high_watermark: int) -> int:
        """The first offset of the oldest open transaction, else the high watermark."""
        return min(self.open.values(), default=high_watermark)

    def forget_before(self, log_start_offset: int) -> None:
        """Drop aborted entries wholly below the log-start-offset (retention deleted them)."""
        if self.aborted and self.aborted[0].last_offset < log_start_offset:
            self.aborted = tuple(a for a in self.aborted if a.last_offset >= log_start_offset)


def aborted_between(aborted: Sequence[AbortedTxn], start: int, end: int) -> list[AbortedTxn]:
    """The aborted transactions with records in [start, end): what a read_committed fetch
    of those offsets lists (``aborted`` ordered by last offset)."""
    at = bisect.bisect_left([a.last_offset for a in aborted], start)
    return [a for a in aborted[at:] if a.first_offset < end]


def load_transactions(segments: Sequence[SegmentInfo]) -> PartitionTransactions:
    """Rebuild a partition's transactions from its segments' ``txn_batches`` rows, oldest
    segment first (a small indexed table per segment; the records are not read)."""
    txns = PartitionTransactions()
    for segment in segments:
        conn = open_readonly(segment.path)
        try:
            for batch in read_txn_batches(conn, segment.path):
                txns.apply(batch)
        finally:
            conn.close()
    if segments:
        txns.forget_before(segments[-1].log_start_offset)
    return txns


def hidden_ranges(batches: Sequence[TxnBatch], aborted: Sequence[AbortedTxn],
                  read_committed: bool) -> list[tuple[int, int]]:
    """The (first, last) offsets a consumer does not hand to applications, of ``batches``
    (the txn_batches rows of what it read): every marker, and under read_committed every
    batch of an aborted transaction (``aborted``: the partition's index), as clients drop
    them by the AbortedTransactions list of a fetch."""
    hidden = []
    for batch in batches:
        if batch.marker is not None or (read_committed and any(
                a.producer_id == batch.producer_id
                and a.first_offset <= batch.base_offset < a.last_offset for a in aborted)):
            hidden.append((batch.base_offset, batch.last_offset))
    return hidden


def without_ranges(rows: list[tuple], hidden: Sequence[tuple[int, int]]) -> list[tuple]:
    """``rows`` (offset first, in offset order) with those in ``hidden`` left out."""
    if not hidden:
        return rows
    starts = [first for first, _ in hidden]
    kept = []
    for row in rows:
        at = bisect.bisect_right(starts, row[0]) - 1
        if at < 0 or row[0] > hidden[at][1]:
            kept.append(row)
    return kept
