"""Cluster id and topic ids (issue 16, item 9; KIP-516): one cluster id per data
directory, a random id per topic incarnation kept in the catalog, and the requests that
name topics by id (Fetch v13-16, Metadata v12, DeleteTopics v6), raw and through
librdkafka. Kafka's answers are read from ``KafkaApis.handleFetchRequest`` and
``handleTopicMetadataRequest`` and ``ControllerApis.deleteTopics``."""

from __future__ import annotations

import base64
import logging
import re
import uuid

import apsw
from confluent_kafka import Consumer, Producer, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic
from support import (
    OLD_CATALOG_SQL,
    KafkaConnection,
    ServerProcess,
    create_topic,
    poll_until,
    record_batch,
)

from eventstore.kafka.codec.recordbatch import decode_batches
from eventstore.storage.catalog import CATALOG_FILE, Catalog
from eventstore.storage.kafka_uuid import from_text, to_text

ZERO = uuid.UUID(int=0)
KAFKA_ID = re.compile(r"[A-Za-z0-9_-]{22}")
UNKNOWN_TOPIC_ID, INVALID_REQUEST = 100, 42

def id_of(value: uuid.UUID | None) -> uuid.UUID:
    """A response's id as sent: kio reads the zero id as None."""
    return value or ZERO


def metadata(conn: KafkaConnection, version: int, topics: list[dict] | None) -> object:
    return conn.request(3, version, topics=topics, allow_auto_topic_creation=False,
                        include_cluster_authorized_operations=False,
                        include_topic_authorized_operations=False)


def topic_ids(conn: KafkaConnection) -> dict[str, uuid.UUID]:
    """Every topic's id, as Metadata v12 lists them."""
    return {t.name: id_of(t.topic_id) for t in metadata(conn, 12, None).topics}


def cluster_ids(server: ServerProcess) -> tuple[str, str]:
    """The cluster id Metadata and DescribeCluster answer."""
    with KafkaConnection(server.address) as conn:
        from_metadata = metadata(conn, 12, []).cluster_id
        described = conn.request(60, 0, include_cluster_authorized_operations=False)
    return from_metadata, described.cluster_id


def fetch_by_id(conn: KafkaConnection, version: int, topic_id: uuid.UUID, partition: int = 0,
                offset: int = 0) -> tuple[uuid.UUID, int, list[bytes]]:
    """A Fetch naming one partition by topic id: the answer's topic id, error and values."""
    response = conn.request(
        1, version, max_wait=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
        session_id=0, session_epoch=-1, forgotten_topics_data=[], rack_id="",
        topics=[{"topic_id": topic_id, "partitions": [{
            "partition": partition, "fetch_offset": offset, "partition_max_bytes": 1 << 20}]}])
    (topic,) = response.responses
    (answer,) = topic.partitions
    values = [r.value for b in decode_batches(answer.records or b"") for r in b.records]
    return id_of(topic.topic_id), int(answer.error_code), values


def delete_by(conn: KafkaConnection, *entries: tuple[str | None, uuid.UUID]) -> list:
    """DeleteTopics v6 of (name, id) entries: each answer as (name, id, error code)."""
    response = conn.request(20, 6, timeout=10000, topics=[
        {"name": name, "topic_id": topic_id} for name, topic_id in entries])
    return sorted(((r.name, id_of(r.topic_id), int(r.error_code)) for r in response.responses),
                  key=repr)


def test_a_cluster_id_is_made_once_per_data_directory_and_kept(serve) -> None:
    first, second = serve(), serve()
    ids = cluster_ids(first)
    assert ids[0] == ids[1] and KAFKA_ID.fullmatch(ids[0]), ids
    assert ids[0] != "eventstore" and from_text(ids[0]) != ZERO
    assert cluster_ids(second)[0] != ids[0]
    first.restart()
    assert cluster_ids(first) == ids


def test_each_topic_gets_a_random_id_kept_across_restarts_and_new_when_recreated(serve
                                                                                   ) -> None:
    server: ServerProcess = serve()
    with KafkaConnection(server.address) as conn:
        created = conn.request(19, 7, timeout=10000, validate_only=False, topics=[
            {"name": name, "num_partitions": 1, "replication_factor": 1, "assignments": [],
             "configs": []} for name in ("a", "b")])
        made = {t.name: id_of(t.topic_id) for t in created.topics}
        assert ZERO not in made.values() and made["a"] != made["b"], made
        assert topic_ids(conn) == made
        v10 = metadata(conn, 10, [{"name": "a", "topic_id": None}])
        assert v10.topics[0].topic_id == made["a"]
        checked = conn.request(19, 7, timeout=10000, validate_only=True, topics=[
            {"name": "c", "num_partitions": 1, "replication_factor": 1, "assignments": [],
             "configs": []}])
        assert id_of(checked.topics[0].topic_id) == ZERO  # nothing was created
    server.restart()
    with KafkaConnection(server.address) as conn:
        assert topic_ids(conn) == made
        assert int(conn.request(20, 5, timeout=10000, topic_names=["a"]).responses[0]
                   .error_code) == 0
        create_topic(conn, "a", 1)
        again = topic_ids(conn)
        assert again["a"] not in (ZERO, made["a"]) and again["b"] == made["b"]


def test_a_catalog_of_version_2_gives_its_topics_ids_and_the_directory_a_cluster_id(
        tmp_path) -> None:
    old = apsw.Connection(str(tmp_path / CATALOG_FILE))
    old.execute(OLD_CATALOG_SQL[2])
    old.execute("INSERT INTO topics VALUES ('t1', 1, '{}', 5), ('t2', 3, '{}', 6)")
    old.close()
    catalog = Catalog.open(str(tmp_path))
    try:
        ids = {t.name: t.topic_id for t in catalog.topics()}
        cluster_id = catalog.cluster_id()
    finally:
        catalog.close()
    assert len(set(ids.values())) == 2 and ZERO not in ids.values(), ids
    assert KAFKA_ID.fullmatch(cluster_id)
    catalog = Catalog.open(str(tmp_path))  # durable: the same ids when opened again
    try:
        assert {t.name: t.topic_id for t in catalog.topics()} == ids
        assert catalog.cluster_id() == cluster_id
        assert catalog.topic("t2").partitions == 3
    finally:
        catalog.close()


def test_kafka_text_form_of_an_id_is_22_characters_of_base64url() -> None:
    value = uuid.UUID("b1f1a4c2-36f4-4f0e-9d35-8d7c1e2fa0ff")
    assert to_text(value) == "sfGkwjb0Tw6dNY18Hi-g_w"
    assert from_text(to_text(value)) == value


def test_metadata_v12_names_topics_by_id_and_v11_refuses_ids(server) -> None:
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "by-id", 2)
        topic_id = topic_ids(conn)["by-id"]
        unknown = uuid.uuid4()
        response = metadata(conn, 12, [{"name": None, "topic_id": topic_id},
                                       {"name": None, "topic_id": unknown}])
        found = {id_of(t.topic_id): (t.name, int(t.error_code), len(t.partitions))
                 for t in response.topics}
        assert found == {topic_id: ("by-id", 0, 2), unknown: (None, UNKNOWN_TOPIC_ID, 0)}
        refused = metadata(conn, 11, [{"name": "by-id", "topic_id": topic_id}])
        assert [int(t.error_code) for t in refused.topics] == [INVALID_REQUEST]


def test_fetch_v13_to_v16_name_topics_by_id_and_a_recreated_topics_old_id_is_unknown(
        server) -> None:
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "f", 1)
        old_id = topic_ids(conn)["f"]
        assert int(conn.produce("f", 0, record_batch(b"one", b"two")).error_code) == 0
        for version in (13, 14, 15, 16):
            assert fetch_by_id(conn, version, old_id) == (old_id, 0, [b"one", b"two"])
        unknown = uuid.uuid4()
        assert fetch_by_id(conn, 13, unknown) == (unknown, UNKNOWN_TOPIC_ID, [])
        assert fetch_by_id(conn, 16, ZERO) == (ZERO, UNKNOWN_TOPIC_ID, [])
        # the same connection (whose session knew the old id) after a re-creation
        assert int(conn.request(20, 5, timeout=10000, topic_names=["f"]).responses[0]
                   .error_code) == 0
        create_topic(conn, "f", 1)
        assert int(conn.produce("f", 0, record_batch(b"new")).error_code) == 0
        new_id = topic_ids(conn)["f"]
        assert fetch_by_id(conn, 16, old_id) == (old_id, UNKNOWN_TOPIC_ID, [])
        assert fetch_by_id(conn, 16, new_id) == (new_id, 0, [b"new"])
        # a name-based fetch still works beside id-based ones
        by_name = conn.request(1, 12, max_wait=0, min_bytes=0, max_bytes=1 << 20,
                               isolation_level=0, session_id=0, session_epoch=-1,
                               forgotten_topics_data=[], rack_id="", topics=[
                                   {"topic": "f", "partitions": [{
                                       "partition": 0, "fetch_offset": 0,
                                       "partition_max_bytes": 1 << 20}]}])
        assert by_name.responses[0].topic == "f"


def test_delete_topics_v6_by_id_with_kafkas_checks(server) -> None:
    with KafkaConnection(server.address) as conn:
        for name in ("d1", "d2", "d3"):
            create_topic(conn, name, 1)
        ids = topic_ids(conn)
        unknown = uuid.uuid4()
        assert delete_by(conn, (None, ZERO)) == [(None, ZERO, INVALID_REQUEST)]
        assert delete_by(conn, ("d1", ids["d1"])) == [("d1", ids["d1"], INVALID_REQUEST)]
        assert delete_by(conn, (None, unknown)) == [(None, unknown, UNKNOWN_TOPIC_ID)]
        assert delete_by(conn, ("nope", ZERO)) == [("nope", ZERO, 3)]
        assert delete_by(conn, ("d1", ZERO), ("d1", ZERO)) == [("d1", ZERO, INVALID_REQUEST)]
        assert delete_by(conn, (None, ids["d1"]), (None, ids["d1"])) == [
            (None, ids["d1"], INVALID_REQUEST)]
        assert delete_by(conn, (None, ids["d1"]), ("d1", ZERO)) == sorted(
            [("d1", ids["d1"], 0), ("d1", ids["d1"], INVALID_REQUEST)], key=repr)
        assert delete_by(conn, (None, ids["d2"]), ("d3", ZERO)) == sorted(
            [("d2", ids["d2"], 0), ("d3", ids["d3"], 0)], key=repr)
        assert topic_ids(conn) == {}


def test_librdkafka_fetches_by_topic_id_and_sees_a_recreated_topics_new_id(server) -> None:
    fetch_versions: list[int] = []
    id_changes: list[uuid.UUID] = []  # each id librdkafka's metadata saw "rd" change to

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if found := re.search(r"Sent FetchRequest \(v(\d+)", message):
                fetch_versions.append(int(found.group(1)))
            if found := re.search(r"Topic rd changed id from \S+ to (\S+)", message):
                # librdkafka prints ids in standard base64, not Kafka's URL-safe form
                id_changes.append(uuid.UUID(bytes=base64.b64decode(found.group(1) + "==")))

    logger = logging.getLogger("test_serve_topic_ids.librdkafka")
    logger.addHandler(Watch())
    logger.setLevel(logging.DEBUG)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "rd", 1)
    producer = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 0})
    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "rd",
                         "auto.offset.reset": "earliest", "debug": "protocol,metadata",
                         "topic.metadata.refresh.interval.ms": 1000}, logger=logger)

    def produce_and_consume(values: list[bytes]) -> list[tuple[int, bytes]]:
        for value in values:
            producer.produce("rd", value, partition=0)
        assert producer.flush(30) == 0
        got = poll_until(lambda: [m for m in [consumer.poll(0.5)]
                                  if m is not None and m.error() is None], len(values), 30,
                         "records")
        return [(m.offset(), m.value()) for m in got]

    try:
        consumer.subscribe(["rd"])
        assert produce_and_consume([b"v%d" % i for i in range(5)]) == [
            (i, b"v%d" % i) for i in range(5)]
        first = admin.describe_topics(TopicCollection(["rd"]))["rd"].result(30).topic_id
        admin.delete_topics(["rd"])["rd"].result(30)
        admin.create_topics([NewTopic("rd", num_partitions=1, replication_factor=1)]
                            )["rd"].result(30)
        second = admin.describe_topics(TopicCollection(["rd"]))["rd"].result(30).topic_id
        # the subscribed consumer takes the new incarnation for a new topic: from offset 0
        assert produce_and_consume([b"new"]) == [(0, b"new")]
    finally:
        consumer.close()
    assert fetch_versions and min(fetch_versions) >= 13, fetch_versions
    assert as_uuid(first) != as_uuid(second)
    with KafkaConnection(server.address) as conn:
        assert topic_ids(conn)["rd"] == as_uuid(second)
    assert id_changes[0] == as_uuid(first) and id_changes[-1] == as_uuid(second), id_changes


def as_uuid(value: object) -> uuid.UUID:
    """confluent-kafka's Uuid as a UUID (its str() is standard, not URL-safe, base64)."""
    mask = 2**64 - 1
    return uuid.UUID(int=(value.get_most_significant_bits() & mask) << 64
                     | value.get_least_significant_bits() & mask)

