"""What the group coordinator is asked and what it answers: JoinGroup, SyncGroup and
DescribeGroups as plain, frozen values shared by the embedded consumer, the Kafka front end
and the coordinator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True, kw_only=True)
class JoinGroupRequest:
    """One member's JoinGroup: who it is and the protocols (name, opaque metadata) it offers.

    ``member_id`` is '' for a member joining for the first time. With
    ``require_known_member_id`` (JoinGroup v4+, KIP-394) such a member is first answered
    MEMBER_ID_REQUIRED with its new id, and must join again with it.
    ``rebalance_timeout_ms`` is the consumer's ``max.poll.interval.ms`` (JoinGroup v0 has
    none: pass the session timeout).
    """

    group_id: str
    member_id: str = ""
    group_instance_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    session_timeout_ms: int = 45000
    rebalance_timeout_ms: int = 300000
    protocol_type: str = "consumer"
    protocols: tuple[tuple[str, bytes], ...] = ()
    require_known_member_id: bool = False


class JoinGroupMember(NamedTuple):
    """A member as the leader sees it: its id and its metadata for the chosen protocol."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


class MemberIdentity(NamedTuple):
    """A member a LeaveGroup names: its member id, and (LeaveGroup v3+) its group.instance.id.

    An instance id with member id '' names whichever member has that instance id now, as
    an admin's removal of a static member does (KIP-345).
    """

    member_id: str
    group_instance_id: str | None = None


@dataclass(frozen=True)
class JoinGroupResult:
    """JoinGroup's answer; ``members`` is filled for the leader only."""

    error_code: int
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    member_id: str = ""
    members: tuple[JoinGroupMember, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SyncGroupRequest:
    """SyncGroup; the leader sends every member's assignment, the others send none.

    ``protocol_type`` and ``protocol_name`` (SyncGroup v5) are checked when given.
    """

    group_id: str
    generation_id: int
    member_id: str
    assignments: tuple[tuple[str, bytes], ...] = ()
    group_instance_id: str | None = None
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(frozen=True)
class SyncGroupResult:
    """SyncGroup's answer: this member's assignment as the leader encoded it."""

    error_code: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(frozen=True)
class MemberDescription:
    """A member as DescribeGroups shows it (metadata and assignment only when Stable)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupDescription:
    """DescribeGroups' view of one group; an unknown group is described as Dead."""

    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberDescription, ...]


@dataclass(frozen=True)
class CoordinatorStats:
    """Figures for the metrics actor: rebalances started so far, members per group, and
    the group epoch of each ``consumer`` (KIP-848) group."""

    rebalances_total: int
    members_per_group: Mapping[str, int]
    group_epochs: Mapping[str, int] = field(default_factory=dict)
