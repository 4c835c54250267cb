"""What the admin operations of the commands return, whichever target answered them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eventstore.errors import GroupIdNotFound
from eventstore.topic_partition import TopicPartition


@dataclass(frozen=True)
class PartitionDetail:
    """One partition; ``segments`` and ``bytes`` are None where the target cannot tell.

    ``problem``: what of it cannot be read (a gap, missing or damaged segments), if known.
    """

    topic: str
    partition: int
    log_start_offset: int
    log_end_offset: int
    segments: int | None = None
    bytes: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class TopicDetail:
    name: str
    partitions: tuple[PartitionDetail, ...]
    config: Mapping[str, Any] = field(default_factory=dict)  # effective values
    overrides: Mapping[str, Any] = field(default_factory=dict)  # set on this topic


@dataclass(frozen=True)
class Member:
    """A group member; ``group_instance_id`` is set for a static member (KIP-345)."""

    member_id: str
    client_id: str
    host: str
    assignment: tuple[TopicPartition, ...]
    group_instance_id: str | None = None


@dataclass(frozen=True)
class GroupDetail:
    """A group's state and members, and its committed offsets (the next offset to read);
    a ``consumer`` (KIP-848) group's group epoch and target assignment epoch where the
    target knows them (None: a classic group, or not known)."""

    group_id: str
    state: str
    members: tuple[Member, ...] = ()
    committed: Mapping[TopicPartition, int] = field(default_factory=dict)
    assignor: str = ""
    group_epoch: int | None = None
    assignment_epoch: int | None = None

    @property
    def exists(self) -> bool:
        return bool(self.members or self.committed) or self.state not in ("Dead", "")

    def require(self) -> GroupDetail:
        """This group, or GroupIdNotFound if it has neither members nor commits."""
        if not self.exists:
            raise GroupIdNotFound(f"consumer group {self.group_id!r} does not exist")
        return self
