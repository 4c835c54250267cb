"""InitProducerId: hands an idempotent producer the id and epoch it stamps its batches with.

As Kafka's transaction coordinator does for a null ``transactional_id``, every request
gets a fresh producer id (unique and never reused, across restarts too: the broker
reserves them from the catalog's durable counter) with epoch 0. That holds for the
KIP-360 epoch bump too (v3+ carrying the current id and epoch): Kafka answers it with a
new id rather than a bumped epoch, and clients take either.

This node has no transaction coordinator, so a transactional producer is refused with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as FindCoordinator refuses its transactional id
(see eventstore/kafka/handlers/transactions.py: clients give up at once).
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
    TransactionalIdAuthorizationFailed,
)
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.kafka.handlers.transactions import transactions_refused

log = logging.getLogger("eventstore.kafka.handlers.producer_ids")

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
UNKNOWN_SERVER_ERROR = -1


def _refusal(conn: Connection, request: Request) -> KafkaError | None:
    """Why this node cannot answer ``request`` with a producer id, if it cannot."""
    body = request.body
    if body.transactional_id == "":
        return InvalidRequest("transactional_id must be null or a non-empty string")
    if body.transactional_id is not None:
        return transactions_refused(conn, request, body.transactional_id)  # logs it once
    producer_id = getattr(body, "producer_id", NO_PRODUCER_ID)
    epoch = getattr(body, "producer_epoch", NO_PRODUCER_EPOCH)
    if (producer_id == NO_PRODUCER_ID) != (epoch == NO_PRODUCER_EPOCH):
        return InvalidRequest(
            f"producer id {producer_id} and epoch {epoch}: give both or neither")
    return None


async def handle_init_producer_id(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    error = _refusal(conn, request)
    if error is None:
        try:
            producer_id = await ctx.resolve(ctx.broker.allocate_producer_id())
        except KafkaError as failed:  # the catalog could not be written
            error = failed
        else:
            return make_response(request, error_code=0, producer_id=producer_id,
                                 producer_epoch=0)
    if not isinstance(error, TransactionalIdAuthorizationFailed):
        log.info("InitProducerId refused: %s", error)
    code = UNKNOWN_SERVER_ERROR if isinstance(error, KafkaStorageError) else error.code
    return make_response(request, error_code=code, producer_id=NO_PRODUCER_ID,
                         producer_epoch=NO_PRODUCER_EPOCH)
