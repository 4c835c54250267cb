"""Kafka's partition assignors, by their Kafka names: ``range``, ``roundrobin``, ``sticky``.

In Kafka's group protocol the coordinator does not assign partitions: the member it
elects leader runs the assignor the group agreed on over every member's subscription
and sends the result in SyncGroup. These are pure functions for that leader (the
embedded consumer, or anything else speaking the consumer protocol). ``range`` and
``roundrobin`` give exactly the Java client's results (without rack awareness);
``sticky`` is Kafka's eager sticky assignor: balanced first, then keeping as many
partitions as possible with their previous owners.

Every function takes the members' subscriptions (member id -> Subscription) and the
partition count of each topic, and returns every member's sorted list of (topic,
partition). Topics with no known partitions are skipped, as Kafka skips topics missing
from its metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from eventstore.errors import InvalidConfig
from eventstore.groups.consumer_protocol import (
    Subscription,
    TopicPartition,
    decode_sticky_user_data,
)

Members = Mapping[str, Subscription]
PartitionCounts = Mapping[str, int]
Assignments = dict[str, list[TopicPartition]]


def assign(name: str, members: Members, partitions_per_topic: PartitionCounts) -> Assignments:
    """Run the assignor Kafka calls ``name``; InvalidConfig if there is none of that name."""
    assignor = ASSIGNORS.get(name)
    if assignor is None:
        known = ", ".join(ASSIGNORS)
        raise InvalidConfig(f"partition.assignment.strategy: unknown assignor {name!r}"
                            f" (known: {known})")
    return assignor(members, partitions_per_topic)


def range_assign(members: Members, partitions_per_topic: PartitionCounts) -> Assignments:
    """Per topic: partitions in order, subscribers sorted by id, the first ones get one extra."""
    result: dict[str, list[TopicPartition]] = {member: [] for member in members}
    for topic in _subscribed_topics(members, partitions_per_topic):
        consumers = sorted(m for m, sub in members.items() if topic in sub.topics)
        per_consumer, extra = divmod(partitions_per_topic[topic], len(consumers))
        for i, member in enumerate(consumers):
            start = per_consumer * i + min(i, extra)
            length = per_consumer + (1 if i < extra else 0)
            result[member].extend((topic, p) for p in range(start, start + length))
    return _sorted(result)


def roundrobin_assign(members: Members, partitions_per_topic: PartitionCounts) -> Assignments:
    """All partitions sorted, dealt to the sorted members in turn, skipping non-subscribers.

    The turn carries over from one partition to the next (it is not reset per topic), as
    in Kafka's RoundRobinAssignor.
    """
    result: dict[str, list[TopicPartition]] = {member: [] for member in members}
    order = sorted(members)
    turn = 0
    for topic in _subscribed_topics(members, partitions_per_topic):
        for partition in range(partitions_per_topic[topic]):
            while topic not in members[order[turn % len(order)]].topics:
                turn += 1
            result[order[turn % len(order)]].append((topic, partition))
            turn += 1
    return _sorted(result)


def sticky_assign(members: Members, partitions_per_topic: PartitionCounts) -> Assignments:
    """Kafka's eager sticky assignor: balanced, then moving as few partitions as it can.

    A member's previous partitions come from its StickyAssignorUserData (what Kafka's
    eager sticky clients send) or else from the subscription's owned partitions. Each
    member keeps the previous partitions it still subscribes to; a partition claimed by
    several keeps the claim of the newest generation (nobody's on a tie). Partitions left
    over go, fewest eligible members first, to the least loaded member that may take them.
    Then, while some member holds two more partitions than a member that could take one of
    them, one moves. With identical subscriptions the result is as balanced as possible
    (counts differ by at most one) and only the partitions that must move do.
    """
    topics = _subscribed_topics(members, partitions_per_topic)
    eligible = {t: sorted(m for m, sub in members.items() if t in sub.topics) for t in topics}
    current: dict[str, set[TopicPartition]] = {member: set() for member in members}
    owners = _previous_owners(members, partitions_per_topic)
    for partition, owner in owners.items():
        current[owner].add(partition)

    def load(member: str) -> tuple[int, str]:
        return len(current[member]), member

    leftover = [(t, p) for t in topics for p in range(partitions_per_topic[t])
                if (t, p) not in owners]
    for partition in sorted(leftover, key=lambda tp: (len(eligible[tp[0]]), tp)):
        current[min(eligible[partition[0]], key=load)].add(partition)
    while _move_one(current, eligible, load):
        pass
    return _sorted({member: list(held) for member, held in current.items()})


ASSIGNORS: dict[str, Callable[[Members, PartitionCounts], Assignments]] = {
    "range": range_assign,
    "roundrobin": roundrobin_assign,
    "sticky": sticky_assign,
}
"""Every assignor by its Kafka name, in the order a consumer offers them by default."""


def _move_one(current: dict[str, set[TopicPartition]], eligible: Mapping[str, list[str]],
              load: Callable[[str], tuple[int, str]]) -> bool:
    """Move one partition from a most loaded member to a member with two fewer, if any."""
    for donor in sorted(current, key=lambda m: (-len(current[m]), m)):
        for partition in sorted(current[donor]):
            receiver = min(eligible[partition[0]], key=load)
            if len(current[receiver]) + 1 < len(current[donor]):
                current[donor].remove(partition)
                current[receiver].add(partition)
                return True
    return False


def _previous_owners(members: Members, partitions_per_topic: PartitionCounts
                     ) -> dict[TopicPartition, str]:
    """Who held each still-existing partition before, among members still subscribed to it."""
    claims: dict[TopicPartition, list[tuple[int, str]]] = {}
    for member, sub in members.items():
        partitions, generation = _previous_assignment(sub)
        for topic, partition in set(partitions):
            if topic in sub.topics and 0 <= partition < partitions_per_topic.get(topic, 0):
                claims.setdefault((topic, partition), []).append((generation, member))
    owners = {}
    for partition, claimants in claims.items():
        claimants.sort(reverse=True)
        if len(claimants) == 1 or claimants[0][0] > claimants[1][0]:
            owners[partition] = claimants[0][1]
    return owners


def _previous_assignment(sub: Subscription) -> tuple[tuple[TopicPartition, ...], int]:
    if sub.user_data:
        decoded = decode_sticky_user_data(sub.user_data)
        if decoded is not None:
            return decoded
    return sub.owned_partitions, sub.generation_id


def _subscribed_topics(members: Members, partitions_per_topic: PartitionCounts) -> list[str]:
    """Sorted topics some member subscribes to and that have partitions."""
    wanted = {topic for sub in members.values() for topic in sub.topics}
    return sorted(t for t in wanted if partitions_per_topic.get(t, 0) > 0)


def _sorted(result: Mapping[str, list[TopicPartition]]) -> Assignments:
    return {member: sorted(partitions) for member, partitions in result.items()}
