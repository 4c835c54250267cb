"""Topic APIs a single node answers as Kafka does, against a real `eventstore serve`:
CreateTopics and CreatePartitions with a manual replica assignment (issue 16, item 4),
DescribeTopicPartitions (KIP-966), OffsetForLeaderEpoch and DescribeProducers.

Each is driven with raw kio-encoded requests, to see Kafka's exact codes, and with the
real clients that call it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions
from confluent_kafka.admin import NewTopic as ConfluentNewTopic
from kafka import KafkaAdminClient
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import NewTopic as KafkaPythonNewTopic
from reliability import KAFKA_STORAGE_ERROR, build_topic, overwrite, segment_files

from tests.support import KafkaConnection, ServerProcess, create_topic, produce

CREATE_TOPICS = 19
CREATE_PARTITIONS = 37
INVALID_REQUEST = 42
INVALID_REPLICA_ASSIGNMENT = 39
INVALID_PARTITIONS = 37
TOPIC_ALREADY_EXISTS = 36
UNKNOWN_TOPIC_OR_PARTITION = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.start(str(tmp_path_factory.mktemp("data"))) as proc:
        yield proc


@pytest.fixture
def conn(server: ServerProcess) -> Iterator[KafkaConnection]:
    with KafkaConnection(server.address) as connection:
        yield connection


def partition_count(conn: KafkaConnection, topic: str) -> int:
    response = conn.request(3, 8, topics=[{"name": topic}], allow_auto_topic_creation=False,
                            include_cluster_authorized_operations=False,
                            include_topic_authorized_operations=False)
    (found,) = response.topics
    assert found.error_code == 0, found
    return len(found.partitions)


# -- item 4: manual replica assignments ------------------------------------------------------

def create_assigned(conn: KafkaConnection, topic: str, assignments: dict[int, list[int]],
                    partitions: int = -1, replication_factor: int = -1,
                    version: int = 7) -> tuple[int, str | None, int]:
    """CreateTopics with a manual assignment: (error code, message, partitions created;
    -1 before v5, whose answer does not say)."""
    response = conn.request(CREATE_TOPICS, version, timeout=10000, validate_only=False, topics=[{
        "name": topic, "num_partitions": partitions, "replication_factor": replication_factor,
        "assignments": [{"partition_index": index, "broker_ids": brokers}
                        for index, brokers in assignments.items()],
        "configs": []}])
    (result,) = response.topics
    return (int(result.error_code), result.error_message,
            getattr(result, "num_partitions", -1))


@pytest.mark.parametrize("version", [2, 5, 7])
def test_create_topics_with_this_node_as_every_replica(
        conn: KafkaConnection, version: int) -> None:
    topic = f"assigned-v{version}"
    code, _, created = create_assigned(conn, topic, {0: [0], 1: [0], 2: [0]}, version=version)
    assert (code, created) == (0, 3 if version >= 5 else -1)
    assert partition_count(conn, topic) == 3


@pytest.mark.parametrize(("assignments", "partitions", "replication", "code", "message"), [
    ({0: [1]}, -1, -1, INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes broker 1, but no such broker is registered."),
    ({0: [0, 1]}, -1, -1, INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes broker 1, but no such broker is registered."),
    ({0: [0, 0]}, -1, -1, INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes the broker 0 more than once."),
    ({0: []}, -1, -1, INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes an empty replica list."),
    ({0: [0], 2: [0]}, -1, -1, INVALID_REPLICA_ASSIGNMENT,
     "partitions should be a consecutive 0-based integer sequence"),
    ({0: [0]}, -1, 1, INVALID_REQUEST,
     "A manual partition assignment was specified, but replication factor was not set to -1."),
    ({0: [0]}, 1, -1, INVALID_REQUEST,
     "A manual partition assignment was specified, but numPartitions was not set to -1."),
])
def test_create_topics_refuses_assignments_kafka_refuses(
        conn: KafkaConnection, assignments: dict[int, list[int]], partitions: int,
        replication: int, code: int, message: str) -> None:
    """Kafka's ReplicationControlManager.createTopic and validateManualPartitionAssignment,
    with node 0 the only registered broker."""
    code_got, message_got, _ = create_assigned(
        conn, "refused-assignment", assignments, partitions, replication)
    assert (code_got, message_got) == (code, f"InvalidReplicaAssignment: {message}"
                                       if code == INVALID_REPLICA_ASSIGNMENT
                                       else f"InvalidRequest: {message}")
    metadata = conn.request(3, 8, topics=[{"name": "refused-assignment"}],
                            allow_auto_topic_creation=False,
                            include_cluster_authorized_operations=False,
                            include_topic_authorized_operations=False)
    assert metadata.topics[0].error_code == UNKNOWN_TOPIC_OR_PARTITION


def test_an_existing_topic_is_refused_before_its_assignment(conn: KafkaConnection) -> None:
    """Kafka checks names and existence (TOPIC_ALREADY_EXISTS) before the assignment."""
    create_topic(conn, "exists-already", 1)
    assert create_assigned(conn, "exists-already", {0: [1]})[0] == TOPIC_ALREADY_EXISTS


def create_partitions(conn: KafkaConnection, topic: str, count: int,
                      assignments: list[list[int]] | None) -> tuple[int, str | None]:
    response = conn.request(CREATE_PARTITIONS, 3, timeout=10000, validate_only=False, topics=[{
        "name": topic, "count": count,
        "assignments": None if assignments is None else [
            {"broker_ids": brokers} for brokers in assignments]}])
    (result,) = response.results
    return int(result.error_code), result.error_message


def test_create_partitions_with_this_node_as_every_replica(conn: KafkaConnection) -> None:
    create_topic(conn, "grown-assigned", 1)
    assert create_partitions(conn, "grown-assigned", 3, [[0], [0]]) == (0, None)
    assert partition_count(conn, "grown-assigned") == 3


@pytest.mark.parametrize(("topic", "count", "assignments", "code", "message"), [
    ("grow-too-few", 3, [[0]], INVALID_REPLICA_ASSIGNMENT,
     "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."),
    ("grow-elsewhere", 2, [[1]], INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes broker 1, but no such broker is registered."),
    ("grow-twice", 2, [[0, 0]], INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes the broker 0 more than once."),
    ("grow-none", 1, [], INVALID_PARTITIONS, None),  # the count first, as in Kafka
])
def test_create_partitions_refuses_assignments_kafka_refuses(
        conn: KafkaConnection, topic: str, count: int, assignments: list[list[int]],
        code: int, message: str | None) -> None:
    """Kafka's ReplicationControlManager.createPartitions: the topic, then the count, then
    the number of assignments, then each replica list."""
    create_topic(conn, topic, 1)
    code_got, message_got = create_partitions(conn, topic, count, assignments)
    assert code_got == code
    if message is not None:
        assert message_got == f"InvalidReplicaAssignment: {message}"
    assert partition_count(conn, topic) == 1
    assert create_partitions(conn, "no-such-topic", 2, [[0]])[0] == UNKNOWN_TOPIC_OR_PARTITION


def test_kafka_python_new_topic_with_replica_assignments(server: ServerProcess) -> None:
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        admin.create_topics([KafkaPythonNewTopic(
            "kp-assigned", replica_assignments={0: [0], 1: [0]})])
        assert len(admin.describe_topics(["kp-assigned"])[0]["partitions"]) == 2
        with pytest.raises(Exception, match="InvalidReplicaAssignment"):
            admin.create_topics([KafkaPythonNewTopic(
                "kp-assigned-elsewhere", replica_assignments={0: [0, 1]})])
    finally:
        admin.close()


def test_confluent_new_topic_with_replica_assignment(server: ServerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    futures = admin.create_topics([
        ConfluentNewTopic("cf-assigned", 2, replica_assignment=[[0], [0]]),
        ConfluentNewTopic("cf-assigned-elsewhere", 1, replica_assignment=[[1]]),
    ], request_timeout=10)
    futures["cf-assigned"].result(timeout=15)
    with pytest.raises(Exception, match="INVALID_REPLICA_ASSIGNMENT|no such broker"):
        futures["cf-assigned-elsewhere"].result(timeout=15)
    grown = admin.create_partitions(
        [NewPartitions("cf-assigned", 3, replica_assignment=[[0]])], request_timeout=10)
    grown["cf-assigned"].result(timeout=15)
    metadata = admin.list_topics("cf-assigned", timeout=10)
    assert len(metadata.topics["cf-assigned"].partitions) == 3


# -- OffsetForLeaderEpoch --------------------------------------------------------------------

OFFSET_FOR_LEADER_EPOCH = 23
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75


def epoch_end(conn: KafkaConnection, version: int, topic: str, partition: int,
              leader_epoch: int, current_leader_epoch: int = -1) -> tuple[int, int, int]:
    """One partition's OffsetForLeaderEpoch answer: (error code, leader epoch, end offset)."""
    fields: dict = {"topics": [{"topic": topic, "partitions": [{
        "partition": partition, "current_leader_epoch": current_leader_epoch,
        "leader_epoch": leader_epoch}]}]}
    if version >= 3:
        fields["replica_id"] = -1  # a consumer
    response = conn.request(OFFSET_FOR_LEADER_EPOCH, version, **fields)
    [[answer]] = [t.partitions for t in response.topics]
    assert answer.partition == partition
    return int(answer.error_code), answer.leader_epoch, answer.end_offset


@pytest.mark.parametrize("version", [2, 3, 4])
def test_offset_for_leader_epoch_answers_as_kafkas_epoch_cache(
        conn: KafkaConnection, version: int) -> None:
    """Kafka's ReplicaManager/Partition.lastOffsetForLeaderEpoch and
    LeaderEpochFileCache.endOffsetFor, with epoch 0 the only one, from offset 0."""
    topic = f"epochs-v{version}"
    create_topic(conn, topic, 1)
    assert produce(conn, topic, 0, [b"a", b"b", b"c"]).error_code == 0
    assert epoch_end(conn, version, topic, 0, 0) == (0, 0, 3)  # the current epoch: the LEO
    assert epoch_end(conn, version, topic, 0, 0, current_leader_epoch=0) == (0, 0, 3)
    assert epoch_end(conn, version, topic, 0, -1) == (0, -1, -1)  # undefined epoch
    assert epoch_end(conn, version, topic, 0, 1) == (0, -1, -1)  # above every known one
    assert epoch_end(conn, version, topic, 0, -5) == (0, -5, 0)  # below: the first's start
    assert epoch_end(conn, version, topic, 0, 0, current_leader_epoch=1)[0] == (
        UNKNOWN_LEADER_EPOCH)
    assert epoch_end(conn, version, topic, 0, 0, current_leader_epoch=-2)[0] == (
        FENCED_LEADER_EPOCH)
    assert epoch_end(conn, version, topic, 1, 0) == (UNKNOWN_TOPIC_OR_PARTITION, -1, -1)
    assert epoch_end(conn, version, "no-such-topic", 0, 0) == (
        UNKNOWN_TOPIC_OR_PARTITION, -1, -1)


def test_librdkafka_validates_a_position_past_the_epochs_end(
        conn: KafkaConnection, server: ServerProcess) -> None:
    """librdkafka validates a position given with a leader epoch (KIP-320): it asks for the
    end of epoch 0 and, finding the log ends before offset 10, goes on from that end. A
    broker without OffsetForLeaderEpoch would see offset 10 fetched, answer
    OFFSET_OUT_OF_RANGE, and the consumer would reset to the earliest offset, 0."""
    topic = "validated"
    create_topic(conn, topic, 1)
    assert produce(conn, topic, 0, [b"a", b"b", b"c"]).error_code == 0
    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "validated",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 10, leader_epoch=0)])
        # a record a second at offsets 3..9 until one is consumed: wherever the log ended
        # when librdkafka validated, a record follows it, and offset 10 is never written
        first = None
        for produced in range(3, 10):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                first = message
                break
            assert produce(conn, topic, 0, [b"%d" % produced]).error_code == 0
        else:
            message = consumer.poll(15.0)
            first = message if message is not None and message.error() is None else None
        assert first is not None, "nothing consumed"
        assert 3 <= first.offset() <= 9  # from the epoch's end, never back to 0
        assert first.value() == b"%d" % first.offset()
    finally:
        consumer.close()


# -- DescribeProducers -----------------------------------------------------------------------

DESCRIBE_PRODUCERS = 61


def describe_producers(conn: KafkaConnection, topic: str, partitions: list[int]) -> dict:
    response = conn.request(DESCRIBE_PRODUCERS, 0, topics=[
        {"name": topic, "partition_indexes": partitions}])
    (answer,) = response.topics
    assert answer.name == topic
    return {p.partition_index: p for p in answer.partitions}


def test_describe_producers_lists_idempotent_producers(
        conn: KafkaConnection, server: ServerProcess) -> None:
    """Kafka's ReplicaManager.activeProducerState and UnifiedLog.activeProducers: each
    producer id with its epoch and last sequence; no coordinator, no open transaction."""
    topic = "produced"
    create_topic(conn, topic, 2)
    before_ms = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": server.bootstrap, "enable.idempotence": True,
                         "linger.ms": 0})
    for value in range(5):
        producer.produce(topic, b"%d" % value, partition=0)
        producer.flush(10)
    assert producer.flush(10) == 0
    after_ms = int(time.time() * 1000)
    plain = describe_producers(conn, topic, [0, 1, 2])
    (state,) = plain[0].active_producers
    assert int(plain[0].error_code) == 0
    assert state.producer_id >= 0 and state.producer_epoch == 0
    assert state.last_sequence == 4  # five records, sequences 0..4
    assert before_ms <= state.last_timestamp <= after_ms
    assert (state.coordinator_epoch, state.current_txn_start_offset) == (-1, -1)
    assert (int(plain[1].error_code), plain[1].active_producers) == (0, ())  # none wrote
    assert int(plain[2].error_code) == UNKNOWN_TOPIC_OR_PARTITION
    unknown = describe_producers(conn, "no-such-topic", [0])
    assert int(unknown[0].error_code) == UNKNOWN_TOPIC_OR_PARTITION

    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        described = admin.describe_producers([KafkaTopicPartition(topic, 0)])
    finally:
        admin.close()
    (seen,) = described[KafkaTopicPartition(topic, 0)].active_producers
    assert (seen.producer_id, seen.producer_epoch, seen.last_sequence) == (
        state.producer_id, 0, 4)


# -- DescribeTopicPartitions (KIP-966) -------------------------------------------------------

DESCRIBE_TOPIC_PARTITIONS = 75
METADATA = 3
INVALID_TOPIC_EXCEPTION = 17


def describe_page(conn: KafkaConnection, topics: list[str], limit: int = 2000,
                  cursor: tuple[str, int] | None = None) -> tuple[list, tuple[str, int] | None]:
    """One DescribeTopicPartitions answer: its topics, and its next cursor."""
    response = conn.request(
        DESCRIBE_TOPIC_PARTITIONS, 0, topics=[{"name": name} for name in topics],
        response_partition_limit=limit,
        cursor=None if cursor is None else {"topic_name": cursor[0],
                                            "partition_index": cursor[1]})
    nxt = response.next_cursor
    return list(response.topics), None if nxt is None else (nxt.topic_name, nxt.partition_index)


def shown(topics: list) -> list[tuple[str, int, list[int]]]:
    """(name, error code, partition indexes) of each topic answered."""
    return [(t.name, int(t.error_code), [p.partition_index for p in t.partitions])
            for t in topics]


@pytest.fixture(scope="module")
def described_topics(server: ServerProcess) -> list[str]:
    names = ["dtp-a", "dtp-b", "dtp-c"]
    with KafkaConnection(server.address) as conn:
        for name, count in zip(names, (3, 2, 1), strict=True):
            create_topic(conn, name, count)
    return names


def test_describe_topic_partitions_describes_as_metadata_does(
        conn: KafkaConnection, described_topics: list[str]) -> None:
    """Named topics come back in name order, unknown and illegal names with Kafka's codes,
    each known one with the id and authorized operations Metadata gives it."""
    topics, cursor = describe_page(conn, ["dtp-c", "dtp-a", "no-such-topic", "bad name!",
                                          "dtp-b"])
    assert cursor is None
    assert shown(topics) == [("bad name!", INVALID_TOPIC_EXCEPTION, []),
                             ("dtp-a", 0, [0, 1, 2]), ("dtp-b", 0, [0, 1]), ("dtp-c", 0, [0]),
                             ("no-such-topic", UNKNOWN_TOPIC_OR_PARTITION, [])]
    metadata = conn.request(METADATA, 12, topics=[{"name": n, "topic_id": None}
                                                  for n in described_topics],
                            allow_auto_topic_creation=False,
                            include_topic_authorized_operations=True)
    by_name = {t.name: t for t in metadata.topics}
    for topic in topics[1:4]:
        expected = by_name[topic.name]
        assert topic.topic_id == expected.topic_id and topic.topic_id.int != 0
        assert topic.topic_authorized_operations == expected.topic_authorized_operations
        assert topic.topic_authorized_operations > 0
        for partition in topic.partitions:
            assert (partition.leader_id, partition.leader_epoch) == (0, 0)
            assert (partition.replica_nodes, partition.isr_nodes) == ((0,), (0,))
            assert partition.offline_replicas == () and partition.error_code == 0
    for unknown in (topics[0], topics[4]):  # the zero id, which kio reads as None
        assert unknown.topic_id is None or unknown.topic_id.int == 0


def test_describe_topic_partitions_pages_with_its_cursor(
        conn: KafkaConnection, described_topics: list[str]) -> None:
    """KRaftMetadataCache.getTopicMetadataForDescribeTopicResponse: the limit counts
    partitions across topics; the cursor names the first partition not given."""
    pages = []
    cursor = None
    while True:
        topics, cursor = describe_page(conn, described_topics, limit=2, cursor=cursor)
        pages.append((shown(topics), cursor))
        if cursor is None:
            break
    assert pages == [
        ([("dtp-a", 0, [0, 1])], ("dtp-a", 2)),
        ([("dtp-a", 0, [2]), ("dtp-b", 0, [0])], ("dtp-b", 1)),
        ([("dtp-b", 0, [1]), ("dtp-c", 0, [0])], None),
    ]
    # a page that ends with a topic's last partition points at the next topic's first
    topics, cursor = describe_page(conn, ["dtp-a", "dtp-b"], limit=3)
    assert (shown(topics), cursor) == ([("dtp-a", 0, [0, 1, 2])], ("dtp-b", 0))
    # no topics named: every topic, from the cursor's on
    topics, cursor = describe_page(conn, [], cursor=("dtp-b", 1))
    assert shown(topics)[:2] == [("dtp-b", 0, [1]), ("dtp-c", 0, [0])]
    assert all(name >= "dtp-b" for name, _, _ in shown(topics)) and cursor is None
    # a limit of 0 or less still describes one partition
    assert describe_page(conn, ["dtp-a"], limit=0)[1] == ("dtp-a", 1)


def test_describe_topic_partitions_refuses_a_cursor_kafka_refuses(
        conn: KafkaConnection, described_topics: list[str]) -> None:
    """DescribeTopicPartitionsRequestHandler: the cursor's topic must be among those named
    and its partition not negative, else every named topic is INVALID_REQUEST."""
    for cursor in (("dtp-z", 0), ("dtp-b", -1)):
        topics, next_cursor = describe_page(conn, ["dtp-a", "dtp-b"], cursor=cursor)
        assert shown(topics) == [("dtp-a", INVALID_REQUEST, []),
                                 ("dtp-b", INVALID_REQUEST, [])]
        assert next_cursor is None


def test_kafka_python_describe_topic_partitions_pages(
        server: ServerProcess, described_topics: list[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        first = admin.describe_topic_partitions(described_topics, response_partition_limit=4)
        rest = admin.describe_topic_partitions(described_topics, response_partition_limit=4,
                                               cursor=first["next_cursor"])
    finally:
        admin.close()
    assert first["next_cursor"] == {"topic_name": "dtp-b", "partition_index": 1}
    assert rest["next_cursor"] is None
    seen = [(t["name"], p["partition_index"]) for page in (first, rest)
            for t in page["topics"] for p in t["partitions"]]
    assert seen == [("dtp-a", 0), ("dtp-a", 1), ("dtp-a", 2), ("dtp-b", 0), ("dtp-b", 1),
                    ("dtp-c", 0)]


def test_max_request_partition_size_limit_caps_a_page(serve) -> None:
    """Kafka's broker key max.request.partition.size.limit bounds what a client asks."""
    server = serve(settings={"max.request.partition.size.limit": 2})
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "capped", 3)
        topics, cursor = describe_page(conn, ["capped"], limit=2000)
    assert (shown(topics), cursor) == ([("capped", 0, [0, 1])], ("capped", 2))


# -- an offline partition --------------------------------------------------------------------

def test_an_offline_partition_in_each_api(serve, tmp_path) -> None:
    """A partition whose segment is damaged is offline: DescribeTopicPartitions shows it
    with no leader and this node as its offline replica (Kafka sets no partition error
    there), OffsetForLeaderEpoch and DescribeProducers answer KAFKA_STORAGE_ERROR
    (ReplicaManager's HostedPartition.Offline); the other partition is answered as usual."""
    data_dir = str(tmp_path / "data")
    build_topic(data_dir, "damaged", 2, 60, segment_bytes=8192)
    overwrite(segment_files(data_dir, "damaged", 0)[0], 0, b"\xff" * 16)
    server = serve(data_dir)
    server.wait_for_log(
        lambda f: f.get("msg") == "partition offline" and f.get("partition") == "0", 10)
    with KafkaConnection(server.address) as conn:
        (topic,), _ = describe_page(conn, ["damaged"])
        offline, online = topic.partitions
        assert (offline.error_code, offline.leader_id, offline.isr_nodes,
                offline.offline_replicas) == (0, -1, (), (0,))
        assert (online.leader_id, online.isr_nodes, online.offline_replicas) == (0, (0,), ())
        assert epoch_end(conn, 4, "damaged", 0, 0) == (KAFKA_STORAGE_ERROR, -1, -1)
        assert epoch_end(conn, 4, "damaged", 1, 0) == (0, 0, 60)
        described = describe_producers(conn, "damaged", [0, 1])
        assert int(described[0].error_code) == KAFKA_STORAGE_ERROR
        assert int(described[1].error_code) == 0
