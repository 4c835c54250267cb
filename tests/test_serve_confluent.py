"""confluent-kafka (librdkafka) against a real ``eventstore serve``: 100,000 compressed
records through a consumer group, then the group's committed offsets and lag.

The producers here are plain ones (librdkafka's ``enable.idempotence`` defaults to false);
test_idempotence_wire.py runs an idempotent one.
"""

from __future__ import annotations

import struct

import pytest
from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    TopicPartition,
)
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka.admin import AdminClient, NewTopic
from support import ServerProcess

RECORDS = 100_000
PARTITIONS = 3
BASE_TIMESTAMP = 1_700_000_000_000
TIMEOUT_S = 30


def record(i: int) -> dict:
    """Record ``i``: null and empty keys and values, binary bytes, repeated and null-valued
    headers, explicit timestamps that are not in order."""
    value = None if i % 97 == 3 else b"" if i % 97 == 5 else (
        struct.pack(">I", i) + bytes(range(256))[i % 200:][:96])
    return {
        "key": None if i % 10 == 0 else b"" if i % 10 == 1 else b"key-\x00\xff-%d" % (i % 1000),
        "value": value,
        "headers": [("seq", struct.pack(">I", i)), ("seq", b"again"), ("none", None)]
        if i % 3 else None,
        "timestamp": BASE_TIMESTAMP + i * 7 - (i % 5) * 1000,
    }


def produce_all(server: ServerProcess, topic: str, compression: str) -> dict[tuple, int]:
    """Send RECORDS records; {(partition, offset): record number} from the delivery reports,
    after checking every one succeeded."""
    producer = KafkaProducer({
        "bootstrap.servers": server.bootstrap, "compression.type": compression,
        "linger.ms": 5, "acks": "all",
    })
    placed: dict[tuple, int] = {}
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, message: object, i: int) -> None:
        if error is not None:
            failures.append(error)
        else:
            placed[(message.partition(), message.offset())] = i

    for i in range(RECORDS):
        fields = record(i)
        while True:
            try:
                producer.produce(topic, on_delivery=lambda e, m, i=i: delivered(e, m, i),
                                 **fields)
                break
            except BufferError:  # the local queue is full: serve delivery reports first
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(TIMEOUT_S) == 0
    assert failures == []
    assert len(placed) == RECORDS
    return placed


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_compressed_records_through_a_group_then_lag_zero(server, compression):
    topic, group = f"events-{compression}", f"audit-{compression}"
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(TIMEOUT_S)
    placed = produce_all(server, topic, compression)

    consumer = KafkaConsumer({
        "bootstrap.servers": server.bootstrap, "group.id": group,
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    seen = 0
    while seen < RECORDS:
        # consume() waits for as many as it is asked for
        messages = consumer.consume(min(RECORDS - seen, 10_000), timeout=TIMEOUT_S)
        assert messages, f"no records within {TIMEOUT_S} s after {seen}"
        for message in messages:
            assert message.error() is None, message.error()
            i = placed.pop((message.partition(), message.offset()))
            sent = record(i)
            assert message.key() == sent["key"]
            assert message.value() == sent["value"]
            assert message.headers() == sent["headers"]
            assert message.timestamp() == (TIMESTAMP_CREATE_TIME, sent["timestamp"])
        seen += len(messages)
    assert placed == {}  # every acknowledged record, each exactly once
    consumer.commit(asynchronous=False)

    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), TIMEOUT_S)[1]
            for p in range(PARTITIONS)}
    assert sum(ends.values()) == RECORDS
    committed = {tp.partition: tp.offset
                 for tp in consumer.committed(partitions, timeout=TIMEOUT_S)}
    assert committed == ends

    request = [ConsumerGroupTopicPartitions(group, partitions)]
    listed = admin.list_consumer_group_offsets(request)[group].result(TIMEOUT_S)
    lag = {tp.partition: ends[tp.partition] - tp.offset for tp in listed.topic_partitions}
    assert lag == dict.fromkeys(range(PARTITIONS), 0)

    described = admin.describe_consumer_groups([group])[group].result(TIMEOUT_S)
    assert described.state == ConsumerGroupState.STABLE
    assert not described.is_simple_consumer_group
    assert described.partition_assignor == "range"  # librdkafka's first choice
    [member] = described.members
    assert sorted(tp.partition for tp in member.assignment.topic_partitions) == [0, 1, 2]

    consumer.close()
    described = admin.describe_consumer_groups([group])[group].result(TIMEOUT_S)
    assert described.state == ConsumerGroupState.EMPTY
    listed = admin.list_consumer_group_offsets(request)[group].result(TIMEOUT_S)
    assert {tp.partition: tp.offset for tp in listed.topic_partitions} == ends


def test_full_librdkafka_batches_are_accepted(server):
    """librdkafka fills a batch up to batch.size, 1,000,000 wire bytes by default, below
    Kafka's max.message.bytes (1048588), which Kafka measures on the batch as sent."""
    producer = KafkaProducer({"bootstrap.servers": server.bootstrap, "linger.ms": 1000})
    failures: list[KafkaError] = []
    for _ in range(30_000):  # 100-byte values: several full batches within the linger
        producer.produce("full-batches", b"v" * 100,
                         on_delivery=lambda error, _: error and failures.append(error))
    assert producer.flush(TIMEOUT_S) == 0
    assert failures == []
