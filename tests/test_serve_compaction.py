"""Compacted topics through `eventstore serve` with real Kafka clients: confluent-kafka and
kafka-python create one through their admin APIs, write updates and tombstones, and a
fresh consumer reads the table back; a changelog survives a restart; a config change
turns compaction on; DeleteRecords is refused; SIGKILLs during cleanings under keyed load
leave a directory `eventstore verify` passes and every acknowledged key's last value."""

from __future__ import annotations

import contextlib
import os
import random
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from eventstore.storage.cleaning_swap import PENDING_SUFFIX
from eventstore.storage.compaction import cleaning_status
from eventstore.storage.verify import verify
from tests.support import KafkaConnection, record_batch, wait_until

TIMEOUT = 60.0
# a compacted topic whose segments roll often and whose cleanings come at once
COMPACTED = {"cleanup.policy": "compact", "segment.bytes": "1024",
             "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0"}
CLEANER = {"log.cleaner.backoff.ms": 50}
KEYS = [b"user-%d" % n for n in range(8)]
CLEANING_CHASES = 20  # rounds of writes to catch a cleaning in progress
CLEANING_CHASE_S = 5.0  # how long each round looks for one


def folder(server, topic: str, partition: int = 0) -> str:
    return os.path.join(server.data_dir, f"{topic}-{partition}")


def updates(count: int, seed: int) -> list[tuple[bytes, bytes | None]]:
    """``count`` writes over KEYS, about one in six a tombstone."""
    chooser = random.Random(seed)
    return [(chooser.choice(KEYS), None if chooser.random() < 1 / 6 else b"value-%d" % n)
            for n in range(count)]


def expected_table(writes: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    table: dict[bytes, bytes] = {}
    for key, value in writes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def confluent_produce(bootstrap: str, topic: str, writes) -> None:
    # small batches, so that the 1 KiB segments roll and there is something to clean
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 1,
                         "batch.num.messages": 10})
    failures: list[KafkaError] = []
    for key, value in writes:
        producer.produce(topic, value, key,
                         on_delivery=lambda err, _m: err and failures.append(err))
    assert producer.flush(TIMEOUT) == 0
    assert failures == []


def confluent_table(bootstrap: str, topic: str) -> tuple[dict[bytes, bytes], list[int]]:
    """The table a fresh consumer builds reading the partition from the start, and the
    offsets it read."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
        consumer.assign([TopicPartition(topic, 0, 0)])
        table: dict[bytes, bytes] = {}
        offsets: list[int] = []
        deadline = time.monotonic() + TIMEOUT
        while (not offsets or offsets[-1] < high - 1) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            offsets.append(message.offset())
            if message.value() is None:
                table.pop(message.key(), None)
            else:
                table[message.key()] = message.value()
        assert offsets and offsets[-1] == high - 1, "the consumer did not reach the end"
        return table, offsets
    finally:
        consumer.close()


def wait_cleaned(server, topic: str, runs: int) -> None:
    wait_until(lambda: cleaning_status(folder(server, topic)).runs >= runs, TIMEOUT,
               f"{runs} cleanings of {topic}-0")


def test_confluent_admin_creates_a_compacted_topic_and_a_fresh_consumer_reads_the_table(
        serve):
    server = serve(settings=CLEANER)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    futures = admin.create_topics([NewTopic("profiles", 1, 1, config=COMPACTED)])
    futures["profiles"].result(TIMEOUT)
    described = admin.describe_configs([ConfigResource("topic", "profiles")])
    (configs,) = [future.result(TIMEOUT) for future in described.values()]
    assert configs["cleanup.policy"].value == "compact"
    writes = updates(600, seed=1)
    confluent_produce(server.bootstrap, "profiles", writes)
    wait_cleaned(server, "profiles", 2)
    table, offsets = confluent_table(server.bootstrap, "profiles")
    assert table == expected_table(writes)
    assert offsets == sorted(offsets) and len(offsets) < len(writes)  # gaps: compacted
    assert offsets[-1] == len(writes) - 1  # the high watermark did not move


def test_kafka_python_admin_creates_a_compacted_topic_and_reads_the_table(serve):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic as KpNewTopic

    server = serve(settings=CLEANER)
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        admin.create_topics([KpNewTopic("settings", 1, 1, topic_configs=COMPACTED)])
    finally:
        admin.close()
    writes = updates(400, seed=2)
    # small batches, so the log rolls (a busy machine can otherwise gather every write in
    # one batch, which fills one segment and leaves nothing sealed to clean)
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, acks="all", batch_size=512)
    try:
        for key, value in writes:
            producer.send("settings", key=key, value=value)
        producer.flush(TIMEOUT)
    finally:
        producer.close()
    wait_cleaned(server, "settings", 1)
    consumer = KafkaConsumer(bootstrap_servers=server.bootstrap, auto_offset_reset="earliest",
                             group_id=f"g-{uuid.uuid4()}", enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    try:
        consumer.subscribe(["settings"])
        table: dict[bytes, bytes] = {}
        last = -1
        deadline = time.monotonic() + TIMEOUT
        while last < len(writes) - 1 and time.monotonic() < deadline:
            for message in consumer:
                last = message.offset
                if message.value is None:
                    table.pop(message.key, None)
                else:
                    table[message.key] = message.value
                if last == len(writes) - 1:
                    break
    finally:
        consumer.close()
    assert last == len(writes) - 1
    assert table == expected_table(writes)


def test_a_changelog_rebuilds_the_same_state_after_a_restart(serve):
    server = serve(settings=CLEANER)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("store-changelog", 1, 1, config=COMPACTED)])[
        "store-changelog"].result(TIMEOUT)
    writes = updates(500, seed=3)
    confluent_produce(server.bootstrap, "store-changelog", writes)
    wait_cleaned(server, "store-changelog", 1)
    before, _ = confluent_table(server.bootstrap, "store-changelog")
    assert before == expected_table(writes)
    server.restart()
    after, _ = confluent_table(server.bootstrap, "store-changelog")
    assert after == before
    more = updates(200, seed=4)
    confluent_produce(server.bootstrap, "store-changelog", more)
    wait_cleaned(server, "store-changelog", cleaning_status(
        folder(server, "store-changelog")).runs + 1)
    assert confluent_table(server.bootstrap, "store-changelog")[0] == expected_table(
        writes + more)


def produce_raw(server, topic: str, key: bytes | None) -> int:
    """One record through a raw Produce v8: the partition's error code."""
    with KafkaConnection(server.address) as conn:
        response = conn.produce(topic, 0, record_batch(b"v", key=key))
    return int(response.error_code)


INVALID_RECORD, POLICY_VIOLATION = 87, 44


def test_incremental_alter_configs_turns_compaction_on(serve):
    server = serve(settings=CLEANER)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("events", 1, 1, config={"segment.bytes": "1024"})])[
        "events"].result(TIMEOUT)
    assert produce_raw(server, "events", None) == 0  # delete: a keyless record is fine
    resource = ConfigResource("topic", "events", incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in COMPACTED.items() if name != "segment.bytes"])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(TIMEOUT)
    assert produce_raw(server, "events", None) == INVALID_RECORD
    writes = updates(300, seed=5)
    confluent_produce(server.bootstrap, "events", writes)
    wait_cleaned(server, "events", 1)
    table, _ = confluent_table(server.bootstrap, "events")
    assert table == expected_table(writes)


def test_alter_configs_back_to_delete_stops_refusing_keyless_records(serve):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KpResource
    from kafka.admin import ConfigResourceType

    server = serve(settings=CLEANER)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("flip", 1, 1, config={"cleanup.policy": "compact"})])[
        "flip"].result(TIMEOUT)
    assert produce_raw(server, "flip", None) == INVALID_RECORD
    legacy = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        legacy.alter_configs([KpResource(ConfigResourceType.TOPIC, "flip",
                                         configs={"cleanup.policy": "compact,delete"})])
    finally:
        legacy.close()
    assert produce_raw(server, "flip", None) == INVALID_RECORD  # still compacted
    with KafkaConnection(server.address) as conn:
        response = conn.request(21, 2, timeout=5000, topics=[{
            "name": "flip", "partitions": [{"partition_index": 0, "offset": 0}]}])
    assert response.topics[0].partitions[0].error_code == 0  # compact,delete: allowed


def test_delete_records_on_a_compact_only_topic_is_a_policy_violation(serve):
    server = serve()
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("table", 1, 1, config={"cleanup.policy": "compact"})])[
        "table"].result(TIMEOUT)
    assert produce_raw(server, "table", b"k") == 0
    with KafkaConnection(server.address) as conn:
        response = conn.request(21, 2, timeout=5000, topics=[{
            "name": "table", "partitions": [{"partition_index": 0, "offset": 1}]}])
    assert response.topics[0].partitions[0].error_code == POLICY_VIOLATION


def produce_into_a_cleaning(bootstrap: str, topic: str, directory: str,
                            seed: int) -> list[tuple[bytes, bytes | None]]:
    """Keyed writes, acknowledged, until a cleaning of them is caught in progress (its
    pending files in ``directory``): a cleaner that kept up with one round of writes (a
    busy machine slows the producer more than the throttled cleaner) gets another."""
    written: list[tuple[bytes, bytes | None]] = []
    for chunk in range(CLEANING_CHASES):
        writes = updates(400 if chunk == 0 else 60, seed=seed * CLEANING_CHASES + chunk)
        confluent_produce(bootstrap, topic, writes)
        written += writes
        with contextlib.suppress(AssertionError):
            wait_until(lambda: any(name.endswith(PENDING_SUFFIX)
                                   for name in os.listdir(directory)),
                       CLEANING_CHASE_S, "a cleaning in progress")
            return written
    raise AssertionError(f"no cleaning caught in progress after {CLEANING_CHASES} rounds")


def crash_rounds(serve, tmp_path, rounds: int) -> None:
    """SIGKILL a server in the midst of cleanings under keyed load, ``rounds`` times;
    after each restart verify passes and the table holds every acknowledged write."""
    data_dir = str(tmp_path / "crash")
    # a throttled cleaner, so that a cleaning is caught in progress
    settings = {**CLEANER, "log.cleaner.io.max.bytes.per.second": 40000}
    server = serve(data_dir, settings=settings)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("crashy", 1, 1, config=COMPACTED)])["crashy"].result(TIMEOUT)
    directory = folder(server, "crashy")
    acked: list[tuple[bytes, bytes | None]] = []
    for round_number in range(rounds):
        acked += produce_into_a_cleaning(server.bootstrap, "crashy", directory,
                                         seed=100 + round_number)
        time.sleep(random.Random(round_number).uniform(0, 0.3))  # somewhere in it
        server.kill()
        report = verify(data_dir)  # before recovery only names a half-done swap, if any
        server.relaunch()
        report = verify(data_dir)
        assert report.ok, [str(problem) for problem in report.problems]
        table, _ = confluent_table(server.bootstrap, "crashy")
        assert table == expected_table(acked), f"after crash {round_number}"
    server.stop()
    assert verify(data_dir).ok


def test_sigkill_during_cleanings_under_keyed_load(serve, tmp_path):
    crash_rounds(serve, tmp_path, rounds=2)


@pytest.mark.slow
def test_sigkill_during_cleanings_under_keyed_load_at_length(serve, tmp_path):
    crash_rounds(serve, tmp_path, rounds=12)


def test_an_idempotent_producer_goes_on_across_cleanings_and_a_restart(serve):
    server = serve(settings=CLEANER)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("idem", 1, 1, config=COMPACTED)])["idem"].result(TIMEOUT)
    producer = Producer({"bootstrap.servers": server.bootstrap, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 1, "batch.num.messages": 10})
    failures: list[KafkaError] = []
    try:
        for round_number in range(3):
            for n in range(150):
                producer.produce("idem", b"v%d-%d" % (round_number, n), KEYS[n % 2],
                                 on_delivery=lambda err, _m: err and failures.append(err))
            assert producer.flush(TIMEOUT) == 0
            wait_cleaned(server, "idem", round_number + 1)
            if round_number == 1:
                server.restart()  # the producer's state is rebuilt from the cleaned files
    finally:
        producer.flush(TIMEOUT)
    assert failures == []
    table, _ = confluent_table(server.bootstrap, "idem")
    assert table == {KEYS[0]: b"v2-148", KEYS[1]: b"v2-149"}


def test_a_compacted_topic_refuses_a_keyless_record_through_confluent(serve):
    server = serve()
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("keyed", 1, 1, config={"cleanup.policy": "compact"})])[
        "keyed"].result(TIMEOUT)
    producer = Producer({"bootstrap.servers": server.bootstrap, "acks": "all",
                         "message.send.max.retries": 0})
    errors: list[KafkaError] = []
    producer.produce("keyed", b"no key", on_delivery=lambda err, _m: errors.append(err))
    producer.flush(TIMEOUT)
    assert [error.code() for error in errors] == [KafkaError.INVALID_RECORD]
