"""Kafka's authorization of requests: the server's ACLs and the one-line check handlers make.

:class:`AclAuthority` is the server's live view of its ACLs (an immutable
:class:`~eventstore.security.acl.Authorizer`, swapped whole under a lock when CreateAcls or
DeleteAcls change it) and the catalog store it writes through first. With no authorizer
configured ``BrokerContext.acls`` is None and :func:`allowed` lets everything through.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from eventstore.errors import (
    ClusterAuthorizationFailed,
    GroupAuthorizationFailed,
    KafkaError,
    TopicAuthorizationFailed,
    TransactionalIdAuthorizationFailed,
)
from eventstore.kafka.connection import Connection
from eventstore.security.acl import (
    CLUSTER_NAME,
    AclBinding,
    AclFilter,
    Authorizer,
    Operation,
    ResourceType,
)
from eventstore.security.authorizer import authorizer_enabled, authorizer_from_config
from eventstore.security.operations import authorized_operations
from eventstore.storage.acls import AclStore


class AclAuthority:
    """The ACLs a server decides with, and the store that keeps them durable."""

    def __init__(self, store: AclStore, config: Mapping[str, Any]) -> None:
        self.store = store
        self.authorizer: Authorizer = authorizer_from_config(config, store.bindings())
        self._lock = threading.Lock()

    def allows(self, principal: str, host: str, operation: Operation,
               resource_type: ResourceType, name: str) -> bool:
        """The authorizer's decision (a read of the current view: no lock)."""
        return self.authorizer.authorize(principal, host, operation, resource_type, name)

    def create(self, bindings: Iterable[AclBinding]) -> None:
        """Store the bindings, then decide with them (blocking: a catalog write)."""
        bindings = tuple(bindings)
        with self._lock:
            self.store.add(bindings)
            self.authorizer = self.authorizer.with_acls(bindings)

    def delete(self, acl_filter: AclFilter) -> tuple[AclBinding, ...]:
        """Remove the bindings the filter selects, in the store and the view (blocking)."""
        with self._lock:
            self.store.remove(acl_filter)
            self.authorizer, removed = self.authorizer.without(acl_filter)
        return removed

    def close(self) -> None:
        self.store.close()


def acl_authority(config: Mapping[str, Any], data_dir: str) -> AclAuthority | None:
    """The server's ACLs, loaded from the catalog of ``data_dir``, when the config turns
    the authorizer on (None otherwise: every request is let through)."""
    if not authorizer_enabled(config):
        return None
    return AclAuthority(AclStore.open(data_dir), config)


def allowed(conn: Connection, operation: Operation, resource_type: ResourceType,
            name: str) -> bool:
    """Whether the connection's principal may do ``operation`` on the resource: always
    with no authorizer configured."""
    acls = conn.ctx.acls
    return acls is None or acls.allows(conn.principal, conn.client_host, operation,
                                       resource_type, name)


def cluster_allowed(conn: Connection, operation: Operation) -> bool:
    """Whether the connection's principal may do ``operation`` on the cluster."""
    return allowed(conn, operation, ResourceType.CLUSTER, CLUSTER_NAME)


# the error Kafka answers when the authorizer refuses an operation on a resource of a type
_REFUSALS: dict[ResourceType, type[KafkaError]] = {
    ResourceType.TOPIC: TopicAuthorizationFailed,
    ResourceType.GROUP: GroupAuthorizationFailed,
    ResourceType.CLUSTER: ClusterAuthorizationFailed,
    ResourceType.TRANSACTIONAL_ID: TransactionalIdAuthorizationFailed,
}


def refusal(conn: Connection, operation: Operation, resource_type: ResourceType,
            name: str = CLUSTER_NAME) -> KafkaError | None:
    """Kafka's error for a refused ``operation`` on the resource, or None when allowed."""
    if allowed(conn, operation, resource_type, name):
        return None
    what = "the cluster" if resource_type is ResourceType.CLUSTER else (
        f"{resource_type.name.lower()} {name!r}")
    return _REFUSALS[resource_type](
        f"{conn.principal} is not authorized to {operation.name} {what}")


def operations_of(conn: Connection, resource_type: ResourceType, name: str,
                  requested: bool) -> int:
    """The authorized operations (KIP-430) the principal has on the resource, as
    Metadata, DescribeGroups and DescribeCluster answer them when asked."""
    if conn.ctx.acls is None:
        return authorized_operations(resource_type, requested)
    return authorized_operations(resource_type, requested,
                                 lambda operation: allowed(conn, operation, resource_type, name))


def authorize(conn: Connection, operation: Operation, resource_type: ResourceType,
              name: str = CLUSTER_NAME) -> None:
    """Raise Kafka's error unless the principal may do ``operation`` on the resource."""
    error = refusal(conn, operation, resource_type, name)
    if error is not None:
        raise error


def authorize_create(conn: Connection, topic: str) -> None:
    """Raise TOPIC_AUTHORIZATION_FAILED unless the principal may CREATE on the cluster
    or on the topic, as Kafka asks for CreateTopics and automatic creation."""
    if not cluster_allowed(conn, Operation.CREATE):
        authorize(conn, Operation.CREATE, ResourceType.TOPIC, topic)


def idempotent_refusal(conn: Connection) -> KafkaError | None:
    """CLUSTER_AUTHORIZATION_FAILED unless the principal may produce idempotently:
    IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (KIP-679)."""
    acls = conn.ctx.acls
    if acls is None or cluster_allowed(conn, Operation.IDEMPOTENT_WRITE) or (
            acls.authorizer.authorize_any(conn.principal, conn.client_host, Operation.WRITE,
                                          ResourceType.TOPIC)):
        return None
    return refusal(conn, Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER)


def topic_refusals(conn: Connection, operation: Operation, names: Iterable[str]
                   ) -> dict[str, KafkaError]:
    """TOPIC_AUTHORIZATION_FAILED for each of the topics the principal may not
    ``operation`` (none with no authorizer)."""
    if conn.ctx.acls is None:
        return {}
    refused = {name: refusal(conn, operation, ResourceType.TOPIC, name) for name in names}
    return {name: error for name, error in refused.items() if error is not None}
