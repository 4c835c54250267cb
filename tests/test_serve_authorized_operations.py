"""Authorized operations (issue 16, item 6; KIP-430): with no authorizer, Kafka answers
every operation the resource type supports (``AclEntry.supportedOperations``, through
``AuthHelper.authorizedOperations`` in ``KafkaApis``) when the request asks, and INT32_MIN
when it does not. Checked with raw requests and with librdkafka's admin client."""

from __future__ import annotations

from confluent_kafka import Consumer, TopicCollection
from confluent_kafka.admin import AdminClient
from support import KafkaConnection, ServerProcess, create_topic, poll_until

NOT_REQUESTED = -(2**31)
# Kafka's AclOperation codes of each resource type's supported operations
TOPIC_OPERATIONS = {"READ": 3, "WRITE": 4, "CREATE": 5, "DELETE": 6, "ALTER": 7,
                    "DESCRIBE": 8, "DESCRIBE_CONFIGS": 10, "ALTER_CONFIGS": 11}
GROUP_OPERATIONS = {"READ": 3, "DELETE": 6, "DESCRIBE": 8}
CLUSTER_OPERATIONS = {"CREATE": 5, "ALTER": 7, "DESCRIBE": 8, "CLUSTER_ACTION": 9,
                      "DESCRIBE_CONFIGS": 10, "ALTER_CONFIGS": 11, "IDEMPOTENT_WRITE": 12}


def bits(operations: dict[str, int]) -> int:
    return sum(1 << code for code in operations.values())


def metadata(conn: KafkaConnection, version: int, asked: bool) -> object:
    return conn.request(3, version, topics=[{"name": "ops"}], allow_auto_topic_creation=False,
                        include_cluster_authorized_operations=asked,
                        include_topic_authorized_operations=asked)


def test_metadata_answers_every_topic_and_cluster_operation_when_asked(server) -> None:
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "ops", 1)
        for version in (8, 10):  # the versions with both flags
            asked, not_asked = metadata(conn, version, True), metadata(conn, version, False)
            assert asked.topics[0].topic_authorized_operations == bits(TOPIC_OPERATIONS)
            assert asked.cluster_authorized_operations == bits(CLUSTER_OPERATIONS)
            assert not_asked.topics[0].topic_authorized_operations == NOT_REQUESTED
            assert not_asked.cluster_authorized_operations == NOT_REQUESTED
        for version in (11, 12):  # cluster operations moved to DescribeCluster
            assert metadata(conn, version, True).topics[0].topic_authorized_operations == (
                bits(TOPIC_OPERATIONS))
            assert metadata(conn, version, False).topics[0].topic_authorized_operations == (
                NOT_REQUESTED)


def test_describe_cluster_and_describe_groups_answer_their_operations_when_asked(
        server) -> None:
    with KafkaConnection(server.address) as conn:
        for asked, expected in ((True, bits(CLUSTER_OPERATIONS)), (False, NOT_REQUESTED)):
            for version in (0, 1, 2):
                fields = {"endpoint_type": 1} if version else {}
                response = conn.request(60, version, include_cluster_authorized_operations=asked,
                                        **fields)
                assert response.cluster_authorized_operations == expected, version
        for asked, expected in ((True, bits(GROUP_OPERATIONS)), (False, NOT_REQUESTED)):
            for version in (3, 5):
                response = conn.request(15, version, groups=["g"],
                                        include_authorized_operations=asked)
                assert response.groups[0].authorized_operations == expected, version


def test_librdkafka_admin_reads_the_authorized_operations(server: ServerProcess) -> None:
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "ops", 1)
    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "ops-group",
                         "auto.offset.reset": "earliest"})
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    try:
        consumer.subscribe(["ops"])
        poll_until(lambda: [True] if consumer.assignment() or consumer.poll(0.2) else [], 1,
                   30, "an assignment")
        cluster = admin.describe_cluster(include_authorized_operations=True).result(30)
        topic = admin.describe_topics(TopicCollection(["ops"]),
                                      include_authorized_operations=True)["ops"].result(30)
        group = admin.describe_consumer_groups(
            ["ops-group"], include_authorized_operations=True)["ops-group"].result(30)
        plain = admin.describe_cluster().result(30)
    finally:
        consumer.close()
    assert {op.name for op in cluster.authorized_operations} == set(CLUSTER_OPERATIONS)
    assert {op.name for op in topic.authorized_operations} == set(TOPIC_OPERATIONS)
    assert {op.name for op in group.authorized_operations} == set(GROUP_OPERATIONS)
    assert not plain.authorized_operations
