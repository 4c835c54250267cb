"""Old producer timestamps and retention: KIP-937's message.timestamp.before.max.ms and
message.timestamp.after.max.ms refuse records a CreateTime topic's retention would
otherwise delete at once (or keep for ever), and every segment retention deletes is logged.

Over the wire with confluent-kafka against ``eventstore serve``; the log lines from a real
partition log on real segment files, with a manual clock."""

from __future__ import annotations

import logging
import os
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka import KafkaError as ClientError
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from support import T0, KafkaConnection, ManualClock, ServerProcess

from eventstore.config import LONG_MAX, TopicConfig
from eventstore.errors import InvalidTimestamp
from eventstore.kafka.codec.recordbatch import LogRecord, encode_batch
from eventstore.storage.log import PartitionLog

TIMEOUT_S = 10
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
INVALID_TIMESTAMP = 32


def now_ms() -> int:
    return int(time.time() * 1000)


def produce(server: ServerProcess, topic: str, timestamp: int) -> ClientError | None:
    """One record stamped ``timestamp`` through confluent-kafka: its delivery error."""
    reports: list[ClientError | None] = []
    producer = Producer({"bootstrap.servers": server.bootstrap, "retries": 0})
    producer.produce(topic, b"payload", timestamp=timestamp,
                     on_delivery=lambda error, _: reports.append(error))
    assert producer.flush(TIMEOUT_S) == 0
    return reports[0]


def log_end_offset(server: ServerProcess, topic: str) -> int:
    """Partition 0's log-end-offset, asked with ListOffsets."""
    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "watermarks"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
    finally:
        consumer.close()
    return high


def create(server: ServerProcess, topic: str, config: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, config=config)]).values():
        future.result(TIMEOUT_S)


def test_a_record_older_than_before_max_ms_is_refused_over_the_wire(server) -> None:
    create(server, "bounded", {"message.timestamp.before.max.ms": str(HOUR_MS),
                               "retention.ms": str(HOUR_MS)})

    refused = produce(server, "bounded", now_ms() - 2 * DAY_MS)
    assert refused is not None and refused.code() == ClientError.INVALID_TIMESTAMP
    assert log_end_offset(server, "bounded") == 0, "nothing of the refused batch is written"

    assert produce(server, "bounded", now_ms() - HOUR_MS // 2) is None  # within the bound
    assert produce(server, "bounded", now_ms() + 2 * DAY_MS) is None  # after: no bound
    assert log_end_offset(server, "bounded") == 2


def test_the_refusal_carries_kafkas_message_and_after_max_ms_bounds_the_future(
        server) -> None:
    create(server, "future", {"message.timestamp.after.max.ms": str(HOUR_MS)})
    stamp = now_ms() + 2 * DAY_MS
    with KafkaConnection(server.address) as conn:
        answer = conn.produce("future", 0, encode_batch(0, [LogRecord(0, stamp, None, b"x")]))
    assert answer.error_code == INVALID_TIMESTAMP
    assert answer.error_message.startswith(
        f"InvalidTimestamp: Timestamp {stamp} of message with offset 0 is out of range."
        " The timestamp should be within [")
    assert produce(server, "future", now_ms() - 2 * DAY_MS) is None  # before: no bound
    assert log_end_offset(server, "future") == 1


def test_the_keys_are_kafkas_with_its_defaults(server) -> None:
    create(server, "described", {})
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "described")
    described = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert described["message.timestamp.before.max.ms"].value == str(LONG_MAX)
    assert described["message.timestamp.after.max.ms"].value == str(LONG_MAX)


def open_log(directory: str, clock: ManualClock, **config: object) -> PartitionLog:
    return PartitionLog.open(os.path.join(directory, "clicks-0"),
                             TopicConfig.from_mapping(config), clock=clock, create=True)


def test_log_append_time_topics_check_no_timestamp(tmp_path) -> None:
    """LogAppendTime stamps the append itself: the producer's timestamp is not checked."""
    log = open_log(str(tmp_path), ManualClock(), **{
        "message.timestamp.type": "LogAppendTime", "message.timestamp.before.max.ms": 1000})
    log.append([(T0 - DAY_MS, None, b"x", None)])
    assert log.log_end_offset == 1


def test_the_first_record_out_of_bounds_refuses_the_whole_batch(tmp_path) -> None:
    log = open_log(str(tmp_path), ManualClock(), **{"message.timestamp.before.max.ms": 1000})
    with pytest.raises(InvalidTimestamp, match=f"Timestamp {T0 - 1001} of message with offset 1"
                       rf" is out of range. The timestamp should be within \[{T0 - 1000}, "):
        log.append([(T0, None, b"a", None), (T0 - 1001, None, b"b", None)])
    log.append([(T0 - 1000, None, b"c", None), (None, None, b"d", None)])  # at the bound: in
    assert [row[3] for row in log.read(0, 10)] == [b"c", b"d"]


def deletions(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [record.fields for record in caplog.records
            if record.getMessage() == "retention deleted a segment"]


def test_each_retention_deletion_is_logged_with_its_reason(tmp_path, caplog) -> None:
    clock = ManualClock()
    log = open_log(str(tmp_path), clock, **{"segment.bytes": 500, "retention.ms": 10_000,
                                             "retention.bytes": 720})
    for tag in range(8):  # two 2-record batches (240 bytes each) a segment
        log.append([(None, None, bytes([tag]) * 100, None)] * 2)
        clock.advance(1000)
    assert [(s.base_offset, s.next_offset) for s in log.segments()] == [
        (0, 4), (4, 8), (8, 12), (12, 16)]
    clock.advance(4000)  # retention.ms passed the first segment's newest record only
    caplog.set_level(logging.INFO, logger="eventstore.storage.log")

    assert [s.base_offset for s in log.apply_retention()] == [0, 4]

    assert deletions(caplog) == [
        {"partition": "clicks-0", "segment": "00000000000000000000.db", "offsets": "0-3",
         "reason": "retention.ms", "retention_ms": 10_000, "newest_timestamp": T0 + 1000},
        {"partition": "clicks-0", "segment": "00000000000000000004.db", "offsets": "4-7",
         "reason": "retention.bytes", "retention_bytes": 720,
         "partition_bytes_before": 1920},
    ]
    caplog.clear()
    assert log.apply_retention() == []
    assert deletions(caplog) == []
