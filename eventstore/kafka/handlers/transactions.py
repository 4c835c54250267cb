"""Transactions, until this node has a transaction coordinator: refused at once.

A transactional producer first asks FindCoordinator for its transactional id, then sends
InitProducerId and AddPartitionsToTxn. Answering COORDINATOR_NOT_AVAILABLE, as Kafka does
while its coordinator loads, makes every client retry: librdkafka and kafka-python for as
long as their timeouts allow, aiokafka for good. All of them take
TRANSACTIONAL_ID_AUTHORIZATION_FAILED as fatal at once, the answer of a Kafka broker whose
ACLs do not let the producer use transactions; its message says why. The server's log
says it too, once per client and API (see eventstore/kafka/refusals.py).
"""

from __future__ import annotations

from kio.static.protocol import ResponsePayload

from eventstore.errors import TransactionalIdAuthorizationFailed
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection


def transactions_refused(conn: Connection, request: Request, transactional_id: str | None
                         ) -> TransactionalIdAuthorizationFailed:
    """The error every transactional request gets, naming the transactional id; logged
    the first time this client is refused so by this API."""
    error = TransactionalIdAuthorizationFailed(
        f"transactional id {transactional_id!r}: transactions are not supported by this"
        " server (there is no transaction coordinator)")
    api = type(request.body).__name__.removesuffix("Request")
    conn.ctx.refusals.note(request.client_id, conn.client_host,
                           f"{api}: {error.name} (no transaction coordinator)",
                           {"transactional_id": transactional_id})
    return error


async def handle_add_partitions_to_txn(conn: Connection, request: Request) -> ResponsePayload:
    body = request.body
    code = transactions_refused(conn, request, body.v3_and_below_transactional_id).code
    return make_response(request, results_by_topic_v3_and_below=[
        {"name": topic.name, "results_by_partition": [
            {"partition_index": partition, "partition_error_code": code}
            for partition in topic.partitions]}
        for topic in body.v3_and_below_topics])
