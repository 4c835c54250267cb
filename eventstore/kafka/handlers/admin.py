"""Metadata and the admin APIs: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs.

This single node is the leader and only replica of every partition. A partition whose log
is offline is reported with KAFKA_STORAGE_ERROR and no leader, so clients stay away from
it while every other partition keeps serving.
"""

from __future__ import annotations

import shutil
from typing import Any

from actors.partition import offline_error
from eventstore.config import TOPIC_KEYS, validate_topic_config
from eventstore.errors import (
    InvalidConfig,
    InvalidPartitions,
    InvalidReplicationFactor,
    InvalidRequest,
    KafkaError,
)
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.context import CLUSTER_ID, NODE_ID, BrokerContext

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
# DescribeConfigs config_source values
DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG = 1, 5


def _topic_entry(name: str, handles: Any) -> dict:
    partitions = []
    for index, handle in enumerate(handles):
        error = offline_error(handle.state) if handle.actor is None else None
        partitions.append({
            "error_code": error.code if error else 0,
            "partition_index": index,
            "leader_id": -1 if error else NODE_ID,
            "leader_epoch": 0,
            "replica_nodes": [NODE_ID],
            "isr_nodes": [] if error else [NODE_ID],
            "offline_replicas": [NODE_ID] if error else [],
        })
    return {"error_code": 0, "name": name, "is_internal": False, "partitions": partitions,
            "topic_authorized_operations": -2147483648}


async def handle_metadata(ctx: BrokerContext, request: Request) -> Any:
    body = request.body
    requested = body.topics
    if requested is not None and len(requested) == 0 and request.api_version == 0:
        requested = None  # Metadata v0: an empty list means every topic
    allow_create = getattr(body, "allow_auto_topic_creation", True)
    topics = []
    if requested is None:
        for info in await ctx.resolve(ctx.broker.list_topics()):
            handles = await ctx.resolve(ctx.broker.partitions(info.name))
            topics.append(_topic_entry(info.name, handles))
    else:
        for wanted in requested:
            name = wanted.name
            try:
                await ctx.resolve(ctx.broker.ensure_topic(name, allow_create))
                handles = await ctx.resolve(ctx.broker.partitions(name))
                topics.append(_topic_entry(name, handles))
            except KafkaError as error:
                topics.append({"error_code": error.code, "name": name, "partitions": []})
    return make_response(
        request,
        brokers=[{"node_id": NODE_ID, "host": ctx.host, "port": ctx.port}],
        cluster_id=CLUSTER_ID,
        controller_id=NODE_ID,
        topics=topics,
        cluster_authorized_operations=-2147483648,
    )


async def handle_create_topics(ctx: BrokerContext, request: Request) -> Any:
    body = request.body
    results = []
    for topic in body.topics:
        entry: dict[str, Any] = {"name": topic.name}
        try:
            if topic.replication_factor not in (-1, 1):
                raise InvalidReplicationFactor(
                    f"replication factor {topic.replication_factor}: this node is the only"
                    " replica, use 1 (or -1 for the default)"
                )
            if topic.assignments:
                raise InvalidRequest("manual replica assignments are not supported")
            config = {c.name: c.value for c in topic.configs}
            count = None if topic.num_partitions == -1 else topic.num_partitions
            described = await ctx.resolve(ctx.broker.create_topic(
                topic.name, count, config, validate_only=body.validate_only
            ))
            entry.update(error_code=0, num_partitions=len(described.partitions),
                         replication_factor=1)
        except KafkaError as error:
            entry.update(error_code=error.code, error_message=str(error),
                         num_partitions=-1, replication_factor=-1)
        results.append(entry)
    return make_response(request, topics=results)


async def handle_delete_topics(ctx: BrokerContext, request: Request) -> Any:
    body = request.body
    names = getattr(body, "topic_names", None)
    if names is None:
        names = [t.name for t in body.topics]
    results = []
    for name in names:
        try:
            await ctx.resolve(ctx.broker.delete_topic(name))
            results.append({"name": name, "error_code": 0})
        except KafkaError as error:
            results.append({"name": name, "error_code": error.code, "error_message": str(error)})
    return make_response(request, responses=results)


async def handle_create_partitions(ctx: BrokerContext, request: Request) -> Any:
    body = request.body
    results = []
    for topic in body.topics:
        try:
            if topic.assignments:
                raise InvalidPartitions("manual replica assignments are not supported")
            await ctx.resolve(ctx.broker.create_partitions(
                topic.name, topic.count, validate_only=body.validate_only
            ))
            results.append({"name": topic.name, "error_code": 0})
        except KafkaError as error:
            results.append(
                {"name": topic.name, "error_code": error.code, "error_message": str(error)}
            )
    return make_response(request, results=results)


async def handle_describe_configs(ctx: BrokerContext, request: Request) -> Any:
    results = []
    for resource in request.body.resources:
        entry: dict[str, Any] = {"resource_type": resource.resource_type,
                                 "resource_name": resource.resource_name}
        try:
            if resource.resource_type == TOPIC_RESOURCE:
                described = await ctx.resolve(ctx.broker.describe_topic(resource.resource_name))
                effective, overrides = described.config, described.overrides
            elif resource.resource_type == BROKER_RESOURCE:
                effective, overrides = ctx.server_config, {}
            else:
                raise InvalidRequest(f"resource type {resource.resource_type} is not supported")
            keys = resource.configuration_keys
            entry["configs"] = [
                {
                    "name": name,
                    "value": None if value is None else str(value).lower()
                    if isinstance(value, bool) else str(value),
                    "read_only": name not in TOPIC_KEYS,
                    "config_source": DYNAMIC_TOPIC_CONFIG if name in overrides else DEFAULT_CONFIG,
                    "is_sensitive": False,
                }
                for name, value in sorted(effective.items())
                if keys is None or name in keys
            ]
            entry["error_code"] = 0
        except KafkaError as error:
            entry.update(error_code=error.code, error_message=str(error), configs=[])
        results.append(entry)
    return make_response(request, results=results)


# IncrementalAlterConfigs operations
SET, DELETE = 0, 1


async def _alter_topic_configs(
    ctx: BrokerContext, request: Request, changes_for: Any
) -> Any:
    """Apply per-resource config changes; ``changes_for(resource, overrides)`` builds them."""
    body = request.body
    results = []
    for resource in body.resources:
        entry: dict[str, Any] = {"resource_type": resource.resource_type,
                                 "resource_name": resource.resource_name}
        try:
            if resource.resource_type != TOPIC_RESOURCE:
                raise InvalidRequest(
                    "only topic configs can be altered; server keys are set at start-up"
                    " (--config or --set)"
                )
            described = await ctx.resolve(ctx.broker.describe_topic(resource.resource_name))
            changes = changes_for(resource, described.overrides)
            validate_topic_config({k: v for k, v in changes.items() if v is not None})
            if not body.validate_only:
                await ctx.resolve(
                    ctx.broker.alter_topic_config(resource.resource_name, changes)
                )
            entry["error_code"] = 0
        except KafkaError as error:
            entry.update(error_code=error.code, error_message=str(error))
        results.append(entry)
    return make_response(request, responses=results)


def _replace_all(resource: Any, overrides: Any) -> dict[str, Any]:
    """AlterConfigs: the given set becomes the topic's whole set of overrides."""
    given = {c.name: c.value for c in resource.configs}
    return {**dict.fromkeys(overrides), **given}


def _incremental(resource: Any, overrides: Any) -> dict[str, Any]:
    """IncrementalAlterConfigs: SET or DELETE key by key (no list-valued keys here)."""
    changes: dict[str, Any] = {}
    for config in resource.configs:
        if config.config_operation == SET:
            changes[config.name] = config.value
        elif config.config_operation == DELETE:
            changes[config.name] = None
        else:
            raise InvalidConfig(
                f"{config.name}: APPEND and SUBTRACT apply only to list-valued keys"
            )
    return changes


async def handle_alter_configs(ctx: BrokerContext, request: Request) -> Any:
    return await _alter_topic_configs(ctx, request, _replace_all)


async def handle_incremental_alter_configs(ctx: BrokerContext, request: Request) -> Any:
    return await _alter_topic_configs(ctx, request, _incremental)


async def handle_describe_log_dirs(ctx: BrokerContext, request: Request) -> Any:
    """One log directory, the data directory, with every partition's size in bytes."""
    wanted = request.body.topics
    filters = None if wanted is None else {t.topic: set(t.partitions) for t in wanted}
    topics = []
    for topic in await ctx.resolve(ctx.broker.describe_topics(None)):
        if filters is not None and topic.name not in filters:
            continue
        topics.append({"name": topic.name, "partitions": [
            {"partition_index": p.partition, "partition_size": p.bytes, "offset_lag": 0,
             "is_future_key": False}
            for p in topic.partitions
            if filters is None or p.partition in filters[topic.name]
        ]})
    usage = shutil.disk_usage(ctx.data_dir) if ctx.data_dir else None
    return make_response(request, error_code=0, results=[{
        "error_code": 0,
        "log_dir": ctx.data_dir,
        "topics": topics,
        "total_bytes": usage.total if usage else -1,
        "usable_bytes": usage.free if usage else -1,
    }])
