"""A connection's fetch session: what it keeps between fetches, and the read a fetch does.

A fetch never messages a partition actor per request: it reads the published LogView
(segments and high watermark) through the connection's own read-only LogReader, so it
never waits behind a write and never sees a record before its append was acknowledged.
The session keeps the partition states a connection reads, its reader, and the read-ahead
of the fetch a consumer catching up will send next (see :class:`FetchSession`); Fetch and
ListOffsets (eventstore/kafka/handlers/) use it.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from operator import itemgetter

from actors.partition import PartitionState, offline_error
from eventstore.errors import KafkaError, UnknownTopicId
from eventstore.kafka.batchcache import RecentBatches
from eventstore.kafka.codec.recordbatch import encode_batch
from eventstore.kafka.context import BrokerContext
from eventstore.kafka.topic_ids import topic_names
from eventstore.storage.log_reader import LogReader, LogView, check_offset
from eventstore.storage.records import StoredRow
from eventstore.storage.transaction_index import TxnBatch, aborted_between

log = logging.getLogger(__name__)

# a fetch's record count is bounded by its bytes; this only caps one read call
_MAX_RECORDS_PER_READ = 100_000

# each partition's published state, or the error that stands in for it (unknown, ...)
States = dict[tuple[str, int], PartitionState | KafkaError]


@dataclass
class FetchPartition:
    """One partition a fetch asks for: from ``offset``, at most ``max_bytes``."""

    topic: str
    partition: int
    offset: int
    max_bytes: int
    read_committed: bool = False  # isolation_level 1: only below the last stable offset


@dataclass
class FetchedPartition:
    """What a fetch read of one partition: encoded record batches, or an error."""

    topic: str
    partition: int
    error: KafkaError | None = None
    records: bytes = b""
    record_count: int = 0
    high_watermark: int = -1
    log_start_offset: int = -1
    last_stable_offset: int = -1
    aborted: tuple[tuple[int, int], ...] = ()  # (producer id, first offset), read_committed


def collect(
    states: States,
    reader: LogReader,
    recent: RecentBatches,
    wanted: list[FetchPartition],
    max_bytes: int,
) -> list[FetchedPartition]:
    """Read what each partition has from its offset on, within the byte limits: from the
    batches its producers sent, while they are kept, else from the segments.

    As in Kafka (KIP-74), the first partition that has records may pass ``max_bytes`` and
    its own ``max_bytes`` with its first batch, so that a record larger than the limits is
    still consumed; every later partition gets only what still fits.
    """
    results = []
    budget = max_bytes
    filled = False  # a partition has records: the rest must fit the limits
    for want in wanted:
        out = FetchedPartition(want.topic, want.partition)
        results.append(out)
        state = states[(want.topic, want.partition)]
        if isinstance(state, KafkaError):
            out.error = state
            continue
        view: LogView | None = state.view
        if state.error is not None or view is None:
            out.error = offline_error(state)
            continue
        out.high_watermark, out.log_start_offset = view.high_watermark, view.log_start_offset
        stable = view.last_stable_offset if view.transactional else view.high_watermark
        out.last_stable_offset = stable
        end = stable if want.read_committed else None
        try:
            check_offset(view, want.offset)
            if (budget <= 0 and filled) or (end is not None and want.offset >= end):
                continue
            limit = max(min(want.max_bytes, budget), 1)
            cached = recent.read(state, want.offset, limit, at_least_one=not filled, end=end,
                                 since=state.stats.cleaner.cleaned.through)
            if cached is not None:
                out.records = cached.records
                out.record_count = cached.last + 1 - want.offset
                out.aborted = _aborted(view, want, cached.first, cached.last + 1)
                budget -= len(out.records)
                filled = True
                continue
            stable_view = view if end is None else replace(view, high_watermark=end)
            rows = reader.read(stable_view, want.offset, _MAX_RECORDS_PER_READ, limit)
            txns = reader.txn_batches(view, rows[0][0], rows[-1][0] + 1) if rows else []
        except KafkaError as error:  # a storage error is logged by the partition's actor
            out.error = error
            continue
        out.records, out.record_count = _encode_within(rows, view, limit,
                                                       at_least_one=not filled, txns=txns)
        if out.record_count:
            out.aborted = _aborted(view, want, want.offset, rows[out.record_count - 1][0] + 1)
            budget -= len(out.records)
            filled = True
    return results


def _aborted(view: LogView, want: FetchPartition, start: int, end: int
             ) -> tuple[tuple[int, int], ...]:
    """What a read_committed fetch of [start, end) lists: the aborted transactions with
    records there, as (producer id, first offset)."""
    if not want.read_committed or not view.aborted:
        return ()
    return tuple((a.producer_id, a.first_offset)
                 for a in aborted_between(view.aborted, start, end))


def _encode_within(rows: list[StoredRow], view: LogView, limit: int, *,
                   at_least_one: bool, txns: Sequence[TxnBatch] = ()) -> tuple[bytes, int]:
    """(batches, record count): a run of ``rows`` from the first whose encoding fits
    ``limit`` (at least one row if ``at_least_one``).

    The log chose ``rows`` by the batches' stored sizes, counting a first batch that alone
    is larger; encoded again (with another codec) they can be larger still. Only then is a
    shorter run looked for: first the share of ``rows`` the limit holds if records are of
    a size (one more encoding, mostly enough), else the longest run that fits.
    """
    if not rows:
        return b"", 0
    encoded = _encode(rows, view, txns)
    if len(encoded) <= limit or (at_least_one and len(rows) == 1):
        return encoded, len(rows)
    share = len(rows) * limit // len(encoded)
    if share:
        candidate = _encode(rows[:share], view, txns)
        if len(candidate) <= limit:
            return candidate, share
    low, high = 0, max(share - 1, 0)  # the longest run that fits has low..high rows
    best = b""
    while low < high:
        middle = (low + high + 1) // 2
        candidate = _encode(rows[:middle], view, txns)
        if len(candidate) <= limit:
            low, best = middle, candidate
        else:
            high = middle - 1
    if low == 0 and at_least_one:
        return _encode(rows[:1], view, txns), 1
    return best, low


def _encode(rows: list[StoredRow], view: LogView, txns: Sequence[TxnBatch] = ()) -> bytes:
    """Rows as record batches: each transactional batch and marker as one of its own,
    stamped with its producer and the transactional (and control) bits, so that clients
    skip markers and read_committed ones drop aborted records; the rest as one batch."""
    if not txns:
        return _encode_plain(rows, view)
    bases = [t.base_offset for t in txns]
    parts = []
    for txn, run in itertools.groupby(rows, key=lambda row: _containing(txns, bases, row[0])):
        run = list(run)
        if txn is None:
            parts.append(_encode_plain(run, view))
        else:
            parts.append(encode_batch(
                run[0][0], run, producer_id=txn.producer_id,
                producer_epoch=txn.producer_epoch, timestamp_type=view.timestamp_type,
                compression_type=view.compression, transactional=True,
                control=txn.marker is not None))
    return b"".join(parts)


def _containing(txns: Sequence[TxnBatch], bases: list[int], offset: int) -> TxnBatch | None:
    """The transactional batch holding ``offset``, if one does."""
    at = bisect.bisect_right(bases, offset) - 1
    return txns[at] if at >= 0 and txns[at].last_offset >= offset else None


def _encode_plain(rows: list[StoredRow], view: LogView) -> bytes:
    """Rows as one record batch, compressed as the topic's compression.type says; under
    LogAppendTime one batch per append time, as a consumer takes each record's timestamp
    from its batch's max timestamp then."""
    if view.timestamp_type != "LogAppendTime":
        return encode_batch(rows[0][0], rows, compression_type=view.compression)
    return b"".join(
        encode_batch(group[0][0], group, timestamp_type=view.timestamp_type,
                     compression_type=view.compression)
        for group in (list(g) for _, g in itertools.groupby(rows, key=_timestamp_of))
    )


_timestamp_of = itemgetter(1)


def pending_records(states: States, wanted: list[FetchPartition]) -> int:
    """Records between each wanted offset and its partition's high watermark, as published
    now: what :func:`collect` would read if no byte limit stopped it."""
    total = 0
    for want in wanted:
        view = getattr(states.get((want.topic, want.partition)), "view", None)
        if view is not None:
            total += max(view.high_watermark - want.offset, 0)
    return total


AheadKey = tuple[tuple[str, int, int, int, bool], ...]


class FetchSession:
    """Per-connection fetch state: the partition states in use, a read-only reader, and
    the read-ahead of the fetch a consumer catching up will send next.

    A client keeps one fetch in flight, so without read-ahead the server reads and
    encodes while the client waits, and the client decodes while the server idles. Records
    are immutable once acknowledged, so what was read ahead stays right; only the
    watermarks are refreshed when it is used.
    """

    def __init__(self, ctx: BrokerContext) -> None:
        self._ctx = ctx
        self.reader = LogReader()
        self._states: States = {}
        self._by_id: dict[tuple[uuid.UUID, int], tuple[str, PartitionState]] = {}
        self._ahead: tuple[AheadKey, asyncio.Future[list[FetchedPartition]]] | None = None

    async def settle(self) -> tuple[AheadKey, list[FetchedPartition]] | None:
        """Wait for a read-ahead in progress (the reader is not shared between threads)
        and hand it over, once."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        key, future = ahead
        try:
            return key, await future
        except KafkaError:  # a read-ahead is a guess; the fetch itself reads again, and
            return None     # answers the error if it is still there
        except Exception:  # a bug in reading or encoding: the fetch reads again, but say so
            log.exception("fetch read-ahead failed; the fetch reads again")
            return None

    async def take_read_ahead(self, states: States, wanted: list[FetchPartition],
                              max_bytes: int) -> list[FetchedPartition] | None:
        """What was read ahead, if it answers exactly this fetch, with today's watermarks;
        None if nothing was, it was for another fetch, or a partition went offline. Any
        read-ahead is settled either way."""
        ahead = await self.settle()
        if ahead is None or ahead[0] != _ahead_key(wanted, max_bytes):
            return None
        results = ahead[1]
        for r in results:
            state = states[(r.topic, r.partition)]
            if r.error or isinstance(state, KafkaError) or state.error or state.view is None:
                return None
            r.high_watermark = state.view.high_watermark
            r.log_start_offset = state.view.log_start_offset
        return results

    def read_ahead(self, states: States, wanted: list[FetchPartition], max_bytes: int) -> None:
        """Start reading what ``wanted`` would return, on the pool, for the next fetch."""
        self._ahead = (_ahead_key(wanted, max_bytes), asyncio.get_running_loop().run_in_executor(
            self._ctx.pool, collect, states, self.reader, self._ctx.recent, wanted, max_bytes))

    async def state(self, topic: str, partition: int) -> PartitionState | KafkaError:
        """The partition's published state, or the error that stands in for it."""
        key = (topic, partition)
        state = self._states.get(key)
        if state is None or isinstance(state, KafkaError) or state.error is not None:
            try:
                handle = await self._ctx.resolve(self._ctx.broker.partition(topic, partition))
                state = handle.state
            except KafkaError as error:
                state = error
            self._states[key] = state
        return state

    async def live_view(self, topic: str, partition: int) -> LogView:
        """The partition's published view; raises the typed error that stands in for it
        (unknown partition, or KAFKA_STORAGE_ERROR while it is offline)."""
        state = await self.state(topic, partition)
        if isinstance(state, KafkaError):
            raise state
        if state.error is not None or state.view is None:
            raise offline_error(state)
        return state.view

    async def state_by_id(self, topic_id: uuid.UUID, partition: int
                          ) -> tuple[str | None, PartitionState | KafkaError]:
        """The name of the topic whose id is ``topic_id`` (None if no topic has it) and
        its partition's state, or the error that stands in for it (UNKNOWN_TOPIC_ID).

        A state found for an id is kept while it serves: a topic deleted takes its
        partitions offline, so the next fetch asks the broker again, and an id a deleted
        topic had names no topic even when one of its name exists again. The id is looked
        up again after the state, so a topic re-created meanwhile is not served under the
        id of the one before.
        """
        known = self._by_id.get((topic_id, partition))
        if known is not None and known[1].error is None:
            return known
        self._by_id.pop((topic_id, partition), None)
        name = (await topic_names(self._ctx)).get(topic_id)
        if name is None:
            return None, UnknownTopicId(f"no topic has id {topic_id}")
        state = await self.state(name, partition)
        if (await topic_names(self._ctx)).get(topic_id) != name:
            return None, UnknownTopicId(f"no topic has id {topic_id}")
        if not isinstance(state, KafkaError):
            self._by_id[(topic_id, partition)] = (name, state)
        return name, state

    def close(self) -> None:
        if self._ahead is not None and not self._ahead[1].done():
            self._ahead[1].add_done_callback(lambda _: self.reader.close())
        else:
            self.reader.close()


def _ahead_key(wanted: list[FetchPartition], max_bytes: int) -> AheadKey:
    return (*((w.topic, w.partition, w.offset, w.max_bytes, w.read_committed) for w in wanted),
            ("", -1, -1, max_bytes, False))
