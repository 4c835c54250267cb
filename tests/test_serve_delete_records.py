"""DeleteRecords (API 21) against a real `eventstore serve`: raw requests at every version,
then the admin clients people use (kafka-python, confluent-kafka, aiokafka), a consumer
reading from earliest, SQL, metrics, retention and a restart.

The answers are Kafka's: ``Partition.deleteRecordsOnLeader`` turns offset -1 into the high
watermark and refuses a negative one with OFFSET_OUT_OF_RANGE,
``UnifiedLog.maybeIncrementLogStartOffset`` refuses an offset past the high watermark with
OFFSET_OUT_OF_RANGE and never moves the start back, ``ReplicaManager.deleteRecords``
answers an unknown partition UNKNOWN_TOPIC_OR_PARTITION and an error with low watermark
-1 (``DeleteRecordsResponse.INVALID_LOW_WATERMARK``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from eventstore.config import TopicConfig
from eventstore.errors import OffsetOutOfRange
from eventstore.sql import SqlEngine
from eventstore.storage.log import PartitionLog
from eventstore.storage.segment import parse_segment_name
from tests.support import (
    KafkaConnection,
    ManualClock,
    ServerProcess,
    eventstore_command,
    fetch,
    produce,
    wait_until,
)

DELETE_RECORDS, LIST_OFFSETS, CREATE_TOPICS = 21, 2, 19
NONE, OFFSET_OUT_OF_RANGE, UNKNOWN_TOPIC_OR_PARTITION = 0, 1, 3
SEGMENT_BYTES = 100  # three records per segment


def create(conn: KafkaConnection, topic: str, partitions: int = 1,
           segment_bytes: int = SEGMENT_BYTES) -> None:
    response = conn.request(CREATE_TOPICS, 4, timeout=10000, validate_only=False, topics=[{
        "name": topic, "num_partitions": partitions, "replication_factor": 1,
        "assignments": [], "configs": [{"name": "segment.bytes", "value": str(segment_bytes)}]}])
    assert int(response.topics[0].error_code) == 0, response


def fill(conn: KafkaConnection, topic: str, count: int, partition: int = 0) -> None:
    """``count`` records, one batch each (so segments roll every few records)."""
    for i in range(count):
        assert produce(conn, topic, partition, [b"value-%03d" % i]).error_code == 0


def delete_records(conn: KafkaConnection, version: int, topic: str,
                   offsets: dict[int, int]) -> dict[int, tuple[int, int]]:
    """partition -> (error code, low watermark)."""
    response = conn.request(DELETE_RECORDS, version, timeout=5000, topics=[{
        "name": topic, "partitions": [
            {"partition_index": p, "offset": o} for p, o in offsets.items()]}])
    (answer,) = response.topics
    return {p.partition_index: (int(p.error_code), p.low_watermark) for p in answer.partitions}


def earliest(conn: KafkaConnection, topic: str, partition: int = 0) -> int:
    response = conn.request(LIST_OFFSETS, 5, replica_id=-1, isolation_level=0, topics=[{
        "name": topic, "partitions": [{"partition_index": partition, "current_leader_epoch": -1,
                                       "timestamp": -2}]}])
    (answer,) = response.topics[0].partitions
    assert int(answer.error_code) == 0
    return answer.offset


def segment_bases(data_dir: str, topic: str, partition: int = 0) -> list[int]:
    names = os.listdir(os.path.join(data_dir, f"{topic}-{partition}"))
    return sorted(b for b in map(parse_segment_name, names) if b is not None)


def oldest_offset_metric(server: ServerProcess, topic: str) -> int | None:
    _, text = server.http_get(server.metrics_url)
    prefix = "kafka_topic_partition_oldest_offset{"
    for line in text.splitlines():
        if line.startswith(prefix) and f'topic="{topic}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return None


@pytest.fixture
def server(tmp_path):
    """A server of the test's own: the test stops or restarts it."""
    with ServerProcess.start(str(tmp_path / "data")) as running:
        yield running


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server for the tests that only add topics of their own names."""
    with ServerProcess.start(str(tmp_path_factory.mktemp("shared") / "data")) as running:
        yield running


@pytest.mark.parametrize("version", [0, 1, 2])
def test_delete_records_moves_the_log_start_offset(shared, version):
    """Every version: the start moves inside a segment, whole segments below it go, Fetch
    below it is OFFSET_OUT_OF_RANGE, ListOffsets earliest returns it; -1 is the high
    watermark; past it, or negative, OFFSET_OUT_OF_RANGE; unknown partitions
    UNKNOWN_TOPIC_OR_PARTITION; a lower offset changes nothing."""
    topic = f"deleted-v{version}"
    with KafkaConnection(shared.address) as conn:
        create(conn, topic, partitions=2)
        fill(conn, topic, 20)
        bases = segment_bases(shared.data_dir, topic)
        assert len(bases) >= 4, bases
        middle = bases[2] + 1  # inside the third segment
        assert delete_records(conn, version, topic, {0: middle}) == {0: (NONE, middle)}
        assert segment_bases(shared.data_dir, topic)[0] == bases[2]  # two whole ones gone
        assert fetch(conn, topic, 0, middle - 1).error_code == OFFSET_OUT_OF_RANGE
        fetched = fetch(conn, topic, 0, middle)
        assert fetched.error_code == 0 and fetched.records[0].offset == middle
        assert fetched.records[0].value == b"value-%03d" % middle
        assert earliest(conn, topic) == middle

        assert delete_records(conn, version, topic, {0: 1}) == {0: (NONE, middle)}
        assert delete_records(conn, version, topic, {0: 21, 1: -2}) == {
            0: (OFFSET_OUT_OF_RANGE, -1), 1: (OFFSET_OUT_OF_RANGE, -1)}
        assert delete_records(conn, version, topic, {2: 0}) == {
            2: (UNKNOWN_TOPIC_OR_PARTITION, -1)}
        assert delete_records(conn, version, "no-such-topic", {0: 0}) == {
            0: (UNKNOWN_TOPIC_OR_PARTITION, -1)}

        assert delete_records(conn, version, topic, {0: -1}) == {0: (NONE, 20)}
        assert earliest(conn, topic) == 20
        assert fetch(conn, topic, 0, 19).error_code == OFFSET_OUT_OF_RANGE
        assert fetch(conn, topic, 0, 20).records == []
        assert produce(conn, topic, 0, [b"after"]).base_offset == 20  # appends go on
        assert fetch(conn, topic, 0, 20).records[0].value == b"after"


def test_sql_metrics_and_a_restart_agree_with_the_new_start(server):
    """The `partitions` and `records` tables, the oldest-offset gauge and a restarted
    server all see the start DeleteRecords set, inside a segment."""
    topic = "kept-start"
    with KafkaConnection(server.address) as conn:
        create(conn, topic)
        fill(conn, topic, 12)
        start = segment_bases(server.data_dir, topic)[1] + 2
        assert delete_records(conn, 2, topic, {0: start}) == {0: (NONE, start)}
    engine = SqlEngine(server.data_dir)
    _, rows = engine.query("SELECT log_start_offset, problem FROM partitions WHERE topic = ?",
                           (topic,))
    assert rows == [(start, None)]
    _, rows = engine.query("SELECT min(base_offset), count(problem) FROM segments"
                           " WHERE topic = ?", (topic,))
    assert rows == [(start - 2, 0)]
    _, rows = engine.query("SELECT min(offset), count(*) FROM records WHERE topic = ?", (topic,))
    assert rows == [(start, 12 - start)]
    wait_until(lambda: oldest_offset_metric(server, topic) == start, 15,
               "the oldest-offset gauge to show the new start")

    server.restart()
    with KafkaConnection(server.address) as conn:
        assert earliest(conn, topic) == start
        assert fetch(conn, topic, 0, start - 1).error_code == OFFSET_OUT_OF_RANGE
        assert fetch(conn, topic, 0, start).records[0].offset == start


def test_retention_after_delete_records(tmp_path):
    """DeleteRecords deletes the segments wholly below the new start and keeps the one
    holding it; retention then deletes that one as any other, moving the start to the next
    segment; reopening keeps the start."""
    clock = ManualClock()
    directory = str(tmp_path / "t-0")
    config = TopicConfig(segment_bytes=SEGMENT_BYTES)
    log = PartitionLog.open(directory, config, clock=clock, create=True)
    for i in range(12):
        log.append([(None, None, b"value-%03d" % i, None)])
    bases = [s.base_offset for s in log.segments()]
    start = bases[1] + 1
    assert log.delete_records(start) == start
    assert [s.base_offset for s in log.segments()] == bases[1:]
    assert log.stats.segments_deleted == 1
    with pytest.raises(OffsetOutOfRange):
        log.delete_records(13)
    with pytest.raises(OffsetOutOfRange):
        log.read(start - 1, 1)
    log.update_config(TopicConfig(segment_bytes=SEGMENT_BYTES,
                                  retention_bytes=log.size_bytes - log.segments()[0].bytes))
    assert [s.base_offset for s in log.apply_retention()] == [bases[1]]
    assert log.log_start_offset == bases[2]
    log.close()
    reopened = PartitionLog.open(directory, config, clock=clock)
    assert reopened.log_start_offset == bases[2]
    reopened.close()


def test_a_crash_before_the_files_went_is_finished_at_open(tmp_path):
    """The new start is durable before any file is deleted: segments wholly below it that
    a crash left behind are deleted when the log opens, as retention's are."""
    clock = ManualClock()
    directory = str(tmp_path / "k-0")
    config = TopicConfig(segment_bytes=SEGMENT_BYTES)
    log = PartitionLog.open(directory, config, clock=clock, create=True)
    for i in range(12):
        log.append([(None, None, b"value-%03d" % i, None)])
    first = log.segments()[0].path
    with open(first, "rb") as f:
        kept = f.read()
    start = log.segments()[1].base_offset + 1
    assert log.delete_records(start) == start
    log.close()
    with open(first, "wb") as f:  # as if the process stopped before deleting it
        f.write(kept)
    reopened = PartitionLog.open(directory, config, clock=clock)
    assert not os.path.exists(first)
    assert reopened.log_start_offset == start
    assert [row[0] for row in reopened.read(start, 1)] == [start]
    reopened.close()


def test_restart_inside_a_segment_after_a_roll(tmp_path):
    """A start inside the first kept segment, then rolls: reopening accepts the chain."""
    clock = ManualClock()
    directory = str(tmp_path / "r-0")
    log = PartitionLog.open(directory, TopicConfig(segment_bytes=SEGMENT_BYTES), clock=clock,
                            create=True)
    for i in range(3):
        log.append([(None, None, b"value-%03d" % i, None)])
    assert log.delete_records(1) == 1  # inside the active segment
    for i in range(3, 12):
        log.append([(None, None, b"value-%03d" % i, None)])
    assert len(log.segments()) > 1
    log.close()
    reopened = PartitionLog.open(directory, TopicConfig(segment_bytes=SEGMENT_BYTES), clock=clock)
    assert reopened.log_start_offset == 1
    assert [row[0] for row in reopened.read(1, 2)] == [1, 2]
    with pytest.raises(OffsetOutOfRange):
        reopened.read(0, 1)
    reopened.close()


def test_kafka_python_and_confluent_admin_clients(shared):
    """kafka-python's KafkaAdminClient.delete_records and confluent-kafka's
    AdminClient.delete_records move the start; a consumer from earliest starts there."""
    import confluent_kafka
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaAdminClient, KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    topic = "admin-deleted"
    with KafkaConnection(shared.address) as conn:
        create(conn, topic, partitions=2)
        fill(conn, topic, 10, partition=0)
        fill(conn, topic, 10, partition=1)

    admin = KafkaAdminClient(bootstrap_servers=shared.bootstrap, request_timeout_ms=10000)
    try:
        result = admin.delete_records({KTopicPartition(topic, 0): 4})
        assert result[KTopicPartition(topic, 0)]["low_watermark"] == 4
    finally:
        admin.close()

    confluent = AdminClient({"bootstrap.servers": shared.bootstrap})
    futures = confluent.delete_records([confluent_kafka.TopicPartition(topic, 1, 7)],
                                       request_timeout=10)
    (deleted,) = [f.result(timeout=20) for f in futures.values()]
    assert deleted.low_watermark == 7
    futures = confluent.delete_records([confluent_kafka.TopicPartition(topic, 1, 50)],
                                       request_timeout=10)
    with pytest.raises(confluent_kafka.KafkaException) as refused:
        for f in futures.values():
            f.result(timeout=20)
    assert refused.value.args[0].code() == confluent_kafka.KafkaError.OFFSET_OUT_OF_RANGE

    consumer = KafkaConsumer(topic, bootstrap_servers=shared.bootstrap,
                             auto_offset_reset="earliest", group_id="from-earliest",
                             consumer_timeout_ms=15000)
    try:
        seen: dict[int, list[int]] = {0: [], 1: []}

        def read_all() -> bool:
            for message in consumer.poll(timeout_ms=500).values():
                for record in message:
                    seen[record.partition].append(record.offset)
            return len(seen[0]) == 6 and len(seen[1]) == 3

        wait_until(read_all, 30, "the consumer to read both partitions")
        assert seen == {0: list(range(4, 10)), 1: list(range(7, 10))}
    finally:
        consumer.close()


def test_aiokafka_admin_client(shared):
    """aiokafka's AIOKafkaAdminClient.delete_records answers the new low watermark."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    topic = "aiokafka-deleted"
    with KafkaConnection(shared.address) as conn:
        create(conn, topic)
        fill(conn, topic, 5)

    async def run() -> dict:
        admin = AIOKafkaAdminClient(bootstrap_servers=shared.bootstrap)
        await admin.start()
        try:
            return await admin.delete_records(
                {TopicPartition(topic, 0): RecordsToDelete(before_offset=3)}, timeout_ms=5000)
        finally:
            await admin.close()

    assert asyncio.run(run()) == {TopicPartition(topic, 0): 3}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*eventstore_command(), *args], capture_output=True, text=True,
                          timeout=60)


def test_cli_over_a_server_and_offline(server, tmp_path):
    """`eventstore delete-records` through --bootstrap-server and on --data-dir: one line
    out, one line for each refusal (exit 1), and the start kept."""
    topic = "cli-deleted"
    with KafkaConnection(server.address) as conn:
        create(conn, topic)
        fill(conn, topic, 10)
    done = run_cli("delete-records", topic, "--partition", "0", "--offset", "3",
                   "--bootstrap-server", server.bootstrap)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"Deleted the records of {topic} partition 0 before offset 3."]
    refused = run_cli("delete-records", topic, "--partition", "0", "--offset", "99",
                      "--bootstrap-server", server.bootstrap)
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
    assert "OffsetOutOfRange" in refused.stderr, refused.stderr
    unknown = run_cli("delete-records", topic, "--partition", "5", "--offset", "1",
                      "--bootstrap-server", server.bootstrap)
    assert unknown.returncode == 1 and len(unknown.stderr.splitlines()) == 1
    assert "UnknownTopicOrPartition" in unknown.stderr, unknown.stderr

    server.stop()
    data_dir = server.data_dir
    done = run_cli("delete-records", topic, "--partition", "0", "--offset", "-1",
                   "--data-dir", data_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"Deleted the records of {topic} partition 0 before offset 10."]
    refused = run_cli("delete-records", "nope", "--partition", "0", "--offset", "1",
                      "--data-dir", data_dir)
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
    assert "UnknownTopicOrPartition" in refused.stderr, refused.stderr
    engine = SqlEngine(data_dir)
    _, rows = engine.query("SELECT log_start_offset FROM partitions WHERE topic = ?", (topic,))
    assert rows == [(10,)]
    verified = run_cli("verify", "--data-dir", data_dir)
    assert verified.returncode == 0, verified.stdout + verified.stderr
