"""The mirror's durable position, kept on the target as committed offsets of its own group.

As MirrorMaker 2 keeps its checkpoints on the target: for each target partition, the
mirror's group (``--mirror-group``) commits the next target offset, with the next source
offset and the offset map's runs in the commit's metadata (eventstore.mirror.offset_map).
Only Kafka APIs (OffsetCommit, OffsetFetch), a consumer that never joins the group, so it
works on any Kafka cluster. Written only once the target acknowledged what it records.
"""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition

from eventstore.mirror.offset_map import PartitionMap, decode
from eventstore.mirror.topics import TIMEOUT_S, MirrorError

Key = tuple[str, int]  # a target topic and partition


def load(store: Consumer, keys: list[Key]) -> dict[Key, PartitionMap]:
    """The checkpoints of ``keys``; partitions never checkpointed are missing."""
    if not keys:
        return {}
    try:
        committed = store.committed([TopicPartition(t, p) for t, p in keys], timeout=TIMEOUT_S)
    except KafkaException as error:
        raise MirrorError(f"cannot read the mirror's checkpoints on the target:"
                          f" {error.args[0].str()}") from error
    out = {}
    for tp in committed:
        if tp.error is not None:
            raise MirrorError(f"cannot read the checkpoint of {tp.topic}-{tp.partition}:"
                              f" {tp.error.str()}")
        if tp.offset >= 0:
            try:
                out[(tp.topic, tp.partition)] = decode(tp.offset, tp.metadata or "")
            except ValueError as error:
                raise MirrorError(f"{tp.topic}-{tp.partition}: {error}; another group of the"
                                  " same name? (--mirror-group)") from error
    return out


def save(store: Consumer, maps: Mapping[Key, PartitionMap]) -> None:
    """Commit ``maps`` as the checkpoints of their target partitions, in one request."""
    if not maps:
        return
    offsets = [TopicPartition(t, p, m.target_next, m.encode()) for (t, p), m in maps.items()]
    try:
        answered = store.commit(offsets=offsets, asynchronous=False)
    except KafkaException as error:
        raise MirrorError(f"the target refused the mirror's checkpoints:"
                          f" {error.args[0].str()}") from error
    for tp in answered or ():
        if tp.error is not None:
            raise MirrorError(f"the target refused the checkpoint of {tp.topic}-"
                              f"{tp.partition}: {tp.error.str()}")
