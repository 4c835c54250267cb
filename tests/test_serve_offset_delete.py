"""OffsetDelete (API 47): the coordinator's precedence on its own, then raw v0 requests and
kafka-python's ``KafkaAdminClient.delete_group_offsets`` against a real `eventstore serve`.

Kafka's order, from ``OffsetMetadataManager.deleteOffsets`` and
``ClassicGroup.validateOffsetDelete`` (group-coordinator/src/main/java/org/apache/kafka/
coordinator/group/): an unknown (or Dead) group is GROUP_ID_NOT_FOUND; a group with members
whose protocol type is not ``consumer`` is NON_EMPTY_GROUP; otherwise each partition of a
topic the group subscribes to (``ClassicGroup.isSubscribedToTopic``, read from the members'
subscriptions for the chosen protocol) is GROUP_SUBSCRIBED_TO_TOPIC and every other
partition is deleted and answered NONE, whether or not it had an offset. A group-wide error
is sent with no topics. The request path checks an empty group id first (INVALID_GROUP_ID,
``GroupCoordinatorService.deleteOffsets``). confluent-kafka's Python AdminClient (2.16) has
no ``delete_consumer_group_offsets``, so kafka-python's admin client is the real client here.
"""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from eventstore.errors import (
    GroupIdNotFound,
    GroupSubscribedToTopic,
    InvalidGroupId,
    NonEmptyGroup,
    NotCoordinator,
)
from eventstore.groups.consumer_protocol import Subscription, encode_subscription
from eventstore.groups.messages import JoinGroupRequest, SyncGroupRequest
from eventstore.storage.catalog import Catalog
from tests.support import KafkaConnection, ServerProcess, create_topic, wait_until
from tests.test_groups_coordinator import CONFIG, Harness

OFFSET_COMMIT, OFFSET_FETCH, OFFSET_DELETE = 8, 9, 47
NONE = 0


@pytest.fixture
def h(data_dir):
    catalog = Catalog.open(data_dir)
    for topic in ("a", "b"):
        catalog.create_topic(topic, 2, {}, 0)
    yield Harness(catalog, CONFIG)
    catalog.close()


def commit(h: Harness, group: str, *partitions: tuple[str, int]) -> None:
    """A standalone commit (generation -1), as an admin client makes one."""
    results = h.groups.commit_offsets(group, -1, "", {tp: (5, "") for tp in partitions})
    assert set(results.values()) == {NONE}


def committed(h: Harness, group: str) -> set[tuple[str, int]]:
    return set(h.groups.fetch_offsets(group))


def stable_member(h: Harness, group: str, protocol_type: str, metadata: bytes) -> None:
    """One member, joined and synced: the group is Stable."""
    reply: Future = Future()
    h.groups.join_group(JoinGroupRequest(group_id=group, session_timeout_ms=10_000,
                                         rebalance_timeout_ms=5000, protocol_type=protocol_type,
                                         protocols=(("range", metadata),)), reply)
    h.end_initial_delay(1)
    joined = reply.result(0)
    synced: Future = Future()
    h.groups.sync_group(SyncGroupRequest(group_id=group, generation_id=joined.generation_id,
                                         member_id=joined.member_id,
                                         assignments=((joined.member_id, b""),)), synced)
    assert synced.result(0).error_code == 0
    assert h.state(group) == "Stable"


def test_group_errors_come_first(h):
    """An empty id, an unknown group, and a non-consumer group with members are refused
    as a whole, deleting nothing."""
    assert h.groups.delete_offsets("", [("a", 0)]) == (InvalidGroupId.code, {})
    assert h.groups.delete_offsets("nobody", [("a", 0)]) == (GroupIdNotFound.code, {})
    commit(h, "connect", ("a", 0))
    stable_member(h, "connect", "connect", b"opaque")
    assert h.groups.delete_offsets("connect", [("a", 0)]) == (NonEmptyGroup.code, {})
    assert committed(h, "connect") == {("a", 0)}


def test_a_stable_consumer_group_keeps_the_offsets_of_topics_it_subscribes_to(h):
    commit(h, "g", ("a", 0), ("a", 1), ("b", 0), ("b", 1))
    stable_member(h, "g", "consumer", encode_subscription(Subscription(topics=("a",))))
    error, results = h.groups.delete_offsets("g", [("a", 0), ("b", 0), ("b", 7)])
    assert error == NONE
    assert results == {("a", 0): GroupSubscribedToTopic.code, ("b", 0): NONE, ("b", 7): NONE}
    assert committed(h, "g") == {("a", 0), ("a", 1), ("b", 1)}


def test_an_empty_group_loses_its_offsets_and_then_itself(h):
    """Empty: every partition's offset goes; with none left the group is gone (Kafka's
    cleanupGroupMetadata), so a second request is GROUP_ID_NOT_FOUND."""
    commit(h, "e", ("a", 0), ("b", 1))
    assert h.groups.delete_offsets("e", [("a", 0)]) == (NONE, {("a", 0): NONE})
    assert committed(h, "e") == {("b", 1)}
    assert h.groups.delete_offsets("e", [("b", 1)]) == (NONE, {("b", 1): NONE})
    assert "e" not in [g for g, _, _ in h.groups.list_groups()]
    assert h.groups.delete_offsets("e", [("b", 1)]) == (GroupIdNotFound.code, {})


# -- over the wire -------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path):
    with ServerProcess.start(str(tmp_path / "data")) as running:
        yield running


def wire_commit(conn: KafkaConnection, group: str, topic: str, partitions: list[int]) -> None:
    response = conn.request(OFFSET_COMMIT, 8, group_id=group, generation_id_or_member_epoch=-1,
                            member_id="", group_instance_id=None, topics=[{
                                "name": topic, "partitions": [
                                    {"partition_index": p, "committed_offset": 3,
                                     "committed_leader_epoch": -1, "committed_metadata": ""}
                                    for p in partitions]}])
    assert {int(p.error_code) for p in response.topics[0].partitions} == {0}


def wire_fetch(conn: KafkaConnection, group: str, topic: str, partitions: list[int]
               ) -> dict[int, int]:
    response = conn.request(OFFSET_FETCH, 7, group_id=group, require_stable=False, topics=[
        {"name": topic, "partition_indexes": partitions}])
    return {p.partition_index: p.committed_offset for p in response.topics[0].partitions}


def wire_delete(conn: KafkaConnection, group: str, topic: str, partitions: list[int]):
    return conn.request(OFFSET_DELETE, 0, group_id=group, topics=[
        {"name": topic, "partitions": [{"partition_index": p} for p in partitions]}])


def test_raw_offset_delete_v0(server):
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "raw", 2)
        wire_commit(conn, "raw-group", "raw", [0, 1])
        response = wire_delete(conn, "raw-group", "raw", [0])
        assert int(response.error_code) == 0
        assert [(t.name, [(p.partition_index, int(p.error_code)) for p in t.partitions])
                for t in response.topics] == [("raw", [(0, 0)])]
        assert wire_fetch(conn, "raw-group", "raw", [0, 1]) == {0: -1, 1: 3}

        unknown = wire_delete(conn, "no-such-group", "raw", [0])
        assert int(unknown.error_code) == GroupIdNotFound.code and unknown.topics == ()
        empty_id = wire_delete(conn, "", "raw", [0])
        assert int(empty_id.error_code) == InvalidGroupId.code and empty_id.topics == ()


def test_kafka_python_delete_group_offsets(server):
    """A live kafka-python consumer subscribed to topic ``live``: its offsets stay
    (GROUP_SUBSCRIBED_TO_TOPIC), those of topic ``old`` go (OffsetFetch: -1); once the
    consumer left, ``live``'s go too."""
    import kafka.errors as errors
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    with KafkaConnection(server.address) as conn:
        create_topic(conn, "live", 1)
        create_topic(conn, "old", 1)
        wire_commit(conn, "app", "old", [0])
    consumer = KafkaConsumer("live", bootstrap_servers=server.bootstrap, group_id="app",
                             enable_auto_commit=False, auto_offset_reset="earliest")
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap, request_timeout_ms=10000)
    try:
        wait_until(lambda: consumer.poll(timeout_ms=200) is not None and consumer.assignment(),
                   30, "the consumer to be assigned its partition")
        consumer.commit({TopicPartition("live", 0): kafka_offset(0)})
        result = admin.delete_group_offsets(
            "app", [TopicPartition("live", 0), TopicPartition("old", 0)])
        assert result == {TopicPartition("live", 0): errors.GroupSubscribedToTopicError,
                          TopicPartition("old", 0): errors.NoError}
        with KafkaConnection(server.address) as conn:
            assert wire_fetch(conn, "app", "old", [0]) == {0: -1}
            assert wire_fetch(conn, "app", "live", [0]) == {0: 0}
            consumer.close()  # leaves the group: Empty
            result = admin.delete_group_offsets("app", [TopicPartition("live", 0)])
            assert result == {TopicPartition("live", 0): errors.NoError}
            assert wire_fetch(conn, "app", "live", [0]) == {0: -1}
        with pytest.raises(errors.GroupIdNotFoundError):
            admin.delete_group_offsets("app", [TopicPartition("live", 0)])
    finally:
        consumer.close()
        admin.close()


def kafka_offset(offset: int):
    from kafka.structs import OffsetAndMetadata

    return OffsetAndMetadata(offset, "", -1)


def test_a_catalog_that_cannot_be_written_answers_not_coordinator(h, data_dir):
    """The coordinator cannot write its offsets (here: a read-only catalog): the whole
    request is NOT_COORDINATOR, as Kafka answers when its offsets log refuses the write,
    and the client looks the coordinator up again; nothing is deleted."""
    commit(h, "g", ("a", 0))
    readonly = Catalog.open(data_dir, readonly=True)
    try:
        refused = Harness(readonly, CONFIG)
        assert refused.groups.delete_offsets("g", [("a", 0)]) == (NotCoordinator.code, {})
    finally:
        readonly.close()
    assert committed(h, "g") == {("a", 0)}
