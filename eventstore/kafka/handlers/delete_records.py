"""DeleteRecords: move partitions' log-start-offsets (``kafka-delete-records``, the admin
clients' ``delete_records``).

Each partition's actor moves its own log-start-offset (see PartitionLog.delete_records):
offset -1 means the high watermark, an offset past it is OFFSET_OUT_OF_RANGE, an unknown
topic or partition UNKNOWN_TOPIC_OR_PARTITION, as Kafka's ``ReplicaManager.deleteRecords``
answers. The answer is each partition's low watermark (its log-start-offset after), or -1
with the error. A single node has no followers to wait for, so ``timeout`` is never
reached: every partition is answered as soon as its actor has moved the start.
"""

from __future__ import annotations

from typing import Any

import pykka
from kio.static.protocol import ResponsePayload

from eventstore.errors import KafkaError, KafkaStorageError
from eventstore.kafka.authorization import authorize
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.security.acl import Operation, ResourceType

INVALID_LOW_WATERMARK = -1  # Kafka's DeleteRecordsResponse.INVALID_LOW_WATERMARK


async def _delete_partition(conn: Connection, topic: str, partition: int,
                           offset: int) -> int:
    """Move one partition's log-start-offset to ``offset``; its low watermark after.
    Raises the partition's typed error."""
    handle = await conn.ctx.partition(topic, partition)
    try:
        return await conn.ctx.resolve(handle.actor.delete_records(offset))
    except pykka.ActorDeadError:
        raise KafkaStorageError(f"partition {topic}-{partition} is restarting") from None


async def handle_delete_records(conn: Connection, request: Request) -> ResponsePayload:
    """Every partition of the request answered on its own: one's error is not another's."""
    topics = []
    for topic in request.body.topics:
        results = []
        for p in topic.partitions:
            entry: dict[str, Any] = {"partition_index": p.partition_index}
            try:
                authorize(conn, Operation.DELETE, ResourceType.TOPIC, topic.name)
                low = await _delete_partition(conn, topic.name, p.partition_index,
                                             p.offset)
                entry.update(low_watermark=low, error_code=0)
            except KafkaError as error:
                entry.update(low_watermark=INVALID_LOW_WATERMARK, error_code=error.code)
            results.append(entry)
        topics.append({"name": topic.name, "partitions": results})
    return make_response(request, topics=topics)
