"""DescribeProducers: the idempotent producers each partition remembers (KIP-664).

``kafka-transactions describe-producers`` and admin clients' ``describeProducers`` use it
to find producers that hold a partition's last stable offset back. Answered as Kafka's
KafkaApis.handleDescribeProducersRequest, ReplicaManager.activeProducerState and
UnifiedLog.activeProducers answer it: per partition asked for, every producer id its
producer state holds (until the periodic expiry of ``producer.id.expiration.ms`` drops
it) with its epoch and the last sequence it wrote; an unknown topic or partition is
UNKNOWN_TOPIC_OR_PARTITION, an offline one KAFKA_STORAGE_ERROR.

Until transactions exist no producer has a coordinator or an open transaction: the
coordinator epoch and the current transaction's start offset are -1. The last timestamp
is when the producer's last batch was appended: this node keeps that time, not the batch's
largest record timestamp that Kafka reports (the two agree for ``LogAppendTime`` topics).
"""

from __future__ import annotations

from typing import Any

import pykka
from kio.static.protocol import ResponsePayload

from actors.partition import offline_error
from eventstore.errors import KafkaError
from eventstore.kafka.authorization import authorize
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.security.acl import Operation, ResourceType
from eventstore.storage.producer_state import ProducerEntry

NO_COORDINATOR_EPOCH = -1  # Kafka's RecordBatch.NO_PARTITION_LEADER_EPOCH: not transactional
NO_TRANSACTION = -1  # no transaction open, so no first offset of one


def producer_state(entry: ProducerEntry) -> dict[str, Any]:
    """One producer as DescribeProducers describes it."""
    last = entry.batches[-1]
    return {"producer_id": entry.producer_id, "producer_epoch": entry.epoch,
            "last_sequence": last.last_seq, "last_timestamp": last.appended_ms,
            "coordinator_epoch": NO_COORDINATOR_EPOCH,
            "current_txn_start_offset": NO_TRANSACTION}


async def _partition(conn: Connection, topic: str, partition: int) -> dict[str, Any]:
    ctx = conn.ctx
    entry: dict[str, Any] = {"partition_index": partition}
    try:
        authorize(conn, Operation.READ, ResourceType.TOPIC, topic)
        handle = await ctx.partition(topic, partition)
        if handle.actor is None:
            raise offline_error(handle.state)
        try:
            producers = await ctx.resolve(handle.actor.active_producers())
        except pykka.ActorDeadError:
            raise offline_error(handle.state) from None
        entry.update(error_code=0, active_producers=[producer_state(p) for p in producers])
    except KafkaError as error:
        entry.update(error_code=error.code, error_message=str(error), active_producers=[])
    return entry


async def handle_describe_producers(conn: Connection, request: Request) -> ResponsePayload:
    topics = []
    for topic in request.body.topics:
        partitions = [await _partition(conn, topic.name, index)
                      for index in topic.partition_indexes]
        topics.append({"name": topic.name, "partitions": partitions})
    return make_response(request, topics=topics)
