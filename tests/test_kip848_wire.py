"""KIP-848 by hand: raw kio-encoded requests (tests/support.py's KafkaConnection) to a real
``eventstore serve``, checked as Kafka 4.0 decides them in apache/kafka's
``group-coordinator/``.

OffsetCommit v9 and OffsetFetch v8-v9 against ``consumer`` groups:

- ``OffsetMetadataManager.validateOffsetCommit``: a group no coordinator knows takes a
  commit of epoch -1 and refuses any other with GROUP_ID_NOT_FOUND from v9
  (ILLEGAL_GENERATION below);
- ``modern/consumer/ConsumerGroup.validateOffsetCommit``: epoch -1 commits only while the
  group has no members; else an unknown member is UNKNOWN_MEMBER_ID, a member of the
  consumer protocol committing below v9 UNSUPPORTED_VERSION, and any epoch but the
  member's STALE_MEMBER_EPOCH (FENCED_MEMBER_EPOCH is the heartbeat's answer only);
- ``ConsumerGroup.validateOffsetFetch``: no member id and epoch -1 fetch freely; else
  UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH, as the group's error (OffsetFetch v8+).

The rebalance timeout (``GroupMetadataManager.scheduleConsumerGroupRebalanceTimeout``): a
member asked to revoke partitions that keeps heartbeating with them is fenced once its
rebalance timeout passes (its next heartbeat is UNKNOWN_MEMBER_ID), and the member
waiting for them gets them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from support import KafkaConnection, ServerProcess, create_topic, wait_until

NONE = 0
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
UNSUPPORTED_VERSION = 35
GROUP_ID_NOT_FOUND = 69
FENCED_MEMBER_EPOCH = 110
STALE_MEMBER_EPOCH = 113

TOPIC = "kip848-offsets"
REBALANCE_TIMEOUT_MS = 2000


@pytest.fixture
def conn(server: ServerProcess) -> Iterator[KafkaConnection]:
    """A connection to a fresh server (conftest's) that has TOPIC."""
    with KafkaConnection(server.address) as connection:
        create_topic(connection, TOPIC, 2)
        yield connection


def new_group() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


def heartbeat(conn: KafkaConnection, group: str, member: str, epoch: int,
              owned: list | None = None, rebalance_timeout_ms: int = 60_000) -> Any:
    """ConsumerGroupHeartbeat v1, subscribing to TOPIC when joining (epoch 0)."""
    joining = epoch == 0
    return conn.request(
        68, 1, group_id=group, member_id=member, member_epoch=epoch, instance_id=None,
        rack_id=None, rebalance_timeout=rebalance_timeout_ms if joining else -1,
        subscribed_topic_names=[TOPIC] if joining else None, subscribed_topic_regex=None,
        server_assignor=None, topic_partitions=[] if joining else owned)


def joined(conn: KafkaConnection, group: str) -> tuple[str, int]:
    """A new member of ``group``: (member id, its epoch once it owns its partitions)."""
    member = uuid.uuid4().hex
    answer = heartbeat(conn, group, member, 0)
    assert answer.error_code == NONE, answer
    return member, answer.member_epoch


def commit(conn: KafkaConnection, group: str, epoch: int, member: str,
           version: int = 9) -> int:
    """OffsetCommit of offset 1 of TOPIC's partition 0: that partition's error code."""
    response = conn.request(8, version, group_id=group, generation_id_or_member_epoch=epoch,
                            member_id=member, group_instance_id=None, topics=[
                                {"name": TOPIC, "partitions": [{
                                    "partition_index": 0, "committed_offset": 1,
                                    "committed_leader_epoch": -1, "committed_metadata": ""}]}])
    [[partition]] = [t.partitions for t in response.topics]
    return int(partition.error_code)


def fetch(conn: KafkaConnection, groups: list[tuple[str, str | None, int]],
          version: int = 9) -> list[Any]:
    """OffsetFetch v8+ of TOPIC's partition 0 for each (group, member id, epoch)."""
    fields = [{"group_id": g, "topics": [{"name": TOPIC, "partition_indexes": [0]}],
               **({"member_id": m, "member_epoch": e} if version >= 9 else {})}
              for g, m, e in groups]
    return list(conn.request(9, version, groups=fields, require_stable=False).groups)


def test_offset_commit_checks_the_member_epoch(conn: KafkaConnection) -> None:
    assert commit(conn, new_group(), 1, "nobody") == GROUP_ID_NOT_FOUND
    assert commit(conn, new_group(), 1, "nobody", version=8) == ILLEGAL_GENERATION
    assert commit(conn, new_group(), -1, "") == NONE

    group = new_group()
    member, epoch = joined(conn, group)
    assert commit(conn, group, epoch, member) == NONE
    assert commit(conn, group, epoch - 1, member) == STALE_MEMBER_EPOCH
    assert commit(conn, group, epoch + 1, member) == STALE_MEMBER_EPOCH
    assert commit(conn, group, epoch, "nobody") == UNKNOWN_MEMBER_ID
    assert commit(conn, group, -1, "") == UNKNOWN_MEMBER_ID  # the group has a member
    assert commit(conn, group, epoch, member, version=8) == UNSUPPORTED_VERSION

    # a second member bumps the group epoch; the first keeps its epoch until it reconciles
    other, _ = joined(conn, group)
    assert commit(conn, group, epoch, member) == NONE
    assert commit(conn, group, epoch, other) == STALE_MEMBER_EPOCH  # not the other's epoch

    left = heartbeat(conn, group, member, -1)
    assert left.error_code == NONE
    assert commit(conn, group, epoch, member) == UNKNOWN_MEMBER_ID


def test_a_wrong_epoch_is_stale_in_commits_and_fenced_in_heartbeats(
        conn: KafkaConnection) -> None:
    group = new_group()
    member, epoch = joined(conn, group)
    assert commit(conn, group, epoch + 1, member) == STALE_MEMBER_EPOCH
    assert heartbeat(conn, group, member, epoch + 1, []).error_code == FENCED_MEMBER_EPOCH


def test_offset_fetch_checks_the_member_epoch_per_group(conn: KafkaConnection) -> None:
    group = new_group()
    member, epoch = joined(conn, group)
    assert commit(conn, group, epoch, member) == NONE
    unknown = new_group()
    answers = fetch(conn, [(group, member, epoch), (group, None, -1), (group, member, epoch - 1),
                           (group, "nobody", epoch), (unknown, None, -1)])
    assert [(a.group_id, int(a.error_code)) for a in answers] == [
        (group, NONE), (group, NONE), (group, STALE_MEMBER_EPOCH), (group, UNKNOWN_MEMBER_ID),
        (unknown, NONE)]
    offsets = [[p.committed_offset for t in a.topics for p in t.partitions] for a in answers]
    assert offsets == [[1], [1], [], [], [-1]]

    # v8 batches groups without the member: every group fetches freely
    answers = fetch(conn, [(group, None, -1), (unknown, None, -1)], version=8)
    assert [[p.committed_offset for t in a.topics for p in t.partitions]
            for a in answers] == [[1], [-1]]


def owned(answer) -> list[dict]:
    return [{"topic_id": t.topic_id, "partitions": list(t.partitions)}
            for t in answer.assignment.topic_partitions]


def test_a_member_slow_to_revoke_is_fenced_after_its_rebalance_timeout(
        conn: KafkaConnection) -> None:
    group = new_group()
    a_id, b_id = uuid.uuid4().hex, uuid.uuid4().hex
    a = heartbeat(conn, group, a_id, 0, rebalance_timeout_ms=REBALANCE_TIMEOUT_MS)
    everything = owned(a)
    assert sum(len(t["partitions"]) for t in everything) == 2, TOPIC
    b = heartbeat(conn, group, b_id, 0)
    assert (b.error_code, owned(b)) == (NONE, [])
    asked = heartbeat(conn, group, a_id, a.member_epoch, everything)
    assert asked.error_code == NONE and asked.assignment is not None  # give one up
    asked_at = time.monotonic()

    def b_has_everything() -> bool:
        # a never acknowledges: it keeps reporting both partitions
        heartbeat(conn, group, a_id, a.member_epoch, everything)
        answer = heartbeat(conn, group, b_id, b.member_epoch, [])
        return answer.assignment is not None and owned(answer) == everything

    wait_until(b_has_everything, 15, "b given a's partitions once a is fenced")
    assert time.monotonic() - asked_at >= REBALANCE_TIMEOUT_MS / 1000 * 0.8
    assert heartbeat(conn, group, a_id, a.member_epoch, everything).error_code \
        == UNKNOWN_MEMBER_ID


def describe(conn: KafkaConnection, group: str) -> Any:
    """ConsumerGroupDescribe v1 of one group."""
    (described,) = conn.request(69, 1, group_ids=[group],
                                include_authorized_operations=False).groups
    return described


def test_a_group_survives_a_restart_with_its_epochs_and_partitions(
        server: ServerProcess, conn: KafkaConnection) -> None:
    """What Kafka reads back from __consumer_offsets: after a restart the members'
    heartbeats at their epochs are answered NONE with no new assignment (nothing to
    revoke, nothing to rejoin), the group and assignment epochs are the same, and a
    commit at the member's epoch is taken."""
    group = new_group()
    a_id, b_id = uuid.uuid4().hex, uuid.uuid4().hex
    a = heartbeat(conn, group, a_id, 0)
    b = heartbeat(conn, group, b_id, 0)
    asked = heartbeat(conn, group, a_id, a.member_epoch, owned(a))  # give one up
    a = heartbeat(conn, group, a_id, a.member_epoch, owned(asked))  # done: at the new epoch
    b = heartbeat(conn, group, b_id, b.member_epoch, [])
    held = {a_id: owned(asked), b_id: owned(b)}
    assert [len(p) for tps in held.values() for p in (tps[0]["partitions"],)] == [1, 1]
    before = describe(conn, group)
    assert before.group_state == "Stable"

    server.restart()
    with KafkaConnection(server.address) as again:
        after = describe(again, group)
        assert (after.group_epoch, after.assignment_epoch, after.group_state) == (
            before.group_epoch, before.assignment_epoch, "Stable")
        assert [(m.member_id, m.member_epoch, m.assignment) for m in after.members] == [
            (m.member_id, m.member_epoch, m.assignment) for m in before.members]
        for member, answer in ((a_id, a), (b_id, b)):
            beat = heartbeat(again, group, member, answer.member_epoch, held[member])
            assert (beat.error_code, beat.member_epoch, beat.assignment) == (
                NONE, answer.member_epoch, None)
        assert commit(again, group, a.member_epoch, a_id) == NONE


def listed(conn: KafkaConnection, version: int = 5, **filters: list[str]) -> dict[str, Any]:
    """ListGroups: each group id's listing."""
    return {g.group_id: g for g in conn.request(16, version, **filters).groups}


def test_list_groups_v5_gives_and_filters_the_group_type_case_insensitively(
        conn: KafkaConnection) -> None:
    """As Kafka's GroupMetadataManager.listGroups: TypesFilter (v5) and StatesFilter (v4)
    match whatever their case, an unknown type matches no group."""
    consumer = new_group()
    joined(conn, consumer)
    classic = new_group()
    assert commit(conn, classic, -1, "") == NONE  # a standalone commit: a classic group
    every = listed(conn)
    assert (every[consumer].group_type, every[classic].group_type) == ("consumer", "classic")
    assert (every[consumer].group_state, every[classic].group_state) == ("Stable", "Empty")
    assert {every[consumer].protocol_type, every[classic].protocol_type} == {"consumer", ""}
    for types, wanted in ((["CONSUMER"], {consumer}), (["Classic"], {classic}),
                          (["consumer", "classic"], {consumer, classic}), (["share"], set())):
        assert set(listed(conn, types_filter=types)) & {consumer, classic} == wanted, types
    assert set(listed(conn, states_filter=["STABLE"])) & {consumer, classic} == {consumer}
    assert set(listed(conn, states_filter=["empty"], types_filter=["CLASSIC"])) & {
        consumer, classic} == {classic}
    assert set(listed(conn, version=4, states_filter=["stable"])) & {
        consumer, classic} == {consumer}
