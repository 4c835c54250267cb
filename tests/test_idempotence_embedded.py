"""The embedded producer is idempotent: its batches are stamped, its retries are recognised.

A real store (``EventStore.open``) on a real data directory. A lost acknowledgement is a
partition log whose append commits the batch and then fails, as a disk error right after
the commit would: the partition actor goes offline, the broker reopens the log from disk,
and the producer retries the same stamped batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_idempotence_storage import segment_rows

from eventstore.client import EventStore
from eventstore.errors import RecordTooLarge
from eventstore.storage.log import PartitionLog

TIMEOUT = 10.0


@pytest.fixture
def store(data_dir: str) -> Iterator[EventStore]:
    with EventStore.open(data_dir) as store:
        yield store


def stored_batches(store: EventStore, topic: str, partition: int) -> list[tuple]:
    """(producer_id, producer_epoch, base_sequence, base_offset) of each stored batch."""
    return segment_rows(store.data_dir, topic, partition, "SELECT producer_id,"
                        " producer_epoch, base_sequence, base_offset FROM batches")


def stored_values(store: EventStore, topic: str, partition: int) -> list[bytes]:
    return [v for (v,) in segment_rows(store.data_dir, topic, partition,
                                       "SELECT value FROM records ORDER BY offset")]


def test_each_batch_is_stamped_with_the_producer_id_and_the_partitions_next_sequence(store):
    store.create_topic("t", 2)
    producer = store.producer(batch_size=100, max_request_size=100)  # an append per batch
    for i in range(20):
        producer.send("t", b"%02d-padding-to-fill-a-batch" % i, partition=i % 2)
    producer.flush(TIMEOUT)
    for partition in (0, 1):
        batches = stored_batches(store, "t", partition)
        assert len(batches) > 1
        assert {b[:2] for b in batches} == {(batches[0][0], 0)}, "one producer id, epoch 0"
        assert [b[2] for b in batches] == [b[3] for b in batches], (
            "a partition's sequences count its records from 0, as its offsets do here")
    ids = {stored_batches(store, "t", p)[0][0] for p in (0, 1)}
    assert len(ids) == 1, "one producer id for all partitions"
    other = store.producer()
    other.send("t", b"x", partition=0).get(TIMEOUT)
    assert stored_batches(store, "t", 0)[-1][0] not in ids, "each producer has its own id"


def test_a_retry_after_an_append_that_was_written_but_not_acknowledged_is_not_written_again(
        store, monkeypatch):
    store.create_topic("t", 1)
    producer = store.producer(batch_size=256, max_request_size=256, linger_ms=1,
                              retry_backoff_ms=10)  # an append per batch
    original = PartitionLog.append
    lost = []

    def loses_the_acknowledgement(self, rows, producer=None, sent_bytes=None, **kwargs):
        result = original(self, rows, producer, sent_bytes, **kwargs)
        if not lost and result.base_offset > 0:
            lost.append(result)
            raise OSError("disk error after the commit: the acknowledgement is lost")
        return result

    monkeypatch.setattr(PartitionLog, "append", loses_the_acknowledgement)
    futures = [producer.send("t", b"%d" % i) for i in range(200)]
    metas = [f.get(TIMEOUT) for f in futures]
    state = store.system.broker.partition("t", 0).get(timeout=TIMEOUT).state
    assert len(lost) == 1 and state.stats.restarts == 1
    assert stored_values(store, "t", 0) == [b"%d" % i for i in range(200)], "each record once"
    assert [m.offset for m in metas] == list(range(200)), "the retry got the original offsets"
    assert lost[0].base_offset < lost[0].last_offset, "a whole batch was lost and retried"


def test_a_batch_that_fails_for_good_does_not_stop_or_reorder_the_ones_after_it(store):
    store.create_topic("t", 1, {"max.message.bytes": 200})
    producer = store.producer(batch_size=40, retry_backoff_ms=10)  # a batch per record
    small = [b"small %02d" % i for i in range(6)]
    futures = [producer.send("t", value) for value in small[:2]]
    too_large = producer.send("t", b"L" * 500)
    futures += [producer.send("t", value) for value in small[2:]]
    with pytest.raises(RecordTooLarge):
        too_large.get(TIMEOUT)
    assert [f.get(TIMEOUT).offset for f in futures] == list(range(6))
    assert stored_values(store, "t", 0) == small
    batches = stored_batches(store, "t", 0)
    before = {b[0] for b in batches if b[3] < 2}  # producer ids of the records before...
    after = {b[0] for b in batches if b[3] >= 2}  # ...and after the failed one
    assert len(before) == len(after) == 1 and before != after, (
        "after the failure the partition got a new producer id")
    producer.send("t", b"later").get(TIMEOUT)
    assert stored_values(store, "t", 0) == [*small, b"later"]
