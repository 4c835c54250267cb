"""The mirror's durable position, kept on the target as committed offsets of its own group.

As MirrorMaker 2 keeps its checkpoints on the target: for each target partition, the
mirror's group (``--mirror-group``) commits the next target offset, with the next source
offset and the offset map's runs in the commit's metadata (eventstore.mirror.offset_map).
Only Kafka APIs (OffsetCommit, OffsetFetch), a consumer that never joins the group, so it
works on any Kafka cluster. Written only once the target acknowledged what it records.
"""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

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


def save(store: Consumer, maps: Mapping[Key, PartitionMap], wait: bool = True) -> None:
    """Commit ``maps`` as the checkpoints of their target partitions, in one request; with
    ``wait`` False, without waiting for the answer (a refusal then comes to ``answered``
    when the store is next polled). Not waiting loses nothing: a checkpoint the target never
    stored leaves the one before it, and a restart from that one skips the records the
    target holds past it."""
    if not maps:
        return
    offsets = [TopicPartition(t, p, m.target_next, m.encode()) for (t, p), m in maps.items()]
    try:
        answered(None, store.commit(offsets=offsets, asynchronous=not wait) or [])
    except KafkaException as error:
        raise MirrorError(f"the target refused the mirror's checkpoints:"
                          f" {error.args[0].str()}") from error


def answered(error: KafkaError | None, partitions: list[TopicPartition]) -> None:
    """The target's answer to a commit of checkpoints: a refusal fails the session."""
    if error is not None:
        raise MirrorError(f"the target refused the mirror's checkpoints: {error.str()}")
    for tp in partitions:
        if tp.error is not None:
            raise MirrorError(f"the target refused the checkpoint of {tp.topic}-"
                              f"{tp.partition}: {tp.error.str()}")
