"""DescribeLogDirs: the one log directory, the data directory, and its partitions' sizes."""

from __future__ import annotations

import shutil

from kio.static.protocol import ResponsePayload

from eventstore.kafka.authorization import refusal
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.security.acl import Operation, ResourceType


async def handle_describe_log_dirs(conn: Connection, request: Request) -> ResponsePayload:
    """Every partition asked for (all when the request names none) with its size in
    bytes, and the directory's disk space."""
    if error := refusal(conn, Operation.DESCRIBE, ResourceType.CLUSTER):
        return make_response(request, error_code=error, results=[])
    ctx = conn.ctx
    wanted = request.body.topics
    filters = None if wanted is None else {t.topic: set(t.partitions) for t in wanted}
    topics = []
    for topic in await ctx.resolve(ctx.broker.describe_topics(None)):
        if filters is not None and topic.name not in filters:
            continue
        topics.append({"name": topic.name, "partitions": [
            {"partition_index": p.partition, "partition_size": p.bytes, "offset_lag": 0,
             "is_future_key": False}
            for p in topic.partitions
            if filters is None or p.partition in filters[topic.name]
        ]})
    usage = shutil.disk_usage(ctx.data_dir) if ctx.data_dir else None
    return make_response(request, error_code=0, results=[{
        "error_code": 0,
        "log_dir": ctx.data_dir,
        "topics": topics,
        "total_bytes": usage.total if usage else -1,
        "usable_bytes": usage.free if usage else -1,
    }])
