"""Kafka's ACL model and the authorizer's decision, as plain values and functions.

The enum values are Kafka's wire codes (CreateAcls, DescribeAcls, DeleteAcls), so the
handlers pass them through unchanged. `Authorizer.authorize` follows Kafka's authorizer:
super users pass; with no ACL on a resource `allow.everyone.if.no.acl.found` decides;
otherwise a matching DENY wins over any ALLOW, and READ, WRITE, DELETE or ALTER imply
DESCRIBE while ALTER_CONFIGS implies DESCRIBE_CONFIGS.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"


class ResourceType(enum.IntEnum):
    """Kafka's ResourceType codes."""

    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    """Kafka's PatternType codes: bindings are LITERAL or PREFIXED; ANY and MATCH filter."""

    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(enum.IntEnum):
    """Kafka's AclOperation codes."""

    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(enum.IntEnum):
    """Kafka's AclPermissionType codes."""

    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


CLUSTER_NAME = "kafka-cluster"

_IMPLIED = {
    Operation.DESCRIBE: frozenset(
        {Operation.DESCRIBE, Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER}
    ),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS}),
}


@dataclass(frozen=True)
class ResourcePattern:
    """The resources one ACL is about: a name, `*`, or a name prefix."""

    resource_type: ResourceType
    name: str
    pattern_type: PatternType = PatternType.LITERAL

    def matches(self, resource_type: ResourceType, name: str) -> bool:
        """Whether this pattern covers the named resource."""
        if self.resource_type is not resource_type:
            return False
        if self.pattern_type is PatternType.PREFIXED:
            return name.startswith(self.name)
        return self.name in (name, WILDCARD)


@dataclass(frozen=True)
class AclBinding:
    """One ACL: who may (or may not) do what, from where, on which resources."""

    pattern: ResourcePattern
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def __post_init__(self) -> None:
        problem = binding_problem(self)
        if problem:
            raise ValueError(problem)


def binding_problem(binding: AclBinding) -> str | None:
    """Why a binding cannot be stored (Kafka answers INVALID_REQUEST), or None."""
    if binding.pattern.resource_type in (ResourceType.ANY, ResourceType.UNKNOWN):
        return "an ACL needs a concrete resource type"
    if binding.pattern.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        return "an ACL's pattern type is LITERAL or PREFIXED"
    if binding.operation in (Operation.ANY, Operation.UNKNOWN):
        return "an ACL needs a concrete operation"
    if binding.permission not in (Permission.ALLOW, Permission.DENY):
        return "an ACL's permission is ALLOW or DENY"
    if not binding.pattern.name:
        return "an ACL needs a resource name"
    if not binding.principal.startswith("User:") or binding.principal == "User:":
        return f"principal {binding.principal!r} must be of the form User:name"
    if not binding.host:
        return "an ACL needs a host (`*` for any)"
    return None


@dataclass(frozen=True)
class AclFilter:
    """A DescribeAcls/DeleteAcls filter: None and the ANY codes match everything."""

    resource_type: ResourceType = ResourceType.ANY
    name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: Operation = Operation.ANY
    permission: Permission = Permission.ANY

    def matches(self, binding: AclBinding) -> bool:
        """Whether the binding is selected by this filter, with Kafka's MATCH semantics."""
        pattern = binding.pattern
        if (
            self.resource_type is not ResourceType.ANY
            and pattern.resource_type is not self.resource_type
        ):
            return False
        if self.pattern_type is PatternType.MATCH:
            if self.name is not None and not pattern.matches(pattern.resource_type, self.name):
                return False
        else:
            if (
                self.pattern_type is not PatternType.ANY
                and pattern.pattern_type is not self.pattern_type
            ):
                return False
            if self.name is not None and pattern.name != self.name:
                return False
        return (
            self.principal in (None, binding.principal)
            and self.host in (None, binding.host)
            and self.operation in (Operation.ANY, binding.operation)
            and self.permission in (Permission.ANY, binding.permission)
        )


@dataclass(frozen=True)
class Authorizer:
    """An immutable view of the ACLs and the authorizer settings; adding gives a new one."""

    acls: frozenset[AclBinding] = frozenset()
    super_users: frozenset[str] = frozenset()
    allow_if_no_acl: bool = False

    def with_acls(self, added: Iterable[AclBinding]) -> Authorizer:
        """This authorizer with more ACLs."""
        return Authorizer(self.acls | frozenset(added), self.super_users, self.allow_if_no_acl)

    def without(self, acl_filter: AclFilter) -> tuple[Authorizer, tuple[AclBinding, ...]]:
        """This authorizer without the ACLs the filter selects, and those ACLs."""
        removed = tuple(binding for binding in self.acls if acl_filter.matches(binding))
        return Authorizer(
            self.acls - frozenset(removed), self.super_users, self.allow_if_no_acl
        ), removed

    def describe(self, acl_filter: AclFilter) -> tuple[AclBinding, ...]:
        """The ACLs the filter selects, in a stable order."""
        selected = (binding for binding in self.acls if acl_filter.matches(binding))
        return tuple(sorted(selected, key=_order))

    def authorize(
        self,
        principal: str,
        host: str,
        operation: Operation,
        resource_type: ResourceType,
        name: str,
    ) -> bool:
        """Whether the principal, connected from host, may do operation on the resource."""
        if principal in self.super_users:
            return True
        matching = [
            binding for binding in self.acls if binding.pattern.matches(resource_type, name)
        ]
        if not matching:
            return self.allow_if_no_acl
        applicable = [
            binding
            for binding in matching
            if binding.principal in (principal, WILDCARD_PRINCIPAL)
            and binding.host in (host, WILDCARD)
        ]
        for binding in applicable:
            if binding.permission is Permission.DENY and binding.operation in (
                operation,
                Operation.ALL,
            ):
                return False
        allowed_by = _IMPLIED.get(operation, frozenset({operation})) | {Operation.ALL}
        return any(
            binding.permission is Permission.ALLOW and binding.operation in allowed_by
            for binding in applicable
        )

    def authorize_any(self, principal: str, host: str, operation: Operation,
                      resource_type: ResourceType) -> bool:
        """Whether some resource of the type lets the principal do ``operation``: an
        ALLOW binding for it that no DENY of the same pattern (or a ``*`` one) undoes,
        as Kafka's authorizeByResourceType decides IDEMPOTENT_WRITE from topic WRITEs."""
        if principal in self.super_users:
            return True
        allowed_by = _IMPLIED.get(operation, frozenset({operation})) | {Operation.ALL}
        applicable = [
            binding for binding in self.acls
            if binding.pattern.resource_type is resource_type
            and binding.principal in (principal, WILDCARD_PRINCIPAL)
            and binding.host in (host, WILDCARD)
        ]
        denied = {
            binding.pattern for binding in applicable
            if binding.permission is Permission.DENY
            and binding.operation in (operation, Operation.ALL)
        }
        if any(pattern.name == WILDCARD and pattern.pattern_type is PatternType.LITERAL
               for pattern in denied):
            return False
        return any(
            binding.permission is Permission.ALLOW and binding.operation in allowed_by
            and binding.pattern not in denied
            for binding in applicable
        )


def _order(binding: AclBinding) -> tuple:
    pattern = binding.pattern
    return (
        pattern.resource_type,
        pattern.name,
        pattern.pattern_type,
        binding.principal,
        binding.host,
        binding.operation,
        binding.permission,
    )
