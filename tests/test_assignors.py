"""Kafka's assignors and the consumer protocol bytes they travel in.

``range`` and ``roundrobin`` are checked against Kafka's documented examples and, on any
subscriptions hypothesis draws, against kafka-python's own assignors. ``sticky`` is
checked for what Kafka promises of it: a valid, balanced assignment that moves only the
partitions that must move when a member leaves or joins. The consumer protocol codec is
checked byte for byte against kafka-python's encoder and decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment as KafkaAssignment,
)
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolSubscription as KafkaSubscription,
)
from kafka.structs import TopicPartition as KafkaTopicPartition

from eventstore.errors import InvalidConfig, InvalidRequest
from eventstore.groups.assignors import (
    ASSIGNORS,
    assign,
    range_assign,
    roundrobin_assign,
    sticky_assign,
)
from eventstore.groups.consumer_protocol import (
    Assignment,
    Subscription,
    decode_assignment,
    decode_sticky_user_data,
    decode_subscription,
    encode_assignment,
    encode_sticky_user_data,
    encode_subscription,
)

TOPICS = ("a", "b", "c", "d")


def subs(**topics_by_member: str) -> dict[str, Subscription]:
    """Members subscribing to topics named by letters: ``subs(c0="ab")``."""
    return {m: Subscription(tuple(topics)) for m, topics in topics_by_member.items()}


@st.composite
def groups(draw, same_topics: bool = False):
    """(subscriptions, partitions per topic); a topic with 0 partitions is unknown."""
    counts = {t: draw(st.integers(0, 9)) for t in TOPICS}
    ids = draw(st.lists(st.text("mnopq", min_size=1, max_size=3), min_size=1, max_size=7,
                        unique=True))
    topic_sets = st.lists(st.sampled_from(TOPICS), min_size=1, unique=True).map(tuple)
    if same_topics:
        shared = draw(topic_sets)
        return {m: Subscription(shared) for m in ids}, counts
    return {m: Subscription(draw(topic_sets)) for m in ids}, counts


def check_valid(result, members, counts) -> None:
    """Every partition of a subscribed topic goes to exactly one member subscribed to it."""
    assert set(result) == set(members)
    owner = {}
    for member, partitions in result.items():
        assert partitions == sorted(partitions)
        for topic, partition in partitions:
            assert topic in members[member].topics
            assert (topic, partition) not in owner
            owner[(topic, partition)] = member
    wanted = {t for sub in members.values() for t in sub.topics}
    assert set(owner) == {(t, p) for t in wanted for p in range(counts.get(t, 0))}


def with_previous(result, generation: int, via_user_data: bool) -> dict[str, Subscription]:
    """Subscriptions that carry each member's current partitions into the next rebalance."""
    if via_user_data:
        return {m: Subscription(TOPICS, user_data=encode_sticky_user_data(held, generation))
                for m, held in result.items()}
    return {m: Subscription(TOPICS, owned_partitions=tuple(held), generation_id=generation)
            for m, held in result.items()}


# -- Kafka's documented examples ---------------------------------------------------------


def test_range_matches_kafkas_example():
    result = range_assign(subs(C0="ab", C1="ab"), {"a": 3, "b": 3})
    assert result == {"C0": [("a", 0), ("a", 1), ("b", 0), ("b", 1)],
                      "C1": [("a", 2), ("b", 2)]}


def test_roundrobin_matches_kafkas_examples():
    assert roundrobin_assign(subs(C0="ab", C1="ab"), {"a": 3, "b": 3}) == {
        "C0": [("a", 0), ("a", 2), ("b", 1)],
        "C1": [("a", 1), ("b", 0), ("b", 2)],
    }
    result = roundrobin_assign(subs(C0="a", C1="ab", C2="abc"), {"a": 1, "b": 2, "c": 3})
    assert result == {"C0": [("a", 0)], "C1": [("b", 0)],
                      "C2": [("b", 1), ("c", 0), ("c", 1), ("c", 2)]}


def test_sticky_matches_kafkas_example_when_a_member_leaves():
    """StickyAssignor's javadoc: C1 leaves; C0 and C2 keep all they had."""
    before = {"C0": [("a", 0), ("b", 1), ("d", 0)],
              "C1": [("a", 1), ("c", 0), ("d", 1)],
              "C2": [("b", 0), ("c", 1)]}
    members = with_previous(before, generation=1, via_user_data=False)
    del members["C1"]
    assert sticky_assign(members, {t: 2 for t in TOPICS}) == {
        "C0": [("a", 0), ("b", 1), ("c", 0), ("d", 0)],
        "C2": [("a", 1), ("b", 0), ("c", 1), ("d", 1)],
    }


def test_unknown_assignor_is_a_clear_error():
    with pytest.raises(InvalidConfig, match="unknown assignor 'nope'"):
        assign("nope", subs(C0="a"), {"a": 1})


def test_topics_without_partitions_are_skipped():
    for name in ASSIGNORS:
        assert assign(name, subs(C0="ab"), {"a": 2}) == {"C0": [("a", 0), ("a", 1)]}


# -- properties ----------------------------------------------------------------------------


@dataclass
class _Cluster:
    """What kafka-python's assignors ask of cluster metadata."""

    counts: dict[str, int]

    def partitions_for_topic(self, topic):
        return set(range(self.counts[topic])) if self.counts.get(topic) else None


@dataclass
class _Member:
    member_id: str
    metadata: Subscription
    group_instance_id: str | None = None


def kafka_python_assign(assignor, members, counts):
    joined = [_Member(m, sub) for m, sub in members.items()]
    result = assignor.assign(_Cluster(counts), joined)
    return {m: sorted((t, p) for t, ps in a.assigned_partitions for p in ps)
            for m, a in result.items()}


@given(groups())
def test_every_assignor_assigns_each_partition_once_to_a_subscriber(group):
    members, counts = group
    for name in ASSIGNORS:
        check_valid(assign(name, members, counts), members, counts)


@given(groups())
def test_range_agrees_with_kafka_python(group):
    members, counts = group
    assert range_assign(members, counts) == kafka_python_assign(
        RangePartitionAssignor, members, counts)


@given(groups(same_topics=True))
def test_roundrobin_agrees_with_kafka_python(group):
    """Same topics only: kafka-python's roundrobin fails when it must skip a member (its
    skip loop looks up a tuple); Kafka's own example above covers skipping."""
    members, counts = group
    assert roundrobin_assign(members, counts) == kafka_python_assign(
        RoundRobinPartitionAssignor, members, counts)


def spread(result) -> int:
    counts = [len(partitions) for partitions in result.values()]
    return max(counts) - min(counts)


@given(groups(same_topics=True))
def test_sticky_is_balanced_when_all_subscribe_to_the_same_topics(group):
    members, counts = group
    assert spread(sticky_assign(members, counts)) <= 1


@given(groups())
def test_sticky_leaves_no_move_that_would_improve_balance(group):
    members, counts = group
    result = sticky_assign(members, counts)
    for held in result.values():
        for topic, _ in held:
            for receiver, other in result.items():
                if topic in members[receiver].topics:
                    assert len(other) + 1 >= len(held)


@given(groups(same_topics=True), st.data(), st.booleans())
def test_sticky_moves_only_the_leavers_partitions(group, data, via_user_data):
    members, counts = group
    before = sticky_assign({m: Subscription(TOPICS) for m in members}, counts)
    leaver = data.draw(st.sampled_from(sorted(before)))
    survivors = with_previous(before, generation=3, via_user_data=via_user_data)
    del survivors[leaver]
    if not survivors:
        return
    after = sticky_assign(survivors, counts)
    check_valid(after, survivors, counts)
    assert spread(after) <= 1
    for member in survivors:
        assert set(before[member]) <= set(after[member])


@given(groups(same_topics=True), st.booleans())
def test_sticky_moves_only_what_a_joiner_needs(group, via_user_data):
    members, counts = group
    before = sticky_assign({m: Subscription(TOPICS) for m in members}, counts)
    joined = with_previous(before, generation=3, via_user_data=via_user_data)
    joined["newcomer"] = Subscription(TOPICS)
    after = sticky_assign(joined, counts)
    check_valid(after, joined, counts)
    assert spread(after) <= 1
    for member in members:
        assert set(after[member]) <= set(before[member])
    total = sum(len(held) for held in before.values())
    assert len(after["newcomer"]) == total // len(joined)


def test_sticky_prefers_the_claim_of_the_newest_generation():
    members = {
        "old": Subscription(("a",), owned_partitions=(("a", 0), ("a", 1)), generation_id=1),
        "new": Subscription(("a",), owned_partitions=(("a", 0),), generation_id=2),
    }
    assert sticky_assign(members, {"a": 2}) == {"new": [("a", 0)], "old": [("a", 1)]}


def test_sticky_reads_kafka_python_user_data():
    """kafka-python 3 prefixes its StickyAssignorUserData with a version; both forms read."""
    partitions = [KafkaTopicPartition("a", 0), KafkaTopicPartition("a", 3)]
    data = StickyPartitionAssignor._metadata(["a"], partitions, 5).encode()
    sub = decode_subscription(data)
    assert decode_sticky_user_data(sub.user_data) == ((("a", 0), ("a", 3)), 5)
    assert decode_sticky_user_data(b"\x00garbage") is None
    assert sticky_assign({"m": sub, "n": Subscription(("a",))}, {"a": 4})["m"] == [
        ("a", 0), ("a", 3)]


# -- consumer protocol bytes ----------------------------------------------------------------


SUBSCRIPTION = Subscription(topics=("a", "b"), user_data=b"\x01\x02",
                            owned_partitions=(("a", 0), ("a", 1), ("b", 2)),
                            generation_id=4, rack_id="rack-1")


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_subscription_bytes_match_kafka_python(version):
    ours = encode_subscription(SUBSCRIPTION, version)
    theirs = KafkaSubscription(
        version=version, topics=["a", "b"], user_data=b"\x01\x02",
        owned_partitions=[KafkaSubscription.TopicPartition(topic="a", partitions=[0, 1]),
                          KafkaSubscription.TopicPartition(topic="b", partitions=[2])],
        generation_id=4, rack_id="rack-1",
    ).encode()
    assert ours == theirs
    decoded = decode_subscription(theirs)
    assert decoded.topics == SUBSCRIPTION.topics
    assert decoded.owned_partitions == (SUBSCRIPTION.owned_partitions if version >= 1 else ())
    assert decoded.generation_id == (4 if version >= 2 else -1)
    assert decoded.rack_id == ("rack-1" if version >= 3 else None)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_assignment_bytes_match_kafka_python(version):
    assignment = Assignment(partitions=(("x", 1), ("x", 2), ("y", 0)), user_data=b"")
    theirs = KafkaAssignment(
        version=version, user_data=b"",
        assigned_partitions=[KafkaAssignment.TopicPartition(topic="x", partitions=[1, 2]),
                             KafkaAssignment.TopicPartition(topic="y", partitions=[0])],
    ).encode()
    assert encode_assignment(assignment, version) == theirs
    assert decode_assignment(theirs) == assignment


def test_newer_versions_read_as_the_newest_known_and_empty_assignment_is_empty():
    future = b"\x00\x07" + encode_subscription(SUBSCRIPTION)[2:] + b"new fields"
    assert decode_subscription(future) == SUBSCRIPTION
    assert decode_assignment(b"") == Assignment()


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff\xff", b"\x00\x00\x00\x00\x00\x05ab"])
def test_malformed_protocol_bytes_are_invalid_requests(data):
    with pytest.raises(InvalidRequest):
        decode_subscription(data)
