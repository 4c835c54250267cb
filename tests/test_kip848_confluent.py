"""KIP-848 with confluent-kafka (librdkafka 2.16, ``group.protocol=consumer``) against a
real ``eventstore serve``: three consumers joining a 12-partition topic one after the other
while a producer writes never own a partition two at a time (checked from their
assign/revoke callbacks, served from one thread in order) and together read every record;
while one joins, the others keep the partitions they keep and go on reading them; a member
killed without leaving loses its partitions after the session timeout, one that
closes loses them at once; a regex subscription picks up a topic created afterwards; a
classic consumer cannot join a ``consumer`` group (INCONSISTENT_GROUP_PROTOCOL); the
AdminClient lists groups by type (ListGroups v5) and deletes an empty ``consumer`` group for
good (not while it has members, nor back after a restart); ``groups describe --state``
through the server shows a ``consumer`` group's epochs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterable

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupType,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka.admin import AdminClient, NewTopic
from support import ServerProcess, wait_until
from test_cli_support import cli, table_rows

SESSION_MS = 3000
FAST = {"group.consumer.heartbeat.interval.ms": 200,
        "group.consumer.min.heartbeat.interval.ms": 100,
        "group.consumer.session.timeout.ms": SESSION_MS,
        "group.consumer.min.session.timeout.ms": 1000,
        "group.initial.rebalance.delay.ms": 0}
TIMEOUT_S = 30


class Member:
    """A ``consumer``-protocol consumer and what it saw, its callbacks logged in ``log``."""

    def __init__(self, server: ServerProcess, name: str, group: str, log: list,
                 topics: list[str]) -> None:
        self.name = name
        self.owned: set[tuple[str, int]] = set()
        self.records: list[tuple[str, int, int]] = []
        self.read_at: list[float] = []  # when each of ``records`` was read
        self.errors: list[KafkaError] = []
        self.log = log
        self.consumer = Consumer({
            "bootstrap.servers": server.bootstrap, "group.id": group,
            "group.protocol": "consumer", "auto.offset.reset": "earliest",
            "enable.auto.commit": True, "auto.commit.interval.ms": 200,
            "error_cb": self.errors.append, "topic.metadata.refresh.interval.ms": 500,
        })
        self.consumer.subscribe(topics, on_assign=self._assigned, on_revoke=self._revoked,
                                on_lost=self._revoked)

    def _assigned(self, _consumer, partitions) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        self.log.append((time.monotonic(), self.name, "assign", tps))
        self.owned |= tps

    def _revoked(self, _consumer, partitions) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        self.log.append((time.monotonic(), self.name, "revoke", tps))
        self.owned -= tps

    def poll(self) -> None:
        message = self.consumer.poll(0.02)
        if message is None:
            return
        if message.error() is not None:
            self.errors.append(message.error())
        else:
            self.records.append((message.topic(), message.partition(), message.offset()))
            self.read_at.append(time.monotonic())


def poll_until(members: Iterable[Member], condition, what: str) -> None:
    members = list(members)
    wait_until(lambda: [m.poll() for m in members] and condition(), TIMEOUT_S, what)


def check_exclusive(log: list) -> None:
    """Replaying the callbacks in order, no partition is ever held by two members."""
    owner: dict[tuple[str, int], str] = {}
    for _, name, kind, tps in sorted(log, key=lambda e: e[0]):
        for tp in tps:
            if kind == "assign":
                assert tp not in owner, f"{tp} given to {name} while {owner.get(tp)} owns it"
                owner[tp] = name
            else:
                assert owner.pop(tp, None) == name


def create(server: ServerProcess, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(TIMEOUT_S)


def test_three_members_join_while_producing_each_partition_one_owner(serve) -> None:
    server = serve(settings=FAST)
    create(server, "events", 12)
    producer = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 5})
    log: list = []
    members: list[Member] = []
    produced = 0

    def produce(n: int = 20) -> None:
        nonlocal produced
        for _ in range(n):
            producer.produce("events", str(produced).encode(), partition=produced % 12)
            produced += 1
        producer.poll(0)

    try:
        for name in ("a", "b", "c"):
            members.append(Member(server, name, "g", log, ["events"]))
            produce()
            poll_until(members, lambda: (produce(2) or True) and sorted(
                len(m.owned) for m in members) == [12 // len(members)] * len(members),
                f"{len(members)} members with 12 partitions balanced")
        produce()
        producer.flush(TIMEOUT_S)
        poll_until(members, lambda: len({r for m in members for r in m.records}) == produced,
                   "every record read")
        check_exclusive(log)
        read = [r for m in members for r in m.records]
        assert len({(t, p, o) for t, p, o in read}) == produced
        revoked = {tp for _, _, kind, tps in log if kind == "revoke" for tp in tps}
        for tp in {(t, p) for t, p, _ in read} - revoked:  # read twice only after a move
            offsets = [o for t, p, o in read if (t, p) == tp]
            assert len(offsets) == len(set(offsets))
        assert not [e for m in members for e in m.errors if e.code() != KafkaError._TRANSPORT]
    finally:
        for m in members:
            m.consumer.close()


def test_the_other_members_keep_consuming_while_a_member_joins(serve) -> None:
    """No stop-the-world: while a third member joins (from its subscribe until the group is
    balanced again) the two members already there are never asked to give up the
    partitions they keep, and go on reading them from where they were, every offset once.
    (librdkafka pauses a member's fetchers for a moment at each assignment change, as in
    classic cooperative rebalances, so a join quicker than that may see no read at all.)"""
    server = serve(settings=FAST)
    create(server, "flow", 12)
    producer = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 5})
    log: list = []

    def produce() -> bool:
        for partition in range(12):
            producer.produce("flow", b"x", partition=partition)
        producer.poll(0)
        return True

    members = [Member(server, name, "g6", log, ["flow"]) for name in ("a", "b")]
    try:
        poll_until(members, lambda: produce() and sorted(len(m.owned) for m in members)
                   == [6, 6], "two members with six partitions each")
        before = {m.name: set(m.owned) for m in members}
        joined_at = time.monotonic()
        members.append(Member(server, "c", "g6", log, ["flow"]))
        poll_until(members, lambda: produce() and sorted(len(m.owned) for m in members)
                   == [4, 4, 4], "three members with four partitions each")
        balanced_at = time.monotonic()
        check_exclusive(log)
        for m in members[:2]:
            kept = before[m.name] & m.owned
            assert len(kept) == 4, (m.name, before[m.name], m.owned)
            revoked = {tp for at, name, kind, tps in log
                       if name == m.name and kind == "revoke" and at >= joined_at
                       for tp in tps}
            assert not revoked & kept, (m.name, revoked)
        for m in members[:2]:
            kept = before[m.name] & m.owned
            poll_until(members, lambda m=m, kept=kept: produce() and any(
                (t, p) in kept for (t, p, _), at in zip(m.records, m.read_at, strict=True)
                if at >= balanced_at), f"{m.name} reading its kept partitions again")
            for tp in kept:  # read on from where it was: no offset again, none skipped
                offsets = [o for t, p, o in m.records if (t, p) == tp]
                first = offsets[0] if offsets else 0
                assert offsets == list(range(first, first + len(offsets))), tp
    finally:
        producer.flush(TIMEOUT_S)
        for m in members:
            m.consumer.close()


KILLED_MEMBER = """
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "g2",
              "group.protocol": "consumer"})
assigned = []
c.subscribe(["moves"], on_assign=lambda _, ps: assigned.extend(ps))
while not assigned:
    c.poll(0.05)
print("assigned", flush=True)
while True:
    c.poll(0.05)
"""


def test_a_killed_member_loses_its_partitions_after_the_session_a_closed_one_at_once(
        serve) -> None:
    server = serve(settings=FAST)
    create(server, "moves", 4)
    killed = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, server.bootstrap],
                              stdout=subprocess.PIPE, text=True)
    log: list = []
    members: list[Member] = []
    try:
        assert killed.stdout.readline().strip() == "assigned"
        members = [Member(server, "a", "g2", log, ["moves"]),
                   Member(server, "b", "g2", log, ["moves"])]
        # uniform and sticky: each newcomer takes one or two, the killed one keeps the rest
        poll_until(members, lambda: all(m.owned for m in members)
                   and sum(len(m.owned) for m in members) < 4,
                   "the two new members share what the killed one gave up")
        killed.kill()
        killed.wait()
        killed_at = time.monotonic()
        poll_until(members, lambda: sum(len(m.owned) for m in members) == 4,
                   "the killed member's partitions moved")
        assert time.monotonic() - killed_at >= SESSION_MS / 1000 * 0.8
        members[1].consumer.close()
        closed_at = time.monotonic()
        poll_until(members[:1], lambda: len(members[0].owned) == 4,
                   "the closed member's partitions moved")
        assert time.monotonic() - closed_at < SESSION_MS / 1000
        members = members[:1]
        check_exclusive([e for e in log if e[1] == "a"])
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
        for m in members:
            m.consumer.close()


def test_a_regex_subscription_picks_up_a_topic_created_later(serve) -> None:
    server = serve(settings=FAST)
    create(server, "logs-1", 2)
    member = Member(server, "a", "g3", [], ["^logs-.*"])
    try:
        poll_until([member], lambda: member.owned == {("logs-1", 0), ("logs-1", 1)},
                   "the existing topic assigned")
        create(server, "logs-2", 1)
        poll_until([member], lambda: ("logs-2", 0) in member.owned,
                   "the new topic assigned without the member asking")
    finally:
        member.consumer.close()


def member_then_classic(server: ServerProcess, topic: str, group: str, classic_group: str
                        ) -> tuple[Member, Consumer]:
    """A ``consumer`` member of ``group`` owning the two partitions of a new ``topic``, then
    a classic consumer of ``classic_group`` subscribed to it."""
    create(server, topic, 2)
    member = Member(server, "a", group, [], [topic])
    classic = Consumer({"bootstrap.servers": server.bootstrap, "group.id": classic_group})
    try:
        poll_until([member], lambda: len(member.owned) == 2, "the consumer member assigned")
        classic.subscribe([topic])
    except BaseException:
        classic.close()
        member.consumer.close()
        raise
    return member, classic


def test_a_classic_consumer_cannot_join_a_consumer_group(serve) -> None:
    member, classic = member_then_classic(serve(settings=FAST), "mixed", "g4", "g4")
    try:
        wait_until(lambda: (member.poll() or True) and _inconsistent(classic), TIMEOUT_S,
                   "the classic consumer refused INCONSISTENT_GROUP_PROTOCOL")
        assert not classic.assignment() and len(member.owned) == 2
    finally:
        classic.close()
        member.consumer.close()


def _inconsistent(classic: Consumer) -> bool:
    message = classic.poll(0.05)
    return (message is not None and message.error() is not None
            and message.error().code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL)


def test_cli_metrics_and_admin_show_a_consumer_group_with_its_epoch(serve) -> None:
    server = serve(settings=FAST)
    create(server, "shown", 4)
    members = [Member(server, name, "g5", [], ["shown"]) for name in ("a", "b")]
    try:
        poll_until(members, lambda: sorted(len(m.owned) for m in members) == [2, 2],
                   "two members with two partitions each")
        admin = AdminClient({"bootstrap.servers": server.bootstrap})
        described = admin.describe_consumer_groups(["g5"])["g5"].result(TIMEOUT_S)
        assert described.state == ConsumerGroupState.STABLE
        assert sorted(len(m.assignment.topic_partitions) for m in described.members) == [2, 2]
        shown = table_rows(cli("groups", "describe", "g5", "--members",
                               "--bootstrap-server", server.bootstrap))
        assert sorted(r["#PARTITIONS"] for r in shown) == ["2", "2"]
        listed = table_rows(cli("groups", "list", "--bootstrap-server", server.bootstrap))
        assert any("g5" in row.values() for row in listed)
        _, body = server.http_get(server.metrics_url)
        text = body
        assert 'kafka_consumergroup_members{consumergroup="g5"} 2.0' in text
        [epoch] = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith('eventstore_group_epoch{consumergroup="g5"}')]
        # SQL and the CLI read the epochs from the catalog (beside the running server),
        # once the members have committed something
        query = ("SELECT DISTINCT group_type, group_epoch, assignment_epoch FROM consumer_groups"
                 " WHERE group_id = 'g5'")
        def rows() -> list:
            return json.loads(cli("sql", query, "--format", "json", "--data-dir",
                                  server.data_dir).stdout)

        producer = Producer({"bootstrap.servers": server.bootstrap})
        for partition in range(4):
            producer.produce("shown", b"x", partition=partition)
        producer.flush(TIMEOUT_S)
        poll_until(members, rows, "the members' commits")
        assert rows() == [{"group_type": "consumer", "group_epoch": int(epoch),
                           "assignment_epoch": int(epoch)}]
        [state] = table_rows(cli("groups", "describe", "g5", "--state", "--data-dir",
                                 server.data_dir))
        assert (state["GROUP-EPOCH"], state["TARGET-ASSIGNMENT-EPOCH"]) == (
            str(int(epoch)), str(int(epoch)))
        [state] = table_rows(cli("groups", "describe", "g5", "--state",
                                 "--bootstrap-server", server.bootstrap))
        assert (state["ASSIGNMENT-STRATEGY"], state["STATE"], state["#MEMBERS"]) == (
            "uniform", "Stable", "2")
    finally:
        for m in members:
            m.consumer.close()


def test_admin_lists_groups_by_type_and_the_cli_shows_epochs_through_the_server(
        serve) -> None:
    server = serve(settings=FAST)
    member, classic = member_then_classic(server, "typed", "g6", "g7")
    try:
        wait_until(lambda: (member.poll() or classic.poll(0.05) or True)
                   and len(classic.assignment()) == 2, TIMEOUT_S, "the classic member joined")
        admin = AdminClient({"bootstrap.servers": server.bootstrap})

        def listed(**filters) -> dict:
            result = admin.list_consumer_groups(**filters).result(TIMEOUT_S)
            assert not result.errors
            return {g.group_id: g for g in result.valid if g.group_id in ("g6", "g7")}

        wait_until(lambda: set(listed()) == {"g6", "g7"}, TIMEOUT_S, "both groups listed")
        every = listed()
        assert (every["g6"].type, every["g7"].type) == (
            ConsumerGroupType.CONSUMER, ConsumerGroupType.CLASSIC)
        assert set(listed(types={ConsumerGroupType.CONSUMER})) == {"g6"}
        assert set(listed(types={ConsumerGroupType.CLASSIC})) == {"g7"}
        assert "g6" in listed(types={ConsumerGroupType.CONSUMER},
                              states={ConsumerGroupState.STABLE})

        described = admin.describe_consumer_groups(["g6"])["g6"].result(TIMEOUT_S)
        _, text = server.http_get(server.metrics_url)
        [epoch] = [line.rsplit(" ", 1)[1].removesuffix(".0") for line in text.splitlines()
                   if line.startswith('eventstore_group_epoch{consumergroup="g6"}')]
        rows = {r["GROUP"]: r for r in table_rows(cli(
            "groups", "describe", "g6", "g7", "--state", "--bootstrap-server",
            server.bootstrap))}
        assert described.state == ConsumerGroupState.STABLE
        assert (rows["g6"]["GROUP-EPOCH"], rows["g6"]["TARGET-ASSIGNMENT-EPOCH"],
                rows["g6"]["STATE"]) == (epoch, epoch, "Stable")
        assert (rows["g7"]["GROUP-EPOCH"], rows["g7"]["TARGET-ASSIGNMENT-EPOCH"]) == ("-", "-")
    finally:
        classic.close()
        member.consumer.close()


def test_admin_deletes_an_empty_consumer_group_for_good(serve) -> None:
    """DeleteGroups refuses a consumer group with members (NON_EMPTY_GROUP), deletes it
    once empty with its committed offsets, and a restart does not bring it back."""
    server = serve(settings=FAST)
    create(server, "gone", 2)
    producer = Producer({"bootstrap.servers": server.bootstrap})
    for partition in range(2):
        producer.produce("gone", b"x", partition=partition)
    producer.flush(TIMEOUT_S)
    member = Member(server, "a", "g8", [], ["gone"])
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    committed_query = "SELECT COUNT(*) AS n FROM consumer_groups WHERE group_id = 'g8'"

    def stored() -> int:
        return json.loads(cli("sql", committed_query, "--format", "json", "--data-dir",
                              server.data_dir).stdout)[0]["n"]

    try:
        poll_until([member], lambda: len(member.records) == 2 and stored() > 0,
                   "the member's records read and committed")
        with pytest.raises(KafkaException) as refused:
            admin.delete_consumer_groups(["g8"])["g8"].result(TIMEOUT_S)
        assert refused.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    finally:
        member.consumer.close()  # leaves: the group is Empty at once
    admin.delete_consumer_groups(["g8"])["g8"].result(TIMEOUT_S)
    assert stored() == 0
    server.restart()
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    listed = admin.list_consumer_groups().result(TIMEOUT_S).valid
    assert "g8" not in [g.group_id for g in listed]
    assert stored() == 0
    with pytest.raises(KafkaException) as unknown:
        admin.delete_consumer_groups(["g8"])["g8"].result(TIMEOUT_S)
    assert unknown.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND
