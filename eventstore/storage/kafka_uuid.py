"""Kafka's Uuid: the random ids of topics and of a cluster, and their text form.

Kafka names a topic incarnation by a random UUID (KIP-516), so a client can tell a topic
deleted and created again under the same name from the one it knew, and names a cluster
by the text form of one (what ``kafka-storage random-uuid`` prints): 22 characters of
URL-safe base64 without padding. As in Kafka's ``Uuid.randomUuid``, the all-zero id (which
means "no id" on the wire), Kafka's reserved metadata topic id and ids whose text starts
with ``-`` (read as an option on a command line) are never handed out.
"""

from __future__ import annotations

import base64
import binascii
import uuid

ZERO_UUID = uuid.UUID(int=0)  # "no id" in every Kafka message that carries one
_METADATA_TOPIC_ID = uuid.UUID(int=1)  # Kafka's __cluster_metadata topic
_RESERVED = frozenset({ZERO_UUID, _METADATA_TOPIC_ID})


def random_uuid() -> uuid.UUID:
    """A random (version 4) id that is none of Kafka's reserved ones."""
    while True:
        candidate = uuid.uuid4()
        if candidate not in _RESERVED and not to_text(candidate).startswith("-"):
            return candidate


def to_text(value: uuid.UUID) -> str:
    """Kafka's text form of an id: URL-safe base64 of its 16 bytes, without padding."""
    return base64.urlsafe_b64encode(value.bytes).decode("ascii").rstrip("=")


def from_text(text: str) -> uuid.UUID:
    """The id whose Kafka text form is ``text``; ValueError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "==")
    except (binascii.Error, ValueError):
        raise ValueError(f"{text!r} is not a Kafka id (22 characters of base64url)") from None
    if len(text) != 22 or len(raw) != 16:
        raise ValueError(f"{text!r} is not a Kafka id (22 characters of base64url)")
    return uuid.UUID(bytes=raw)
