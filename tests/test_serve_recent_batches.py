"""Fetches answered from the batches producers sent (eventstore/kafka/batchcache.py).

The cache is checked on its own (what it keeps, returns and forgets) and through a real
server: a consumer must read exactly the same records whether the server answers from the
produced batches or, restarted, from the segments.
"""

from __future__ import annotations

import gc
import struct

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from support import KafkaConnection, ServerProcess, create_topic

from eventstore.kafka.batchcache import RecentBatches
from eventstore.kafka.codec.recordbatch import decode_batches, encode_batch
from eventstore.storage.records import LogRecord

T0 = 1_700_000_000_000


class Partition:
    """Stands in for a PartitionState: the cache only needs a weakly referable key."""


def batch(base: int, count: int, tag: bytes = b"v") -> bytes:
    """A v2 batch as a producer sends it: offsets from 0, whatever the log will assign."""
    return encode_batch(0, [LogRecord(i, T0 + i, None, tag * 10) for i in range(count)])


def offsets(data: bytes) -> list[int]:
    """The absolute offsets of every record in ``data`` (whole batches)."""
    found = []
    for decoded in decode_batches(data):
        found += range(decoded.base_offset, decoded.base_offset + len(decoded.rows))
    return found


def test_a_kept_batch_carries_the_offsets_the_log_gave_it() -> None:
    cache, partition = RecentBatches(), Partition()
    cache.add(partition, 100, 104, batch(100, 5))
    read = cache.read(partition, 100, 1 << 20)
    assert read is not None and (read.first, read.last) == (100, 104)
    assert offsets(read.records) == list(range(100, 105))
    assert struct.unpack_from(">i", read.records, 12) == (-1,)  # no leader epoch


def test_reads_follow_consecutive_batches_within_the_byte_limit() -> None:
    cache, partition = RecentBatches(), Partition()
    for base in (0, 5, 10):
        cache.add(partition, base, base + 4, batch(base, 5))
    one = len(batch(0, 5))
    assert cache.read(partition, 0, 3 * one).last == 14
    assert cache.read(partition, 0, 2 * one).last == 9
    assert cache.read(partition, 0, 1).last == 4  # the first batch always counts


def test_a_read_inside_a_batch_starts_with_that_batch() -> None:
    cache, partition = RecentBatches(), Partition()
    cache.add(partition, 10, 19, batch(10, 10))
    read = cache.read(partition, 13, 1 << 20)
    assert (read.first, read.last) == (10, 19)


def test_offsets_not_kept_and_gaps_are_misses() -> None:
    cache, partition = RecentBatches(), Partition()
    cache.add(partition, 10, 14, batch(10, 5))
    cache.add(partition, 20, 24, batch(20, 5))  # 15..19 went to the log some other way
    assert cache.read(partition, 9, 1 << 20) is None
    assert cache.read(partition, 15, 1 << 20) is None
    assert cache.read(partition, 10, 1 << 20).last == 14  # stops at the gap
    assert cache.read(Partition(), 10, 1 << 20) is None


def test_batches_in_a_compacted_partitions_cleaned_part_are_misses() -> None:
    cache, partition = RecentBatches(), Partition()
    for base in (0, 5, 10):
        cache.add(partition, base, base + 4, batch(base, 5))
    assert cache.read(partition, 3, 1 << 20, since=5) is None  # the cleaner rewrote it
    assert cache.read(partition, 5, 1 << 20, since=5).last == 14


def test_the_oldest_batches_go_first_beyond_max_bytes() -> None:
    size = len(batch(0, 5))
    cache, partition = RecentBatches(max_bytes=2 * size), Partition()
    for base in (0, 5, 10):
        cache.add(partition, base, base + 4, batch(base, 5))
    assert cache.bytes == 2 * size
    assert cache.read(partition, 0, 1 << 20) is None
    assert cache.read(partition, 5, 1 << 20).last == 14


def test_a_partition_gone_takes_its_batches_with_it() -> None:
    cache, partition = RecentBatches(), Partition()
    cache.add(partition, 0, 4, batch(0, 5))
    del partition
    gc.collect()
    assert len(cache._partitions) == 0


def test_a_batch_whose_offset_deltas_are_out_of_order_is_flagged() -> None:
    records = [LogRecord(n, T0, None, b"v") for n in (0, 2, 2)]
    (decoded,) = decode_batches(encode_batch(0, records))
    assert not decoded.offsets_in_order
    (decoded,) = decode_batches(batch(0, 3))
    assert decoded.offsets_in_order


# -- through a server ------------------------------------------------------------------------

SENT = [
    (b"k1", b"plain", [("h", b"\x00\xff")], T0),
    (None, b"no key", [], T0 + 5),
    (b"", b"", [("a", b""), ("a", b"1")], T0 - 7),
    (b"k2", None, [], T0 + 1),  # a tombstone
]


def read_all(server: ServerProcess, topic: str, count: int) -> list[tuple]:
    consumer = KafkaConsumer(bootstrap_servers=server.bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=10_000)
    consumer.assign([TopicPartition(topic, 0)])
    got = []
    for message in consumer:
        got.append((message.offset, message.key, message.value, list(message.headers),
                    message.timestamp, message.timestamp_type))
        if len(got) == count:
            break
    consumer.close()
    return got


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_records_read_the_same_from_produced_batches_and_from_segments(
    serve, data_dir: str, compression: str | None
) -> None:
    server = serve(data_dir)
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, acks="all",
                             compression_type=compression, linger_ms=50)
    for round_ in range(3):  # several batches, each a run of the same records
        for key, value, headers, stamp in SENT:
            producer.send("t", value, key=key, headers=headers, timestamp_ms=stamp + round_,
                          partition=0)
        producer.flush()
    producer.close()
    expected = [(n, key, value, headers, stamp + n // len(SENT), 0)
                for n, (key, value, headers, stamp) in enumerate(SENT * 3)]
    hot = read_all(server, "t", len(expected))
    server.restart()
    cold = read_all(server, "t", len(expected))
    assert hot == cold == expected


def test_a_log_append_time_topic_shows_the_append_time_right_after_producing(
    server: ServerProcess
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    admin.create_topics([NewTopic("stamped", 1, 1,
                                  topic_configs={"message.timestamp.type": "LogAppendTime"})])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, acks="all")
    meta = producer.send("stamped", b"x", timestamp_ms=1000).get(timeout=10)
    producer.close()
    [(offset, _, value, _, stamp, stamp_type)] = read_all(server, "stamped", 1)
    assert (offset, value, stamp_type) == (meta.offset, b"x", 1)
    assert stamp == meta.timestamp != 1000


def test_a_waiting_fetch_is_answered_with_the_batch_its_producer_sent(server) -> None:
    """A caught-up consumer's long-poll Fetch, waiting when a record is produced, gets the
    producer's own batch (the cache), not the rows read back from the segment: the
    partition actor keeps the batch (the produce handler's ``written``) before it
    publishes the append that wakes the fetch. The batch is gzip and the topic's
    compression.type is producer, so a read of the segment would answer it uncompressed
    (codec 0), as it did for most rounds when the batch was kept after the answer."""
    rounds = 20
    with KafkaConnection(server.address) as consumer, KafkaConnection(server.address) as producer:
        create_topic(producer, "t", 1)
        codecs = []
        for offset in range(rounds):
            correlation_id, frame = consumer.encode(
                1, 11, replica_id=-1, max_wait=10000, min_bytes=1, max_bytes=1 << 20,
                isolation_level=0, session_id=0, session_epoch=-1, rack_id="",
                forgotten_topics_data=[], topics=[{"topic": "t", "partitions": [{
                    "partition": 0, "current_leader_epoch": -1, "fetch_offset": offset,
                    "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}])
            consumer.send_frame(frame)
            sent = encode_batch(0, [LogRecord(0, T0 + offset, None, b"%d" % offset)],
                                compression_type="gzip")
            assert int(producer.produce("t", 0, sent).base_offset) == offset
            answer = consumer.read_response(1, 11, correlation_id)
            records = answer.responses[0].partitions[0].records
            assert offsets(records) == [offset]
            [decoded] = decode_batches(records)
            assert decoded.rows[0][2] == b"%d" % offset
            codecs.append(struct.unpack_from(">h", records, 21)[0] & 7)
    assert codecs == [1] * rounds
