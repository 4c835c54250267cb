"""The states of a classic consumer group, with Kafka's names."""

from __future__ import annotations

import enum


class GroupState(enum.StrEnum):
    """Kafka's group states, with Kafka's names (what DescribeGroups and ListGroups show)."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"
