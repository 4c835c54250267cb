"""Which source topics are mirrored, under which target names, with which configs.

Plain logic on names and config maps, no client: the selection by ``--topics`` and
``--exclude`` (names or regular expressions matching the whole name), the ``--prefix``
rename, and the topic configs that carry over to a Kafka cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# The configs the issue names as carrying over; the others (segment sizes, eventstore's own
# keys) are the target's business.
CARRIED_CONFIGS = (
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "max.message.bytes",
    "message.timestamp.type",
)


@dataclass(frozen=True)
class Selection:
    """``--topics`` (empty: every topic not internal) and ``--exclude`` patterns."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def wants(self, topic: str) -> bool:
        """Whether ``topic`` is mirrored: internal topics (``__``) never are."""
        if topic.startswith("__"):
            return False
        if self.include and not _matches(self.include, topic):
            return False
        return not _matches(self.exclude, topic)


def _matches(patterns: Sequence[str], topic: str) -> bool:
    return any(pattern == topic or re.fullmatch(pattern, topic) for pattern in patterns)


@dataclass(frozen=True)
class TopicPlan:
    """One mirrored topic: its source and target names, partitions and carried configs."""

    source: str
    target: str
    partitions: int
    configs: tuple[tuple[str, str], ...]


def plan_topics(source_topics: Mapping[str, int], configs: Mapping[str, Mapping[str, str]],
                selection: Selection, prefix: str = "") -> tuple[TopicPlan, ...]:
    """The plans for the selected topics of ``source_topics`` (name -> partition count),
    sorted by name, with the carried subset of each topic's ``configs``."""
    return tuple(
        TopicPlan(name, prefix + name, count, carried(configs.get(name, {})))
        for name, count in sorted(source_topics.items()) if selection.wants(name))


def carried(configs: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The configs of ``configs`` that carry over to the target, sorted by key."""
    return tuple(sorted((key, value) for key, value in configs.items()
                        if key in CARRIED_CONFIGS))


@dataclass(frozen=True)
class TopicChange:
    """What the target needs for one plan: a new topic, or more partitions."""

    plan: TopicPlan
    create: bool
    add_partitions: bool


def changes(plans: Iterable[TopicPlan], target_topics: Mapping[str, int]
            ) -> tuple[TopicChange, ...]:
    """The changes bringing ``target_topics`` (name -> partition count) to the plans; a target
    with more partitions than the source is left as it is (Kafka cannot remove them)."""
    out = []
    for plan in plans:
        have = target_topics.get(plan.target)
        if have is None:
            out.append(TopicChange(plan, create=True, add_partitions=False))
        elif have < plan.partitions:
            out.append(TopicChange(plan, create=False, add_partitions=True))
    return tuple(out)
