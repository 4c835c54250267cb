"""InitProducerId: hands an idempotent producer the id and epoch it stamps its batches with.

As Kafka's transaction coordinator does for a null ``transactional_id``, every request
gets a fresh producer id (unique and never reused, across restarts too: the broker
reserves them from the catalog's durable counter) with epoch 0. That holds for the
KIP-360 epoch bump too (v3+ carrying the current id and epoch): Kafka answers it with a
new id rather than a bumped epoch, and clients take either.

A transactional producer's request (a ``transactional_id``) goes to the transaction
coordinator (actors/transactions.py): its producer id is kept across its sessions and
each InitProducerId bumps the epoch, fencing the producer before; ``transaction.timeout.ms``
over ``transaction.max.timeout.ms`` is INVALID_TRANSACTION_TIMEOUT.
An empty ``transactional_id``, or an id without an epoch, is INVALID_REQUEST, as in Kafka.

A catalog that cannot be written (a full disk) is answered UNKNOWN_SERVER_ERROR, not the
retriable KAFKA_STORAGE_ERROR: clients retry InitProducerId on a retriable error without
end (kafka-python and the Java client every retry.backoff.ms), which hangs a producer for
as long as the disk stays full. So the client fails at once, and the server's log says why.
"""

from __future__ import annotations

import logging

from kio.static.protocol import ResponsePayload

from eventstore.errors import (
    InvalidRequest,
    KafkaError,
    KafkaStorageError,
)
from eventstore.kafka.authorization import idempotent_refusal, refusal
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.kafka.handlers.transactions import error_code
from eventstore.security.acl import Operation, ResourceType

log = logging.getLogger("eventstore.kafka.handlers.producer_ids")

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
UNKNOWN_SERVER_ERROR = -1


def _refusal(conn: Connection, request: Request) -> KafkaError | None:
    """Why this node cannot answer ``request`` with a producer id, if it cannot."""
    body = request.body
    if body.transactional_id == "":
        return InvalidRequest("transactional_id must be null or a non-empty string")
    producer_id = getattr(body, "producer_id", NO_PRODUCER_ID)
    epoch = getattr(body, "producer_epoch", NO_PRODUCER_EPOCH)
    if (producer_id == NO_PRODUCER_ID) != (epoch == NO_PRODUCER_EPOCH):
        return InvalidRequest(
            f"producer id {producer_id} and epoch {epoch}: give both or neither")
    if body.transactional_id is not None:
        return refusal(conn, Operation.WRITE, ResourceType.TRANSACTIONAL_ID,
                       body.transactional_id)
    return idempotent_refusal(conn)


async def handle_init_producer_id(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    error = _refusal(conn, request)
    if error is None and body.transactional_id is not None:
        try:
            producer_id, epoch = await ctx.resolve(ctx.transactions.init_producer_id(
                body.transactional_id, int(body.transaction_timeout.total_seconds() * 1000),
                getattr(body, "producer_id", NO_PRODUCER_ID),
                getattr(body, "producer_epoch", NO_PRODUCER_EPOCH)))
        except KafkaError as failed:
            error = failed
        else:
            return make_response(request, error_code=0, producer_id=producer_id,
                                 producer_epoch=epoch)
    elif error is None:
        try:
            producer_id = await ctx.resolve(ctx.broker.allocate_producer_id())
        except KafkaError as failed:  # the catalog could not be written
            error = failed
        else:
            return make_response(request, error_code=0, producer_id=producer_id,
                                 producer_epoch=0)
    log.info("InitProducerId refused: %s", error)
    code = (UNKNOWN_SERVER_ERROR if isinstance(error, KafkaStorageError)
            else error_code(request, error))
    return make_response(request, error_code=code, producer_id=NO_PRODUCER_ID,
                         producer_epoch=NO_PRODUCER_EPOCH)
