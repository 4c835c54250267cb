"""KIP-848's server-side assignors, ``uniform`` and ``range``: the broker computes each
member's target assignment.

In the ``consumer`` group protocol the coordinator, not a leader client, decides who owns
which partition. Both assignors are sticky: a member keeps the partitions it was given in
the previous target assignment as long as it still subscribes to them and the balance
allows, so a join or a leave moves as few partitions as possible (each move costs a
revocation round trip). ``uniform`` balances the number of partitions over all members;
``range`` balances each topic on its own among that topic's subscribers, the lowest member
ids taking the extra partitions, as Kafka's range assignor does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class MemberSpec:
    """What an assignor knows of one member: its subscription and its previous target."""

    topics: frozenset[str]
    previous: frozenset[TopicPartition] = frozenset()


def _balance(
    partitions: Iterable[TopicPartition],
    members: Mapping[str, MemberSpec],
) -> dict[str, set[TopicPartition]]:
    """Each partition given to one subscribed member, sticky to ``previous``, so that no
    partition could move from a member to another subscribed one holding two fewer."""
    owned: dict[str, set[TopicPartition]] = {member: set() for member in members}
    eligible = {
        tp: sorted(m for m, spec in members.items() if tp[0] in spec.topics) for tp in partitions
    }
    free = []
    for tp, candidates in sorted(eligible.items()):
        keeper = next((m for m in candidates if tp in members[m].previous), None)
        if keeper is not None:
            owned[keeper].add(tp)
        elif candidates:
            free.append(tp)
    for tp in free:
        owner = min(eligible[tp], key=lambda m: (len(owned[m]), m))
        owned[owner].add(tp)
    moved = True
    while moved:
        moved = False
        for giver in sorted(owned, key=lambda m: (-len(owned[m]), m)):
            for tp in sorted(owned[giver]):
                taker = min(eligible[tp], key=lambda m: (len(owned[m]), m))
                if len(owned[taker]) < len(owned[giver]) - 1:
                    owned[giver].remove(tp)
                    owned[taker].add(tp)
                    moved = True
                    break
            if moved:
                break
    return owned


def _all_partitions(topics: Mapping[str, int], names: Iterable[str]) -> list[TopicPartition]:
    return [(t, p) for t in sorted(set(names)) if t in topics for p in range(topics[t])]


def uniform(
    members: Mapping[str, MemberSpec], topics: Mapping[str, int]
) -> dict[str, frozenset[TopicPartition]]:
    """Every subscribed partition of ``topics`` (name to partition count) to exactly one
    of its subscribers, partition counts balanced over all members."""
    wanted = _all_partitions(topics, (t for spec in members.values() for t in spec.topics))
    return {m: frozenset(tps) for m, tps in _balance(wanted, members).items()}


def range_(
    members: Mapping[str, MemberSpec], topics: Mapping[str, int]
) -> dict[str, frozenset[TopicPartition]]:
    """Each topic's partitions balanced among that topic's subscribers, topic by topic."""
    result: dict[str, set[TopicPartition]] = {m: set() for m in members}
    for topic in sorted({t for spec in members.values() for t in spec.topics}):
        if topic not in topics:
            continue
        subscribers = {m: spec for m, spec in members.items() if topic in spec.topics}
        for member, tps in _balance(_all_partitions(topics, [topic]), subscribers).items():
            result[member] |= tps
    return {m: frozenset(tps) for m, tps in result.items()}


ASSIGNORS = {"uniform": uniform, "range": range_}
