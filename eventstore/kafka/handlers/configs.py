"""Config APIs: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.

Topics' configs are described and altered (the broker validates and stores the
overrides); the broker's own keys are described but read-only, set at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kio.static.protocol import ResponsePayload

from eventstore.config import KEYS, TOPIC_KEYS, validate_topic_config
from eventstore.errors import InvalidConfig, InvalidRequest, KafkaError
from eventstore.kafka.authorization import authorize
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.security.acl import Operation, ResourceType

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
# DescribeConfigs config_source values
DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG = 1, 5
# IncrementalAlterConfigs operations
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3

# what a resource's config entries and the topic's (effective config, overrides) make of
# its changes
ChangesFor = Callable[[Any, Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]


def _sensitive(name: str) -> bool:
    return name in KEYS and KEYS[name].sensitive


def _authorize(conn: Connection, operation: Operation, resource: Any) -> None:
    """Raise Kafka's error unless the principal may do ``operation`` on the configs of
    the topic (TOPIC_AUTHORIZATION_FAILED) or of the broker (the cluster's)."""
    if resource.resource_type == TOPIC_RESOURCE:
        authorize(conn, operation, ResourceType.TOPIC, resource.resource_name)
    elif resource.resource_type == BROKER_RESOURCE:
        authorize(conn, operation, ResourceType.CLUSTER)


async def handle_describe_configs(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    results = []
    for resource in request.body.resources:
        entry: dict[str, Any] = {"resource_type": resource.resource_type,
                                 "resource_name": resource.resource_name}
        try:
            _authorize(conn, Operation.DESCRIBE_CONFIGS, resource)
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
                    # a secret (ssl.key.password) is never told, as Kafka tells none
                    "value": None if value is None or _sensitive(name) else str(value).lower()
                    if isinstance(value, bool) else str(value),
                    "read_only": name not in TOPIC_KEYS,
                    "config_source": DYNAMIC_TOPIC_CONFIG if name in overrides else DEFAULT_CONFIG,
                    "is_sensitive": _sensitive(name),
                }
                for name, value in sorted(effective.items())
                if keys is None or name in keys
            ]
            entry["error_code"] = 0
        except KafkaError as error:
            entry.update(error_code=error.code, error_message=str(error), configs=[])
        results.append(entry)
    return make_response(request, results=results)


async def _alter_topic_configs(
    conn: Connection, request: Request, changes_for: ChangesFor
) -> ResponsePayload:
    """Apply per-resource config changes; ``changes_for(resource, config, overrides)``
    builds them."""
    ctx = conn.ctx
    body = request.body
    results = []
    for resource in body.resources:
        entry: dict[str, Any] = {"resource_type": resource.resource_type,
                                 "resource_name": resource.resource_name}
        try:
            _authorize(conn, Operation.ALTER_CONFIGS, resource)
            if resource.resource_type != TOPIC_RESOURCE:
                raise InvalidRequest(
                    "only topic configs can be altered; server keys are set at start-up"
                    " (--config or --set)"
                )
            described = await ctx.resolve(ctx.broker.describe_topic(resource.resource_name))
            changes = changes_for(resource, described.config, described.overrides)
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


def _replace_all(resource: Any, config: Mapping[str, Any], overrides: Mapping[str, Any]
                 ) -> dict[str, Any]:
    """AlterConfigs: the given set becomes the topic's whole set of overrides."""
    given = {c.name: c.value for c in resource.configs}
    return {**dict.fromkeys(overrides), **given}


def _incremental(resource: Any, config: Mapping[str, Any], overrides: Mapping[str, Any]
                 ) -> dict[str, Any]:
    """IncrementalAlterConfigs: SET or DELETE key by key; APPEND (an item not yet listed)
    and SUBTRACT (every item given) the items of a list-valued key, from its effective
    value or the change before in the same request."""
    changes: dict[str, Any] = {}
    for entry in resource.configs:
        name, operation = entry.name, entry.config_operation
        if operation == SET:
            changes[name] = entry.value
        elif operation == DELETE:
            changes[name] = None
        else:
            key = TOPIC_KEYS.get(name)
            if operation not in (APPEND, SUBTRACT) or key is None or not key.list_valued:
                raise InvalidConfig(
                    f"{name}: APPEND and SUBTRACT apply only to list-valued keys")
            current = key.items(changes.get(name) or config.get(name, key.default))
            given = key.items(entry.value or "")
            if operation == APPEND:
                changes[name] = ",".join([*current, *(i for i in given if i not in current)])
            else:
                changes[name] = ",".join(i for i in current if i not in given)
    return changes


async def handle_alter_configs(conn: Connection, request: Request) -> ResponsePayload:
    return await _alter_topic_configs(conn, request, _replace_all)


async def handle_incremental_alter_configs(conn: Connection, request: Request
                                           ) -> ResponsePayload:
    return await _alter_topic_configs(conn, request, _incremental)
