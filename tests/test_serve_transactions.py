"""Transactions (KIP-98, KIP-447) against a real ``eventstore serve``, with real clients.

- confluent-kafka's consume-transform-produce loop copies topic A into topic B with
  ``send_offsets_to_transaction``; a read_committed consumer finds each record of A in B
  exactly once and in order per partition, also when every third transaction is aborted;
- a second producer with the same ``transactional.id`` fences the first;
- an abandoned transaction is aborted after its ``transaction.timeout.ms`` and
  read_committed consumers move on; a timeout over ``transaction.max.timeout.ms`` is
  INVALID_TRANSACTION_TIMEOUT;
- aiokafka's transactional producer and read_committed consumer work too;
- a restart finishes a commit that was prepared, and keeps an open transaction open (as
  Kafka does) so its producer can still commit it;
- the server SIGKILLed at random moments under the loop (tests/txn_loop.py): no record
  of A lost or duplicated in B (bounded here; ``-m slow`` runs the long form).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import apsw
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka import KafkaError as KafkaErrorCode
from support import KafkaConnection, ServerProcess, create_topic, wait_until
from txn_loop import (
    check_exactly_once,
    copy_loop,
    create_topics,
    end_offsets,
    fill,
    read_committed,
)

from eventstore.kafka.codec.recordbatch import encode_batch
from eventstore.storage.catalog import CATALOG_FILE
from eventstore.storage.records import LogRecord

PARTITIONS = 3
TIMEOUT_S = 60
FAST_TIMEOUTS = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 200}


@pytest.fixture
def server(tmp_path):
    with ServerProcess.start(str(tmp_path / "data"), settings=FAST_TIMEOUTS) as server:
        yield server


def copy_and_check(server: ServerProcess, count: int, **loop) -> None:
    b = server.bootstrap
    create_topics(b, PARTITIONS, "a", "b")
    fill(b, "a", PARTITIONS, count)
    result = copy_loop(b, "a", "b", end_offsets(b, "a", PARTITIONS), per_transaction=300,
                       **loop)
    assert result.committed >= count // 300 // 2, result
    source = read_committed(b, "a", PARTITIONS, count)
    copied = read_committed(b, "b", PARTITIONS, count)
    assert check_exactly_once(source, copied) == (0, 0)
    assert sum(map(len, copied.values())) == count
    if loop.get("abort_every"):
        assert result.aborted >= 1, result
        raw = end_offsets(b, "b", PARTITIONS)  # aborted copies and markers take offsets
        assert sum(raw.values()) > count + result.committed


def test_consume_transform_produce_copies_each_record_exactly_once(server):
    copy_and_check(server, 3000)


def test_aborted_transactions_are_invisible_and_their_records_copied_again(server):
    copy_and_check(server, 3000, abort_every=3)


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(server):
    b = server.bootstrap
    create_topics(b, 1, "fenced")
    first = Producer({"bootstrap.servers": b, "transactional.id": "shared"})
    first.init_transactions(TIMEOUT_S)
    first.begin_transaction()
    first.produce("fenced", b"zombie", partition=0)
    assert first.flush(TIMEOUT_S) == 0
    second = Producer({"bootstrap.servers": b, "transactional.id": "shared"})
    second.init_transactions(TIMEOUT_S)  # aborts the first's transaction, bumps the epoch
    second.begin_transaction()
    second.produce("fenced", b"current", partition=0)
    second.commit_transaction(TIMEOUT_S)
    with pytest.raises(KafkaException) as failed:
        first.commit_transaction(TIMEOUT_S)
    error = failed.value.args[0]
    assert error.fatal() and error.code() in (
        KafkaErrorCode._FENCED, KafkaErrorCode.PRODUCER_FENCED,
        KafkaErrorCode.INVALID_PRODUCER_EPOCH), error
    assert read_committed(b, "fenced", 1, 1)[0] == [b"current"]


def raw_transaction(conn: KafkaConnection, topic: str, timeout_ms: int, value: bytes,
                    transactional_id: str = "raw") -> tuple[int, int]:
    """InitProducerId, AddPartitionsToTxn and one transactional Produce, by hand (a client
    that then goes away leaves the transaction open): (producer id, epoch)."""
    init = conn.request(22, 4, transactional_id=transactional_id,
                        transaction_timeout=timeout_ms, producer_id=-1, producer_epoch=-1)
    assert init.error_code == 0, init
    pid, epoch = init.producer_id, init.producer_epoch
    added = conn.request(24, 3, v3_and_below_transactional_id=transactional_id,
                         v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch,
                         v3_and_below_topics=[{"name": topic, "partitions": [0]}])
    [[answer]] = [t.results_by_partition for t in added.results_by_topic_v3_and_below]
    assert answer.partition_error_code == 0, added
    batch = encode_batch(0, [LogRecord(0, int(time.time() * 1000), None, value)],
                         producer_id=pid, producer_epoch=epoch, base_sequence=0,
                         transactional=True)
    produced = conn.produce(topic, 0, batch)
    assert produced.error_code == 0, produced
    return pid, epoch


def state_of(conn: KafkaConnection, transactional_id: str) -> str:
    """The id's state as ListTransactions gives it (DescribeTransactions answers a start
    time of -1 for a transaction that ended, as Kafka does, which kio cannot decode)."""
    listed = conn.request(66, 1, state_filters=[], producer_id_filters=[])
    return {t.transactional_id: t.transaction_state
            for t in listed.transaction_states}[transactional_id]


def test_an_abandoned_transaction_is_aborted_after_its_timeout(server):
    plain = Producer({"bootstrap.servers": server.bootstrap})
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "abandoned", 1)
        raw_transaction(conn, "abandoned", 1500, b"never-committed")
        plain.produce("abandoned", b"after", partition=0)
        assert plain.flush(TIMEOUT_S) == 0
        consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "waiting",
                             "isolation.level": "read_committed"})
        consumer.assign([TopicPartition("abandoned", 0, 0)])
        started = time.monotonic()
        got = []
        while not got and time.monotonic() - started < TIMEOUT_S:
            got = [m.value() for m in consumer.consume(10, timeout=0.5) if not m.error()]
        consumer.close()
        assert got == [b"after"]  # the aborted record dropped, the next one read
        assert time.monotonic() - started >= 1.0  # held back by the open transaction
        assert state_of(conn, "raw") == "CompleteAbort"


def test_transaction_timeout_is_bounded_by_transaction_max_timeout_ms(tmp_path):
    settings = {"transaction.max.timeout.ms": 10_000}
    with ServerProcess.start(str(tmp_path / "data"), settings=settings) as server:
        with KafkaConnection(server.address) as conn:
            init = conn.request(22, 4, transactional_id="long", transaction_timeout=10_001,
                                producer_id=-1, producer_epoch=-1)
            assert init.error_code == 50  # INVALID_TRANSACTION_TIMEOUT
        producer = Producer({"bootstrap.servers": server.bootstrap, "transactional.id": "t",
                             "transaction.timeout.ms": 60_000})
        with pytest.raises(KafkaException) as failed:
            producer.init_transactions(TIMEOUT_S)
        assert failed.value.args[0].code() == KafkaErrorCode.INVALID_TRANSACTION_TIMEOUT


def test_aiokafka_transactions_commit_and_abort(server):
    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=server.bootstrap,
                                    transactional_id="aio")
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait("aio", b"committed-1", partition=0)
                await producer.send_offsets_to_transaction(
                    {aiokafka_tp("aio", 0): 1}, "aio-group")
            await producer.begin_transaction()
            await producer.send_and_wait("aio", b"aborted", partition=0)
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send_and_wait("aio", b"committed-2", partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("aio", bootstrap_servers=server.bootstrap,
                                    isolation_level="read_committed",
                                    auto_offset_reset="earliest", group_id="aio-reader")
        await consumer.start()
        try:
            values = []
            while len(values) < 2:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), TIMEOUT_S)
                values += [m.value for ms in batch.values() for m in ms]
            return values
        finally:
            await consumer.stop()

    with KafkaConnection(server.address) as conn:
        create_topic(conn, "aio", 1)
    assert asyncio.run(run()) == [b"committed-1", b"committed-2"]
    with KafkaConnection(server.address) as conn:
        [group] = conn.request(9, 5, group_id="aio-group", topics=None).topics
        assert [p.committed_offset for p in group.partitions] == [1]


def aiokafka_tp(topic: str, partition: int):
    from aiokafka.structs import TopicPartition as AioTopicPartition
    return AioTopicPartition(topic, partition)


def test_a_restart_finishes_a_prepared_commit_and_keeps_an_open_transaction(tmp_path):
    data = str(tmp_path / "data")
    server = ServerProcess.start(data)
    try:
        with KafkaConnection(server.address) as conn:
            create_topic(conn, "restart", 1)
            raw_transaction(conn, "restart", 60_000, b"prepared", "committing")
            pid, epoch = raw_transaction(conn, "restart", 60_000, b"open", "open")
        server.kill()
        # the crash came between the commit's decision (stored) and its markers
        catalog = apsw.Connection(f"{data}/{CATALOG_FILE}")
        with catalog:
            catalog.execute("UPDATE transactions SET state = 'PrepareCommit'"
                            " WHERE transactional_id = 'committing'")
        catalog.close()
        server.relaunch()
        with KafkaConnection(server.address) as conn:
            assert state_of(conn, "committing") == "CompleteCommit"
            [open_txn] = conn.request(65, 0, transactional_ids=["open"]).transaction_states
            assert open_txn.transaction_state == "Ongoing" and open_txn.producer_id == pid
            assert [t.partitions for t in open_txn.topics] == [(0,)]
            assert read_committed(server.bootstrap, "restart", 1, 1, timeout_s=5)[0] == [
                b"prepared"]
            ended = conn.request(26, 3, transactional_id="open", producer_id=pid,
                                 producer_epoch=epoch, committed=True)
            assert ended.error_code == 0
        assert read_committed(server.bootstrap, "restart", 1, 2)[0] == [b"prepared", b"open"]
    finally:
        server.stop()


def crash_loop(tmp_path, count: int, kills: int, seed: int) -> None:
    """The copy loop while another thread SIGKILLs and restarts the server ``kills``
    times at random moments; then no record of A may be missing or twice in B."""
    rng = random.Random(seed)
    server = ServerProcess.start(str(tmp_path / "data"), settings=FAST_TIMEOUTS)
    stop = threading.Event()

    def killer() -> None:
        for _ in range(kills):
            if stop.wait(rng.uniform(0.5, 3.0)):
                return
            server.kill()
            server.relaunch()

    try:
        b = server.bootstrap
        create_topics(b, PARTITIONS, "a", "b")
        fill(b, "a", PARTITIONS, count)
        ends = end_offsets(b, "a", PARTITIONS)
        thread = threading.Thread(target=killer, name="killer")
        thread.start()
        try:
            result = copy_loop(b, "a", "b", ends, per_transaction=200, deadline_s=600)
        finally:
            stop.set()
            thread.join()
        source = read_committed(b, "a", PARTITIONS, count)
        copied = read_committed(b, "b", PARTITIONS, count)
        duplicates, losses = check_exactly_once(source, copied)
        assert (duplicates, losses) == (0, 0), (result, duplicates, losses)
        wait_until(lambda: server.running, 10, "the server up")
    finally:
        server.stop()


def test_crash_loop_loses_and_duplicates_nothing(tmp_path):
    crash_loop(tmp_path, 6000, kills=4, seed=19)


@pytest.mark.slow
def test_crash_loop_long(tmp_path):
    crash_loop(tmp_path, 60_000, kills=15, seed=1919)
