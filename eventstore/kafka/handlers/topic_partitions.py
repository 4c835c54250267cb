"""DescribeTopicPartitions (KIP-966): topics and their partitions, a page at a time.

Kafka 3.7+ admin clients, and kafka-python's ``describe_topic_partitions``, describe topics
with it rather than with Metadata; unlike Metadata it never creates a topic and it pages.
Answered as Kafka's DescribeTopicPartitionsRequestHandler and KRaftMetadataCache
(getTopicMetadataForDescribeTopicResponse) answer it:

- no topics named: every topic; otherwise the named ones, an unknown name answered with
  UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for an illegal name);
- topics in name order from the cursor's topic on (names before it are left out), its
  partitions from the cursor's partition on, every other topic's from 0;
- at most ``min(response_partition_limit, max.request.partition.size.limit)`` partitions
  in all (and at least one). Where the limit cuts a topic, ``next_cursor`` names that
  topic and its first partition not given; where it falls just before a topic, that topic
  and partition 0; when everything fits there is no cursor;
- a cursor topic that is not among the named topics, or a negative cursor partition, makes
  the request invalid: each named topic is answered INVALID_REQUEST.

This node leads every partition, at leader epoch 0; no other replica could be elected, so
the ELR lists (KIP-966's eligible leader replicas) are empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kio.static.protocol import ResponsePayload

from actors.partition import PartitionHandle
from eventstore.errors import InvalidRequest, KafkaError, UnknownTopicOrPartition
from eventstore.kafka.authorization import operations_of, refusal
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.kafka.context import NODE_ID
from eventstore.security.acl import Operation, ResourceType
from eventstore.storage.catalog import TopicInfo, validate_topic_name
from eventstore.storage.kafka_uuid import ZERO_UUID


@dataclass(frozen=True, slots=True)
class Page:
    """Where a page starts and how many partitions it may hold."""

    cursor_topic: str  # "" without a cursor: every name sorts at or after it
    cursor_partition: int
    limit: int

    def first_partition(self, topic: str) -> int:
        return self.cursor_partition if topic == self.cursor_topic else 0


def requested_topics(body: Any, known: Sequence[str]) -> tuple[list[str], Page, bool]:
    """The names to describe in order, the page, and whether every topic was asked for.

    Raises InvalidRequest for a cursor Kafka refuses (see the module docstring).
    """
    cursor = body.cursor
    page = Page(cursor.topic_name if cursor else "", cursor.partition_index if cursor else 0,
                max(body.response_partition_limit, 1))
    every_topic = not body.topics
    names = known if every_topic else [t.name for t in body.topics]
    wanted = sorted({name for name in names if name >= page.cursor_topic})
    if cursor is not None and not every_topic and cursor.topic_name not in wanted:
        raise InvalidRequest(
            "DescribeTopicPartitionsRequest topic list should contain the cursor topic:"
            f" {cursor.topic_name}")
    if cursor is not None and cursor.partition_index < 0:
        raise InvalidRequest(
            f"DescribeTopicPartitionsRequest cursor partition must be valid: {cursor}")
    return wanted, page, every_topic


def partition_entry(index: int, handle: PartitionHandle) -> dict[str, Any]:
    """One partition: led by this node, or, while offline, with no leader and this node
    its offline replica. Kafka sets no partition error code in this API (Metadata says
    KAFKA_STORAGE_ERROR for the same partition)."""
    offline = handle.offline
    replicas = [NODE_ID]
    return {"error_code": 0, "partition_index": index,
            "leader_id": -1 if offline else NODE_ID, "leader_epoch": 0,
            "replica_nodes": replicas, "isr_nodes": [] if offline else replicas,
            "offline_replicas": replicas if offline else [],
            "eligible_leader_replicas": [], "last_known_elr": []}


def _topic_error(name: str, error: KafkaError) -> dict[str, Any]:
    return {"error_code": error.code, "name": name, "topic_id": ZERO_UUID, "is_internal": False,
            "partitions": []}


def _unknown_topic_error(name: str) -> dict[str, Any]:
    try:
        validate_topic_name(name)
    except KafkaError as invalid:
        return _topic_error(name, invalid)
    return _topic_error(name, UnknownTopicOrPartition())


async def handle_describe_topic_partitions(
        conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    infos: dict[str, TopicInfo] = {
        info.name: info for info in await ctx.resolve(ctx.broker.list_topics())}
    try:
        names, page, every_topic = requested_topics(body, list(infos))
    except InvalidRequest as error:
        return make_response(request, topics=[_topic_error(t.name, error) for t in body.topics])
    remaining = min(page.limit, ctx.server_config["max.request.partition.size.limit"])
    topics: list[dict[str, Any]] = []
    next_cursor = None
    for name in names:
        if remaining == 0:
            next_cursor = {"topic_name": name, "partition_index": 0}
            break
        if error := refusal(conn, Operation.DESCRIBE, ResourceType.TOPIC, name):
            if not every_topic:  # all topics: only those the principal may describe
                topics.append(_topic_error(name, error))
            continue
        info = infos.get(name)
        handles: Sequence[PartitionHandle] = ()
        if info is not None:
            try:
                handles = await ctx.resolve(ctx.broker.partitions(name))
            except UnknownTopicOrPartition:
                info = None  # deleted since it was listed
        if info is None:
            if not every_topic:
                topics.append(_unknown_topic_error(name))
            continue
        first = page.first_partition(name)
        last = min(len(handles), first + remaining)
        topics.append({
            "error_code": 0, "name": name, "topic_id": info.topic_id, "is_internal": False,
            "partitions": [partition_entry(index, handles[index])
                           for index in range(first, last)],
            "topic_authorized_operations": operations_of(conn, ResourceType.TOPIC, name, True),
        })
        if last < len(handles):
            next_cursor = {"topic_name": name, "partition_index": last}
            break
        remaining -= max(last - first, 0)
    return make_response(request, topics=topics, next_cursor=next_cursor)
