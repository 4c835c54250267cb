"""Topic ids on the wire (KIP-516): which topic a request's id names, if any still does.

Each topic's id is kept in the catalog (``TopicInfo.topic_id``, handed out by the broker
with every topic: ``list_topics``, ``ensure_topic``), and a topic deleted and created
again has a new one, so an id a client kept from before names no topic: the request is
answered UNKNOWN_TOPIC_ID (Fetch v13+, Metadata v12+, DeleteTopics v6+). Handlers that
need a topic's id read it from the TopicInfo; this module resolves ids to names.
"""

from __future__ import annotations

import uuid

from eventstore.errors import KafkaError
from eventstore.kafka.context import BrokerContext
from eventstore.storage.kafka_uuid import ZERO_UUID


def is_topic_id(value: uuid.UUID | None) -> bool:
    """Whether a request's id field names a topic (the zero id and null say "no id")."""
    return value is not None and value != ZERO_UUID


async def topic_names(ctx: BrokerContext) -> dict[uuid.UUID, str]:
    """The name of every existing topic, by its id: one broker call."""
    return {info.topic_id: info.name for info in await ctx.resolve(ctx.broker.list_topics())}


async def topic_id(ctx: BrokerContext, name: str) -> uuid.UUID:
    """The id of topic ``name``; the zero id if there is none (any more)."""
    try:
        return (await ctx.resolve(ctx.broker.ensure_topic(name, False))).topic_id
    except KafkaError:
        return ZERO_UUID
