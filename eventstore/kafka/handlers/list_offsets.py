"""ListOffsets: a partition's earliest or latest offset, or the first at a timestamp.

Read like a fetch, from the partition's published view through the connection's own
LogReader (eventstore/kafka/fetch_sessions.py), never by asking the partition actor.
Under read_committed the log ends at its last stable offset: LATEST is the LSO.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kio.static.protocol import ResponsePayload

from eventstore.errors import KafkaError
from eventstore.kafka.authorization import authorize
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.security.acl import Operation, ResourceType
from eventstore.storage.log_reader import LogReader, LogView

READ_COMMITTED = 1  # isolation_level: LATEST is the last stable offset, as in Kafka

# the special timestamps a ListOffsets query may ask for
EARLIEST, LATEST, MAX_TIMESTAMP = -2, -1, -3


def list_offset(view: LogView, reader: LogReader, timestamp: int) -> tuple[int, int]:
    """(offset, timestamp) answering one ListOffsets query; (-1, -1) when none matches."""
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


async def handle_list_offsets(conn: Connection, request: Request) -> ResponsePayload:
    ctx, session = conn.ctx, conn.fetches
    await session.settle()  # its reader is about to be used here
    topics = []
    read_committed = getattr(request.body, "isolation_level", 0) == READ_COMMITTED
    for topic in request.body.topics:
        parts = []
        for p in topic.partitions:
            entry: dict[str, Any] = {"partition_index": p.partition_index, "leader_epoch": -1}
            try:
                authorize(conn, Operation.DESCRIBE, ResourceType.TOPIC, topic.name)
                view = await session.live_view(topic.name, p.partition_index)
                if read_committed and view.transactional:  # nothing past the stable end
                    view = replace(view, high_watermark=view.last_stable_offset)
                offset, stamp = await ctx.run(list_offset, view, session.reader, p.timestamp)
                entry.update(offset=offset, timestamp=stamp)
            except KafkaError as error:
                entry.update(error_code=error.code, offset=-1, timestamp=-1)
            parts.append(entry)
        topics.append({"name": topic.name, "partitions": parts})
    return make_response(request, topics=topics)
