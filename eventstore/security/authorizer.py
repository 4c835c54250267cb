"""The authorizer's settings: whether one is on, its super users, and its default.

``authorizer.class.name`` takes Kafka's class names (or ``acl``) for the one authorizer
eventstore has, the ACLs of eventstore/security/acl.py; empty (the default) leaves every
request unchecked, as a Kafka broker with no authorizer does. ``super.users`` is Kafka's
semicolon-separated list of principals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eventstore.security.acl import AclBinding, Authorizer


def authorizer_enabled(config: Mapping[str, Any]) -> bool:
    """Whether the server config turns the ACL authorizer on."""
    return bool(config.get("authorizer.class.name", ""))


def super_users(text: str) -> frozenset[str]:
    """The principals of a ``super.users`` value (`User:a;User:b`), blanks dropped."""
    return frozenset(name.strip() for name in text.split(";") if name.strip())


def authorizer_from_config(config: Mapping[str, Any],
                           acls: Iterable[AclBinding]) -> Authorizer:
    """The authorizer the server config describes, holding ``acls``."""
    return Authorizer(frozenset(acls), super_users(config.get("super.users", "")),
                      bool(config.get("allow.everyone.if.no.acl.found", False)))
