"""KIP-848 groups in the catalog: one ``consumer_group_state`` row per group, so a restart
finds every group as it was (Kafka keeps the same in __consumer_offsets).

The row holds the group's epochs, and the document of
:meth:`~eventstore.groups.consumer_coordinator.ConsumerGroupCoordinator.take_changes` as
JSON. The table is made by schema/catalog_additions.sql on every writable open of the
catalog; a read-only catalog older than the table reads as empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import apsw

from eventstore.storage.catalog_table import CatalogTable
from eventstore.storage.segment import storage_errors


class ConsumerGroupStore(CatalogTable):
    """The group coordinator's reader and writer of ``consumer_group_state``."""

    def load(self) -> dict[str, dict]:
        """Every group's document, by group id."""
        return {group_id: json.loads(state) for group_id, state in self._rows(
            "SELECT group_id, state FROM consumer_group_state ORDER BY group_id")}

    def write(self, documents: Mapping[str, Mapping]) -> None:
        """Replace the rows of the groups in ``documents``, in one transaction."""
        if not documents:
            return
        conn = self._writable()
        with self._lock, storage_errors(self.path), conn:
            conn.executemany(
                "INSERT OR REPLACE INTO consumer_group_state"
                " (group_id, group_epoch, assignment_epoch, state) VALUES (?, ?, ?, ?)",
                [(group_id, d["group_epoch"], d["assignment_epoch"], json.dumps(d))
                 for group_id, d in documents.items()])

    def delete(self, group_id: str) -> None:
        """Remove a deleted group's row, so a restart does not bring the group back."""
        conn = self._writable()
        with self._lock, storage_errors(self.path), conn:
            conn.execute("DELETE FROM consumer_group_state WHERE group_id = ?", (group_id,))


def read_group_epochs(conn: apsw.Connection) -> dict[str, tuple[int, int]]:
    """(group epoch, target assignment epoch) of every KIP-848 group, read on ``conn``
    (in the caller's transaction); none from a catalog older than the table."""
    try:
        rows = conn.execute("SELECT group_id, group_epoch, assignment_epoch"
                            " FROM consumer_group_state").fetchall()
    except apsw.SQLError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    return {group_id: (epoch, assignment) for group_id, epoch, assignment in rows}
