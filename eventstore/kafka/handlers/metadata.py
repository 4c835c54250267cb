"""Metadata: this node as the only broker, and the topics and partitions it leads.

This single node is the leader and only replica of every partition. A partition whose log
is offline is reported with KAFKA_STORAGE_ERROR and no leader, so clients stay away from
it while every other partition keeps serving. Topics asked for by name are created when
the client allows it and ``auto.create.topics.enable`` does (the broker decides).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kio.static.protocol import ResponsePayload

from actors.partition import PartitionHandle, offline_error
from eventstore.errors import KafkaError
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.kafka.context import CLUSTER_ID, NODE_ID, UNKNOWN_AUTHORIZED_OPERATIONS


def _topic_entry(name: str, handles: Sequence[PartitionHandle]) -> dict[str, Any]:
    partitions = []
    for index, handle in enumerate(handles):
        error = offline_error(handle.state) if handle.actor is None else None
        partitions.append({
            "error_code": error.code if error else 0,
            "partition_index": index,
            "leader_id": -1 if error else NODE_ID,
            "leader_epoch": 0,
            "replica_nodes": [NODE_ID],
            "isr_nodes": [] if error else [NODE_ID],
            "offline_replicas": [NODE_ID] if error else [],
        })
    return {"error_code": 0, "name": name, "is_internal": False, "partitions": partitions,
            "topic_authorized_operations": UNKNOWN_AUTHORIZED_OPERATIONS}


async def handle_metadata(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    requested = body.topics
    if requested is not None and len(requested) == 0 and request.api_version == 0:
        requested = None  # Metadata v0: an empty list means every topic
    allow_create = getattr(body, "allow_auto_topic_creation", True)
    topics = []
    if requested is None:
        for info in await ctx.resolve(ctx.broker.list_topics()):
            handles = await ctx.resolve(ctx.broker.partitions(info.name))
            topics.append(_topic_entry(info.name, handles))
    else:
        for wanted in requested:
            name = wanted.name
            try:
                await ctx.resolve(ctx.broker.ensure_topic(name, allow_create))
                handles = await ctx.resolve(ctx.broker.partitions(name))
                topics.append(_topic_entry(name, handles))
            except KafkaError as error:
                topics.append({"error_code": error.code, "name": name, "partitions": []})
    return make_response(
        request,
        brokers=[{"node_id": NODE_ID, "host": ctx.host, "port": ctx.port}],
        cluster_id=CLUSTER_ID,
        controller_id=NODE_ID,
        topics=topics,
        cluster_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
    )
