"""Static membership (KIP-345) with confluent-kafka (librdkafka) against a real
``eventstore serve``: a consumer with a ``group.instance.id`` that restarts within its
session timeout gets its partitions back at once, and the other member is never revoked;
a second consumer taking an instance id that is in use fences the first one, as Kafka's
coordinator does (``ClassicGroup.replaceStaticMember``, then FENCED_INSTANCE_ID on the old
member's next heartbeat). ``eventstore groups describe --members`` shows the instance ids,
and kafka-python's admin removes a static member by instance id (LeaveGroup v3+).
"""

from __future__ import annotations

from collections.abc import Iterable

import kafka
import kafka.errors
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.admin import MemberToRemove
from support import ServerProcess, wait_until
from test_cli_support import cli, table_rows

TOPIC, GROUP = "static-events", "static-group"
PARTITIONS = 4
TIMEOUT_S = 30


class Member:
    """A subscribed consumer with a group.instance.id, and what its callbacks saw."""

    def __init__(self, server: ServerProcess, instance_id: str) -> None:
        self.assigned: list[set[int]] = []
        self.revoked: list[set[int]] = []
        self.errors: list[KafkaError] = []
        self.consumer = Consumer({
            "bootstrap.servers": server.bootstrap, "group.id": GROUP,
            "group.instance.id": instance_id, "session.timeout.ms": 10_000,
            "enable.auto.commit": False, "error_cb": self.errors.append,
        })
        self.consumer.subscribe(
            [TOPIC],
            on_assign=lambda _, parts: self.assigned.append({p.partition for p in parts}),
            on_revoke=lambda _, parts: self.revoked.append({p.partition for p in parts}))

    def poll(self) -> None:
        """Serve callbacks (assignments, revocations, errors) for a moment."""
        message = self.consumer.poll(0.05)
        if message is not None and message.error() is not None:
            self.errors.append(message.error())

    @property
    def owns(self) -> set[int]:
        """The partitions of its latest assignment."""
        return self.assigned[-1] if self.assigned else set()


def poll_until(members: Iterable[Member], condition, what: str) -> None:
    """Poll every member, in turn, until ``condition()`` holds."""
    members = list(members)
    wait_until(lambda: [m.poll() for m in members] and condition(), TIMEOUT_S, what)


def fenced(member: Member) -> bool:
    """Whether librdkafka stopped the member as fenced by another with its instance id
    (it reports FENCED_INSTANCE_ID as a fatal error, naming it)."""
    return any(e.code() == KafkaError._FATAL and "Static consumer fenced" in e.str()
               for e in member.errors)


def test_a_restarted_static_member_gets_its_partitions_back_and_a_duplicate_fences(server):
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(TIMEOUT_S)
    members = [Member(server, "i-a"), Member(server, "i-b")]
    try:
        check_static_membership(server, admin, members)
    finally:
        for member in members:
            member.consumer.close()


def check_static_membership(server: ServerProcess, admin: AdminClient,
                            members: list[Member]) -> None:
    """The test's steps; every consumer it starts goes into ``members``, to be closed."""
    a, b = members
    poll_until((a, b), lambda: a.owns and b.owns and a.owns | b.owns == set(range(PARTITIONS)),
               "both static members assigned")
    a_parts, b_parts = a.owns, b.owns
    b_events = (list(b.assigned), list(b.revoked))

    a.consumer.close()  # a static member sends no LeaveGroup: its place is kept
    members.remove(a)
    a2 = Member(server, "i-a")
    members.append(a2)
    poll_until((a2, b), lambda: a2.assigned, "the restarted member assigned")
    assert a2.owns == a_parts
    for _ in range(5):
        b.poll()
    assert (b.assigned, b.revoked, b.owns) == (*b_events, b_parts)  # no rebalance for b

    described = admin.describe_consumer_groups([GROUP])[GROUP].result(TIMEOUT_S)
    assert sorted(m.group_instance_id for m in described.members) == ["i-a", "i-b"]

    b2 = Member(server, "i-b")  # b is alive: the newcomer takes its place, b is fenced
    members.append(b2)
    poll_until((b2, b, a2), lambda: fenced(b) and b2.assigned, "b fenced by b2")
    assert b2.owns == b_parts
    assert not fenced(a2) and not fenced(b2)

    shown = table_rows(cli("groups", "describe", GROUP, "--members",
                           "--bootstrap-server", server.bootstrap))
    assert sorted((r["GROUP-INSTANCE-ID"], r["#PARTITIONS"]) for r in shown) == [
        ("i-a", str(len(a_parts))), ("i-b", str(len(b_parts)))]

    remover = kafka.KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        removed = remover.remove_group_members(GROUP, [
            MemberToRemove(group_instance_id="i-a"), MemberToRemove(group_instance_id="i-x")])
    finally:
        remover.close()
    assert removed == {"i-a": kafka.errors.NoError, "i-x": kafka.errors.UnknownMemberIdError}
