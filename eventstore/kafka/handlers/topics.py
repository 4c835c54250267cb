"""Topic admin: CreateTopics, DeleteTopics and CreatePartitions, answered by the broker.

This node is the only replica of every partition: a replication factor other than 1 (or
-1, the default) is INVALID_REPLICATION_FACTOR, and manual replica assignments are refused.
"""

from __future__ import annotations

from typing import Any

from kio.static.protocol import ResponsePayload

from eventstore.errors import (
    InvalidPartitions,
    InvalidReplicationFactor,
    InvalidRequest,
    KafkaError,
)
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection


async def handle_create_topics(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    results = []
    for topic in body.topics:
        entry: dict[str, Any] = {"name": topic.name}
        try:
            if topic.replication_factor not in (-1, 1):
                raise InvalidReplicationFactor(
                    f"replication factor {topic.replication_factor}: this node is the only"
                    " replica, use 1 (or -1 for the default)"
                )
            if topic.assignments:
                raise InvalidRequest("manual replica assignments are not supported")
            config = {c.name: c.value for c in topic.configs}
            count = None if topic.num_partitions == -1 else topic.num_partitions
            described = await ctx.resolve(ctx.broker.create_topic(
                topic.name, count, config, validate_only=body.validate_only
            ))
            entry.update(error_code=0, num_partitions=len(described.partitions),
                         replication_factor=1)
        except KafkaError as error:
            entry.update(error_code=error.code, error_message=str(error),
                         num_partitions=-1, replication_factor=-1)
        results.append(entry)
    return make_response(request, topics=results)


async def handle_delete_topics(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    names = getattr(body, "topic_names", None)
    if names is None:
        names = [t.name for t in body.topics]
    results = []
    for name in names:
        try:
            await ctx.resolve(ctx.broker.delete_topic(name))
            results.append({"name": name, "error_code": 0})
        except KafkaError as error:
            results.append({"name": name, "error_code": error.code, "error_message": str(error)})
    return make_response(request, responses=results)


async def handle_create_partitions(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    results = []
    for topic in body.topics:
        try:
            if topic.assignments:
                raise InvalidPartitions("manual replica assignments are not supported")
            await ctx.resolve(ctx.broker.create_partitions(
                topic.name, topic.count, validate_only=body.validate_only
            ))
            results.append({"name": topic.name, "error_code": 0})
        except KafkaError as error:
            results.append(
                {"name": topic.name, "error_code": error.code, "error_message": str(error)}
            )
    return make_response(request, results=results)
