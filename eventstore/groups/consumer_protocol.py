"""Kafka's consumer embedded protocol: the bytes consumers put inside JoinGroup and SyncGroup.

In a group of protocol type ``consumer`` every member's JoinGroup metadata is a
ConsumerProtocolSubscription and every assignment the leader sends in SyncGroup is a
ConsumerProtocolAssignment, each an int16 version followed by that version's fields.
The group coordinator treats both as opaque bytes; the clients (the embedded consumer,
the leader running an assignor) and the tools that describe groups read and write them
here, byte for byte as kafka-python, librdkafka and the Java client do. The structs
themselves are kio's, generated from Kafka's own schemas.

The eager ``sticky`` assignor also carries the member's previous assignment in the
subscription's user data (StickyAssignorUserData), a struct with no version prefix; it
is encoded here as the Java client and librdkafka encode it.
"""

from __future__ import annotations

import io
import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from kio.schema.consumer_protocol_assignment import v0 as assignment_v0
from kio.schema.consumer_protocol_assignment import v1 as assignment_v1
from kio.schema.consumer_protocol_assignment import v2 as assignment_v2
from kio.schema.consumer_protocol_assignment import v3 as assignment_v3
from kio.schema.consumer_protocol_subscription import v0 as subscription_v0
from kio.schema.consumer_protocol_subscription import v1 as subscription_v1
from kio.schema.consumer_protocol_subscription import v2 as subscription_v2
from kio.schema.consumer_protocol_subscription import v3 as subscription_v3
from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError

from eventstore.errors import InvalidRequest
from eventstore.topic_partition import TopicPartition

PROTOCOL_TYPE = "consumer"
"""The JoinGroup protocol type of consumer groups."""

SUBSCRIPTION_VERSION = 3
"""Version written by default: the newest both kio and current clients know."""

ASSIGNMENT_VERSION = 3


_SUBSCRIPTIONS = (subscription_v0, subscription_v1, subscription_v2, subscription_v3)
_ASSIGNMENTS = (assignment_v0, assignment_v1, assignment_v2, assignment_v3)
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


@dataclass(frozen=True)
class Subscription:
    """What one member asks for: its topics, and what an assignor may use to be sticky.

    ``owned_partitions`` (version 1+) and ``generation_id`` (version 2+) describe what the
    member held before this rebalance; ``rack_id`` is version 3+. Fields a version does not
    carry decode to their defaults.
    """

    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned_partitions: tuple[TopicPartition, ...] = ()
    generation_id: int = -1
    rack_id: str | None = None


@dataclass(frozen=True)
class Assignment:
    """What the leader gives one member: its partitions, and opaque assignor data."""

    partitions: tuple[TopicPartition, ...] = ()
    user_data: bytes | None = None


def encode_subscription(subscription: Subscription, version: int = SUBSCRIPTION_VERSION) -> bytes:
    """ConsumerProtocolSubscription bytes for JoinGroup's protocol metadata."""
    schema = _schema(_SUBSCRIPTIONS, version, "ConsumerProtocolSubscription")
    fields: dict = {"topics": tuple(subscription.topics), "user_data": subscription.user_data}
    if version >= 1:
        fields["owned_partitions"] = _by_topic(schema.data.TopicPartition,
                                               subscription.owned_partitions)
    if version >= 2:
        fields["generation_id"] = subscription.generation_id
    if version >= 3:
        fields["rack_id"] = subscription.rack_id
    return _encode(schema.ConsumerProtocolSubscription(**fields), version)


def decode_subscription(data: bytes) -> Subscription:
    """A member's subscription from its JoinGroup metadata.

    A version newer than this module knows is read as the newest known one, ignoring the
    fields appended after it, as Kafka's clients do. InvalidRequest if the bytes are not
    a subscription.
    """
    version, entity = _decode(_SUBSCRIPTIONS, data, "ConsumerProtocolSubscription")
    return Subscription(
        topics=tuple(entity.topics),
        user_data=entity.user_data,
        owned_partitions=_flatten(getattr(entity, "owned_partitions", ())),
        generation_id=getattr(entity, "generation_id", -1),
        rack_id=getattr(entity, "rack_id", None),
    )


def encode_assignment(assignment: Assignment, version: int = ASSIGNMENT_VERSION) -> bytes:
    """ConsumerProtocolAssignment bytes for the leader's SyncGroup assignments."""
    schema = _schema(_ASSIGNMENTS, version, "ConsumerProtocolAssignment")
    entity = schema.ConsumerProtocolAssignment(
        assigned_partitions=_by_topic(schema.data.TopicPartition, assignment.partitions),
        user_data=assignment.user_data,
    )
    return _encode(entity, version)


def decode_assignment(data: bytes) -> Assignment:
    """A member's assignment from SyncGroup.

    Empty bytes are an empty assignment: the coordinator answers so for a member the
    leader gave nothing. InvalidRequest if the bytes are not an assignment.
    """
    if not data:
        return Assignment()
    _, entity = _decode(_ASSIGNMENTS, data, "ConsumerProtocolAssignment")
    return Assignment(_flatten(entity.assigned_partitions), entity.user_data)


def encode_sticky_user_data(partitions: Iterable[TopicPartition], generation: int) -> bytes:
    """StickyAssignorUserData version 1 (previous assignment, generation), no version prefix."""
    out = io.BytesIO()
    by_topic = _group(partitions)
    out.write(_INT32.pack(len(by_topic)))
    for topic, numbers in by_topic.items():
        name = topic.encode()
        out.write(_INT16.pack(len(name)) + name + _INT32.pack(len(numbers)))
        out.write(b"".join(_INT32.pack(p) for p in numbers))
    out.write(_INT32.pack(generation))
    return out.getvalue()


def decode_sticky_user_data(data: bytes) -> tuple[tuple[TopicPartition, ...], int] | None:
    """(previous partitions, generation) from a sticky member's user data; None if unreadable.

    Reads version 1 (with generation) and version 0 (without; generation -1) as written by
    the Java client and librdkafka, and kafka-python 3's variant that prefixes an int16
    version. Like Kafka's assignor, a caller ignores user data it cannot read.
    """
    for prefixed, with_generation in ((False, True), (False, False), (True, None)):
        try:
            return _read_sticky(data, prefixed, with_generation)
        except (struct.error, UnicodeDecodeError, ValueError):
            continue
    return None


def _read_sticky(
    data: bytes, prefixed: bool, with_generation: bool | None
) -> tuple[tuple[TopicPartition, ...], int]:
    pos = 0

    def take(fmt: struct.Struct) -> int:
        nonlocal pos
        (value,) = fmt.unpack_from(data, pos)
        pos += fmt.size
        return value

    if prefixed:
        version = take(_INT16)
        with_generation = version >= 1
    partitions = []
    count = take(_INT32)
    if count < 0:
        raise ValueError("negative array length")
    for _ in range(count):
        size = take(_INT16)
        if size < 0 or pos + size > len(data):
            raise ValueError("bad topic name length")
        topic = data[pos:pos + size].decode()
        pos += size
        numbers = take(_INT32)
        if numbers < 0:
            raise ValueError("negative array length")
        partitions.extend((topic, take(_INT32)) for _ in range(numbers))
    generation = take(_INT32) if with_generation else -1
    if pos != len(data):
        raise ValueError("trailing bytes")
    return tuple(partitions), generation


def _schema(versions: tuple, version: int, name: str):
    if not 0 <= version < len(versions):
        raise ValueError(f"{name} version {version} is not one of 0..{len(versions) - 1}")
    return versions[version]


def _encode(entity: object, version: int) -> bytes:
    out = io.BytesIO()
    out.write(_INT16.pack(version))
    entity_writer(type(entity))(out, entity)
    return out.getvalue()


def _decode(versions: tuple, data: bytes, name: str) -> tuple[int, object]:
    if len(data) < _INT16.size:
        raise InvalidRequest(f"{name} is {len(data)} bytes, too short to hold its version")
    (version,) = _INT16.unpack_from(data)
    if version < 0:
        raise InvalidRequest(f"{name} has a negative version {version}")
    schema = versions[min(version, len(versions) - 1)]
    entity_type = getattr(schema, name)
    try:
        entity, _ = entity_reader(entity_type)(data, _INT16.size)
    except SerialError as err:
        raise InvalidRequest(f"{name} version {version} is malformed: {err}") from None
    return version, entity


def _group(partitions: Iterable[TopicPartition]) -> dict[str, list[int]]:
    by_topic: dict[str, list[int]] = defaultdict(list)
    for topic, partition in partitions:
        by_topic[topic].append(partition)
    return by_topic


def _by_topic(topic_partition_type: type, partitions: Iterable[TopicPartition]) -> tuple:
    return tuple(
        topic_partition_type(topic=topic, partitions=tuple(numbers))
        for topic, numbers in _group(partitions).items()
    )


def _flatten(by_topic: Iterable) -> tuple[TopicPartition, ...]:
    return tuple((tp.topic, p) for tp in by_topic for p in tp.partitions)
