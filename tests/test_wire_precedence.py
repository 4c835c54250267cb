"""The wire protocol as Kafka speaks it, request by request, against a real ``eventstore serve``.

Two things are shown here with raw kio-encoded requests (tests/support.py's
KafkaConnection), so no client library smooths anything over:

- every API at every version the registry advertises answers a well-formed request with a
  well-formed response of that same version (the registry is iterated, so an API added
  there is covered here at once);
- the group APIs answer each error case with the code Kafka's group coordinator returns,
  checked in the order Kafka checks. Each test names the Kafka class and method that
  decides each case; the classes are files of apache/kafka's
  ``group-coordinator/src/main/java/org/apache/kafka/coordinator/group/``:
  ``GroupCoordinatorService.java`` (checks before a group is looked up),
  ``GroupMetadataManager.java`` (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
  DescribeGroups), ``OffsetMetadataManager.java`` (OffsetCommit, OffsetFetch) and
  ``classic/ClassicGroup.java`` (``validateMember``, ``validateOffsetCommit``,
  ``supportsProtocols``).

The watchdog of tests/support.py is shown here too: a request a server never answers
fails the test that sent it, naming the API, instead of hanging it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import (
    REQUEST_WATCHDOG_S,
    KafkaConnection,
    RequestNotAnswered,
    ServerProcess,
    create_topic,
    wait_until,
)

from eventstore.kafka.codec.apikeys import ApiKey
from eventstore.kafka.codec.protocol import api_name
from eventstore.kafka.registry import SUPPORTED_VERSIONS

NONE = 0
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NOT_COORDINATOR = 16
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82

TOPIC = "precedence"
SESSION_MS = 30_000
REBALANCE_MS = 60_000  # a rebalance a test starts outlasts the test
PROTOCOLS = (("range", b"range-subscription"),)
ASSIGNMENT = b"the-leaders-assignment"

# what a request needs beyond zeros to be answered at all: acks=0 is never answered
NOT_ZERO: dict[int, dict[str, Any]] = {ApiKey.PRODUCE: {"acks": -1, "timeout": 1000}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module (every test uses groups of its own), with a topic."""
    with ServerProcess.start(str(tmp_path_factory.mktemp("wire") / "data")) as server:
        with KafkaConnection(server.address) as conn:
            create_topic(conn, TOPIC, 1)
        yield server


@pytest.fixture
def conn(server: ServerProcess) -> Iterator[KafkaConnection]:
    with KafkaConnection(server.address) as connection:
        yield connection


def new_group() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


# -- every API, every version ------------------------------------------------------------------


@pytest.mark.parametrize("api_key", sorted(SUPPORTED_VERSIONS), ids=api_name)
def test_every_advertised_version_answers_in_that_version(server: ServerProcess,
                                                          api_key: int) -> None:
    """A minimal request (kio's defaults, zeros elsewhere: no topics, no groups) of each
    version advertised is answered by one response frame that decodes as that version's
    response, to the end, with the request's correlation id; the connection stays open
    for the next version."""
    low, high = SUPPORTED_VERSIONS[api_key]
    with KafkaConnection(server.address) as conn:
        for version in range(low, high + 1):
            response = conn.request(api_key, version, **NOT_ZERO.get(api_key, {}))
            assert response.__version__ == version, (api_name(api_key), version)
            assert response.__api_key__ == api_key


# -- the group APIs by hand --------------------------------------------------------------------


def join(conn: KafkaConnection, group: str, member_id: str = "", instance: str | None = None,
         *, protocol_type: str = "consumer", protocols: tuple = PROTOCOLS,
         session_ms: int = SESSION_MS, version: int = 5) -> Any:
    """One JoinGroup; its response (waits while the coordinator parks it)."""
    return conn.request(11, version, **join_fields(group, member_id, instance, protocol_type,
                                                   protocols, session_ms))


def join_fields(group: str, member_id: str, instance: str | None, protocol_type: str,
                protocols: tuple, session_ms: int) -> dict[str, Any]:
    return {"group_id": group, "session_timeout": session_ms, "rebalance_timeout": REBALANCE_MS,
            "member_id": member_id, "group_instance_id": instance,
            "protocol_type": protocol_type,
            "protocols": [{"name": name, "metadata": data} for name, data in protocols]}


def join_member(conn: KafkaConnection, group: str, instance: str | None = None) -> tuple[str, int]:
    """Join as a new member (KIP-394's second round trip for a dynamic one): its member id
    and the generation it joined."""
    first = join(conn, group, instance=instance)
    if instance is None:
        assert first.error_code == MEMBER_ID_REQUIRED, first
        first = join(conn, group, first.member_id)
    assert first.error_code == NONE, first
    return first.member_id, first.generation_id


def sync(conn: KafkaConnection, group: str, generation: int, member_id: str,
         instance: str | None = None, *, protocol_type: str | None = "consumer",
         protocol_name: str | None = "range", assignments: tuple = ()) -> Any:
    return conn.request(14, 5, group_id=group, generation_id=generation, member_id=member_id,
                        group_instance_id=instance, protocol_type=protocol_type,
                        protocol_name=protocol_name,
                        assignments=[{"member_id": m, "assignment": a} for m, a in assignments])


def heartbeat(conn: KafkaConnection, group: str, generation: int, member_id: str,
              instance: str | None = None) -> int:
    return int(conn.request(12, 4, group_id=group, generation_id=generation,
                            member_id=member_id, group_instance_id=instance).error_code)


def commit(conn: KafkaConnection, group: str, generation: int, member_id: str,
           instance: str | None = None, version: int = 8) -> int:
    """OffsetCommit of offset 1 of the topic's partition 0: that partition's error code."""
    response = conn.request(8, version, group_id=group, generation_id_or_member_epoch=generation,
                            member_id=member_id, group_instance_id=instance, topics=[
                                {"name": TOPIC, "partitions": [{
                                    "partition_index": 0, "committed_offset": 1,
                                    "committed_leader_epoch": -1, "committed_metadata": ""}]}])
    [[partition]] = [t.partitions for t in response.topics]
    return int(partition.error_code)


def leave(conn: KafkaConnection, group: str, *members: tuple[str, str | None]
          ) -> tuple[int, list[int]]:
    """LeaveGroup v5 of (member id, instance id) identities: the top-level error code and
    each member's."""
    response = conn.request(13, 5, group_id=group, members=[
        {"member_id": m, "group_instance_id": i, "reason": None} for m, i in members])
    return int(response.error_code), [int(m.error_code) for m in response.members]


def describe(conn: KafkaConnection, group: str) -> Any:
    (described,) = conn.request(15, 5, groups=[group],
                                include_authorized_operations=False).groups
    return described


def state(conn: KafkaConnection, group: str) -> str:
    return describe(conn, group).group_state


def stable_group(conn: KafkaConnection, instance: str | None = None) -> tuple[str, str, int]:
    """A Stable group of one member (the leader): (group, member id, generation)."""
    group = new_group()
    member, generation = join_member(conn, group, instance)
    synced = sync(conn, group, generation, member, instance,
                  assignments=((member, ASSIGNMENT),))
    assert synced.error_code == NONE and synced.assignment == ASSIGNMENT, synced
    return group, member, generation


def completing_group(conn: KafkaConnection) -> tuple[str, str, int]:
    """A group of one member in CompletingRebalance at generation 2 (the leader joined again
    after generation 1 became stable, and has not synced): (group, member id, 2)."""
    group, member, generation = stable_group(conn)
    again = join(conn, group, member)
    assert again.error_code == NONE and again.generation_id == generation + 1, again
    assert state(conn, group) == "CompletingRebalance"
    return group, member, again.generation_id


def preparing_group(server: ServerProcess, conn: KafkaConnection
                    ) -> tuple[str, str, int, KafkaConnection]:
    """A Stable group of one member that a second member has just asked to join: the group
    is PreparingRebalance until the first joins again (REBALANCE_MS). (group, first
    member's id, its generation, the connection whose JoinGroup is parked)."""
    group, member, generation = stable_group(conn)
    newcomer = KafkaConnection(server.address)
    first = join(newcomer, group)
    assert first.error_code == MEMBER_ID_REQUIRED, first
    _, frame = newcomer.encode(11, 5, **join_fields(group, first.member_id, None, "consumer",
                                                    PROTOCOLS, SESSION_MS))
    newcomer.send_frame(frame)  # parked until the rebalance completes: not read
    wait_until(lambda: state(conn, group) == "PreparingRebalance", 10, "a rebalance")
    return group, member, generation, newcomer


def empty_group(conn: KafkaConnection) -> str:
    """A group with committed offsets and no members (Empty)."""
    group = new_group()
    assert commit(conn, group, -1, "") == NONE
    assert state(conn, group) == "Empty"
    return group


# -- OffsetCommit ------------------------------------------------------------------------------


def test_offset_commit_checks_the_member_and_generation_before_the_state(
        server: ServerProcess, conn: KafkaConnection) -> None:
    """OffsetCommit v8, as Kafka decides it:

    - ``GroupCoordinatorService.commitOffsets`` refuses only a null group id: the empty
      one is an ordinary group, kept for backwards compatibility;
    - ``OffsetMetadataManager.validateOffsetCommit``: an unknown group takes a commit of
      generation -1 (a "simple" group is made) and answers any other ILLEGAL_GENERATION
      (below v9);
    - ``ClassicGroup.validateOffsetCommit``: generation -1 commits while the group is
      Empty; otherwise ``validateMember`` (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID for a
      static member replaced by another) and then the generation (ILLEGAL_GENERATION),
      so a member of a stale generation gets ILLEGAL_GENERATION even while the group is
      CompletingRebalance; with no member id and generation -1 a non-empty group answers
      UNKNOWN_MEMBER_ID; only a current member during CompletingRebalance gets
      REBALANCE_IN_PROGRESS, and PreparingRebalance takes the commit.
    """
    assert commit(conn, "", -1, "") == NONE
    assert commit(conn, new_group(), 1, "nobody") == ILLEGAL_GENERATION
    assert commit(conn, new_group(), -1, "") == NONE
    empty = empty_group(conn)
    assert commit(conn, empty, -1, "") == NONE
    assert commit(conn, empty, 1, "nobody") == UNKNOWN_MEMBER_ID

    group, member, generation = stable_group(conn)
    assert commit(conn, group, generation, member) == NONE
    assert commit(conn, group, -1, "") == UNKNOWN_MEMBER_ID
    assert commit(conn, group, -1, member) == ILLEGAL_GENERATION
    assert commit(conn, group, generation, "nobody") == UNKNOWN_MEMBER_ID
    assert commit(conn, group, generation + 5, "nobody") == UNKNOWN_MEMBER_ID
    assert commit(conn, group, generation - 1, member) == ILLEGAL_GENERATION

    group, member, generation = completing_group(conn)
    assert commit(conn, group, generation - 1, member) == ILLEGAL_GENERATION
    assert commit(conn, group, generation, "nobody") == UNKNOWN_MEMBER_ID
    assert commit(conn, group, generation, member) == REBALANCE_IN_PROGRESS

    group, member, generation, newcomer = preparing_group(server, conn)
    with newcomer:
        assert commit(conn, group, generation, member) == NONE
        assert commit(conn, group, generation - 1, member) == ILLEGAL_GENERATION


def test_offset_commit_fences_a_replaced_static_member(conn: KafkaConnection) -> None:
    """``ClassicGroup.validateMember`` (from ``validateOffsetCommit``): a group.instance.id
    held by another member id is FENCED_INSTANCE_ID, one the group does not know is
    UNKNOWN_MEMBER_ID, both before the generation is looked at."""
    group, member, generation = stable_group(conn, instance="static-1")
    assert commit(conn, group, generation, member, "static-1") == NONE
    assert commit(conn, group, generation, "impostor", "static-1") == FENCED_INSTANCE_ID
    assert commit(conn, group, generation + 1, "impostor", "static-1") == FENCED_INSTANCE_ID
    assert commit(conn, group, generation, member, "unknown-instance") == UNKNOWN_MEMBER_ID


# -- Heartbeat ---------------------------------------------------------------------------------


def test_heartbeat_checks_the_member_then_the_generation_then_the_state(
        server: ServerProcess, conn: KafkaConnection) -> None:
    """Heartbeat v4:

    - ``GroupCoordinatorService.heartbeat``: an empty group id is INVALID_GROUP_ID;
    - ``GroupMetadataManager.classicGroupHeartbeat``: an unknown group is UNKNOWN_MEMBER_ID;
    - ``GroupMetadataManager.validateClassicGroupHeartbeat``: ``validateMember`` first
      (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID), then the generation (ILLEGAL_GENERATION);
    - ``classicGroupHeartbeatToClassicGroup``: then the state: PreparingRebalance is
      REBALANCE_IN_PROGRESS, CompletingRebalance and Stable are answered NONE (members
      heartbeat between their JoinGroup and SyncGroup).
    """
    assert heartbeat(conn, "", 1, "m") == INVALID_GROUP_ID
    assert heartbeat(conn, new_group(), 1, "m") == UNKNOWN_MEMBER_ID
    assert heartbeat(conn, empty_group(conn), 0, "m") == UNKNOWN_MEMBER_ID

    group, member, generation = stable_group(conn)
    assert heartbeat(conn, group, generation, member) == NONE
    assert heartbeat(conn, group, generation, "nobody") == UNKNOWN_MEMBER_ID
    assert heartbeat(conn, group, generation - 1, "nobody") == UNKNOWN_MEMBER_ID
    assert heartbeat(conn, group, generation - 1, member) == ILLEGAL_GENERATION

    group, member, generation = completing_group(conn)
    assert heartbeat(conn, group, generation, member) == NONE
    assert heartbeat(conn, group, generation - 1, member) == ILLEGAL_GENERATION

    group, member, generation, newcomer = preparing_group(server, conn)
    with newcomer:
        assert heartbeat(conn, group, generation, member) == REBALANCE_IN_PROGRESS
        assert heartbeat(conn, group, generation - 1, member) == ILLEGAL_GENERATION
        assert heartbeat(conn, group, generation, "nobody") == UNKNOWN_MEMBER_ID


def test_heartbeat_fences_a_replaced_static_member(conn: KafkaConnection) -> None:
    """``ClassicGroup.validateMember`` from ``validateClassicGroupHeartbeat``, before the
    generation: FENCED_INSTANCE_ID for an instance id another member id holds,
    UNKNOWN_MEMBER_ID for one the group does not know."""
    group, member, generation = stable_group(conn, instance="static-1")
    assert heartbeat(conn, group, generation, member, "static-1") == NONE
    assert heartbeat(conn, group, generation - 1, "impostor", "static-1") == FENCED_INSTANCE_ID
    assert heartbeat(conn, group, generation, member, "unknown-instance") == UNKNOWN_MEMBER_ID


# -- SyncGroup ---------------------------------------------------------------------------------


def test_sync_group_checks_the_member_generation_protocol_then_the_state(
        server: ServerProcess, conn: KafkaConnection) -> None:
    """SyncGroup v5:

    - ``GroupCoordinatorService.syncGroup``: an empty group id is INVALID_GROUP_ID;
    - ``GroupMetadataManager.classicGroupSync``: an unknown or Empty group is
      UNKNOWN_MEMBER_ID;
    - ``GroupMetadataManager.validateSyncGroup``: ``validateMember``, then the generation
      (ILLEGAL_GENERATION), then the protocol type and name when given
      (INCONSISTENT_GROUP_PROTOCOL);
    - ``classicGroupSyncToClassicGroup``: then the state: PreparingRebalance is
      REBALANCE_IN_PROGRESS, Stable returns the member's assignment.
    """
    assert sync(conn, "", 1, "m").error_code == INVALID_GROUP_ID
    assert sync(conn, new_group(), 1, "m").error_code == UNKNOWN_MEMBER_ID
    assert sync(conn, empty_group(conn), 0, "m").error_code == UNKNOWN_MEMBER_ID

    group, member, generation = stable_group(conn)
    assert sync(conn, group, generation, "nobody").error_code == UNKNOWN_MEMBER_ID
    assert sync(conn, group, generation - 1, "nobody").error_code == UNKNOWN_MEMBER_ID
    stale = sync(conn, group, generation - 1, member, protocol_type="connect")
    assert stale.error_code == ILLEGAL_GENERATION
    assert sync(conn, group, generation, member,
                protocol_type="connect").error_code == INCONSISTENT_GROUP_PROTOCOL
    assert sync(conn, group, generation, member,
                protocol_name="roundrobin").error_code == INCONSISTENT_GROUP_PROTOCOL
    again = sync(conn, group, generation, member, protocol_type=None, protocol_name=None)
    assert (again.error_code, again.assignment) == (NONE, ASSIGNMENT)
    assert (again.protocol_type, again.protocol_name) == ("consumer", "range")

    group, member, generation, newcomer = preparing_group(server, conn)
    with newcomer:
        assert sync(conn, group, generation, member).error_code == REBALANCE_IN_PROGRESS
        assert sync(conn, group, generation - 1, member).error_code == ILLEGAL_GENERATION


def test_sync_group_fences_a_replaced_static_member(conn: KafkaConnection) -> None:
    """``ClassicGroup.validateMember`` from ``validateSyncGroup``: FENCED_INSTANCE_ID before
    the generation is looked at."""
    group, member, generation = stable_group(conn, instance="static-1")
    fenced = sync(conn, group, generation - 1, "impostor", "static-1")
    assert fenced.error_code == FENCED_INSTANCE_ID


# -- LeaveGroup --------------------------------------------------------------------------------


def test_leave_group_answers_each_member_as_kafka_does(conn: KafkaConnection) -> None:
    """LeaveGroup v5 (members by identity) and v0 (one member id):

    - ``GroupCoordinatorService.leaveGroup``: an empty group id is INVALID_GROUP_ID for the
      whole request; an unknown group (``classicGroupLeave`` throws UNKNOWN_MEMBER_ID)
      answers every member UNKNOWN_MEMBER_ID with no top-level error (v0: at top level);
    - ``GroupMetadataManager.classicGroupLeaveToClassicGroup``, per member: no member id
      and a known group.instance.id removes that static member (an admin's removal); no
      member id otherwise is UNKNOWN_MEMBER_ID; a pending member (KIP-394) leaves; else
      ``validateMember``: UNKNOWN_MEMBER_ID, or FENCED_INSTANCE_ID for an instance id
      another member id holds. The other members of the request still leave.
    """
    assert leave(conn, "", ("m", None)) == (INVALID_GROUP_ID, [])
    assert leave(conn, new_group(), ("m", None), ("", "i")) == (
        NONE, [UNKNOWN_MEMBER_ID, UNKNOWN_MEMBER_ID])
    v0 = conn.request(13, 0, group_id=new_group(), member_id="m")
    assert v0.error_code == UNKNOWN_MEMBER_ID

    group, member, _ = stable_group(conn, instance="static-1")
    assert leave(conn, group, ("impostor", "static-1"), ("nobody", None), ("", "unknown")) == (
        NONE, [FENCED_INSTANCE_ID, UNKNOWN_MEMBER_ID, UNKNOWN_MEMBER_ID])
    assert state(conn, group) == "Stable"
    assert leave(conn, group, ("", "static-1")) == (NONE, [NONE])
    assert state(conn, group) == "Empty"

    group = new_group()
    pending = join(conn, group)
    assert pending.error_code == MEMBER_ID_REQUIRED
    assert leave(conn, group, (pending.member_id, None)) == (NONE, [NONE])
    assert join(conn, group, pending.member_id).error_code == UNKNOWN_MEMBER_ID

    group, member, _ = stable_group(conn)
    assert leave(conn, group, (member, "not-its-instance")) == (NONE, [UNKNOWN_MEMBER_ID])
    assert leave(conn, group, (member, None)) == (NONE, [NONE])
    assert state(conn, group) == "Empty"


# -- JoinGroup ---------------------------------------------------------------------------------


def test_join_group_checks_as_kafka_does(conn: KafkaConnection) -> None:
    """JoinGroup v4 and v5:

    - ``GroupCoordinatorService.joinGroup``: an empty group id is INVALID_GROUP_ID, a
      session timeout outside group.min/max.session.timeout.ms INVALID_SESSION_TIMEOUT;
    - ``GroupMetadataManager.classicGroupJoinToClassicGroup``: a member id for a group that
      does not exist is UNKNOWN_MEMBER_ID, whatever protocols it offers;
    - ``classicGroupJoinNewMember`` / ``classicGroupJoinExistingMember``: the protocols are
      checked first (``ClassicGroup.supportsProtocols``: an Empty group needs a protocol
      type and a protocol, a non-empty one the same type and a protocol every member
      supports: INCONSISTENT_GROUP_PROTOCOL), even for a member id the group does not
      know; then a new dynamic member gets MEMBER_ID_REQUIRED (v4+); an existing member
      ``validateMember`` (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID);
    - during CompletingRebalance a member that joins again with the same protocols gets
      the current generation back, with no new rebalance.
    """
    assert join(conn, "").error_code == INVALID_GROUP_ID
    assert join(conn, new_group(), session_ms=1000).error_code == INVALID_SESSION_TIMEOUT
    assert join(conn, new_group(), session_ms=3_600_000).error_code == INVALID_SESSION_TIMEOUT
    assert join(conn, new_group(), "ghost").error_code == UNKNOWN_MEMBER_ID
    assert join(conn, new_group(), "ghost", protocol_type="").error_code == UNKNOWN_MEMBER_ID
    assert join(conn, new_group(), protocol_type="").error_code == INCONSISTENT_GROUP_PROTOCOL
    assert join(conn, new_group(), protocols=()).error_code == INCONSISTENT_GROUP_PROTOCOL
    assert join(conn, new_group(), version=4).error_code == MEMBER_ID_REQUIRED

    group, member, generation = stable_group(conn, instance="static-1")
    assert join(conn, group, protocol_type="connect").error_code == INCONSISTENT_GROUP_PROTOCOL
    assert join(conn, group, protocols=(("roundrobin", b""),)
                ).error_code == INCONSISTENT_GROUP_PROTOCOL
    assert join(conn, group, "ghost",
                protocol_type="connect").error_code == INCONSISTENT_GROUP_PROTOCOL
    assert join(conn, group, "ghost").error_code == UNKNOWN_MEMBER_ID
    assert join(conn, group, "impostor", "static-1").error_code == FENCED_INSTANCE_ID
    assert join(conn, group, member, "other-instance").error_code == UNKNOWN_MEMBER_ID
    assert state(conn, group) == "Stable"

    group, member, generation = completing_group(conn)
    again = join(conn, group, member)
    assert (again.error_code, again.generation_id, again.leader) == (NONE, generation, member)
    assert [m.member_id for m in again.members] == [member]
    assert state(conn, group) == "CompletingRebalance"


# -- OffsetFetch, DescribeGroups, FindCoordinator ----------------------------------------------


def test_offset_fetch_of_unknown_groups_and_partitions_is_no_error(
        conn: KafkaConnection) -> None:
    """OffsetFetch v7: ``OffsetMetadataManager.fetchOffsets`` answers a group that does not
    exist, or a partition with nothing committed, with offset -1, leader epoch -1 and no
    metadata, without an error; all partitions of an unknown group are none.
    ``GroupCoordinatorService.fetchOffsets`` (like ``commitOffsets``) refuses only a null
    group id, so the empty one is an ordinary group."""
    response = conn.request(9, 7, group_id=new_group(), require_stable=False,
                            topics=[{"name": TOPIC, "partition_indexes": [0]}])
    [[partition]] = [t.partitions for t in response.topics]
    assert (int(response.error_code), int(partition.error_code)) == (NONE, NONE)
    assert (partition.committed_offset, partition.committed_leader_epoch,
            partition.metadata) == (-1, -1, "")
    assert commit(conn, "", -1, "") == NONE
    response = conn.request(9, 7, group_id="", require_stable=False,
                            topics=[{"name": TOPIC, "partition_indexes": [0]}])
    [[partition]] = [t.partitions for t in response.topics]
    assert (int(partition.error_code), partition.committed_offset) == (NONE, 1)
    everything = conn.request(9, 7, group_id=new_group(), require_stable=False, topics=None)
    assert (int(everything.error_code), everything.topics) == (NONE, ())

    group, member, generation = stable_group(conn)
    assert commit(conn, group, generation, member) == NONE
    response = conn.request(9, 7, group_id=group, require_stable=False, topics=None)
    [[partition]] = [t.partitions for t in response.topics]
    assert (partition.partition_index, partition.committed_offset) == (0, 1)


def test_describe_groups_as_kafka_describes_them(server: ServerProcess,
                                                 conn: KafkaConnection) -> None:
    """DescribeGroups v5, ``GroupMetadataManager.describeGroups``: a group that does not
    exist is described Dead with no error (GROUP_ID_NOT_FOUND is v6+); a Stable group
    with its protocol and each member's metadata and assignment; any other state with
    its protocol type only and members without metadata or assignment
    (``ClassicGroupMember.describeNoMetadata``)."""
    unknown = describe(conn, new_group())
    assert (int(unknown.error_code), unknown.group_state, unknown.members) == (NONE, "Dead", ())

    group, member, _ = stable_group(conn)
    stable = describe(conn, group)
    assert (stable.group_state, stable.protocol_type, stable.protocol_data) == (
        "Stable", "consumer", "range")
    [described] = stable.members
    assert (described.member_id, described.member_metadata, described.member_assignment) == (
        member, PROTOCOLS[0][1], ASSIGNMENT)

    group, member, _, newcomer = preparing_group(server, conn)
    with newcomer:
        preparing = describe(conn, group)
        assert (preparing.group_state, preparing.protocol_type, preparing.protocol_data) == (
            "PreparingRebalance", "consumer", "")
        assert {m.member_id for m in preparing.members} >= {member}
        assert all((m.member_metadata, m.member_assignment) == (b"", b"")
                   for m in preparing.members)


def test_find_coordinator_of_a_group_is_this_node(server: ServerProcess,
                                                  conn: KafkaConnection) -> None:
    """FindCoordinator v0-3 for a group: one node is every group's coordinator, always
    available (Kafka's COORDINATOR_NOT_AVAILABLE is for a coordinator still loading)."""
    host, port = server.bootstrap.rsplit(":", 1)
    for version in range(0, 4):
        answer = conn.request(10, version, key=new_group(), key_type=0)
        assert (int(answer.error_code), answer.node_id, answer.host, answer.port) == (
            NONE, 0, host, int(port)), version


def test_a_parked_join_is_answered_or_closed_when_the_server_stops(tmp_path: Path) -> None:
    """A JoinGroup parked in PreparingRebalance when the server gets SIGTERM is answered
    NOT_COORDINATOR (what Kafka's ``GroupMetadataManager.onUnloaded`` answers a parked
    join when its coordinator moves) or has its connection closed (a stopping Kafka broker
    stops its socket server first): either way the client hears at once, and the server
    exits 0."""
    with ServerProcess.start(str(tmp_path / "data")) as server, \
            KafkaConnection(server.address) as conn:
        group, _, _ = stable_group(conn)
        with KafkaConnection(server.address) as newcomer:
            first = join(newcomer, group)
            join_id, frame = newcomer.encode(11, 5, **join_fields(
                group, first.member_id, None, "consumer", PROTOCOLS, SESSION_MS))
            newcomer.send_frame(frame)
            wait_until(lambda: state(conn, group) == "PreparingRebalance", 10, "a rebalance")
            server.signal(signal.SIGTERM)
            try:
                answer = newcomer.read_response(11, 5, join_id).error_code
            except ConnectionError:
                answer = "closed"
            assert answer in (NOT_COORDINATOR, "closed")
        assert server.wait(10) == 0


# -- the watchdog ------------------------------------------------------------------------------


class SilentServer:
    """A TCP server that accepts connections and reads whatever comes, and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()
        self.received = 0
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()

    def _serve(self) -> None:
        try:
            while True:
                client, _ = self._listener.accept()
                threading.Thread(target=self._drain, args=(client,), daemon=True).start()
        except OSError:  # closed: the test is over
            return

    def _drain(self, client: socket.socket) -> None:
        with client:
            while chunk := client.recv(65536):
                self.received += len(chunk)


def test_a_request_never_answered_fails_naming_its_api() -> None:
    """The watchdog: a request a server reads and never answers raises RequestNotAnswered
    (an AssertionError: the test fails) naming the API, once the watchdog passes."""
    with SilentServer() as silent, KafkaConnection(silent.address, watchdog=1.0) as conn:
        started = time.monotonic()
        with pytest.raises(RequestNotAnswered, match=r"^Metadata v12 request \(correlation id 1\) "
                                                     r"not answered within 1\.\d s$"):
            conn.request(3, 12, topics=None, allow_auto_topic_creation=False,
                         include_topic_authorized_operations=False)
        assert 1.0 <= time.monotonic() - started < 5
        assert silent.received > 0, "the request was sent"


def test_a_test_whose_request_is_never_answered_fails_rather_than_hangs(
        tmp_path: Path) -> None:
    """Seen from pytest: a test that sends a request to a silent server is reported failed,
    with the API named, and the run ends."""
    (tmp_path / "test_silent.py").write_text(textwrap.dedent("""
        import os
        from support import KafkaConnection

        def test_silent():
            host, port = os.environ["SILENT_SERVER"].split(":")
            with KafkaConnection((host, int(port)), watchdog=1.0) as conn:
                conn.request(18, 3, client_software_name="t", client_software_version="1")
    """))
    tests_dir = Path(__file__).resolve().parent
    with SilentServer() as silent:
        env = {**os.environ, "SILENT_SERVER": f"{silent.address[0]}:{silent.address[1]}",
               "PYTHONPATH": str(tests_dir), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              str(tmp_path / "test_silent.py")], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout
    assert "1 failed" in run.stdout
    assert "RequestNotAnswered: ApiVersions v3 request" in run.stdout


@pytest.mark.slow
def test_the_watchdog_fires_at_30_s_by_default() -> None:
    """The default watchdog is REQUEST_WATCHDOG_S (30 s), even with longer reads allowed."""
    assert REQUEST_WATCHDOG_S == 30.0
    with SilentServer() as silent, KafkaConnection(silent.address, timeout=60) as conn:
        started = time.monotonic()
        with pytest.raises(RequestNotAnswered, match=r"^ApiVersions v0 request .* within 30\."):
            conn.request(18, 0)
        assert 30 <= time.monotonic() - started < 35
