"""ACL bindings in the catalog: the ``acls`` table of schema/catalog_additions.sql.

The server loads every binding when it starts and writes CreateAcls and DeleteAcls here
before answering, so ACLs survive a restart; ``eventstore acls`` writes them on a data
directory offline. A read-only catalog made before the table existed holds no ACL.
"""

from __future__ import annotations

from collections.abc import Iterable

from eventstore.security.acl import (
    AclBinding,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourcePattern,
    ResourceType,
)
from eventstore.storage.catalog_table import CatalogTable
from eventstore.storage.segment import storage_errors

_COLUMNS = ("resource_type, resource_name, pattern_type, principal, host, operation,"
            " permission")


def _row(binding: AclBinding) -> tuple:
    pattern = binding.pattern
    return (int(pattern.resource_type), pattern.name, int(pattern.pattern_type),
            binding.principal, binding.host, int(binding.operation), int(binding.permission))


def _binding(row: tuple) -> AclBinding:
    resource_type, name, pattern_type, principal, host, operation, permission = row
    return AclBinding(ResourcePattern(ResourceType(resource_type), name,
                                      PatternType(pattern_type)),
                      principal, host, Operation(operation), Permission(permission))


class AclStore(CatalogTable):
    """The ``acls`` table of one data directory's catalog."""

    def bindings(self) -> list[AclBinding]:
        """Every stored binding."""
        return [_binding(row) for row in self._rows(f"SELECT {_COLUMNS} FROM acls")]

    def add(self, bindings: Iterable[AclBinding]) -> None:
        """Store the bindings (one already stored stays once), all in one transaction."""
        conn = self._writable()
        with self._lock, storage_errors(self.path), conn:
            conn.executemany(f"INSERT OR IGNORE INTO acls ({_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                             [_row(binding) for binding in bindings])

    def remove(self, acl_filter: AclFilter) -> list[AclBinding]:
        """Remove the bindings ``acl_filter`` selects; returns them."""
        removed = [binding for binding in self.bindings() if acl_filter.matches(binding)]
        conn = self._writable()
        with self._lock, storage_errors(self.path), conn:
            conn.executemany(
                "DELETE FROM acls WHERE resource_type = ? AND resource_name = ? AND"
                " pattern_type = ? AND principal = ? AND host = ? AND operation = ? AND"
                " permission = ?", [_row(binding) for binding in removed])
        return removed
