"""eventstore: a single-node, Kafka-style event streaming store on SQLite segment files.

The embedded API is imported lazily, so that using the storage core alone
(``eventstore.storage``) does not start importing the actor system.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.broker import PartitionDescription, TopicDescription
    from actors.consumer.client import Consumer, ConsumerRebalanceListener, OffsetAndMetadata
    from actors.consumer.records import ConsumerRecord
    from actors.producer.client import Producer
    from actors.producer.future import FutureRecordMetadata, RecordMetadata
    from actors.system import ConsumerGroupDescription, GroupListing, GroupPartition
    from eventstore.client import EventStore
    from eventstore.topic_partition import TopicPartition

_EXPORTS = {
    "EventStore": "eventstore.client",
    "Producer": "actors.producer.client",
    "RecordMetadata": "actors.producer.future",
    "FutureRecordMetadata": "actors.producer.future",
    "Consumer": "actors.consumer.client",
    "ConsumerRecord": "actors.consumer.records",
    "ConsumerRebalanceListener": "actors.consumer.client",
    "OffsetAndMetadata": "actors.consumer.client",
    "TopicPartition": "eventstore.topic_partition",
    "TopicDescription": "actors.broker",
    "PartitionDescription": "actors.broker",
    "ConsumerGroupDescription": "actors.system",
    "GroupListing": "actors.system",
    "GroupPartition": "actors.system",
}

__all__ = [
    "Consumer",
    "ConsumerGroupDescription",
    "ConsumerRebalanceListener",
    "ConsumerRecord",
    "EventStore",
    "FutureRecordMetadata",
    "GroupListing",
    "GroupPartition",
    "OffsetAndMetadata",
    "PartitionDescription",
    "Producer",
    "RecordMetadata",
    "TopicDescription",
    "TopicPartition",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eventstore' has no attribute {name!r}")
    return getattr(import_module(module), name)
