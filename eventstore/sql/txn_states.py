"""The ``txn_state`` column of ``records``: what a record is to a transaction (KIP-98).

- NULL: not written in a transaction (a plain or idempotent producer's record);
- ``committed`` / ``aborted``: a transactional producer's record whose transaction ended
  so (read_committed consumers see the first, never the second);
- ``ongoing``: its transaction has no marker yet (read_committed consumers stop before it:
  the last stable offset is the first such record);
- ``control``: a COMMIT or ABORT marker, Kafka's control record, which clients never hand
  to applications: ``WHERE txn_state IS NOT 'control'`` leaves markers out, and
  ``WHERE txn_state IS NULL OR txn_state = 'committed'`` is what read_committed reads.

A segment's ``txn_batches`` rows say which of its records are transactional and which are
markers; a transaction's outcome is the next marker of its producer, usually in the same
segment, else in a later one, which is then opened for its ``txn_batches`` rows only. A
segment without such rows costs nothing: its column is a constant NULL.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence

import apsw

from eventstore.storage.transaction_index import ABORT, TxnBatch, read_txn_batches

COMMITTED = "committed"
ABORTED = "aborted"
ONGOING = "ongoing"
CONTROL = "control"

# (first offset, last offset, state) of each transactional batch or marker, by offset
StateRanges = list[tuple[int, int, str]]


def _resolve(batches: Sequence[TxnBatch], outcomes: dict[int, str]) -> StateRanges:
    """The state of each of ``batches`` (offset order), given ``outcomes``: per producer
    id, how its transaction open at the end of ``batches`` ended (absent: not yet)."""
    ranges: StateRanges = []
    outcomes = dict(outcomes)
    for batch in reversed(batches):
        if batch.marker is not None:
            outcomes[batch.producer_id] = ABORTED if batch.marker == ABORT else COMMITTED
            ranges.append((batch.base_offset, batch.last_offset, CONTROL))
        else:
            ranges.append((batch.base_offset, batch.last_offset,
                           outcomes.get(batch.producer_id, ONGOING)))
    ranges.reverse()
    return ranges


def _open_at_end(batches: Sequence[TxnBatch]) -> set[int]:
    """Producer ids whose last row in ``batches`` is a data batch (no marker after it)."""
    last: dict[int, str | None] = {}
    for batch in batches:
        last[batch.producer_id] = batch.marker
    return {pid for pid, marker in last.items() if marker is None}


def segment_states(conn: apsw.Connection, path: str, start: int, end: int,
                   later: Sequence[str], open_segment: Callable[[str], apsw.Connection]
                   ) -> StateRanges:
    """The state ranges of one segment's transactional records from ``start`` on, below
    ``end`` (the partition's high watermark: later markers are not visible yet).
    ``later``: the paths of the partition's following segments, where the outcomes of
    transactions still open at this segment's end are looked for."""
    batches = [b for b in read_txn_batches(conn, path, start) if b.base_offset < end]
    if not batches:
        return []
    waiting = _open_at_end(batches)
    outcomes: dict[int, str] = {}
    for following in later:
        if not waiting:
            break
        try:
            other = open_segment(following)
        except FileNotFoundError:
            break  # retention deleted it meanwhile: the outcome is not told
        try:
            rows = [b for b in read_txn_batches(other, following) if b.base_offset < end]
        finally:
            other.close()
        for batch in rows:
            if batch.marker is not None and batch.producer_id in waiting:
                waiting.discard(batch.producer_id)
                outcomes[batch.producer_id] = ABORTED if batch.marker == ABORT else COMMITTED
    return _resolve(batches, outcomes)


def with_states(rows: Iterator[tuple], ranges: StateRanges) -> Iterator[tuple]:
    """``rows`` (offset first, a placeholder last) with each one's state in place of the
    placeholder: NULL outside ``ranges``."""
    starts = [first for first, _, _ in ranges]
    for row in rows:
        at = bisect.bisect_right(starts, row[0]) - 1
        state = None
        if at >= 0 and row[0] <= ranges[at][1]:
            state = ranges[at][2]
        yield (*row[:-1], state)
