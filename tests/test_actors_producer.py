"""The embedded producer: partitioning, batching, futures, back-pressure and retries.

A real actor system on a real data directory. A "slow disk" is a partition log whose
appends wait on a gate the test opens; waits are on futures and events, never sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from support import wait_until

from actors.system import ActorSystem
from eventstore.errors import (
    IllegalState,
    InvalidConfig,
    KafkaTimeoutError,
    RecordTooLarge,
    UnknownTopicOrPartition,
)
from eventstore.storage.log import PartitionLog
from eventstore.storage.log_reader import LogReader
from eventstore.storage.partitioner import murmur2, partition_for_key
from eventstore.storage.segment import MAX_RUNS

TIMEOUT = 10.0


@pytest.fixture
def system(data_dir: str) -> Iterator[ActorSystem]:
    system = ActorSystem(data_dir).start()
    yield system
    system.stop()


def stored(system: ActorSystem, topic: str, partition: int) -> list[tuple]:
    state = system.broker.partition(topic, partition).get(timeout=TIMEOUT).state
    reader = LogReader()
    try:
        return reader.read(state.view, state.view.log_start_offset, 1_000_000)
    finally:
        reader.close()


@pytest.fixture
def slow_disk(monkeypatch) -> threading.Event:
    """Appends to topic ``slow`` wait until the returned gate is set."""
    gate = threading.Event()
    original = PartitionLog.append

    def append(self, rows, producer=None, sent_bytes=None, **kwargs):
        if "slow-" in self.directory:
            gate.wait(TIMEOUT)
        return original(self, rows, producer, sent_bytes, **kwargs)

    monkeypatch.setattr(PartitionLog, "append", append)
    yield gate
    gate.set()


@pytest.mark.parametrize(("key", "expected"), [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_matches_kafkas_published_vectors(key, expected):
    assert murmur2(key) == expected  # Kafka's UtilsTest.testMurmur2


def test_keyed_records_land_where_kafkas_default_partitioner_puts_them(system):
    system.broker.create_topic("t", 5).get()
    producer = system.producer(linger_ms=5)
    keys = [b"user-%d" % i for i in range(50)]
    futures = {key: producer.send("t", b"v", key=key) for key in keys}
    for key, future in futures.items():
        assert future.get(TIMEOUT).partition == partition_for_key(key, 5)
    # the same key always goes to the same partition, in order
    again = [producer.send("t", b"%d" % i, key=b"user-7").get(TIMEOUT) for i in range(3)]
    assert {m.partition for m in again} == {partition_for_key(b"user-7", 5)}
    assert [m.offset for m in again] == sorted(m.offset for m in again)


def test_null_keys_stick_to_one_partition_per_batch(system):
    system.broker.create_topic("t", 4).get()
    producer = system.producer(batch_size=1000, linger_ms=1000)
    futures = [producer.send("t", b"x" * 80) for _ in range(400)]
    producer.flush(TIMEOUT)
    partitions = [f.get(TIMEOUT).partition for f in futures]
    runs = [p for i, p in enumerate(partitions) if i == 0 or p != partitions[i - 1]]
    assert len(runs) >= 30  # about ten 100-byte records per 1000-byte batch
    assert all(a != b for a, b in zip(runs, runs[1:], strict=False))  # switches each batch
    assert set(partitions) == {0, 1, 2, 3}


def test_send_batches_records_and_resolves_each_future(system):
    system.broker.create_topic("t", 1).get()
    producer = system.producer(linger_ms=20, batch_size=64 * 1024)
    futures = [producer.send("t", b"%d" % i, headers=[("n", b"%d" % i)], timestamp_ms=1000 + i)
               for i in range(1000)]
    metas = [f.get(TIMEOUT) for f in futures]
    assert [m.offset for m in metas] == list(range(1000))
    assert [m.timestamp for m in metas] == [1000 + i for i in range(1000)]
    assert all(f.succeeded() and f.is_done for f in futures)
    state = system.broker.partition("t", 0).get().state
    assert state.stats.appends < 100  # whole batches, not one append per record
    rows = stored(system, "t", 0)
    assert rows[5][1:4] == (1005, None, b"5")
    assert rows[5][4] is not None  # headers kept


def hold_the_actor(producer) -> threading.Event:
    """Keep the producer actor's thread busy (in a callback) until the returned gate is set,
    so that batches closing meanwhile wait for it together."""
    gate, busy = threading.Event(), threading.Event()

    def wait_at_the_gate(_metadata) -> None:
        busy.set()
        gate.wait(TIMEOUT)

    producer.send("t", b"first").add_callback(wait_at_the_gate)
    assert busy.wait(TIMEOUT)
    return gate


def test_batches_that_close_while_the_actor_is_busy_leave_as_one_append(system):
    system.broker.create_topic("t", 1).get()
    producer = system.producer(batch_size=1000, linger_ms=0)
    gate = hold_the_actor(producer)
    state = system.broker.partition("t", 0).get().state
    appends = state.stats.appends
    futures = [producer.send("t", b"%080d" % i, timestamp_ms=1000)  # ten batches of ten
               for i in range(100)]
    gate.set()
    metas = [f.get(TIMEOUT) for f in futures]
    assert [m.offset for m in metas] == list(range(1, 101)), "each record its own offset"
    # nine batches closed full and the tenth by its linger (0) once the actor was free
    assert state.stats.appends - appends == 1
    assert [row[3] for row in stored(system, "t", 0)[1:]] == [b"%080d" % i for i in range(100)]


def test_batches_sent_together_span_fewer_milliseconds_than_a_segment_inserts_in_runs(
        system):
    """A segment inserts an append from arrays, one run of equal timestamps at a time, only
    up to MAX_RUNS runs: batches 5 ms apart leave in twos."""
    system.broker.create_topic("t", 1).get()
    producer = system.producer(batch_size=1000, linger_ms=0)
    gate = hold_the_actor(producer)
    state = system.broker.partition("t", 0).get().state
    appends = state.stats.appends
    futures = [producer.send("t", b"%080d" % i, timestamp_ms=1000 + i // 10 * 5)
               for i in range(100)]  # ten batches of ten, 5 ms apart
    gate.set()
    assert [f.get(TIMEOUT).offset for f in futures] == list(range(1, 101))
    assert MAX_RUNS == 8 and state.stats.appends - appends == 5


def test_batches_sent_together_are_each_held_to_max_message_bytes(system):
    system.broker.create_topic("t", 1, {"max.message.bytes": 2500}).get()
    producer = system.producer(batch_size=1000, linger_ms=0)
    gate = hold_the_actor(producer)
    before = [producer.send("t", b"b" * 80) for _ in range(30)]  # 3,000 bytes in 3 batches
    large = producer.send("t", b"L" * 2400)  # alone over batch_size; fits the topic
    too_large = producer.send("t", b"T" * 2600)  # the topic refuses it
    after = [producer.send("t", b"a" * 80) for _ in range(30)]
    gate.set()
    with pytest.raises(RecordTooLarge):
        too_large.get(TIMEOUT)
    offsets = [f.get(TIMEOUT).offset for f in [*before, large, *after]]
    assert offsets == list(range(1, 62)), "the refused record alone failed, nothing moved"
    assert [len(row[3]) for row in stored(system, "t", 0)[1:]] == [80] * 30 + [2400] + [80] * 30


def test_a_lone_record_leaves_after_linger_ms(system):
    producer = system.producer(linger_ms=50)
    started = time.monotonic()
    meta = producer.send("auto-created", b"alone").get(TIMEOUT)
    assert time.monotonic() - started >= 0.045
    assert (meta.topic, meta.partition, meta.offset) == ("auto-created", 0, 0)


def test_a_batch_opened_behind_a_full_one_still_leaves_after_linger_ms(system):
    """The linger timer set for the full batch is set again for the one behind it."""
    system.broker.create_topic("t", 1).get()
    producer = system.producer(batch_size=1000, linger_ms=100)
    full = [producer.send("t", b"x" * 80) for _ in range(10)]  # 1,000 bytes: full
    started = time.monotonic()
    lone = producer.send("t", b"lone")  # closes the full batch, opens the next
    assert [f.get(TIMEOUT).offset for f in full] == list(range(10))
    assert lone.get(TIMEOUT).offset == 10
    assert time.monotonic() - started >= 0.095
    again = producer.send("t", b"later")  # no timer was left set: this one sets its own
    assert again.get(TIMEOUT).offset == 11


def test_callbacks_and_failed_futures(system):
    system.broker.create_topic("t", 2).get()
    producer = system.producer(max_request_size=1000)
    done = threading.Event()
    results = []

    def on_success(tag, metadata):
        results.append((tag, metadata.offset))
        done.set()

    producer.send("t", b"ok", partition=1).add_callback(on_success, "first")
    assert done.wait(TIMEOUT)
    assert results == [("first", 0)]
    too_large = producer.send("t", b"x" * 2000)
    assert too_large.failed()
    with pytest.raises(RecordTooLarge):
        too_large.get(0)
    errors = []
    too_large.add_errback(errors.append)
    assert isinstance(errors[0], RecordTooLarge)
    with pytest.raises(UnknownTopicOrPartition):
        producer.send("t", b"x", partition=7).get(TIMEOUT)


def test_serializers_apply_before_sending(system):
    producer = system.producer(value_serializer=lambda v: v.encode(),
                               key_serializer=lambda k: k.encode())
    meta = producer.send("s", "value", key="key").get(TIMEOUT)
    assert stored(system, "s", meta.partition)[0][2:4] == (b"key", b"value")
    with pytest.raises(InvalidConfig, match="acks_typo"):
        system.producer(acks_typo=1)


def test_a_full_buffer_blocks_send_then_times_out_and_memory_stays_bounded(system, slow_disk):
    system.broker.create_topic("slow", 1).get()
    producer = system.producer(buffer_memory=10_000, batch_size=2_000, max_block_ms=200,
                               linger_ms=0)
    sent = []
    blocked_for = None
    while blocked_for is None:
        started = time.monotonic()
        try:
            sent.append(producer.send("slow", b"x" * 100))
        except KafkaTimeoutError:
            blocked_for = time.monotonic() - started
        assert producer.buffered_bytes <= 10_000
        assert len(sent) < 1000, "send never blocked"
    assert blocked_for >= 0.19
    assert producer.buffered_bytes <= 10_000
    slow_disk.set()  # the disk catches up: everything sent before the timeout lands
    producer.flush(TIMEOUT)
    assert [f.get(TIMEOUT).offset for f in sent] == list(range(len(sent)))
    assert producer.buffered_bytes == 0


def test_a_send_blocked_on_a_full_buffer_goes_on_once_appends_free_memory(system, slow_disk):
    system.broker.create_topic("slow", 1).get()
    producer = system.producer(buffer_memory=10_000, batch_size=2_000, linger_ms=0,
                               max_block_ms=int(TIMEOUT * 2000))
    sent = []
    blocked = threading.Thread(target=lambda: sent.extend(
        producer.send("slow", b"x" * 100) for _ in range(200)))  # 24 KB: past the buffer
    blocked.start()
    wait_until(lambda: producer.buffered_bytes == 10_000, TIMEOUT, "a full buffer")
    assert blocked.is_alive()
    slow_disk.set()  # answered appends free memory and wake the blocked send
    blocked.join(TIMEOUT)
    assert not blocked.is_alive()
    assert [f.get(TIMEOUT).offset for f in sent] == list(range(200))


def test_flush_times_out_and_close_refuses_later_sends(system, slow_disk):
    system.broker.create_topic("slow", 1).get()
    producer = system.producer()
    future = producer.send("slow", b"waiting")
    with pytest.raises(KafkaTimeoutError):
        producer.flush(timeout=0.1)
    slow_disk.set()
    producer.close(TIMEOUT)
    assert future.get(TIMEOUT).offset == 0
    with pytest.raises(IllegalState):
        producer.send("slow", b"too late")


def test_a_failed_partition_actor_is_retried_and_no_record_is_lost(system, monkeypatch):
    system.broker.create_topic("t", 1).get()
    producer = system.producer(linger_ms=1, retry_backoff_ms=10)
    original = PartitionLog.append
    failures = []

    def flaky(self, rows, producer=None, sent_bytes=None, **kwargs):
        if len(failures) < 2:
            failures.append(len(rows))
            raise OSError("transient I/O error")
        return original(self, rows, producer, sent_bytes, **kwargs)

    monkeypatch.setattr(PartitionLog, "append", flaky)
    futures = [producer.send("t", b"%d" % i) for i in range(200)]
    metas = [f.get(TIMEOUT) for f in futures]
    assert len(failures) == 2
    assert [m.offset for m in metas] == list(range(200))
    assert [row[3] for row in stored(system, "t", 0)] == [b"%d" % i for i in range(200)]
