"""kafka-python (admin, producer, group consumers) against a real ``eventstore serve``.

The producers here are plain ones (``enable_idempotence=False``, where kafka-python 3 is
idempotent by default); test_idempotence_wire.py runs its default producer.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.partitioner import DefaultPartitioner
from kafka.structs import OffsetAndMetadata
from support import ServerProcess, wait_until

from eventstore.storage.partitioner import partition_for_key

TOPIC = "orders"
PARTITIONS = 3
GROUP = "billing"
TIMEOUT_S = 30


def send_keyed(server: ServerProcess, keys: Iterable[bytes], tag: bytes) -> dict[tuple, bytes]:
    """Send one record per key (value ``tag`` + key); {(partition, offset): key} as acked."""
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, acks="all",
                             enable_idempotence=False, linger_ms=5)
    futures = [(key, producer.send(TOPIC, tag + key, key=key)) for key in keys]
    producer.flush(TIMEOUT_S)
    acked = {}
    for key, future in futures:
        meta = future.get(TIMEOUT_S)
        acked[(meta.partition, meta.offset)] = key
    producer.close()
    return acked


def group_consumer(server: ServerProcess) -> KafkaConsumer:
    # A leader whose metadata does not know the topic yet (a race inside kafka-python on a
    # busy machine: "No partition metadata for topic") assigns nothing, and only rejoins
    # once its metadata is refreshed: refresh every second instead of every five minutes.
    return KafkaConsumer(
        TOPIC, bootstrap_servers=server.bootstrap, group_id=GROUP,
        auto_offset_reset="earliest", enable_auto_commit=False, client_id="billing",
        metadata_max_age_ms=1000,
    )


def poll_all(consumers: list[KafkaConsumer], reads: list[list[tuple]]) -> None:
    """One short poll of each consumer (one thread drives them all, turn by turn);
    appends (partition, offset, key, value) of each record to the consumer's reads."""
    for consumer, read in zip(consumers, reads, strict=True):
        for records in consumer.poll(timeout_ms=50).values():
            read.extend((r.partition, r.offset, r.key, r.value) for r in records)


def split_evenly(consumers: list[KafkaConsumer], reads: list[list[tuple]]) -> list[set[int]]:
    """Poll until each consumer holds a non-empty, disjoint share of every partition."""
    def split() -> list[set[int]] | None:
        poll_all(consumers, reads)
        owned = [{tp.partition for tp in c.assignment()} for c in consumers]
        disjoint = sum(map(len, owned)) == len(set().union(*owned))
        if all(owned) and disjoint and set().union(*owned) == set(range(PARTITIONS)):
            return owned
        return None
    return wait_until(split, TIMEOUT_S, "the group to split the partitions")


def test_group_splits_partitions_commits_and_a_restart_resumes(server):
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    described = admin.describe_topics([TOPIC])
    assert [len(t["partitions"]) for t in described] == [PARTITIONS]

    consumers = [group_consumer(server), group_consumer(server)]
    reads: list[list[tuple]] = [[], []]
    owned = split_evenly(consumers, reads)
    assert reads == [[], []]  # nothing produced yet

    # keyed records land where Kafka's default partitioner puts them
    keys = [b"customer-%d" % i for i in range(60)]
    first = send_keyed(server, keys, b"first ")
    cluster = SimpleNamespace(  # what kafka-python's partitioner asks of cluster metadata
        topics=lambda: {TOPIC}, partitions_for_topic=lambda _: set(range(PARTITIONS)),
        available_partitions_for_topic=lambda _: set(range(PARTITIONS)))
    kafka_python = DefaultPartitioner()
    for (partition, _), key in first.items():
        assert partition == partition_for_key(key, PARTITIONS)
        assert partition == kafka_python.partition(TOPIC, key, key, None, None, cluster)
    assert {p for p, _ in first} == set(range(PARTITIONS))

    # each consumer reads exactly the records of its own partitions, then commits
    wait_until(lambda: poll_all(consumers, reads) or sum(map(len, reads)) >= len(first),
               TIMEOUT_S, "both consumers to read the first records")
    for share, read in zip(owned, reads, strict=True):
        assert {(p, o) for p, o, _, _ in read} == {po for po in first if po[0] in share}
        assert all(value == b"first " + key for _, _, key, value in read)
    for consumer in consumers:
        consumer.commit()

    # more records; the second consumer reads its share, commits only part of it, and
    # restarts: it (or whoever gets those partitions) must go on from the committed
    # offsets, re-reading the uncommitted records and nothing before them
    second = send_keyed(server, keys, b"second ")
    reads = [[], []]
    wait_until(lambda: poll_all(consumers, reads) or sum(map(len, reads)) >= len(second),
               TIMEOUT_S, "both consumers to read the second records")
    consumers[0].commit()
    leaving = consumers[1]
    partial = min(owned[1])
    committed_at = min(o for p, o in second if p == partial) + 1
    leaving.commit({TopicPartition(TOPIC, partial): OffsetAndMetadata(committed_at, "", -1)})
    leaving.close(autocommit=False)
    committed = {p: consumers[0].committed(TopicPartition(TOPIC, p))  # an OffsetFetch
                 for p in range(PARTITIONS)}
    ends = {p: max(o for q, o in {**first, **second} if q == p) + 1 for p in range(PARTITIONS)}
    expected_again = {(p, o) for p, o in second if o >= committed[p]}
    assert committed[partial] == committed_at
    assert expected_again and all(committed[p] == ends[p] for p in owned[0])

    consumers[1] = group_consumer(server)
    reads = [[], []]
    owned = split_evenly(consumers, reads)
    wait_until(
        lambda: poll_all(consumers, reads) or {(p, o) for r in reads for p, o, _, _ in r}
        >= expected_again, TIMEOUT_S, "the uncommitted records to be read again")
    again = [(p, o) for r in reads for p, o, _, _ in r]
    assert sorted(again) == sorted(expected_again)  # each once, none before the commits

    for consumer in consumers:
        consumer.close()
    admin.close()
