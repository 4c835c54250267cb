"""Fetch (with long polling) and ListOffsets, read straight from the partitions' views.

A fetch never messages a partition actor per request: it reads the published LogView
(segments and high watermark) through the connection's own read-only LogReader, so it
never waits behind a write and never sees a record before its append was acknowledged.
When there is less than ``min_bytes`` to return, it waits for a partition to publish a
new high watermark, or for ``max_wait``, without holding a thread or spinning.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from actors.partition import offline_error
from eventstore.errors import KafkaError, KafkaStorageError, OffsetOutOfRange
from eventstore.kafka.batchcache import RecentBatches
from eventstore.kafka.codec.fetchresponse import PartitionAnswer, encode_fetch_response
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.codec.recordbatch import encode_batch
from eventstore.kafka.context import BrokerContext
from eventstore.storage.log import LogReader, LogView, check_offset
from eventstore.storage.records import StoredRow

log = logging.getLogger("eventstore.kafka.handlers.fetch")

# a fetch's record count is bounded by its bytes; this only caps one read call
_MAX_RECORDS_PER_READ = 100_000
# Reads of up to this many records run on the event loop: handing a small read to a
# thread costs more than the read (two thread hops and their GIL handoffs), and a consumer
# keeping up with its producers fetches a few records at a time.
_INLINE_RECORDS = 256

EARLIEST, LATEST, MAX_TIMESTAMP = -2, -1, -3


@dataclass
class FetchPartition:
    topic: str
    partition: int
    offset: int
    max_bytes: int


@dataclass
class FetchedPartition:
    topic: str
    partition: int
    error: KafkaError | None = None
    records: bytes = b""
    record_count: int = 0
    high_watermark: int = -1
    log_start_offset: int = -1


def _millis(value: Any) -> int:
    return int(value.total_seconds() * 1000) if hasattr(value, "total_seconds") else int(value)


def collect(
    ctx_states: dict[tuple[str, int], Any],
    reader: LogReader,
    recent: RecentBatches,
    wanted: list[FetchPartition],
    max_bytes: int,
) -> list[FetchedPartition]:
    """Read what each partition has from its offset on, within the byte limits: from the
    batches its producers sent, while they are kept, else from the segments."""
    results = []
    budget = max_bytes
    for want in wanted:
        out = FetchedPartition(want.topic, want.partition)
        results.append(out)
        state = ctx_states.get((want.topic, want.partition))
        if isinstance(state, KafkaError):
            out.error = state
            continue
        view: LogView | None = state.view
        if state.error is not None or view is None:
            out.error = offline_error(state)
            continue
        out.high_watermark, out.log_start_offset = view.high_watermark, view.log_start_offset
        try:
            check_offset(view, want.offset)
            if budget <= 0 and any(r.records for r in results):
                continue
            limit = max(min(want.max_bytes, budget), 1)
            cached = recent.read(state, want.offset, limit)
            if cached is not None:
                out.records = cached.records
                out.record_count = cached.last + 1 - want.offset
                budget -= len(out.records)
                continue
            rows = reader.read(view, want.offset, _MAX_RECORDS_PER_READ, limit)
        except OffsetOutOfRange as error:
            out.error = error
            continue
        except KafkaError as error:
            if isinstance(error, KafkaStorageError):  # damage met by a read: operators must know
                log.error("fetch failed", extra={"fields": {
                    "topic": want.topic, "partition": want.partition, "offset": want.offset,
                    "error": str(error)}})
            out.error = error
            continue
        if rows:
            out.records = _encode(rows, view.timestamp_type)
            out.record_count = len(rows)
            budget -= len(out.records)
    return results


def _encode(rows: list[StoredRow], timestamp_type: str) -> bytes:
    """Rows as one record batch; under LogAppendTime one batch per append time, as a
    consumer takes each record's timestamp from its batch's max timestamp then."""
    if timestamp_type != "LogAppendTime":
        return encode_batch(rows[0][0], rows)
    return b"".join(
        encode_batch(group[0][0], group, timestamp_type=timestamp_type)
        for group in (list(g) for _, g in itertools.groupby(rows, key=_timestamp_of))
    )


_timestamp_of = itemgetter(1)


def pending_records(states: dict[tuple[str, int], Any], wanted: list[FetchPartition]) -> int:
    """Records between each wanted offset and its partition's high watermark, as published
    now: what :func:`collect` would read if no byte limit stopped it."""
    total = 0
    for want in wanted:
        view = getattr(states.get((want.topic, want.partition)), "view", None)
        if view is not None:
            total += max(view.high_watermark - want.offset, 0)
    return total


AheadKey = tuple[tuple[str, int, int, int], ...]


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
        self._states: dict[tuple[str, int], Any] = {}
        self._ahead: tuple[AheadKey, asyncio.Future] | None = None

    async def settle(self) -> tuple[AheadKey, list[FetchedPartition]] | None:
        """Wait for a read-ahead in progress (the reader is not shared between threads)
        and hand it over, once."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        key, future = ahead
        try:
            return key, await future
        except Exception:  # a read-ahead is a guess; the fetch itself will read again
            return None

    def read_ahead(self, states: dict[tuple[str, int], Any], wanted: list[FetchPartition],
                   max_bytes: int) -> None:
        """Start reading what ``wanted`` would return, on the pool, for the next fetch."""
        self._ahead = (_ahead_key(wanted, max_bytes), asyncio.get_running_loop().run_in_executor(
            self._ctx.pool, collect, states, self.reader, self._ctx.recent, wanted, max_bytes))

    async def state(self, topic: str, partition: int) -> Any:
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

    def close(self) -> None:
        if self._ahead is not None and not self._ahead[1].done():
            self._ahead[1].add_done_callback(lambda _: self.reader.close())
        else:
            self.reader.close()


def _ahead_key(wanted: list[FetchPartition], max_bytes: int) -> AheadKey:
    return (*((w.topic, w.partition, w.offset, w.max_bytes) for w in wanted),
            ("", -1, -1, max_bytes))


def _next_wanted(wanted: list[FetchPartition], results: list[FetchedPartition]
                 ) -> list[FetchPartition]:
    """The fetch a consumer sends after reading ``results``: each offset moved past what
    it got."""
    return [FetchPartition(w.topic, w.partition, w.offset + r.record_count, w.max_bytes)
            for w, r in zip(wanted, results, strict=True)]


def _refreshed(results: list[FetchedPartition], states: dict[tuple[str, int], Any]
               ) -> list[FetchedPartition] | None:
    """Read-ahead results with today's watermarks; None if a partition went offline."""
    for r in results:
        state = states.get((r.topic, r.partition))
        if r.error or isinstance(state, KafkaError) or state.error or state.view is None:
            return None
        r.high_watermark = state.view.high_watermark
        r.log_start_offset = state.view.log_start_offset
    return results


async def handle_fetch(ctx: BrokerContext, session: FetchSession, request: Request) -> Any:
    body = request.body
    wanted = [
        FetchPartition(t.topic, p.partition, p.fetch_offset, p.partition_max_bytes)
        for t in body.topics
        for p in t.partitions
    ]
    max_bytes = getattr(body, "max_bytes", 52428800)
    states = {(w.topic, w.partition): await session.state(w.topic, w.partition) for w in wanted}
    deadline = time.monotonic() + _millis(body.max_wait) / 1000
    woken = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wake() -> None:
        loop.call_soon_threadsafe(woken.set)

    ahead = await session.settle()
    results = None
    if ahead is not None and ahead[0] == _ahead_key(wanted, max_bytes):
        results = _refreshed(ahead[1], states)
        if results is not None and sum(len(r.records) for r in results) < body.min_bytes:
            results = None
    listening = [s for s in states.values() if not isinstance(s, KafkaError)]
    for state in listening:
        state.add_listener(wake)
    try:
        while results is None:
            woken.clear()
            if pending_records(states, wanted) <= _INLINE_RECORDS:
                results = collect(states, session.reader, ctx.recent, wanted, max_bytes)
            else:
                results = await ctx.run(collect, states, session.reader, ctx.recent, wanted,
                                        max_bytes)
            size = sum(len(r.records) for r in results)
            remaining = deadline - time.monotonic()
            if size >= body.min_bytes or remaining <= 0 or any(r.error for r in results):
                break
            results = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), remaining)
    finally:
        for state in listening:
            state.remove_listener(wake)
    if not any(r.error for r in results):
        following = _next_wanted(wanted, results)
        if pending_records(states, following) > _INLINE_RECORDS:  # a consumer catching up
            session.read_ahead(states, following, max_bytes)
    topics: dict[str, list[PartitionAnswer]] = {}
    for r in results:
        if r.record_count:  # counted once, as answered (a long poll collects again)
            states[(r.topic, r.partition)].stats.add_fetched(r.record_count, len(r.records))
        topics.setdefault(r.topic, []).append(PartitionAnswer(
            r.partition, r.error.code if r.error else 0, r.high_watermark,
            r.log_start_offset, r.records))
    return encode_fetch_response(request.correlation_id, request.api_version,
                                 list(topics.items()))


def list_offset(state: Any, reader: LogReader, timestamp: int) -> tuple[int, int]:
    """(offset, timestamp) answering one ListOffsets query; (-1, -1) when none matches."""
    view: LogView = state.view
    if timestamp == EARLIEST:
        return view.log_start_offset, -1
    if timestamp == LATEST:
        return view.high_watermark, -1
    if timestamp == MAX_TIMESTAMP:
        return _max_timestamp_offset(reader, view)
    offset = reader.offset_for_timestamp(view, timestamp)
    if offset is None:
        return -1, -1
    (row,) = reader.read(view, offset, 1)
    return offset, row[1]


def _max_timestamp_offset(reader: LogReader, view: LogView) -> tuple[int, int]:
    stamped = [s for s in view.segments if s.max_timestamp is not None]
    if not stamped:
        return -1, -1
    newest = max(s.max_timestamp for s in stamped)
    offset = reader.offset_for_timestamp(view, newest)
    return (-1, -1) if offset is None else (offset, newest)


async def handle_list_offsets(ctx: BrokerContext, session: FetchSession, request: Request) -> Any:
    await session.settle()  # its reader is about to be used here
    topics = []
    for topic in request.body.topics:
        parts = []
        for p in topic.partitions:
            state = await session.state(topic.name, p.partition_index)
            entry: dict[str, Any] = {"partition_index": p.partition_index, "leader_epoch": -1}
            try:
                if isinstance(state, KafkaError):
                    raise state
                if state.error is not None or state.view is None:
                    raise offline_error(state)
                offset, stamp = await ctx.run(list_offset, state, session.reader, p.timestamp)
                entry.update(offset=offset, timestamp=stamp)
            except KafkaError as error:
                entry.update(error_code=error.code, offset=-1, timestamp=-1)
            parts.append(entry)
        topics.append({"name": topic.name, "partitions": parts})
    return make_response(request, topics=topics)
