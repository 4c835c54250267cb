"""The two sources a mirror reads: a running server (Kafka APIs through confluent-kafka) or
a data directory (eventstore.mirror.data_dir), behind the same four calls.

A source plans the selected topics, opens readers (the copy loop's consumer and the probe
of the partitions' offsets), gives the groups' committed offsets, and closes.
"""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import Consumer

from eventstore.mirror import copier, groups
from eventstore.mirror.data_dir import DirSource
from eventstore.mirror.plan import Selection, TopicPlan
from eventstore.mirror.topics import reach, source_plan

Key = tuple[str, int]


class WireSource:
    """A running server (or any Kafka cluster) as the source."""

    def __init__(self, settings: Mapping[str, str], group: str) -> None:
        self.settings, self.group = settings, group
        self.admin = reach(settings, "source")

    def plan(self, selection: Selection, prefix: str) -> tuple[TopicPlan, ...]:
        """The selected topics with their partitions and carried configs."""
        return source_plan(self.admin, selection, prefix)

    def reader(self) -> Consumer:
        return copier.open_consumer(self.settings, self.group)

    def group_commits(self, wanted: set[Key], own_group: str) -> dict[str, dict[Key, int]]:
        """Each group's committed offsets on the partitions ``wanted``."""
        return groups.source_commits(self.admin, wanted, own_group)

    def close(self) -> None:
        """The admin client needs no closing."""


def open_source(sides: copier.Sides) -> WireSource | DirSource:
    """The source ``sides`` names: its data directory if given, else its servers."""
    if sides.source_dir is not None:
        return DirSource(sides.source_dir)
    return WireSource(sides.source, sides.group)
