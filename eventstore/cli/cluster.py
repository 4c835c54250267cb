"""The admin operations the commands need, and what they return, whatever the target is.

Two implementations: ``wire.WireCluster`` asks a running server over the Kafka protocol;
``local.LocalCluster`` reads a data directory read-only and writes it through the embedded
store. Commands are written once against :class:`Cluster`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from eventstore.cli.base import Target
from eventstore.cli.details import GroupDetail, TopicDetail
from eventstore.errors import UnknownTopicOrPartition
from eventstore.topic_partition import TopicPartition


class Cluster(Protocol):
    """Topic and group administration of one target (a server or a data directory)."""

    def list_topics(self) -> list[tuple[str, int]]:
        """(name, partition count) of every topic, by name."""

    def describe_topic(self, name: str) -> TopicDetail:
        """Partitions with their offsets and sizes, and config; UnknownTopicOrPartition."""

    def describe_topics(self, names: Sequence[str] | None) -> list[TopicDetail]:
        """:meth:`describe_topic` of each of ``names`` (of every topic, by name, when None),
        asked together: the cost does not grow with the number of topics in requests."""

    def create_topic(self, name: str, partitions: int | None, config: Mapping[str, str]) -> None:
        ...

    def alter_topic(self, name: str, partitions: int | None, config: Mapping[str, str | None]
                    ) -> None:
        """Grow to ``partitions`` and set config keys (None deletes an override)."""

    def delete_topic(self, name: str) -> None:
        ...

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int | None:
        """The first offset whose timestamp is >= ``timestamp_ms``; None if there is none."""

    def list_groups(self) -> list[tuple[str, str]]:
        """(group id, state) of every group, by id."""

    def describe_group(self, group_id: str) -> GroupDetail:
        ...

    def commit_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Set an inactive group's committed offsets."""

    def delete_group(self, group_id: str) -> None:
        ...

    def close(self) -> None:
        ...


def partition_count(target: Target, topic: str) -> int:
    """How many partitions ``topic`` has on the target; UnknownTopicOrPartition if none."""
    with open_cluster(target) as cluster:
        counts = dict(cluster.list_topics())
    if topic not in counts:
        raise UnknownTopicOrPartition(f"topic {topic!r} does not exist")
    return counts[topic]


@contextlib.contextmanager
def open_cluster(target: Target, *, writing: bool = False) -> Iterator[Cluster]:
    """The target's Cluster, closed afterwards; ``writing`` locks a data directory."""
    if target.bootstrap_server:
        from eventstore.cli.wire import WireCluster

        cluster: Cluster = WireCluster(target.bootstrap_server)
    else:
        from eventstore.cli.local import LocalCluster

        cluster = LocalCluster(target.data_dir, writing=writing)
    try:
        yield cluster
    finally:
        cluster.close()


def check_partition(topic: str, partition: int, count: int) -> None:
    """UnknownTopicOrPartition unless ``topic``, of ``count`` partitions, has ``partition``."""
    if not 0 <= partition < count:
        raise UnknownTopicOrPartition(
            f"topic {topic!r} has no partition {partition} (it has {count})")


def target_errors(target: Target) -> contextlib.AbstractContextManager[None]:
    """Turns a wire client's exceptions into eventstore's errors (nothing to do locally)."""
    if target.bootstrap_server:
        from eventstore.cli.wire import wire_errors

        return wire_errors(target.bootstrap_server)
    return contextlib.nullcontext()
