"""Metadata: this node as the only broker, and the topics and partitions it leads.

This single node is the leader and only replica of every partition. A partition whose log
is offline is reported with KAFKA_STORAGE_ERROR and no leader, so clients stay away from
it while every other partition keeps serving. Topics asked for by name are created when
the client allows it and ``auto.create.topics.enable`` does (the broker decides).

From v10 each topic carries its id; from v12 topics may be asked for by id instead
(Kafka's ``KafkaApis.handleTopicMetadataRequest``): an id no topic has is answered
UNKNOWN_TOPIC_ID, and an id (or a null name) in a v10-11 request makes the request
INVALID_REQUEST. Authorized operations are answered when asked for (v8+), every operation
of the resource type while no authorizer exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kio.static.protocol import ResponsePayload

from actors.partition import PartitionHandle, offline_error
from eventstore.errors import (
    InvalidRequest,
    KafkaError,
    TopicAuthorizationFailed,
    UnknownTopicId,
    UnknownTopicOrPartition,
)
from eventstore.kafka.authorization import (
    authorize,
    cluster_allowed,
    operations_of,
    topic_refusals,
)
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.kafka.context import NODE_ID
from eventstore.kafka.topic_ids import is_topic_id, topic_names
from eventstore.security.acl import CLUSTER_NAME, Operation, ResourceType
from eventstore.storage.catalog import TopicInfo

_IDS_FROM = 12  # the first version that may name topics by id


def _topic_entry(info: TopicInfo, handles: Sequence[PartitionHandle], operations: int
                 ) -> dict[str, Any]:
    partitions = []
    for index, handle in enumerate(handles):
        error = offline_error(handle.state) if handle.offline else None
        partitions.append({
            "error_code": error.code if error else 0,
            "partition_index": index,
            "leader_id": -1 if error else NODE_ID,
            "leader_epoch": 0,
            "replica_nodes": [NODE_ID],
            "isr_nodes": [] if error else [NODE_ID],
            "offline_replicas": [NODE_ID] if error else [],
        })
    return {"error_code": 0, "name": info.name, "topic_id": info.topic_id, "is_internal": False,
            "partitions": partitions, "topic_authorized_operations": operations}


async def handle_metadata(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    requested = body.topics
    if requested is not None and len(requested) == 0 and request.api_version == 0:
        requested = None  # Metadata v0: an empty list means every topic
    allow_create = getattr(body, "allow_auto_topic_creation", True)
    include = getattr(body, "include_topic_authorized_operations", False)
    if requested is not None and any(
            t.name is None or is_topic_id(getattr(t, "topic_id", None)) for t in requested):
        topics = await _by_id(conn, request, include)
    else:
        names = None if requested is None else [t.name for t in requested]
        topics = [
            {"error_code": found.code, "name": name, "partitions": []}
            if isinstance(found, KafkaError)
            else _topic_entry(*found, operations_of(conn, ResourceType.TOPIC, name, include))
            for name, found in (await _by_name(conn, names, allow_create)).items()]
    return make_response(
        request,
        brokers=[{"node_id": NODE_ID, "host": conn.advertised[0], "port": conn.advertised[1]}],
        cluster_id=ctx.cluster_id,
        controller_id=NODE_ID,
        topics=topics,
        cluster_authorized_operations=operations_of(
            conn, ResourceType.CLUSTER, CLUSTER_NAME,
            getattr(body, "include_cluster_authorized_operations", False)),
    )


async def _by_name(conn: Connection, names: list[str] | None, allow_create: bool
                   ) -> dict[str, Any]:
    """Each topic's partitions or error, as the authorizer lets the principal see them:
    all topics means those it may DESCRIBE; a named topic it may not describe is
    TOPIC_AUTHORIZATION_FAILED, and one missing is created only with CREATE on the
    cluster or the topic (TOPIC_AUTHORIZATION_FAILED otherwise), as Kafka does. One
    broker call per kind of topic: it holds one thread while it waits."""
    ctx = conn.ctx
    if names is None:
        found = await ctx.resolve(ctx.broker.topic_partitions(None, allow_create))
        hidden = topic_refusals(conn, Operation.DESCRIBE, found)
        return {name: value for name, value in found.items() if name not in hidden}
    refused: dict[str, Any] = topic_refusals(conn, Operation.DESCRIBE, names)
    shown = [name for name in names if name not in refused]
    uncreatable = set()
    if allow_create and not cluster_allowed(conn, Operation.CREATE):
        uncreatable = set(topic_refusals(conn, Operation.CREATE, shown))
    creatable = [name for name in shown if name not in uncreatable]
    for group, create in ((creatable, allow_create), (list(uncreatable), False)):
        if group:
            refused.update(await ctx.resolve(ctx.broker.topic_partitions(group, create)))
    for name in uncreatable:
        if isinstance(refused[name], UnknownTopicOrPartition):
            refused[name] = TopicAuthorizationFailed(f"{conn.principal} may not create {name}")
    return {name: refused[name] for name in names}


async def _by_id(conn: Connection, request: Request, include: bool) -> list[dict[str, Any]]:
    """The topics of a request that names some by id (or by a null name): from v12 each
    id's topic or UNKNOWN_TOPIC_ID, the names given beside ids ignored, as Kafka does;
    before v12 (and for a null name without an id) every topic is INVALID_REQUEST."""
    ctx = conn.ctx
    requested = request.body.topics
    ids = [t.topic_id for t in requested if is_topic_id(t.topic_id)]
    if request.api_version < _IDS_FROM or not ids:
        invalid = InvalidRequest(
            f"Metadata v{request.api_version}: topics are named by name"
            + ("" if request.api_version < _IDS_FROM else " or by id"))
        return [{"error_code": invalid.code, "name": t.name or "", "topic_id": t.topic_id,
                 "partitions": []} for t in requested]
    names = await topic_names(ctx)
    topics = []
    for topic_id in dict.fromkeys(ids):
        name = names.get(topic_id)
        try:
            if name is None:
                raise UnknownTopicId(f"no topic has id {topic_id}")
            info = await ctx.resolve(ctx.broker.ensure_topic(name, False))
            if info.topic_id != topic_id:  # deleted and created again meanwhile
                raise UnknownTopicId(f"no topic has id {topic_id}")
            authorize(conn, Operation.DESCRIBE, ResourceType.TOPIC, name)
            handles = await ctx.resolve(ctx.broker.partitions(name))
            topics.append(_topic_entry(
                info, handles, operations_of(conn, ResourceType.TOPIC, name, include)))
        except KafkaError as error:
            topics.append({"error_code": error.code, "name": None, "topic_id": topic_id,
                           "partitions": []})
    return topics
