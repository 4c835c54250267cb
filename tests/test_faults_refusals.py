"""Refusals reach the server's log once per client and reason, not once per retry
(issue 16, item 10).

A real ``eventstore serve``; its log is read as it writes it. Clients repeat what is
refused (raw Kafka requests sent again), and each kind is logged once for each client.
Log lines come out in order, so a later, different refusal's line shows that no repeat was logged
before it.
"""

from __future__ import annotations

from support import KafkaConnection, ServerProcess

from eventstore.errors import InconsistentGroupProtocol

TIMEOUT = 20.0
JOIN = {"session_timeout": 10_000, "rebalance_timeout": 10_000, "member_id": "",
        "protocol_type": "consumer"}


def refusals(server: ServerProcess, text: str) -> list[str]:
    return [line for line in server.lines if "request refused" in line and text in line]


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
        member.request(11, 3, group_id="h", **JOIN,
                       protocols=[{"name": "range", "metadata": b""}])
        stranger.request(11, 3, group_id="h", **JOIN,  # a later, different refusal
                         protocols=[{"name": "sentinel", "metadata": b""}])
        server.wait_for_log(r"request refused.*protocols=sentinel", TIMEOUT)
    [line] = refusals(server, "group 'g'")
    assert "group=g" in line and "protocols=sticky" in line and "client_id=tests" in line
