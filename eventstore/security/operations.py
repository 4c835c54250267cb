"""Authorized operations: the ACL operations a client may perform on a resource, as the bit
set Metadata, DescribeCluster and DescribeGroups answer when asked (KIP-430).

Kafka answers with the operations the resource type supports (its
``AclEntry.supportedOperations``) that the authorizer allows; with no authorizer
configured, every supported one. Bit ``n`` of the set stands for the operation of code
``n``. INT32_MIN is the answer when the client did not ask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from eventstore.security.acl import Operation, ResourceType

NOT_REQUESTED = -(2**31)  # INT32_MIN: the schemas' default, "not asked for"

SUPPORTED_OPERATIONS: Mapping[ResourceType, frozenset[Operation]] = {
    ResourceType.TOPIC: frozenset({
        Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DESCRIBE,
        Operation.DELETE, Operation.ALTER, Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS}),
    ResourceType.GROUP: frozenset({Operation.READ, Operation.DESCRIBE, Operation.DELETE}),
    ResourceType.CLUSTER: frozenset({
        Operation.CREATE, Operation.CLUSTER_ACTION, Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS, Operation.IDEMPOTENT_WRITE, Operation.ALTER,
        Operation.DESCRIBE}),
    ResourceType.TRANSACTIONAL_ID: frozenset({Operation.DESCRIBE, Operation.WRITE}),
    ResourceType.DELEGATION_TOKEN: frozenset({Operation.DESCRIBE}),
    ResourceType.USER: frozenset({Operation.CREATE_TOKENS, Operation.DESCRIBE_TOKENS}),
}


def operations_bits(operations: frozenset[Operation]) -> int:
    """The bit set of ``operations``: bit ``n`` for the operation of code ``n``."""
    bits = 0
    for operation in operations:
        bits |= 1 << operation
    return bits


def authorized_operations(resource_type: ResourceType, requested: bool,
                          allows: Callable[[Operation], bool] | None = None) -> int:
    """What to answer for a resource of ``resource_type``: the operations the type
    supports that ``allows`` (the authorizer's decision on the resource) lets through,
    every one with no authorizer; NOT_REQUESTED if the client did not ask."""
    if not requested:
        return NOT_REQUESTED
    supported = SUPPORTED_OPERATIONS[resource_type]
    return operations_bits(supported if allows is None else frozenset(filter(allows, supported)))
