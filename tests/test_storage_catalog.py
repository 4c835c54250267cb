"""The catalog (eventstore/storage/catalog.py): topics, committed offsets and sequences,
kept across reopening."""

from __future__ import annotations

import pytest

from eventstore.errors import (
    InvalidConfig,
    InvalidPartitions,
    TopicAlreadyExists,
    UnknownTopicOrPartition,
)
from eventstore.storage.catalog import Catalog, CommittedOffset

T0 = 1_700_000_000_000


def test_catalog_topics_lifecycle(data_dir: str) -> None:
    catalog = Catalog.open(data_dir)
    created = catalog.create_topic("orders", 3, {"retention.ms": "1000"}, now_ms=T0)
    assert created.config == {"retention.ms": 1000}
    assert catalog.topic("orders").partitions == 3
    with pytest.raises(TopicAlreadyExists):
        catalog.create_topic("orders", 1, {}, now_ms=T0)
    with pytest.raises(InvalidConfig, match="segment.bytes"):
        catalog.create_topic("bad", 1, {"segment.bytes": 1}, now_ms=T0)
    assert [t.name for t in catalog.topics()] == ["orders"]

    assert catalog.set_partitions("orders", 5).partitions == 5
    for shrink in (5, 4, 1):
        with pytest.raises(InvalidPartitions, match="can only grow"):
            catalog.set_partitions("orders", shrink)
    assert catalog.topic("orders").partitions == 5

    catalog.commit_offsets("g", [CommittedOffset("g", "orders", 0, 10, None, T0)])
    catalog.delete_topic("orders")
    with pytest.raises(UnknownTopicOrPartition):
        catalog.topic("orders")
    assert catalog.committed_offsets("g") == []
    with pytest.raises(UnknownTopicOrPartition):
        catalog.delete_topic("orders")
    catalog.close()


def test_catalog_keeps_topics_offsets_and_sequences_across_reopening(data_dir: str) -> None:
    catalog = Catalog.open(data_dir)
    catalog.create_topic("t", 2, {}, now_ms=T0)
    commits = [
        CommittedOffset("g1", "t", 0, 5, "meta", T0),
        CommittedOffset("g1", "t", 1, 7, None, T0 + 1),
    ]
    catalog.commit_offsets("g1", commits)
    catalog.commit_offsets("g1", [CommittedOffset("g1", "t", 0, 6, None, T0 + 2)])
    assert catalog.next_in_sequence("producer.id") == 0
    assert catalog.next_in_sequence("producer.id", 10) == 1
    catalog.close()

    reopened = Catalog.open(data_dir)
    assert reopened.topic("t").partitions == 2
    assert reopened.committed_offsets("g1") == [
        CommittedOffset("g1", "t", 0, 6, None, T0 + 2),
        commits[1],
    ]
    assert reopened.groups() == ["g1"]
    assert reopened.next_in_sequence("producer.id") == 11, "a sequence never goes back"
    reopened.close()
