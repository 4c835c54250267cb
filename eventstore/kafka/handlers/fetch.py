"""Fetch, with long polling and read-ahead, from the partitions' published views.

What a fetch reads, and how, is eventstore/kafka/fetch_sessions.py. When there is less
than ``min_bytes`` to return, a fetch waits for a partition to publish a new high
watermark, or for ``max_wait``, without holding a thread or spinning. The response is
written by hand (eventstore/kafka/codec/fetchresponse.py): it is the one a busy server
sends most often. From v13 topics are named by id, in the request and the answer.
Under ``isolation_level`` read_committed a fetch returns records below the last stable
offset only and lists the aborted transactions among them, which clients drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from eventstore.errors import KafkaError
from eventstore.kafka.authorization import topic_refusals
from eventstore.kafka.codec.fetchresponse import (
    TOPIC_IDS_FROM,
    PartitionAnswer,
    encode_fetch_response,
)
from eventstore.kafka.codec.protocol import Request
from eventstore.kafka.connection import Connection
from eventstore.kafka.fetch_sessions import (
    FetchedPartition,
    FetchPartition,
    FetchSession,
    States,
    collect,
    pending_records,
)
from eventstore.security.acl import Operation

# Reads of up to this many records, and of at most this many bytes, run on the event
# loop: handing a small read to a thread costs more than the read (two thread hops and
# their GIL handoffs), and a consumer keeping up with its producers fetches a few records
# at a time. A larger read would stall every other connection: it runs on the pool.
_INLINE_RECORDS = 256
READ_COMMITTED = 1  # isolation_level: records below the last stable offset only
_INLINE_BYTES = 1 << 20


def _inline(states: States, wanted: list[FetchPartition], max_bytes: int) -> bool:
    """Whether reading ``wanted`` is small enough for the event loop: few records, and
    few bytes by the records' average size in their partition's newest segment."""
    if pending_records(states, wanted) > _INLINE_RECORDS:
        return False
    estimate = 0
    for want in wanted:
        view = getattr(states.get((want.topic, want.partition)), "view", None)
        if view is not None and view.segments and want.offset < view.high_watermark:
            newest = view.segments[-1]
            average = newest.bytes // max(newest.record_count, 1)
            estimate += min((view.high_watermark - want.offset) * average, want.max_bytes)
    return min(estimate, max_bytes) <= _INLINE_BYTES


def _next_wanted(wanted: list[FetchPartition], results: list[FetchedPartition]
                 ) -> list[FetchPartition]:
    """The fetch a consumer sends after reading ``results``: each offset moved past what
    it got."""
    return [FetchPartition(w.topic, w.partition, w.offset + r.record_count, w.max_bytes,
                           w.read_committed)
            for w, r in zip(wanted, results, strict=True)]


async def _requested(session: FetchSession, request: Request
                     ) -> tuple[list[FetchPartition], list[str | uuid.UUID], States]:
    """What a fetch asks for: each partition wanted, the topic name (v4-12) or id (v13+)
    its answer goes under, and the partitions' states. A partition of a topic id that no
    topic has is wanted under the empty name, which no topic can have, and its state is
    UNKNOWN_TOPIC_ID (Kafka's KafkaApis.handleFetchRequest)."""
    wanted: list[FetchPartition] = []
    keys: list[str | uuid.UUID] = []
    states: States = {}
    by_id = request.api_version >= TOPIC_IDS_FROM
    read_committed = request.body.isolation_level == READ_COMMITTED
    for t in request.body.topics:
        for p in t.partitions:
            if by_id:
                name, state = await session.state_by_id(t.topic_id, p.partition)
                name = name or ""
                keys.append(t.topic_id)
            else:
                name, state = t.topic, await session.state(t.topic, p.partition)
                keys.append(name)
            wanted.append(FetchPartition(name, p.partition, p.fetch_offset,
                                         p.partition_max_bytes, read_committed))
            states[(name, p.partition)] = state
    return wanted, keys, states


async def handle_fetch(conn: Connection, request: Request) -> bytes:
    ctx, session = conn.ctx, conn.fetches
    body = request.body
    wanted, keys, states = await _requested(session, request)
    refused = topic_refusals(conn, Operation.READ, {name for name, _ in states if name})
    states.update({key: refused[key[0]] for key in states if key[0] in refused})
    max_bytes = min(body.max_bytes, ctx.server_config["fetch.max.bytes"])
    deadline = time.monotonic() + body.max_wait.total_seconds()
    woken = asyncio.Event()
    loop = asyncio.get_running_loop()
    told = [False]  # a wake-up is on its way: appends until it lands add none

    def wake() -> None:
        if not told[0]:
            told[0] = True
            loop.call_soon_threadsafe(woken.set)

    results = await session.take_read_ahead(states, wanted, max_bytes)
    conn.read_ahead_taken()
    if results is not None and sum(len(r.records) for r in results) < body.min_bytes:
        results = None
    listening = [s for s in states.values() if not isinstance(s, KafkaError)]
    for state in listening:
        state.add_listener(wake)
    try:
        while results is None:
            woken.clear()
            told[0] = False
            if _inline(states, wanted, max_bytes):
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
                async with asyncio.timeout(remaining):
                    await woken.wait()
    finally:
        for state in listening:
            state.remove_listener(wake)
    if not any(r.error for r in results):
        following = _next_wanted(wanted, results)
        if pending_records(states, following) > _INLINE_RECORDS:  # a consumer catching up
            conn.read_ahead_once_written(
                lambda: session.read_ahead(states, following, max_bytes),
                min(max_bytes, sum(w.max_bytes for w in following)))
    topics: dict[str | uuid.UUID, list[PartitionAnswer]] = {}
    for key, r in zip(keys, results, strict=True):
        if r.record_count:  # counted once, as answered (a long poll collects again)
            states[(r.topic, r.partition)].stats.add_fetched(r.record_count, len(r.records))
        topics.setdefault(key, []).append(PartitionAnswer(
            r.partition, r.error.code if r.error else 0, r.high_watermark,
            r.log_start_offset, r.records, r.last_stable_offset, r.aborted))
    return encode_fetch_response(request.correlation_id, request.api_version,
                                 list(topics.items()))
