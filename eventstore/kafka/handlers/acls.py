"""CreateAcls, DescribeAcls and DeleteAcls: the authorizer's ACLs over the wire, as
confluent-kafka's, kafka-python's and Kafka's admin clients manage them.

As Kafka does: with no authorizer configured each is SECURITY_DISABLED; CreateAcls and
DeleteAcls need ALTER on the cluster, DescribeAcls DESCRIBE (CLUSTER_AUTHORIZATION_FAILED
otherwise); a binding Kafka would not store (ANY/MATCH patterns, a principal not
``User:...``) is INVALID_REQUEST for its creation only. Changes are written to the catalog
before they are answered (eventstore/storage/acls.py).
"""

from __future__ import annotations

from typing import Any

from kio.static.protocol import ResponsePayload

from eventstore.errors import (
    ClusterAuthorizationFailed,
    InvalidRequest,
    KafkaError,
    SecurityDisabled,
)
from eventstore.kafka.authorization import AclAuthority, cluster_allowed
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.security.acl import (
    AclBinding,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourcePattern,
    ResourceType,
)


def _authority(conn: Connection, operation: Operation) -> AclAuthority:
    """The server's ACLs, if there are any and the principal may do ``operation`` on
    the cluster."""
    if conn.ctx.acls is None:
        raise SecurityDisabled("No Authorizer is configured on the broker")
    if not cluster_allowed(conn, operation):
        raise ClusterAuthorizationFailed(f"{conn.principal} may not {operation.name} ACLs")
    return conn.ctx.acls


def _filter(item: Any) -> AclFilter:
    """A DescribeAcls request or DeleteAcls filter as an :class:`AclFilter`."""
    try:
        return AclFilter(ResourceType(item.resource_type_filter), item.resource_name_filter,
                         PatternType(item.pattern_type_filter), item.principal_filter,
                         item.host_filter, Operation(item.operation),
                         Permission(item.permission_type))
    except ValueError as exc:
        raise InvalidRequest(f"unknown ACL filter code: {exc}") from None


def _binding(creation: Any) -> AclBinding:
    try:
        return AclBinding(
            ResourcePattern(ResourceType(creation.resource_type), creation.resource_name,
                            PatternType(creation.resource_pattern_type)),
            creation.principal, creation.host, Operation(creation.operation),
            Permission(creation.permission_type))
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def _error(error: KafkaError | None) -> dict[str, Any]:
    return {"error_code": error.code if error else 0,
            "error_message": str(error) if error else None}


def _fields(binding: AclBinding) -> dict[str, Any]:
    return {"principal": binding.principal, "host": binding.host,
            "operation": int(binding.operation), "permission_type": int(binding.permission)}


def _pattern(binding: AclBinding) -> dict[str, Any]:
    pattern = binding.pattern
    return {"resource_type": int(pattern.resource_type), "resource_name": pattern.name,
            "pattern_type": int(pattern.pattern_type)}


async def handle_create_acls(conn: Connection, request: Request) -> ResponsePayload:
    creations = request.body.creations
    try:
        authority = _authority(conn, Operation.ALTER)
    except KafkaError as error:
        return make_response(request, results=[_error(error)] * len(creations))
    results: list[KafkaError | None] = []
    valid: list[AclBinding] = []
    for creation in creations:
        try:
            valid.append(_binding(creation))
            results.append(None)
        except KafkaError as error:
            results.append(error)
    if valid:
        await conn.ctx.run(authority.create, valid)
    return make_response(request, results=[_error(error) for error in results])


async def handle_describe_acls(conn: Connection, request: Request) -> ResponsePayload:
    try:
        authority = _authority(conn, Operation.DESCRIBE)
        found = authority.authorizer.describe(_filter(request.body))
    except KafkaError as error:
        return make_response(request, **_error(error), resources=[])
    resources: dict[tuple, list[dict[str, Any]]] = {}
    for binding in found:
        key = tuple(_pattern(binding).items())
        resources.setdefault(key, []).append(_fields(binding))
    return make_response(request, error_code=0, error_message=None, resources=[
        {**dict(key), "acls": acls} for key, acls in resources.items()])


async def handle_delete_acls(conn: Connection, request: Request) -> ResponsePayload:
    filters = request.body.filters
    try:
        authority = _authority(conn, Operation.ALTER)
    except KafkaError as error:
        return make_response(request, filter_results=[
            {**_error(error), "matching_acls": []}] * len(filters))
    results = []
    for item in filters:
        try:
            removed = await conn.ctx.run(authority.delete, _filter(item))
        except KafkaError as error:
            results.append({**_error(error), "matching_acls": []})
            continue
        results.append({**_error(None), "matching_acls": [
            {**_error(None), **_pattern(binding), **_fields(binding)} for binding in removed]})
    return make_response(request, filter_results=results)
