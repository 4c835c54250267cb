"""The embedded API: ``EventStore.open`` as Kafka users would drive it.

Whole stores on real data directories: the issue's example, several producers and
several consumer groups at once, group descriptions, and a close that leaves no thread
and no open file behind.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict

import pytest
from support import poll_until

from eventstore import ConsumerRecord, EventStore, RecordMetadata, TopicPartition
from eventstore.errors import (
    DataDirLocked,
    InvalidConfig,
    InvalidRequest,
    UnknownTopicOrPartition,
)

TIMEOUT = 20.0
FAST_GROUPS = {"group.initial.rebalance.delay.ms": 100, "group.min.session.timeout.ms": 100}
FAST_MEMBER = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 100,
               "auto_offset_reset": "earliest"}


def open_files_under(directory: str) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the descriptor listdir itself used
            continue
        if target.startswith(os.path.realpath(directory)):
            found.append(target)
    return found


def test_the_issue_example(data_dir):
    with EventStore.open(data_dir, config={"segment.bytes": 1 << 20}) as store:
        store.create_topic("clicks", partitions=3, config={"retention.ms": 3_600_000})
        producer = store.producer(linger_ms=5)
        meta = producer.send("clicks", b'{"page": "/"}', key=b"user-1").get(timeout=5)
        assert isinstance(meta, RecordMetadata)
        assert meta.topic == "clicks" and meta.offset == 0
        consumer = store.consumer("clicks", group_id="analytics", auto_offset_reset="earliest")
        (record,) = poll_until(lambda: consumer.poll(timeout_ms=1000), 1, TIMEOUT, "the click")
        assert isinstance(record, ConsumerRecord)
        assert (record.topic, record.partition, record.offset) == ("clicks", meta.partition, 0)
        assert (record.key, record.value, record.headers) == (b"user-1", b'{"page": "/"}', ())
        assert record.timestamp == meta.timestamp
        consumer.commit()
        assert consumer.committed(TopicPartition("clicks", meta.partition)) == 1


def test_topic_administration(data_dir):
    with EventStore.open(data_dir, config={"num.partitions": 2, "retention.ms": 1000}) as store:
        assert store.create_topic("a").config["retention.ms"] == 1000  # server-level default
        store.create_topic("b", 1, {"retention.ms": 5})
        assert store.list_topics() == ["a", "b"]
        assert len(store.create_partitions("a", 4).partitions) == 4
        assert store.alter_topic_config("b", {"retention.ms": None}).config["retention.ms"] == 1000
        assert [d.name for d in store.describe_topics()] == ["a", "b"]
        store.delete_topic("b")
        with pytest.raises(UnknownTopicOrPartition):
            store.describe_topic("b")
    with pytest.raises(InvalidConfig, match="no.such.key"):
        EventStore.open(data_dir, config={"no.such.key": 1})


def test_a_data_directory_has_one_store_at_a_time(data_dir):
    with EventStore.open(data_dir), pytest.raises(DataDirLocked, match="pid"):
        EventStore.open(data_dir)
    EventStore.open(data_dir).close()  # released on close


def test_several_producers_and_several_groups_at_once(data_dir):
    """Every group reads every record, in each partition's order, skipping none."""
    producers_count, per_producer, partitions = 3, 400, 4
    groups = {"one": 1, "two": 2, "three": 3}
    with EventStore.open(data_dir, config=FAST_GROUPS) as store:
        store.create_topic("events", partitions)
        read: dict[str, list[ConsumerRecord]] = defaultdict(list)
        lock = threading.Condition()
        stop = threading.Event()
        failures: list[BaseException] = []

        def member(group: str) -> None:
            consumer = store.consumer("events", group_id=group, **FAST_MEMBER)
            try:
                while not stop.is_set():
                    batch = consumer.poll(timeout_ms=50)
                    if batch:
                        consumer.commit()
                    with lock:
                        read[group] += batch
                        lock.notify_all()
            except BaseException as exc:
                failures.append(exc)
            finally:
                consumer.close()

        def producer(number: int) -> None:
            with store.producer(linger_ms=1) as p:
                for seq in range(per_producer):
                    p.send("events", b"%d:%d" % (number, seq), key=b"p%d-%d" % (number, seq % 7))

        members = [threading.Thread(target=member, args=(g,)) for g, n in groups.items()
                   for _ in range(n)]
        writers = [threading.Thread(target=producer, args=(n,)) for n in range(producers_count)]
        for thread in members + writers:
            thread.start()
        for thread in writers:
            thread.join(TIMEOUT)
        total = producers_count * per_producer
        with lock:
            assert lock.wait_for(lambda: failures or all(
                len({(r.partition, r.offset) for r in read[g]}) == total for g in groups),
                TIMEOUT), {g: len(read[g]) for g in groups}
        stop.set()
        for thread in members:
            thread.join(TIMEOUT)
        assert not failures, failures
        ends = {p.partition: p.log_end_offset for p in store.describe_topic("events").partitions}
        assert sum(ends.values()) == total
        for group in groups:
            by_partition: dict[int, list[ConsumerRecord]] = defaultdict(list)
            for record in read[group]:
                by_partition[record.partition].append(record)
            for partition, records in by_partition.items():
                offsets = sorted({r.offset for r in records})
                assert offsets == list(range(ends[partition])), f"{group} skipped a record"
                # each producer's records keep their order within a partition
                last_seq: dict[bytes, int] = {}
                for r in sorted({r.offset: r for r in records}.values(), key=lambda r: r.offset):
                    number, seq = r.value.split(b":")
                    assert int(seq) > last_seq.get(number, -1)
                    last_seq[number] = int(seq)
            described = store.describe_group(group)
            assert sum(p.lag for p in described.partitions) == 0


def test_describe_group_reports_committed_offsets_and_lag(data_dir):
    with EventStore.open(data_dir, config=FAST_GROUPS) as store:
        store.create_topic("t", 2)
        producer = store.producer()
        for i in range(10):
            producer.send("t", b"%d" % i, partition=i % 2)
        producer.flush(TIMEOUT)
        consumer = store.consumer(group_id="g", enable_auto_commit=False, **FAST_MEMBER)
        consumer.assign([TopicPartition("t", 0)])
        consumer.poll(timeout_ms=1000, max_records=3)
        consumer.commit()
        described = store.describe_group("g")
        (p0,) = described.partitions
        assert (p0.committed_offset, p0.log_end_offset, p0.lag) == (3, 5, 2)
        assert [g.group_id for g in store.list_groups()] == ["g"]
        consumer.close()
        unknown = store.describe_group("nobody")
        assert unknown.state == "Dead" and unknown.partitions == ()


def test_closing_the_store_leaves_no_thread_and_no_open_file(data_dir):
    before = set(threading.enumerate())
    store = EventStore.open(data_dir, config=FAST_GROUPS)
    store.create_topic("t", 3, {"segment.bytes": 2000})
    producer = store.producer(linger_ms=50)
    futures = [producer.send("t", b"x" * 100, key=b"%d" % i) for i in range(200)]
    consumer = store.consumer("t", group_id="g", **FAST_MEMBER)
    got = poll_until(lambda: consumer.poll(timeout_ms=200), 100, TIMEOUT, "100 records")
    lingering = producer.send("t", b"sent just before close")
    assert open_files_under(data_dir)
    store.close()  # the producer and consumer are still open: close flushes and commits
    assert lingering.get(0).offset >= 0
    assert all(f.succeeded() for f in futures)
    left = [t.name for t in set(threading.enumerate()) - before]
    assert left == [], f"threads left running: {left}"
    assert open_files_under(data_dir) == []
    with EventStore.open(data_dir) as reopened:
        committed = reopened.describe_group("g").partitions
        assert sum(p.committed_offset for p in committed) == len(got)  # auto-commit on close


def test_sql_answers_from_the_log_and_refuses_writes(data_dir):
    store = EventStore.open(data_dir, config=FAST_GROUPS)
    try:
        store.create_topic("clicks", 2, {"segment.bytes": 2000})
        producer = store.producer(linger_ms=1)
        for i in range(40):
            user = b"user-%d" % (i % 4)
            producer.send("clicks", b'{"page": "/p%d", "n": %d}' % (i % 3, i), key=user)
        producer.flush(TIMEOUT)
        per_user = store.sql(
            "SELECT CAST(key AS TEXT), count(*) FROM records WHERE topic = ?"
            " GROUP BY key ORDER BY key", ("clicks",))
        assert per_user == [(f"user-{u}", 10) for u in range(4)]
        (last,) = store.sql(
            "SELECT json_extract(value, '$.n') FROM records WHERE key = CAST(? AS BLOB)"
            " ORDER BY timestamp DESC, offset DESC LIMIT 1", ("user-3",))
        assert last == (39,)
        consumer = store.consumer(group_id="readers", enable_auto_commit=False)
        consumer.assign([TopicPartition("clicks", 0)])
        consumer.seek_to_beginning()
        read = consumer.poll(timeout_ms=1000, max_records=5)
        assert len(read) == 5
        consumer.commit()
        ends = {p.partition: p.log_end_offset for p in store.describe_topic("clicks").partitions}
        lag = store.sql("SELECT partition, lag FROM consumer_groups WHERE group_id = 'readers'")
        assert lag == [(0, ends[0] - len(read))]
        with pytest.raises(InvalidRequest):
            store.sql("DELETE FROM records")
    finally:
        store.close()
    assert open_files_under(data_dir) == []
