"""Refusals reach the server's log once per client and reason, not once per retry
(issue 16, item 10).

A real ``eventstore serve``; its log is read as it writes it. Clients repeat what is
refused (raw Kafka requests sent again, and librdkafka transactional producers made
again under one client id), and each kind is logged once for each client. Log lines come
out in order, so a later, different refusal's line shows that no repeat was logged
before it.
"""

from __future__ import annotations

import confluent_kafka
import pytest
from support import KafkaConnection, ServerProcess

from eventstore.errors import InconsistentGroupProtocol, TransactionalIdAuthorizationFailed

TIMEOUT = 20.0
JOIN = {"session_timeout": 10_000, "rebalance_timeout": 10_000, "member_id": "",
        "protocol_type": "consumer"}


def refusals(server: ServerProcess, text: str) -> list[str]:
    return [line for line in server.lines if "request refused" in line and text in line]


def test_each_refused_transactional_request_is_logged_once_per_client(serve):
    server = serve()
    with KafkaConnection(server.address, timeout=TIMEOUT) as conn:
        for _ in range(3):  # a client retrying
            found = conn.request(10, 3, key="payments", key_type=1)
            assert found.error_code == TransactionalIdAuthorizationFailed.code
            init = conn.request(22, 1, transactional_id="payments", transaction_timeout=60_000)
            assert init.error_code == TransactionalIdAuthorizationFailed.code
            conn.request(24, 3, v3_and_below_transactional_id="payments",
                         v3_and_below_producer_id=1, v3_and_below_producer_epoch=0,
                         v3_and_below_topics=[{"name": "t", "partitions": [0]}])
        server.wait_for_log(r"request refused.*AddPartitionsToTxn", TIMEOUT)
    for api in ("FindCoordinator", "InitProducerId", "AddPartitionsToTxn"):
        [line] = refusals(server, api)
        assert "client_id=tests" in line and "client_host=127.0.0.1" in line
        assert "transactional_id=payments" in line


def test_a_librdkafka_transactional_producer_made_again_is_logged_once(serve):
    server = serve()
    for _ in range(2):  # an application starting its producer again
        producer = confluent_kafka.Producer({
            "bootstrap.servers": server.bootstrap, "client.id": "billing",
            "transactional.id": "billing-tx"})
        with pytest.raises(confluent_kafka.KafkaException) as failed:
            producer.init_transactions(TIMEOUT)
        assert failed.value.args[0].fatal()
    other = confluent_kafka.Producer({
        "bootstrap.servers": server.bootstrap, "client.id": "audit",
        "transactional.id": "audit-tx"})
    with pytest.raises(confluent_kafka.KafkaException):
        other.init_transactions(TIMEOUT)
    server.wait_for_log(r"request refused.*client_id=audit", TIMEOUT)
    billing = refusals(server, "client_id=billing")
    assert billing  # once per API it sent (librdkafka stops at FindCoordinator's answer)
    for api in ("FindCoordinator", "InitProducerId"):
        assert len([line for line in billing if f"{api}:" in line]) <= 1, billing


def test_inconsistent_group_protocol_is_logged_once_per_client(serve):
    server = serve()
    with KafkaConnection(server.address, timeout=TIMEOUT) as member, \
            KafkaConnection(server.address, timeout=TIMEOUT) as stranger:
        joined = member.request(11, 3, group_id="g", **JOIN,
                                protocols=[{"name": "range", "metadata": b""}])
        assert joined.error_code == 0
        for _ in range(3):  # the stranger retries its join
            refused = stranger.request(11, 3, group_id="g", **JOIN,
                                       protocols=[{"name": "sticky", "metadata": b""}])
            assert refused.error_code == InconsistentGroupProtocol.code
        stranger.request(10, 3, key="sentinel", key_type=1)
        server.wait_for_log(r"request refused.*transactional_id=sentinel", TIMEOUT)
    [line] = refusals(server, "InconsistentGroupProtocol")
    assert "group=g" in line and "protocols=sticky" in line and "client_id=tests" in line
