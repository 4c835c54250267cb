"""Idempotent producers over the wire, against real ``eventstore serve`` processes.

InitProducerId by hand; produce requests by hand (the same batch twice, a sequence gap,
an old epoch) over a plain socket; a SIGKILL between the write and the acknowledgement;
and the two client libraries with idempotence on: kafka-python's default producer and
confluent-kafka's. What the log holds is read from the segment files, read-only.
"""

from __future__ import annotations

import select

from confluent_kafka import Producer as ConfluentProducer
from kafka import KafkaProducer
from support import (
    PRODUCE_VERSION,
    KafkaConnection,
    ServerProcess,
    create_topic,
    produce_fields,
)
from test_idempotence_storage import segment_rows

from eventstore.kafka.codec.recordbatch import encode_batch
from eventstore.storage.records import LogRecord

TIMEOUT_S = 30
PRODUCE, INIT_PRODUCER_ID = 0, 22
NONE, INVALID_REQUEST = 0, 42
OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH = 45, 47


def init_producer_id(conn: KafkaConnection, version: int = 4, **fields: object) -> tuple:
    """(error code, producer id, epoch) of one InitProducerId request."""
    fields = {"transactional_id": None, "transaction_timeout": 60000, **fields}
    response = conn.request(INIT_PRODUCER_ID, version, **fields)
    return response.error_code, response.producer_id, response.producer_epoch


def batch(values: list[bytes], producer_id: int, epoch: int, sequence: int) -> bytes:
    records = [LogRecord(i, 1_700_000_000_000, None, v) for i, v in enumerate(values)]
    return encode_batch(0, records, producer_id=producer_id, producer_epoch=epoch,
                        base_sequence=sequence)


def produce(conn: KafkaConnection, topic: str, records: bytes) -> tuple[int, int]:
    """(error code, base offset) of one produce request to partition 0."""
    answer = conn.produce(topic, 0, records)
    return answer.error_code, answer.base_offset


def stored(data_dir: str, topic: str, partition: int = 0) -> list[tuple[int, bytes]]:
    """(offset, value) of every record in the partition."""
    return segment_rows(data_dir, topic, partition,
                        "SELECT offset, value FROM records ORDER BY 1")


def stored_values(data_dir: str, topic: str, partitions: int) -> list[bytes]:
    return [v for p in range(partitions) for _, v in stored(data_dir, topic, p)]


def stored_producer_ids(data_dir: str, topic: str, partitions: int) -> set[int | None]:
    """The producer id of every stored batch (None for a batch of a plain producer)."""
    return {pid for p in range(partitions)
            for (pid,) in segment_rows(data_dir, topic, p, "SELECT producer_id FROM batches")}


def crash_and_restart(server: ServerProcess) -> None:
    """SIGKILL, then start again on the same data directory and the same ports."""
    server.kill()
    server.relaunch()


def test_init_producer_id_hands_out_ids_never_reused_across_restarts(server):
    seen = set()
    with KafkaConnection(server.address) as conn:
        for version in (0, 2, 3, 4):
            error, producer_id, epoch = init_producer_id(conn, version)
            assert (error, epoch) == (NONE, 0) and producer_id >= 0
            seen.add(producer_id)
        # KIP-360's bump of a non-transactional producer: Kafka answers with a new id
        error, bumped, epoch = init_producer_id(conn, producer_id=producer_id, producer_epoch=0)
        assert (error, epoch) == (NONE, 0) and bumped not in seen
        seen.add(bumped)
        # a transactional id's producer id comes from the same counter (issue 19)
        error, transactional, epoch = init_producer_id(conn, transactional_id="payments")
        assert (error, epoch) == (NONE, 0) and transactional not in seen
        seen.add(transactional)
        assert init_producer_id(conn, transactional_id="")[0] == INVALID_REQUEST
        assert init_producer_id(conn, producer_id=7, producer_epoch=-1)[0] == INVALID_REQUEST
    server.restart()
    crash_and_restart(server)
    with KafkaConnection(server.address) as conn:
        later = {init_producer_id(conn)[1] for _ in range(3)}
    assert len(later) == 3 and min(later) > max(seen), "ids after restarts are all new"


def test_a_duplicate_a_gap_and_an_old_epoch_are_answered_as_kafka_does(server):
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "raw", 1)
        _, producer_id, _ = init_producer_id(conn)
        first = batch([b"a", b"b"], producer_id, 0, 0)
        assert produce(conn, "raw", first) == (NONE, 0)
        assert produce(conn, "raw", first) == (NONE, 0), "a retry gets its original offset"
        gap = batch([b"c"], producer_id, 0, 3)
        assert produce(conn, "raw", gap)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(conn, "raw", batch([b"c"], producer_id, 0, 2)) == (NONE, 2)
        assert produce(conn, "raw", batch([b"d"], producer_id, 1, 0)) == (NONE, 3)  # new epoch
        old_epoch = batch([b"e"], producer_id, 0, 3)
        assert produce(conn, "raw", old_epoch)[0] == INVALID_PRODUCER_EPOCH
        _, unknown, _ = init_producer_id(conn)  # a producer this partition has no state of
        assert produce(conn, "raw", batch([b"f"], unknown, 0, 41)) == (NONE, 4)
    assert stored(server.data_dir, "raw") == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d"),
                                              (4, b"f")]


def test_a_batch_written_before_a_sigkill_is_recognised_when_the_client_retries(server):
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "crash", 1)
        _, producer_id, _ = init_producer_id(conn)
        assert produce(conn, "crash", batch([b"a", b"b", b"c"], producer_id, 0, 0)) == (NONE, 0)
        unacknowledged = batch([b"d", b"e"], producer_id, 0, 3)
        _, frame = conn.encode(PRODUCE, PRODUCE_VERSION,
                               **produce_fields("crash", 0, unacknowledged))
        conn.send_frame(frame)
        # the server has written the batch once its answer is on the way; kill it before
        # the client reads a byte of it
        readable, _, _ = select.select([conn.sock], [], [], TIMEOUT_S)
        assert readable, "the produce was never answered"
        crash_and_restart(server)
    with KafkaConnection(server.address) as conn:
        assert produce(conn, "crash", unacknowledged) == (NONE, 3), "the original offset"
        assert produce(conn, "crash", batch([b"f"], producer_id, 0, 5)) == (NONE, 5)
    assert stored(server.data_dir, "crash") == list(enumerate([b"a", b"b", b"c", b"d", b"e",
                                                               b"f"]))


def test_kafka_python_default_producer_writes_every_record_once_across_a_crash(server):
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, linger_ms=5)
    assert producer.config["enable_idempotence"], "kafka-python 3 is idempotent by default"
    values = [b"%04d" % i for i in range(400)]
    futures = [producer.send("kp", value, key=value) for value in values[:200]]
    producer.flush(TIMEOUT_S)
    futures += [producer.send("kp", value, key=value) for value in values[200:300]]
    crash_and_restart(server)  # with batches possibly in flight
    futures += [producer.send("kp", value, key=value) for value in values[300:]]
    producer.flush(TIMEOUT_S)
    acked = {(m.partition, m.offset) for m in (f.get(TIMEOUT_S) for f in futures)}
    producer.close()
    assert len(acked) == len(values), "every record acknowledged at its own offset"
    assert sorted(stored_values(server.data_dir, "kp", 1)) == values, "each record once"
    assert None not in stored_producer_ids(server.data_dir, "kp", 1), "stamped batches"


def test_confluent_kafka_idempotent_producer_writes_every_record_once(server):
    partitions = 3
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "ck", partitions)
    producer = ConfluentProducer({"bootstrap.servers": server.bootstrap,
                                  "enable.idempotence": True, "linger.ms": 5})
    delivered, errors = [], []

    def report(error, message) -> None:
        (errors if error else delivered).append(error or (message.partition(),
                                                          message.offset()))

    values = [b"%04d" % i for i in range(600)]
    for value in values:
        producer.produce("ck", value, key=value, on_delivery=report)
        producer.poll(0)
    assert producer.flush(TIMEOUT_S) == 0
    assert errors == [] and len(set(delivered)) == len(values)
    assert sorted(stored_values(server.data_dir, "ck", partitions)) == values
    assert len(stored_producer_ids(server.data_dir, "ck", partitions) - {None}) == 1, (
        "every batch stamped with the one producer id the client was given")
