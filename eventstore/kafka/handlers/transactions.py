"""Transactions (KIP-98, KIP-447): the requests a transactional producer and tools send.

A transactional producer asks FindCoordinator for its transactional id (this node), then
InitProducerId (eventstore/kafka/handlers/producer_ids.py hands those with a
transactional id here), and per transaction AddPartitionsToTxn, Produce, AddOffsetsToTxn
with TxnOffsetCommit (the consumer's offsets, committed with the transaction) and EndTxn.
DescribeTransactions and ListTransactions serve ``kafka-transactions.sh`` and
``eventstore transactions``. Each is answered by the transaction coordinator actor
(actors/transactions.py) in Kafka's error codes; a producer fenced by a newer epoch gets
PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH at versions older than KIP-588's, as Kafka
answers them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from kio.static.protocol import ResponsePayload

from eventstore.clock import wall_clock_ms
from eventstore.errors import InvalidProducerEpoch, KafkaError, ProducerFenced
from eventstore.kafka.authorization import allowed, authorize, refusal
from eventstore.kafka.codec.apikeys import ApiKey
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.security.acl import Operation, ResourceType

OPERATION_NOT_ATTEMPTED = 55
NO_ERROR = 0

# the first version of each API that may answer PRODUCER_FENCED (KIP-588)
_FENCED_FROM = {ApiKey.INIT_PRODUCER_ID: 4, ApiKey.ADD_PARTITIONS_TO_TXN: 2,
                ApiKey.ADD_OFFSETS_TO_TXN: 2, ApiKey.END_TXN: 2,
                ApiKey.TXN_OFFSET_COMMIT: 3}

T = TypeVar("T")


def error_code(request: Request, error: KafkaError) -> int:
    """``error``'s code as a client of this request's version understands it."""
    if isinstance(error, ProducerFenced) and request.api_version < _FENCED_FROM.get(
            request.api_key, 0):
        return InvalidProducerEpoch.code
    return error.code


async def _code(conn: Connection, request: Request, call: Callable[[], Awaitable[T]],
                *resources: tuple[Operation, ResourceType, str]) -> int:
    """The error code of ``call``, or of the first of ``resources`` (operation, type,
    name) the authorizer refuses, in which case nothing is called."""
    for operation, resource_type, name in resources:
        if error := refusal(conn, operation, resource_type, name):
            return error.code
    try:
        await call()
    except KafkaError as error:
        return error_code(request, error)
    return NO_ERROR


async def handle_add_partitions_to_txn(conn: Connection, request: Request) -> ResponsePayload:
    """AddPartitionsToTxn v0-3. An unknown partition fails the request: it is
    UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as in Kafka."""
    ctx = conn.ctx
    body = request.body
    wanted = [(t.name, p) for t in body.v3_and_below_topics for p in t.partitions]
    codes: dict[tuple[str, int], int] = {}
    for topic, partition in wanted:
        try:
            authorize(conn, Operation.WRITE, ResourceType.TOPIC, topic)
            await ctx.partition(topic, partition)
        except KafkaError as error:
            codes[(topic, partition)] = error.code
    if codes:
        codes = {tp: codes.get(tp, OPERATION_NOT_ATTEMPTED) for tp in wanted}
    else:
        code = await _code(conn, request, lambda: ctx.resolve(ctx.transactions.add_partitions(
            body.v3_and_below_transactional_id, body.v3_and_below_producer_id,
            body.v3_and_below_producer_epoch, wanted)),
            (Operation.WRITE, ResourceType.TRANSACTIONAL_ID, body.v3_and_below_transactional_id))
        codes = dict.fromkeys(wanted, code)
    topics: dict[str, list[dict]] = {}
    for (topic, partition), code in codes.items():
        topics.setdefault(topic, []).append(
            {"partition_index": partition, "partition_error_code": code})
    return make_response(request, results_by_topic_v3_and_below=[
        {"name": topic, "results_by_partition": results} for topic, results in topics.items()])


async def handle_add_offsets_to_txn(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    code = await _code(conn, request, lambda: ctx.resolve(ctx.transactions.add_offsets(
        body.transactional_id, body.producer_id, body.producer_epoch, body.group_id)),
        (Operation.WRITE, ResourceType.TRANSACTIONAL_ID, body.transactional_id),
        (Operation.READ, ResourceType.GROUP, body.group_id))
    return make_response(request, error_code=code)


async def handle_txn_offset_commit(conn: Connection, request: Request) -> ResponsePayload:
    """TxnOffsetCommit: offsets kept with the transaction, the group's once it commits."""
    ctx = conn.ctx
    body = request.body
    offsets = [(t.name, p.partition_index, p.committed_offset, p.committed_metadata or "")
               for t in body.topics for p in t.partitions]
    code = await _code(conn, request, lambda: ctx.resolve(ctx.transactions.txn_offset_commit(
        body.transactional_id, body.producer_id, body.producer_epoch, body.group_id,
        offsets)),
        (Operation.WRITE, ResourceType.TRANSACTIONAL_ID, body.transactional_id),
        (Operation.READ, ResourceType.GROUP, body.group_id),
        *((Operation.READ, ResourceType.TOPIC, t.name) for t in body.topics))
    return make_response(request, topics=[
        {"name": t.name, "partitions": [{"partition_index": p.partition_index,
                                         "error_code": code} for p in t.partitions]}
        for t in body.topics])


async def handle_end_txn(conn: Connection, request: Request) -> ResponsePayload:
    """EndTxn: answered once the markers are written and committed offsets visible."""
    ctx = conn.ctx
    body = request.body
    code = await _code(conn, request, lambda: ctx.resolve(ctx.transactions.end_txn(
        body.transactional_id, body.producer_id, body.producer_epoch, body.committed)),
        (Operation.WRITE, ResourceType.TRANSACTIONAL_ID, body.transactional_id))
    return make_response(request, error_code=code)


async def handle_describe_transactions(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    states = []
    for transactional_id in request.body.transactional_ids:
        try:
            authorize(conn, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, transactional_id)
            meta = await ctx.resolve(ctx.transactions.describe(transactional_id))
        except KafkaError as error:
            states.append({"error_code": error.code, "transactional_id": transactional_id,
                           "transaction_state": "", "transaction_timeout": 0,
                           "transaction_start_time": -1, "producer_id": -1,
                           "producer_epoch": -1, "topics": []})
            continue
        topics: dict[str, list[int]] = {}
        for topic, partition in meta.topic_partitions:
            topics.setdefault(topic, []).append(partition)
        states.append({
            "error_code": NO_ERROR, "transactional_id": transactional_id,
            "transaction_state": meta.state.value, "transaction_timeout": meta.timeout_ms,
            "transaction_start_time": meta.start_ms, "producer_id": meta.producer_id,
            "producer_epoch": meta.producer_epoch,
            "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]})
    return make_response(request, transaction_states=states)


async def handle_list_transactions(conn: Connection, request: Request) -> ResponsePayload:
    """ListTransactions v0-1: state names Kafka does not know are listed back as unknown;
    v1's duration filter keeps transactions open longer than it (ms)."""
    ctx = conn.ctx
    body = request.body
    known = {"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit",
             "CompleteAbort", "Dead", "PrepareEpochFence"}
    unknown = [s for s in body.state_filters if s not in known]
    listed = await ctx.resolve(ctx.transactions.list_transactions(
        [s for s in body.state_filters if s in known], body.producer_id_filters))
    listed = [m for m in listed if allowed(
        conn, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, m.transactional_id)]
    duration = getattr(body, "duration_filter", -1)
    if duration >= 0:
        now = wall_clock_ms()
        listed = [m for m in listed if m.start_ms >= 0 and now - m.start_ms > duration]
    return make_response(request, error_code=NO_ERROR, unknown_state_filters=unknown,
                         transaction_states=[
                             {"transactional_id": m.transactional_id,
                              "producer_id": m.producer_id,
                              "transaction_state": m.state.value} for m in listed])
