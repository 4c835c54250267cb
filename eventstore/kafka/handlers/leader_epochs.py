"""OffsetForLeaderEpoch: where a leader epoch ended, so a client can check for truncation.

Consumers (KIP-320: librdkafka after a seek or a leader change, the Java client) ask the
leader for the end offset of the epoch their position was read in; a position past it was
truncated away. This node has led every partition since the topic was created, in the one
leader epoch :data:`LEADER_EPOCH` that Metadata reports, starting at the log-start-offset.
Answered as Kafka's ReplicaManager.lastOffsetForLeaderEpoch, Partition.lastOffsetForLeaderEpoch
and LeaderEpochFileCache.endOffsetFor answer it:

- ``current_leader_epoch`` (the epoch the client believes the leader has; -1: not known)
  older than the leader's is FENCED_LEADER_EPOCH, newer is UNKNOWN_LEADER_EPOCH;
- the requested ``leader_epoch`` -1 (undefined) or above every known epoch: no error,
  epoch and end offset -1;
- the current epoch: that epoch and the log-end-offset;
- an epoch below the first known one: that epoch and the first epoch's start offset;
- an unknown topic or partition is UNKNOWN_TOPIC_OR_PARTITION, an offline one
  KAFKA_STORAGE_ERROR.
"""

from __future__ import annotations

from typing import Any

from kio.static.protocol import ResponsePayload

from eventstore.errors import FencedLeaderEpoch, KafkaError, UnknownLeaderEpoch
from eventstore.kafka.authorization import authorize
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.security.acl import Operation, ResourceType

LEADER_EPOCH = 0  # the only leader epoch of every partition (Metadata's leader_epoch)
UNDEFINED = -1  # Kafka's UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET and NO_PARTITION_LEADER_EPOCH


def check_current_leader_epoch(current: int) -> None:
    """Refuse a request made for another leader epoch than this leader's."""
    if current == UNDEFINED:
        return
    if current < LEADER_EPOCH:
        raise FencedLeaderEpoch(
            f"current leader epoch {current} is older than the leader's {LEADER_EPOCH}")
    if current > LEADER_EPOCH:
        raise UnknownLeaderEpoch(
            f"current leader epoch {current} is newer than the leader's {LEADER_EPOCH}")


def end_offset_for_epoch(requested: int, log_start_offset: int,
                         log_end_offset: int) -> tuple[int, int]:
    """(epoch, end offset) for a requested leader epoch, with :data:`LEADER_EPOCH` the only
    epoch, starting at ``log_start_offset`` (retention moves the first epoch's start)."""
    if requested == LEADER_EPOCH:
        return LEADER_EPOCH, log_end_offset
    if requested == UNDEFINED or requested > LEADER_EPOCH:
        return UNDEFINED, UNDEFINED
    return requested, log_start_offset


async def handle_offset_for_leader_epoch(
        conn: Connection, request: Request) -> ResponsePayload:
    session = conn.fetches
    topics = []
    for topic in request.body.topics:
        partitions = []
        for wanted in topic.partitions:
            entry: dict[str, Any] = {"partition": wanted.partition}
            try:
                authorize(conn, Operation.DESCRIBE, ResourceType.TOPIC, topic.topic)
                view = await session.live_view(topic.topic, wanted.partition)
                check_current_leader_epoch(wanted.current_leader_epoch)
                epoch, end_offset = end_offset_for_epoch(
                    wanted.leader_epoch, view.log_start_offset, view.high_watermark)
                entry.update(error_code=0, leader_epoch=epoch, end_offset=end_offset)
            except KafkaError as error:
                entry.update(error_code=error.code, leader_epoch=UNDEFINED,
                             end_offset=UNDEFINED)
            partitions.append(entry)
        topics.append({"topic": topic.topic, "partitions": partitions})
    return make_response(request, topics=topics)
