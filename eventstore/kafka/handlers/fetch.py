"""Fetch, with long polling and read-ahead, from the partitions' published views.

What a fetch reads, and how, is eventstore/kafka/fetch_sessions.py. When there is less
than ``min_bytes`` to return, a fetch waits for a partition to publish a new high
watermark, or for ``max_wait``, without holding a thread or spinning. The response is
written by hand (eventstore/kafka/codec/fetchresponse.py): it is the one a busy server
sends most often.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from eventstore.errors import KafkaError
from eventstore.kafka.codec.fetchresponse import PartitionAnswer, encode_fetch_response
from eventstore.kafka.codec.protocol import Request
from eventstore.kafka.connection import Connection
from eventstore.kafka.fetch_sessions import (
    FetchedPartition,
    FetchPartition,
    collect,
    pending_records,
)

# Reads of up to this many records run on the event loop: handing a small read to a
# thread costs more than the read (two thread hops and their GIL handoffs), and a consumer
# keeping up with its producers fetches a few records at a time.
_INLINE_RECORDS = 256


def _next_wanted(wanted: list[FetchPartition], results: list[FetchedPartition]
                 ) -> list[FetchPartition]:
    """The fetch a consumer sends after reading ``results``: each offset moved past what
    it got."""
    return [FetchPartition(w.topic, w.partition, w.offset + r.record_count, w.max_bytes)
            for w, r in zip(wanted, results, strict=True)]


async def handle_fetch(conn: Connection, request: Request) -> bytes:
    ctx, session = conn.ctx, conn.fetches
    body = request.body
    wanted = [
        FetchPartition(t.topic, p.partition, p.fetch_offset, p.partition_max_bytes)
        for t in body.topics
        for p in t.partitions
    ]
    max_bytes = min(body.max_bytes, ctx.server_config["fetch.max.bytes"])
    states = {(w.topic, w.partition): await session.state(w.topic, w.partition) for w in wanted}
    deadline = time.monotonic() + body.max_wait.total_seconds()
    woken = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wake() -> None:
        loop.call_soon_threadsafe(woken.set)

    results = await session.take_read_ahead(states, wanted, max_bytes)
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
