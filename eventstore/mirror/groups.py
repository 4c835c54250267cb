"""Consumer groups' committed offsets, translated to the target's offsets and committed there.

For every source group with commits on mirrored partitions (the mirror's own group aside),
each committed offset goes through the partition's offset map (eventstore.mirror.offset_map)
once the copy has reached it, and is committed on the target for groups with no active
members there, and only forwards (a target offset already past the translation is kept, as
MirrorMaker 2 does: consumers already moved to the target are not sent back). Only Kafka
APIs through confluent-kafka's AdminClient (ListGroups, OffsetFetch, DescribeGroups,
OffsetCommit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException
from confluent_kafka import TopicPartition as ClientPartition
from confluent_kafka.admin import AdminClient

from eventstore.mirror.offset_map import PartitionMap
from eventstore.mirror.topics import TIMEOUT_S, MirrorError, answer

Key = tuple[str, int]


@dataclass(frozen=True)
class GroupSync:
    """What one pass did: offsets committed on the target, offsets the copy has not reached
    yet, and the groups left alone because they have members on the target."""

    committed: int
    pending: int
    active: tuple[str, ...]


def translate_commits(commits: Mapping[Key, int], maps: Mapping[Key, PartitionMap],
                      targets: Mapping[str, str], on_target: Mapping[Key, int]
                      ) -> tuple[dict[Key, int], int]:
    """A group's source ``commits`` as target offsets to commit (by target partition), those
    ahead of what the group has on the target (``on_target``); and how many the copy has
    not reached yet."""
    out, pending = {}, 0
    for (topic, p), offset in commits.items():
        position = maps.get((topic, p))
        if position is None:
            continue
        translated = position.translate(offset)
        if translated is None:
            pending += 1
        elif translated > on_target.get((targets[topic], p), -1):
            out[(targets[topic], p)] = translated
    return out, pending


def source_commits(source: AdminClient, wanted: set[Key], own_group: str
                   ) -> dict[str, dict[Key, int]]:
    """Every source group's committed offsets on the partitions ``wanted`` (the mirror's
    own group aside), asked of the source cluster."""
    groups = [g for g in _list_groups(source) if g != own_group]
    return {g: c for g in groups if (c := _offsets(source, g, None, wanted))}


def sync(commits: Mapping[str, Mapping[Key, int]], target: AdminClient,
         maps: Mapping[Key, PartitionMap], targets: Mapping[str, str]) -> GroupSync:
    """Copy the source groups' ``commits`` on the partitions of ``maps`` (source partition
    -> checkpointed position) to the target."""
    if not commits:
        return GroupSync(0, 0, ())
    active = _active(target, list(commits))
    committed = pending = 0
    for group, offsets in sorted(commits.items()):
        if group in active:
            continue
        keys = [(targets[t], p) for t, p in offsets]
        on_target = _offsets(target, group, keys, set(keys))
        todo, waiting = translate_commits(offsets, maps, targets, on_target)
        pending += waiting
        if todo:
            request = ConsumerGroupTopicPartitions(
                group, [ClientPartition(t, p, o) for (t, p), o in sorted(todo.items())])
            answer(target.alter_consumer_group_offsets([request])[group],
                    f"the target refused the offsets of group {group}")
            committed += len(todo)
    return GroupSync(committed, pending, tuple(sorted(active)))


def _list_groups(admin: AdminClient) -> list[str]:
    listed = answer(admin.list_consumer_groups(request_timeout=TIMEOUT_S),
                     "cannot list the source's consumer groups")
    return sorted(group.group_id for group in listed.valid)


def _offsets(admin: AdminClient, group: str, keys: list[Key] | None, wanted: set[Key]
             ) -> dict[Key, int]:
    partitions = None if keys is None else [ClientPartition(t, p) for t, p in keys]
    request = ConsumerGroupTopicPartitions(group, partitions)
    offsets = answer(admin.list_consumer_group_offsets([request],
                                                       request_timeout=TIMEOUT_S)[group],
                     f"cannot read the offsets of group {group}")
    return {(tp.topic, tp.partition): tp.offset for tp in offsets.topic_partitions
            if tp.offset >= 0 and tp.error is None and (tp.topic, tp.partition) in wanted}


def _active(admin: AdminClient, groups: list[str]) -> set[str]:
    """The ``groups`` with members on the target (a group unknown there has none)."""
    out = set()
    for group, future in admin.describe_consumer_groups(
            groups, request_timeout=TIMEOUT_S).items():
        try:
            description = future.result()
        except KafkaException as exception:
            if exception.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                continue
            raise MirrorError(f"cannot describe group {group} on the target:"
                              f" {exception.args[0].str()}") from exception
        if description.members:
            out.add(group)
    return out

