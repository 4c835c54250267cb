"""OffsetDelete: forget a group's committed offsets for partitions it no longer consumes
(``kafka-consumer-groups --delete-offsets``, the admin clients'
``delete_consumer_group_offsets``).

The group coordinator answers (see ClassicGroupCoordinator.delete_offsets): a group-wide
error, which Kafka sends with no topics, or an error code per partition.
"""

from __future__ import annotations

from kio.static.protocol import ResponsePayload

from eventstore.kafka.authorization import refusal, topic_refusals
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.security.acl import Operation, ResourceType


async def handle_offset_delete(conn: Connection, request: Request) -> ResponsePayload:
    body = request.body
    if error := refusal(conn, Operation.DELETE, ResourceType.GROUP, body.group_id):
        return make_response(request, error_code=error, topics=[])
    refused = topic_refusals(conn, Operation.READ, (t.name for t in body.topics))
    partitions = [(t.name, p.partition_index) for t in body.topics if t.name not in refused
                  for p in t.partitions]
    error, results = await conn.ctx.resolve(
        conn.ctx.coordinator.delete_offsets(body.group_id, partitions))
    results.update({(t.name, p.partition_index): refused[t.name].code for t in body.topics
                    if t.name in refused for p in t.partitions})
    if error:
        return make_response(request, error_code=error, topics=[])
    topics = [
        {"name": t.name, "partitions": [
            {"partition_index": p.partition_index,
             "error_code": results[(t.name, p.partition_index)]}
            for p in t.partitions]}
        for t in body.topics
    ]
    return make_response(request, error_code=0, topics=topics)
