"""DescribeCluster and ListPartitionReassignments against a real `eventstore serve`."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from tests.support import KafkaConnection, ServerProcess

DESCRIBE_CLUSTER = 60
LIST_PARTITION_REASSIGNMENTS = 46
KAFKA_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # the data directory's cluster id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.start(str(tmp_path_factory.mktemp("data"))) as proc:
        yield proc


@pytest.mark.parametrize("version", [0, 1, 2])
def test_describe_cluster_names_the_one_node(server: ServerProcess, version: int) -> None:
    fields = {"include_cluster_authorized_operations": False}
    if version >= 1:
        fields["endpoint_type"] = 1
    with KafkaConnection(server.address) as conn:
        response = conn.request(DESCRIBE_CLUSTER, version, **fields)
    assert response.error_code == 0
    assert KAFKA_ID.fullmatch(response.cluster_id), response.cluster_id
    assert response.controller_id == 0
    assert [(b.broker_id, b.host, b.port) for b in response.brokers] == [
        (0, *server.address)]
    assert response.cluster_authorized_operations == -2147483648


def test_list_partition_reassignments_is_empty(server: ServerProcess) -> None:
    with KafkaConnection(server.address) as conn:
        response = conn.request(LIST_PARTITION_REASSIGNMENTS, 0, timeout=5000, topics=None)
    assert response.error_code == 0
    assert response.topics == ()


def test_confluent_describe_cluster(server: ServerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    result = admin.describe_cluster(request_timeout=10).result(timeout=15)
    assert KAFKA_ID.fullmatch(result.cluster_id), result.cluster_id
    assert [node.id for node in result.nodes] == [0]
    assert result.controller.id == 0
