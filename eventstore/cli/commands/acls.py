"""`eventstore acls add|remove|list`: the authorizer's ACLs, with ``kafka-acls``' options.

On ``--data-dir`` the catalog's ``acls`` table is written directly (the directory's lock
taken, so not while a server runs on it); through ``--bootstrap-server`` the command
sends CreateAcls / DescribeAcls / DeleteAcls with kafka-python, its TLS and SASL
settings from ``--command-config`` (log in as a user with ALTER on the cluster, a super
user say). One resource per command: ``--topic``, ``--group``, ``--transactional-id`` or
``--cluster``, its name literal or (``--resource-pattern-type prefixed``) a prefix.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from eventstore.cli.admin_command import (
    LockedStore,
    WireAdmin,
    add_admin_action,
    admin_target,
)
from eventstore.cli.base import EXIT_OK, EXIT_USAGE, CliError, add_command
from eventstore.cli.output import Column, print_line, print_rows
from eventstore.security import acl
from eventstore.storage.acls import AclStore

COLUMNS = (Column("PRINCIPAL", "principal"), Column("HOST", "host"),
           Column("PERMISSION", "permission"), Column("OPERATION", "operation"),
           Column("RESOURCE", "resource_type"), Column("PATTERN", "pattern_type"),
           Column("NAME", "name"))
OPERATIONS = [op.name for op in acl.Operation if op not in (acl.Operation.UNKNOWN,
                                                            acl.Operation.ANY)]


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "acls", "add, remove and list ACLs (authorizer.class.name on)",
        "Manage the ACLs the server's authorizer decides with: who (User:name) may or may"
        " not do which operations on a topic, group, transactional id or the cluster. A"
        " DENY wins over any ALLOW; super.users bypass ACLs.",
        "  eventstore acls add --allow-principal User:alice --operation READ --topic orders"
        " --data-dir data\n"
        "  eventstore acls add --allow-principal User:alice --operation READ --group app-"
        " --resource-pattern-type prefixed --bootstrap-server 127.0.0.1:9093"
        " --command-config admin.properties\n"
        "  eventstore acls list --topic orders --data-dir data\n"
        "  eventstore acls remove --allow-principal User:alice --data-dir data\n",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = add_admin_action(actions, "add", "add ACLs (one per principal and operation)", _run)
    _binding_options(add, required=True)
    _principals(add)
    remove = add_admin_action(actions, "remove", "remove the ACLs the options select", _run)
    _binding_options(remove, required=False)
    _principals(remove)
    listing = add_admin_action(actions, "list", "list the ACLs the options select", _run)
    _binding_options(listing, required=False)
    listing.add_argument("--principal", metavar="User:NAME", help="only this principal's")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")


def _binding_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    resource = parser.add_mutually_exclusive_group(required=required)
    resource.add_argument("--topic", metavar="NAME")
    resource.add_argument("--group", metavar="NAME")
    resource.add_argument("--transactional-id", metavar="NAME")
    resource.add_argument("--cluster", action="store_true")
    parser.add_argument("--resource-pattern-type", choices=("literal", "prefixed"),
                        type=str.lower,
                        help="prefixed: the name is a prefix (default: a literal name, or `*`)")
    parser.add_argument("--host", default="*" if required else None,
                        help="the client's address (default: `*`, any)")
    parser.add_argument("--operation", action="append", type=str.upper, choices=OPERATIONS,
                        required=required, help="repeatable")


def _principals(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-principal", action="append", default=[],
                        metavar="User:NAME", help="repeatable: ALLOW ACLs of this principal")
    parser.add_argument("--deny-principal", action="append", default=[],
                        metavar="User:NAME", help="repeatable: DENY ACLs of this principal")


def _who(args: argparse.Namespace) -> list[tuple[str | None, acl.Permission]]:
    """The (principal, permission) pairs the options name."""
    if hasattr(args, "principal"):  # list
        return [(args.principal, acl.Permission.ANY)]
    return ([(principal, acl.Permission.ALLOW) for principal in args.allow_principal]
            + [(principal, acl.Permission.DENY) for principal in args.deny_principal])


def _resource(args: argparse.Namespace) -> tuple[acl.ResourceType, str | None]:
    for resource_type, name in ((acl.ResourceType.TOPIC, args.topic),
                                (acl.ResourceType.GROUP, args.group),
                                (acl.ResourceType.TRANSACTIONAL_ID, args.transactional_id)):
        if name is not None:
            return resource_type, name
    if args.cluster:
        return acl.ResourceType.CLUSTER, acl.CLUSTER_NAME
    return acl.ResourceType.ANY, None


def _pattern_type(args: argparse.Namespace, name: str | None) -> acl.PatternType:
    if args.resource_pattern_type == "prefixed":
        return acl.PatternType.PREFIXED
    return acl.PatternType.LITERAL if name is not None else acl.PatternType.ANY


def bindings_of(args: argparse.Namespace) -> list[acl.AclBinding]:
    """The ACLs ``acls add`` names: one per operation."""
    resource_type, name = _resource(args)
    assert name is not None  # a resource is required
    pattern = acl.ResourcePattern(resource_type, name, _pattern_type(args, name))
    who = _who(args)
    if not who:
        raise CliError("name a principal: --allow-principal or --deny-principal", EXIT_USAGE)
    try:
        return [acl.AclBinding(pattern, principal, args.host, acl.Operation[op], permission)
                for principal, permission in who for op in dict.fromkeys(args.operation)]
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def filters_of(args: argparse.Namespace) -> list[acl.AclFilter]:
    """The filters ``acls remove`` and ``acls list`` name: one per principal and
    operation (any principal, any operation when none is given)."""
    resource_type, name = _resource(args)
    operations = [acl.Operation[op] for op in dict.fromkeys(args.operation or ())]
    return [acl.AclFilter(resource_type, name, _pattern_type(args, name), principal,
                          args.host, operation, permission)
            for principal, permission in _who(args) or [(None, acl.Permission.ANY)]
            for operation in operations or [acl.Operation.ANY]]


def _row(binding: acl.AclBinding) -> dict[str, str]:
    return {"principal": binding.principal, "host": binding.host,
            "permission": binding.permission.name, "operation": binding.operation.name,
            "resource_type": binding.pattern.resource_type.name,
            "pattern_type": binding.pattern.pattern_type.name, "name": binding.pattern.name}


def _run(args: argparse.Namespace) -> int:
    target = admin_target(args)
    acls: LocalAcls | WireAcls
    if target.bootstrap_server:
        acls = WireAcls(target.bootstrap_server, args.command_config)
    else:
        acls = LocalAcls(target.data_dir)
    try:
        if args.action == "add":
            added = bindings_of(args)
            acls.add(added)
            print_line(f"Added {len(added)} ACL(s).")
        elif args.action == "remove":
            removed = [binding for acl_filter in filters_of(args)
                       for binding in acls.remove(acl_filter)]
            print_line(f"Removed {len(removed)} ACL(s).")
        else:
            found = {binding for acl_filter in filters_of(args)
                     for binding in acls.list(acl_filter)}
            print_rows(args.json, COLUMNS, [_row(binding) for binding in sorted(
                found, key=lambda b: tuple(_row(b).values()))])
    finally:
        acls.close()
    return EXIT_OK


class LocalAcls(LockedStore[AclStore]):
    """The ACLs of a data directory, its lock held (no server runs on it)."""

    def __init__(self, data_dir: str) -> None:
        super().__init__(data_dir, "eventstore acls", AclStore.open)

    def add(self, bindings: Sequence[acl.AclBinding]) -> None:
        self.store.add(bindings)

    def remove(self, acl_filter: acl.AclFilter) -> list[acl.AclBinding]:
        return self.store.remove(acl_filter)

    def list(self, acl_filter: acl.AclFilter) -> list[acl.AclBinding]:
        return [binding for binding in self.store.bindings() if acl_filter.matches(binding)]


class WireAcls(WireAdmin):
    """A server's ACLs, through CreateAcls, DescribeAcls and DeleteAcls (kafka-python's
    admin client, whose enums carry Kafka's codes)."""

    def add(self, bindings: Sequence[acl.AclBinding]) -> None:
        from eventstore.cli.wire import wire_errors

        with wire_errors(self._address):
            result = self._admin.create_acls([_kafka_python_acl(b) for b in bindings])
        if result["failed"]:
            _, error = result["failed"][0]
            raise CliError(f"ACL refused: {error}")

    def remove(self, acl_filter: acl.AclFilter) -> list[acl.AclBinding]:
        from eventstore.cli.wire import wire_errors

        with wire_errors(self._address):
            results = self._admin.delete_acls([_kafka_python_filter(acl_filter)])
        removed = []
        for _, matches, error in results:
            if error.errno:
                raise CliError(f"ACLs not removed: {error.__name__}")
            removed += [_binding(found) for found in matches]
        return removed

    def list(self, acl_filter: acl.AclFilter) -> list[acl.AclBinding]:
        from eventstore.cli.wire import wire_errors

        with wire_errors(self._address):
            found, _ = self._admin.describe_acls(_kafka_python_filter(acl_filter))
        return [_binding(item) for item in found]


def _kafka_python_acl(binding: acl.AclBinding) -> object:
    from kafka import admin

    pattern = binding.pattern
    return admin.ACL(binding.principal, binding.host, admin.ACLOperation(binding.operation),
                     admin.ACLPermissionType(binding.permission), admin.ResourcePattern(
                         admin.ResourceType(pattern.resource_type), pattern.name,
                         admin.ACLResourcePatternType(pattern.pattern_type)))


def _kafka_python_filter(acl_filter: acl.AclFilter) -> object:
    from kafka import admin

    return admin.ACLFilter(acl_filter.principal, acl_filter.host,
                           admin.ACLOperation(acl_filter.operation),
                           admin.ACLPermissionType(acl_filter.permission),
                           admin.ResourcePatternFilter(
                               admin.ResourceType(acl_filter.resource_type), acl_filter.name,
                               admin.ACLResourcePatternType(acl_filter.pattern_type)))


def _binding(found: object) -> acl.AclBinding:
    """A kafka-python ACL as eventstore's binding."""
    pattern = found.resource_pattern  # type: ignore[attr-defined]
    return acl.AclBinding(
        acl.ResourcePattern(acl.ResourceType(pattern.resource_type),
                            pattern.resource_name, acl.PatternType(pattern.pattern_type)),
        found.principal, found.host,  # type: ignore[attr-defined]
        acl.Operation(found.operation),  # type: ignore[attr-defined]
        acl.Permission(found.permission_type))  # type: ignore[attr-defined]
