"""Topic admin: CreateTopics, DeleteTopics and CreatePartitions, answered by the broker.

This node is the only replica of every partition: a replication factor other than 1 (or
-1, the default) is INVALID_REPLICATION_FACTOR. A manual replica assignment is judged as
Kafka's controller judges it (ReplicationControlManager.createTopic, createPartitions and
validateManualPartitionAssignment), with node 0 the only registered broker: each
partition's list must be exactly ``[0]``. Naming another broker, or node 0 twice, is
INVALID_REPLICA_ASSIGNMENT; an assignment beside a replication factor or partition count
other than -1 is INVALID_REQUEST. Those checks come after the topic's name, existence and
config are checked, as in Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kio.static.protocol import ResponsePayload

from eventstore.errors import (
    InvalidReplicaAssignment,
    InvalidReplicationFactor,
    InvalidRequest,
    KafkaError,
)
from eventstore.kafka.authorization import authorize, authorize_create
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.kafka.context import NODE_ID
from eventstore.kafka.topic_ids import topic_id
from eventstore.security.acl import Operation, ResourceType

_TOPIC_ID_FROM = 7  # CreateTopics answers with the new topic's id


def check_replicas(broker_ids: Sequence[int]) -> None:
    """Refuse one partition's manual replica list unless it is this node alone.

    Kafka refuses an empty list, a broker that is not registered and a broker named twice
    with INVALID_REPLICA_ASSIGNMENT; here the only registered broker is :data:`NODE_ID`.
    """
    if not broker_ids:
        raise InvalidReplicaAssignment(
            "The manual partition assignment includes an empty replica list.")
    for broker_id in sorted(broker_ids):
        if broker_id != NODE_ID:
            raise InvalidReplicaAssignment(
                f"The manual partition assignment includes broker {broker_id}, but no such"
                f" broker is registered.")
    if len(broker_ids) > 1:
        raise InvalidReplicaAssignment(
            f"The manual partition assignment includes the broker {NODE_ID} more than once.")


def assigned_partition_count(topic: Any) -> int:
    """How many partitions a CreateTopics entry's manual assignment creates, or a refusal
    with Kafka's code (ReplicationControlManager.createTopic's order of checks)."""
    if topic.replication_factor != -1:
        raise InvalidRequest(
            "A manual partition assignment was specified, but replication factor was not"
            " set to -1.")
    if topic.num_partitions != -1:
        raise InvalidRequest(
            "A manual partition assignment was specified, but numPartitions was not set"
            " to -1.")
    indexes: set[int] = set()
    for assignment in topic.assignments:
        if assignment.partition_index in indexes:
            raise InvalidReplicaAssignment(
                "Found multiple manual partition assignments for partition"
                f" {assignment.partition_index}")
        check_replicas(assignment.broker_ids)
        indexes.add(assignment.partition_index)
    if indexes != set(range(len(indexes))):
        raise InvalidReplicaAssignment(
            "partitions should be a consecutive 0-based integer sequence")
    return len(indexes)


async def handle_create_topics(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    results = []
    for topic in body.topics:
        entry: dict[str, Any] = {"name": topic.name}
        try:
            authorize_create(conn, topic.name)
            if topic.replication_factor not in (-1, 1):
                raise InvalidReplicationFactor(
                    f"replication factor {topic.replication_factor}: this node is the only"
                    " replica, use 1 (or -1 for the default)"
                )
            config = {c.name: c.value for c in topic.configs}
            count = None if topic.num_partitions == -1 else topic.num_partitions
            if topic.assignments:
                count = await _assigned_count(conn, topic, config)
            described = await ctx.resolve(ctx.broker.create_topic(
                topic.name, count, config, validate_only=body.validate_only
            ))
            entry.update(error_code=0, num_partitions=len(described.partitions),
                         replication_factor=1)
            if not body.validate_only and request.api_version >= _TOPIC_ID_FROM:
                entry["topic_id"] = await topic_id(ctx, topic.name)
        except KafkaError as error:
            entry.update(error_code=error.code, error_message=str(error),
                         num_partitions=-1, replication_factor=-1)
        results.append(entry)
    return make_response(request, topics=results)


async def _assigned_count(conn: Connection, topic: Any, config: dict[str, Any]) -> int:
    """The partition count of a CreateTopics entry with a manual assignment. A refused
    assignment is answered only after the broker found nothing wrong with the topic's
    name, existence and config, which Kafka checks first."""
    try:
        return assigned_partition_count(topic)
    except KafkaError:
        ctx = conn.ctx
        await ctx.resolve(ctx.broker.create_topic(topic.name, 1, config, validate_only=True))
        raise


async def _check_added_assignments(
        conn: Connection, name: str, total: int, assignments: Sequence[Sequence[int]]) -> None:
    """Refuse CreatePartitions' manual assignment unless it gives each added partition
    this node alone. The topic's existence and the count are checked first, by the
    broker, as Kafka's ReplicationControlManager.createPartitions does."""
    ctx = conn.ctx
    await ctx.resolve(ctx.broker.create_partitions(name, total, validate_only=True))
    current = len(await ctx.resolve(ctx.broker.partitions(name)))
    if len(assignments) != total - current:
        raise InvalidReplicaAssignment(
            f"Attempted to add {total - current} additional partition(s), but only"
            f" {len(assignments)} assignment(s) were specified.")
    for broker_ids in assignments:
        check_replicas(broker_ids)


async def handle_create_partitions(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    results = []
    for topic in body.topics:
        try:
            authorize(conn, Operation.ALTER, ResourceType.TOPIC, topic.name)
            if topic.assignments is not None:
                await _check_added_assignments(conn, topic.name, topic.count,
                                               [a.broker_ids for a in topic.assignments])
            await ctx.resolve(ctx.broker.create_partitions(
                topic.name, topic.count, validate_only=body.validate_only
            ))
            results.append({"name": topic.name, "error_code": 0})
        except KafkaError as error:
            results.append(
                {"name": topic.name, "error_code": error.code, "error_message": str(error)}
            )
    return make_response(request, results=results)
