"""``TopicPartition``: a partition of a topic, as Kafka clients name it."""

from __future__ import annotations

from typing import NamedTuple


class TopicPartition(NamedTuple):
    """A partition of a topic (Kafka's ``TopicPartition``); a plain ``(topic, partition)``
    tuple compares equal to it."""

    topic: str
    partition: int
