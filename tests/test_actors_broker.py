"""The broker actor: topic management, auto-creation, start-up from disk, offline partitions.

Real actors on a real data directory; a corrupt partition is made by damaging its file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from actors.broker import Broker
from actors.runtime import Scheduler, stop_actor
from eventstore.config import ServerConfig
from eventstore.errors import (
    InvalidConfig,
    InvalidPartitions,
    InvalidTopic,
    KafkaStorageError,
    TopicAlreadyExists,
    UnknownTopicOrPartition,
)
from eventstore.storage.catalog import partition_dir
from eventstore.storage.log_reader import LogReader
from eventstore.storage.segment import segment_name

TIMEOUT = 10.0


@contextmanager
def running_broker(data_dir: str, **config: object) -> Iterator:
    scheduler = Scheduler()
    ref = Broker.start(data_dir, ServerConfig.from_mapping(config), scheduler)
    try:
        yield ref.proxy()
    finally:
        stop_actor(ref)
        scheduler.close()


@pytest.fixture
def broker(data_dir: str) -> Iterator:
    with running_broker(data_dir) as proxy:
        yield proxy


def append(broker, topic: str, partition: int, *values: bytes) -> int:
    handle = broker.partition(topic, partition).get(timeout=TIMEOUT)
    return handle.append([(None, None, v, None) for v in values]).result(TIMEOUT).base_offset


def values(broker, topic: str, partition: int) -> list[bytes]:
    state = broker.partition(topic, partition).get(timeout=TIMEOUT).state
    reader = LogReader()
    try:
        return [r[3] for r in reader.read(state.view, state.view.log_start_offset, 10_000)]
    finally:
        reader.close()


def test_create_describe_list_and_delete_topics(broker, data_dir):
    created = broker.create_topic("orders", 3, {"retention.ms": 1000}).get()
    assert [p.partition for p in created.partitions] == [0, 1, 2]
    assert created.overrides == {"retention.ms": 1000}
    assert created.config["retention.ms"] == 1000
    assert created.config["segment.bytes"] == 1073741824  # Kafka's default
    append(broker, "orders", 1, b"a", b"b")
    described = broker.describe_topic("orders").get()
    p1 = described.partitions[1]
    assert (p1.log_start_offset, p1.log_end_offset, p1.segments, p1.offline) == (0, 2, 1, False)
    assert p1.bytes > 0
    broker.create_topic("audit").get()  # num.partitions: 1
    assert [t.name for t in broker.list_topics().get()] == ["audit", "orders"]
    assert [d.name for d in broker.describe_topics().get()] == ["audit", "orders"]
    broker.delete_topic("orders").get()
    assert not os.path.exists(partition_dir(data_dir, "orders", 1))
    with pytest.raises(UnknownTopicOrPartition):
        broker.describe_topic("orders").get()
    with pytest.raises(UnknownTopicOrPartition):
        broker.partition("orders", 0).get()


def test_bad_topic_requests_raise_typed_errors(broker, data_dir):
    broker.create_topic("t", 2).get()
    with pytest.raises(TopicAlreadyExists):
        broker.create_topic("t").get()
    with pytest.raises(InvalidTopic):
        broker.create_topic("no spaces").get()
    with pytest.raises(InvalidPartitions):
        broker.create_topic("u", 0).get()
    with pytest.raises(InvalidConfig, match="segment.bytes"):
        broker.create_topic("u", 1, {"segment.bytes": -1}).get()
    with pytest.raises(InvalidPartitions):
        broker.create_partitions("t", 1).get()
    with pytest.raises(UnknownTopicOrPartition):
        broker.partition("t", 2).get()
    assert not os.path.exists(partition_dir(data_dir, "u", 0))  # nothing half-made
    checked = broker.create_topic("v", 4, validate_only=True).get()
    assert len(checked.partitions) == 4
    assert "v" not in [t.name for t in broker.list_topics().get()]


def test_partitions_grow_and_configs_change_live(broker):
    broker.create_topic("t", 1).get()
    append(broker, "t", 0, b"kept")
    grown = broker.create_partitions("t", 3).get()
    assert len(grown.partitions) == 3
    assert append(broker, "t", 2, b"new") == 0
    assert values(broker, "t", 0) == [b"kept"]
    altered = broker.alter_topic_config("t", {"max.message.bytes": 50}).get()
    assert altered.overrides == {"max.message.bytes": 50}
    with pytest.raises(Exception, match="max.message.bytes"):
        append(broker, "t", 0, b"x" * 100)
    restored = broker.alter_topic_config("t", {"max.message.bytes": None}).get()
    assert restored.overrides == {}
    assert append(broker, "t", 0, b"x" * 100) == 1


def test_topics_are_created_on_first_use_when_allowed(data_dir):
    with running_broker(data_dir, **{"num.partitions": 4}) as broker:
        assert broker.ensure_topic("auto").get().partitions == 4
        with pytest.raises(UnknownTopicOrPartition):
            broker.ensure_topic("not-asked", allow_create=False).get()
    with running_broker(data_dir, **{"auto.create.topics.enable": False}) as broker:
        assert broker.ensure_topic("auto").get().partitions == 4  # it exists already
        with pytest.raises(UnknownTopicOrPartition):
            broker.ensure_topic("other").get()


def test_topics_and_records_survive_a_restart(data_dir):
    with running_broker(data_dir) as broker:
        broker.create_topic("t", 2, {"retention.ms": 5000}).get()
        append(broker, "t", 1, b"one", b"two")
    with running_broker(data_dir) as broker:
        described = broker.describe_topic("t").get()
        assert described.overrides == {"retention.ms": 5000}
        assert values(broker, "t", 1) == [b"one", b"two"]
        assert append(broker, "t", 1, b"three") == 2


def test_a_corrupt_partition_goes_offline_and_the_others_keep_serving(data_dir):
    with running_broker(data_dir) as broker:
        broker.create_topic("t", 3).get()
        for p in range(3):
            append(broker, "t", p, b"before")
    path = os.path.join(partition_dir(data_dir, "t", 1), segment_name(0))
    with open(path, "r+b") as fh:
        fh.write(b"this is no longer a SQLite database" * 4)
    with running_broker(data_dir) as broker:
        described = broker.describe_topic("t").get()
        offline = described.partitions[1]
        assert offline.offline and "CorruptLog" in offline.error
        assert [p.offline for p in described.partitions] == [False, True, False]
        with pytest.raises(KafkaStorageError, match="offline"):
            broker.partition("t", 1).get()
        handles = broker.partitions("t").get()
        assert handles[1].actor is None and handles[1].state.error is not None
        with pytest.raises(KafkaStorageError):
            handles[1].append([(None, None, b"x", None)]).result(TIMEOUT)
        for p in (0, 2):
            assert append(broker, "t", p, b"after") == 1
            assert values(broker, "t", p) == [b"before", b"after"]
