"""DeleteTopics: topics named by name, or from v6 by id, deleted by the broker.

The checks are Kafka's (``ControllerApis.deleteTopics``), in its order: an entry with
neither a name nor an id, or with both, is INVALID_REQUEST; so is a name or id given
twice (answered once), and a name whose topic's id the request also gives. An id no
topic has is UNKNOWN_TOPIC_ID, a name no topic has UNKNOWN_TOPIC_OR_PARTITION. Each
answer carries the topic's name and id as far as they are known.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from kio.static.protocol import ResponsePayload

from eventstore.errors import InvalidRequest, KafkaError, UnknownTopicId
from eventstore.kafka.authorization import authorize
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.kafka.topic_ids import is_topic_id, topic_names
from eventstore.security.acl import Operation, ResourceType
from eventstore.storage.kafka_uuid import ZERO_UUID

# one entry of the request: (name, id), either None when not given
Entry = tuple[str | None, uuid.UUID | None]


def _entries(body: Any) -> list[Entry]:
    """Every entry of the request, as (name, id): v1-5 list names, v6 names or ids."""
    names = getattr(body, "topic_names", None)
    if names is not None:
        return [(name, None) for name in names]
    return [(t.name, t.topic_id if is_topic_id(t.topic_id) else None) for t in body.topics]


def _answer(name: str | None, topic_id: uuid.UUID | None,
            error: KafkaError | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"name": name, "topic_id": topic_id or ZERO_UUID,
                              "error_code": error.code if error else 0}
    if error is not None:
        answer["error_message"] = str(error)
    return answer


async def handle_delete_topics(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    entries = _entries(request.body)
    counts = Counter(entries)
    by_id = [topic_id for name, topic_id in entries if name is None and topic_id]
    names = await topic_names(ctx) if by_id or request.api_version >= 6 else {}
    ids_of = {name: topic_id for topic_id, name in names.items()}
    results = []
    for entry in dict.fromkeys(entries):
        name, topic_id = entry
        try:
            if name is None and topic_id is None:
                raise InvalidRequest("Neither topic name nor id were specified.")
            if name is not None and topic_id is not None:
                raise InvalidRequest("You may not specify both topic name and topic id.")
            if counts[entry] > 1:
                raise InvalidRequest(f"Duplicate topic {'name' if name else 'id'}.")
            if name is None:
                name = names.get(topic_id)
                if name is None:
                    raise UnknownTopicId(f"no topic has id {topic_id}")
            elif ids_of.get(name) in by_id:
                topic_id = ids_of[name]
                raise InvalidRequest(
                    "The provided topic name maps to an ID that was already supplied.")
            authorize(conn, Operation.DELETE, ResourceType.TOPIC, name)
            await ctx.resolve(ctx.broker.delete_topic(name))
            results.append(_answer(name, topic_id or ids_of.get(name)))
        except KafkaError as error:
            results.append(_answer(name, topic_id, error))
    return make_response(request, responses=results)
