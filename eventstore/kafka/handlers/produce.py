"""Produce: record batches from the wire become whole-batch appends to partition actors.

Each partition's batch is checked (CRC32C, v2 format, one batch per partition as Kafka
requires since Produce v3) before anything is written; an append is acknowledged only
once the partition actor has committed it. Errors are per partition, in Kafka's codes.

An idempotent producer's batch carries its producer id, epoch and base sequence to the
partition, which checks them before writing: a retry of a batch already written is
answered as a success with the original offsets (not written again, as Kafka does);
OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH and DUPLICATE_SEQUENCE_NUMBER are
answered per partition like any other error. A transactional producer's batch is
appended the same way and opens its transaction in the partition (the last stable offset
stays before it until the coordinator's marker); clients may not send control batches.
"""

from __future__ import annotations

import asyncio
import logging

from kio.static.protocol import ResponsePayload

from actors.partition import Append
from actors.replies import LoopReply
from eventstore.errors import (
    InvalidRecord,
    InvalidRequiredAcks,
    KafkaError,
)
from eventstore.kafka.authorization import refusal, topic_refusals
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.codec.recordbatch import DecodedBatch, decode_batches
from eventstore.kafka.connection import Connection
from eventstore.kafka.context import BrokerContext
from eventstore.security.acl import Operation, ResourceType
from eventstore.storage.log_reader import LogView
from eventstore.storage.records import ProducerBatchInfo
from eventstore.storage.segment import AppendResult

log = logging.getLogger("eventstore.kafka.handlers.produce")

# Requests of up to this many bytes of records (all partitions together) are decoded on
# the event loop: a small produce, the request a busy server answers most, would pay two
# thread hops for a decode of microseconds. A larger one (CRC, decompression, parsing: up
# to socket.request.max.bytes expanded) is decoded on the pool, so that it stalls no
# other connection.
_INLINE_DECODE_BYTES = 64 * 1024


def producer_info(batch: DecodedBatch) -> ProducerBatchInfo | None:
    """The idempotent producer's stamp on a batch, if it carries one."""
    if batch.producer_id < 0:
        return None
    return ProducerBatchInfo(batch.producer_id, batch.producer_epoch, batch.base_sequence)


async def handle_produce(conn: Connection, request: Request) -> ResponsePayload | None:
    """None for acks=0: the client wants no answer."""
    ctx = conn.ctx
    body = request.body
    if body.acks not in (0, 1, -1):
        error = InvalidRequiredAcks(f"acks={body.acks}: use 0, 1 or -1 (all)")
        results = {
            (t.name, p.index): _failed(error) for t in body.topic_data for p in t.partition_data
        }
    else:
        # decoded on the loop only when the request's records are small all together
        inline = sum(len(p.records or b"") for t in body.topic_data
                     for p in t.partition_data) <= _INLINE_DECODE_BYTES
        refused = topic_refusals(conn, Operation.WRITE, (t.name for t in body.topic_data))
        if body.transactional_id is not None and (error := refusal(
                conn, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, body.transactional_id)):
            refused = dict.fromkeys((t.name for t in body.topic_data), error)
        jobs = {
            (t.name, p.index): _refused(refused[t.name]) if t.name in refused
            else _append(ctx, t.name, p.index, p.records, inline)
            for t in body.topic_data
            for p in t.partition_data
        }
        if len(jobs) == 1:  # the usual request: no task to gather one append
            outcomes = [await next(iter(jobs.values()))]
        else:
            outcomes = await asyncio.gather(*jobs.values())
        results = dict(zip(jobs, outcomes, strict=True))
    if body.acks == 0:
        return None
    topics: dict[str, list[dict]] = {}
    for (topic, partition), result in results.items():
        topics.setdefault(topic, []).append({"index": partition, **result})
    return make_response(
        request,
        responses=[{"name": t, "partition_responses": parts} for t, parts in topics.items()],
    )


async def _refused(error: KafkaError) -> dict:
    """A partition the authorizer refused: answered with its error, nothing appended."""
    return _failed(error)


def _failed(error: KafkaError) -> dict:
    return {
        "error_code": error.code,
        "error_message": str(error),
        "base_offset": -1,
        "log_append_time": -1,
        "log_start_offset": -1,
    }


def _kept_as_sent(view: LogView | None, codec: str) -> bool:
    """Whether fetches may return a batch compressed with ``codec`` as it was sent: the
    topic's compression.type keeps the producer's codec, or names this one."""
    wanted = "producer" if view is None else view.compression
    return wanted == "producer" or wanted == codec or (wanted, codec) == ("uncompressed", "none")


async def _decode(ctx: BrokerContext, records: bytes, inline: bool) -> list[DecodedBatch]:
    """The batches of a partition's records, decoded on the loop if ``inline``."""
    limit = ctx.server_config["socket.request.max.bytes"]
    if inline:
        return decode_batches(records, limit)
    return await ctx.run(decode_batches, records, limit)


async def _append(ctx: BrokerContext, topic: str, partition: int, records: bytes | None,
                  inline: bool) -> dict:
    try:
        # the partition first, as Kafka: an unknown one is UNKNOWN_TOPIC_OR_PARTITION
        # whatever the records hold
        handle = await ctx.partition(topic, partition)
        batches = await _decode(ctx, records or b"", inline)
        if len(batches) != 1:
            raise InvalidRecord(
                f"a produce request must hold exactly one record batch per partition,"
                f" got {len(batches)}"
            )
        (batch,) = batches
        if batch.is_control:
            raise InvalidRecord("a producer may not send control batches: the transaction"
                                " coordinator writes the markers")
        stamp = producer_info(batch)
        if batch.is_transactional and stamp is None:
            raise InvalidRecord("a transactional batch must carry its producer id")
        reply: LoopReply[AppendResult] = LoopReply()
        keep = batch.offsets_in_order and _kept_as_sent(handle.state.view, batch.compression)

        def written(result: AppendResult) -> None:
            # on the partition actor's thread, before the append is published: a fetch
            # it wakes (a caught-up consumer's) finds the producer's bytes, not only rows
            if result.log_append_time < 0:
                # the batch's bytes say exactly what was stored: fetches of it may use them
                ctx.recent.add(handle.state, result.base_offset, result.last_offset, records)

        handle.send(Append(batch.rows, stamp, reply, batch.size_in_bytes,
                           batch.is_transactional, written if keep else None))
        result = await reply.future
    except KafkaError as error:
        log.info("produce to %s-%d failed: %s", topic, partition, error)
        return _failed(error)
    if result.duplicate:
        log.info("produce to %s-%d: producer %d retried sequence %d, already at offset %d",
                 topic, partition, stamp.producer_id, stamp.base_sequence, result.base_offset)
    return {
        "error_code": 0,
        "base_offset": result.base_offset,
        "log_append_time": result.log_append_time,
        "log_start_offset": result.log_start_offset,
    }
