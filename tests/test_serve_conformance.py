"""Kafka conformance of a real ``eventstore serve``: where clients rely on Kafka's exact
behaviour (byte limits of a fetch, committed leader epochs, topic keys, transactions,
shutdown), checked over the wire with raw requests and with real clients."""

from __future__ import annotations

import asyncio
import struct

import apsw
from confluent_kafka import Consumer
from support import (
    OLD_CATALOG_SQL,
    KafkaConnection,
    ServerProcess,
    create_topic,
    poll_until,
    record_batch,
)

from eventstore.config import ListenerLimits
from eventstore.kafka.codec.recordbatch import decode_batches, encode_batch
from eventstore.kafka.fetch_sessions import _encode_within
from eventstore.kafka.server import KafkaListener
from eventstore.storage.catalog import CATALOG_FILE, Catalog, CommittedOffset
from eventstore.storage.log_reader import LogView

_SIZE = struct.Struct(">i")
RECORD = 900 * 1024  # one record near librdkafka's default message.max.bytes
HEADROOM = 1024  # a fetch response's framing around its records, for three partitions
T0 = 1_700_000_000_000


def fetch_v4(conn: KafkaConnection, topic: str, partitions: int, max_bytes: int,
             partition_max_bytes: int) -> tuple[int, dict[int, list[int]]]:
    """A Fetch v4 of ``partitions`` partitions from offset 0: the response frame's size
    and the offsets each partition returned."""
    correlation_id, frame = conn.encode(
        1, 4, replica_id=-1, max_wait=0, min_bytes=0, max_bytes=max_bytes,
        isolation_level=0, topics=[{"topic": topic, "partitions": [
            {"partition": p, "fetch_offset": 0, "partition_max_bytes": partition_max_bytes}
            for p in range(partitions)]}])
    conn.send_frame(frame)
    response = conn.read_response(1, 4, correlation_id)
    size = _SIZE.size + sum(len(p.records or b"") for t in response.responses
                            for p in t.partitions)
    offsets = {p.partition_index: [b.base_offset + i for b in decode_batches(p.records or b"")
                                   for i in range(len(b.records))]
               for t in response.responses for p in t.partitions}
    return size, offsets


def produce_large(conn: KafkaConnection, topic: str, partition: int, count: int) -> None:
    """``count`` batches of one RECORD-sized record each."""
    for _ in range(count):
        answer = conn.produce(topic, partition, record_batch(b"x" * RECORD))
        assert int(answer.error_code) == 0, answer


def test_only_the_first_partition_of_a_fetch_may_pass_its_max_bytes(serve) -> None:
    server: ServerProcess = serve()
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "large", 3)
        for partition in range(3):
            produce_large(conn, "large", partition, 1)
    for _ in ("from the recent batches", "from the segments"):
        with KafkaConnection(server.address) as conn:
            size, offsets = fetch_v4(conn, "large", 3, 1_000_000, 1 << 20)
            assert size <= 1_000_000 + HEADROOM, size
            assert offsets == {0: [0], 1: [], 2: []}
            # a limit below the first record still returns it: the consumer makes progress
            size, offsets = fetch_v4(conn, "large", 3, 1000, 1 << 20)
            assert offsets == {0: [0], 1: [], 2: []}
        server.restart()


def test_a_partition_passes_its_partition_max_bytes_with_its_first_batch_only(serve) -> None:
    server: ServerProcess = serve()
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "two", 1)
        produce_large(conn, "two", 0, 2)
    for _ in ("from the recent batches", "from the segments"):
        with KafkaConnection(server.address) as conn:
            size, offsets = fetch_v4(conn, "two", 1, 50 << 20, 1000)
            assert offsets == {0: [0]}
            assert size <= RECORD + HEADROOM
        server.restart()


def test_fetch_max_bytes_caps_every_fetch_response(serve) -> None:
    server: ServerProcess = serve(settings={"fetch.max.bytes": 1_000_000})
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "capped", 2)
        produce_large(conn, "capped", 0, 1)
        produce_large(conn, "capped", 1, 1)
        size, offsets = fetch_v4(conn, "capped", 2, 50 << 20, 50 << 20)
        assert offsets == {0: [0], 1: []}
        assert size <= 1_000_000 + HEADROOM


def test_a_committed_leader_epoch_comes_back_from_offset_fetch(server) -> None:
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "epochs", 2)
        response = conn.request(8, 8, group_id="g", generation_id_or_member_epoch=-1,
                                member_id="", group_instance_id=None, topics=[{
                                    "name": "epochs", "partitions": [
                                        {"partition_index": 0, "committed_offset": 5,
                                         "committed_leader_epoch": 1,
                                         "committed_metadata": "m"},
                                        {"partition_index": 1, "committed_offset": 7,
                                         "committed_leader_epoch": -1,
                                         "committed_metadata": None}]}])
        assert [int(p.error_code) for p in response.topics[0].partitions] == [0, 0]
        response = conn.request(9, 7, group_id="g", require_stable=False, topics=[
            {"name": "epochs", "partition_indexes": [0, 1]}])
        found = {p.partition_index: (p.committed_offset, p.committed_leader_epoch)
                 for p in response.topics[0].partitions}
        assert found == {0: (5, 1), 1: (7, -1)}


def test_a_catalog_of_schema_version_1_is_migrated_keeping_its_offsets(tmp_path) -> None:
    path = tmp_path / CATALOG_FILE
    old = apsw.Connection(str(path))
    old.execute(OLD_CATALOG_SQL[1])
    old.execute("INSERT INTO group_offsets VALUES ('g', 't', 0, 3, '', 9)")
    old.close()
    catalog = Catalog.open(str(tmp_path))
    try:
        assert catalog.committed_offsets("g") == [CommittedOffset("g", "t", 0, 3, "", 9, -1)]
        catalog.commit_offsets("g", [CommittedOffset("g", "t", 0, 4, "", 10, 2)])
        assert catalog.committed_offsets("g")[0].leader_epoch == 2
    finally:
        catalog.close()


def create_topic_with(conn: KafkaConnection, topic: str, configs: dict[str, str]) -> int:
    """CreateTopics of one partition with ``configs``: the topic's error code."""
    response = conn.request(19, 4, timeout=10000, validate_only=False, topics=[{
        "name": topic, "num_partitions": 1, "replication_factor": 1, "assignments": [],
        "configs": [{"name": k, "value": v} for k, v in configs.items()]}])
    return int(response.topics[0].error_code)


def fetched_codecs(conn: KafkaConnection, topic: str) -> tuple[list[str], list[bytes]]:
    """The codec of each batch a fetch of ``topic`` from offset 0 returns, and the values."""
    response = conn.request(1, 4, replica_id=-1, max_wait=0, min_bytes=0, max_bytes=1 << 20,
                            isolation_level=0, topics=[{"topic": topic, "partitions": [
                                {"partition": 0, "fetch_offset": 0,
                                 "partition_max_bytes": 1 << 20}]}])
    batches = decode_batches(response.responses[0].partitions[0].records or b"")
    return [b.compression for b in batches], [r.value for b in batches for r in b.records]


def test_compression_type_is_a_topic_key_that_fetches_honour(serve) -> None:
    server: ServerProcess = serve()
    values = [b"value-%d" % i * 20 for i in range(50)]
    with KafkaConnection(server.address) as conn:
        assert create_topic_with(conn, "bad", {"compression.type": "brotli"}) == 40
        for codec in ("zstd", "producer"):
            assert create_topic_with(conn, codec, {"compression.type": codec}) == 0
            assert int(conn.produce(codec, 0, record_batch(*values)).error_code) == 0
        # recent batches (sent uncompressed) are not served as they were for zstd
        assert fetched_codecs(conn, "zstd") == (["zstd"], values)
        assert fetched_codecs(conn, "producer") == (["none"], values)
    server.restart()
    with KafkaConnection(server.address) as conn:
        assert fetched_codecs(conn, "zstd") == (["zstd"], values)
    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "z",
                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe(["zstd"])
        got = poll_until(lambda: [m.value() for m in consumer.consume(50, 1.0)
                                  if m.error() is None], len(values), 30, "zstd records")
        assert got == values
    finally:
        consumer.close()


def alter(conn: KafkaConnection, topic: str, name: str, operation: int, value: str
          ) -> tuple[int, str | None]:
    """IncrementalAlterConfigs of one key of ``topic``: (error code, error message)."""
    response = conn.request(44, 1, validate_only=False, resources=[{
        "resource_type": 2, "resource_name": topic, "configs": [
            {"name": name, "config_operation": operation, "value": value}]}])
    (answer,) = response.responses
    return int(answer.error_code), answer.error_message


def test_list_valued_keys_take_append_and_subtract(server) -> None:
    append, subtract = 2, 3
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "lists", 1)
        assert alter(conn, "lists", "cleanup.policy", append, "delete") == (0, None)
        code, message = alter(conn, "lists", "cleanup.policy", append, "compacted")
        assert code == 40 and "compacted" in message and "list-valued" not in message
        assert alter(conn, "lists", "cleanup.policy", append, "compact") == (0, None)
        assert alter(conn, "lists", "cleanup.policy", subtract, "delete") == (0, None)
        code, message = alter(conn, "lists", "cleanup.policy", subtract, "compact")
        assert code == 40 and "at least one" in message
        code, message = alter(conn, "lists", "retention.ms", append, "1")
        assert code == 40 and "list-valued" in message


class _NoSession:
    """A session that is never asked anything: the connection only opens and closes."""

    async def handle(self, request: object) -> None:
        raise AssertionError("no request is sent")

    def close(self) -> None:
        pass


def test_stopping_as_a_client_closes_its_connection_reports_no_error() -> None:
    """The listener stops while a connection whose client just left is still closing:
    nothing may end with a cancelled connection task, which asyncio reports with a
    traceback (its client_connected_cb callback asks the task for its exception)."""
    reported: list[dict] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(
            context))
        listener = KafkaListener(lambda _: _NoSession(), ListenerLimits())
        host, port = await listener.start("127.0.0.1", 0)
        _, writer = await asyncio.open_connection(host, port)
        while listener.connection_count == 0:
            await asyncio.sleep(0.001)
        writer.close()
        while listener.connection_count:  # until the server saw the client leave
            await asyncio.sleep(0)
        await listener.stop()
        # what asyncio.run does at its end to every task still pending
        pending = asyncio.all_tasks() - {asyncio.current_task()}
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    asyncio.run(main())
    assert reported == []


def test_rows_encoded_larger_than_the_log_counted_are_cut_to_the_limit() -> None:
    view = LogView((), 0, 100)
    rows = [(i, T0, None, b"v" * (100 + 50 * (i % 3)), None) for i in range(100)]
    whole = len(encode_batch(0, rows))
    for limit in (whole - 1, whole // 2, whole // 7, 300):
        records, count = _encode_within(rows, view, limit, at_least_one=False)
        assert 0 < count < 100 and len(records) <= limit
        assert [b.base_offset + i for b in decode_batches(records)
                for i in range(len(b.records))] == list(range(count))
    assert _encode_within(rows, view, 10, at_least_one=False) == (b"", 0)
    records, count = _encode_within(rows, view, 10, at_least_one=True)
    assert count == 1 and records == encode_batch(0, rows[:1])
