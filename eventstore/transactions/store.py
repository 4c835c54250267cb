"""The transaction coordinator's state in the catalog: one ``transactions`` row per id.

Each change of a transactional id's state is written before it is answered (the catalog
runs with ``synchronous = FULL``), so a restart sees every decided commit or abort. The
table is made by schema/catalog_additions.sql on every writable open of the catalog; a
read-only catalog of an older data directory lacks it, and reads it as empty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import apsw

from eventstore.storage.catalog import CATALOG_FILE, Catalog, CommittedOffset
from eventstore.storage.segment import storage_errors
from eventstore.transactions.state import PendingOffset, TransactionMetadata, TxnState

_COLUMNS = ("transactional_id, producer_id, producer_epoch, timeout_ms, state, partitions,"
            " pending_offsets, start_ms, update_ms")


def _row(meta: TransactionMetadata) -> tuple:
    pending = {group: [list(o) for o in offsets]
               for group, offsets in sorted(meta.pending_offsets.items())}
    return (meta.transactional_id, meta.producer_id, meta.producer_epoch, meta.timeout_ms,
            meta.state.value, json.dumps(meta.topic_partitions), json.dumps(pending),
            meta.start_ms, meta.update_ms)


def _metadata(row: tuple) -> TransactionMetadata:
    txn_id, pid, epoch, timeout_ms, state, partitions, pending, start_ms, update_ms = row
    offsets = {group: tuple(tuple(o) for o in items)
               for group, items in json.loads(pending).items()}
    return TransactionMetadata(txn_id, pid, epoch, timeout_ms, TxnState(state),
                               frozenset((t, p) for t, p in json.loads(partitions)),
                               offsets, start_ms, update_ms)


def read_transactions(conn: apsw.Connection) -> list[TransactionMetadata]:
    """Every transactional id's state, by id; none when the catalog predates the table."""
    try:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM transactions ORDER BY transactional_id").fetchall()
    except apsw.SQLError as exc:
        if "no such table" in str(exc):
            return []
        raise
    return [_metadata(row) for row in rows]


class TransactionStore:
    """The coordinator's writer of ``transactions`` (and of the offsets a commit makes
    visible, through the catalog's own ``commit_offsets``)."""

    def __init__(self, catalog: Catalog, conn: apsw.Connection) -> None:
        self._catalog = catalog
        self._conn = conn
        self.path = catalog.path

    @classmethod
    def open(cls, data_dir: str) -> TransactionStore:
        """Open the catalog of ``data_dir`` (which adds the table when missing)."""
        catalog = Catalog.open(data_dir)
        path = os.path.join(data_dir, CATALOG_FILE)
        try:
            with storage_errors(path):
                conn = apsw.Connection(path)
                conn.execute("PRAGMA busy_timeout = 5000")
                conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            catalog.close()
            raise
        return cls(catalog, conn)

    def load(self) -> list[TransactionMetadata]:
        with storage_errors(self.path):
            return read_transactions(self._conn)

    def save(self, meta: TransactionMetadata) -> None:
        """Write one id's state durably (replacing what was stored)."""
        with storage_errors(self.path), self._conn:
            self._conn.execute(
                f"INSERT OR REPLACE INTO transactions ({_COLUMNS}) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?)", _row(meta))

    def delete(self, transactional_ids: Iterable[str]) -> None:
        """Forget expired transactional ids."""
        with storage_errors(self.path), self._conn:
            self._conn.executemany("DELETE FROM transactions WHERE transactional_id = ?",
                                   [(i,) for i in transactional_ids])

    def commit_offsets(self, group_id: str, offsets: Iterable[PendingOffset],
                       now_ms: int) -> None:
        """Make a committed transaction's offsets the group's committed offsets (written
        again after a restart mid-commit: the same values, so harmless)."""
        self._catalog.commit_offsets(group_id, [
            CommittedOffset(group_id, topic, partition, offset, metadata, now_ms)
            for topic, partition, offset, metadata in offsets])

    def close(self) -> None:
        self._conn.close()
        self._catalog.close()
