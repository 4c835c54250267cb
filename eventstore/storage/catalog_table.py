"""A table that schema/catalog_additions.sql adds to ``catalog.db``, on its own SQLite
connection: what the credential store and the ACL store share.

WAL: readers never wait on the broker's writes, and a write waits up to the busy
timeout for the catalog's writer. One thread at a time uses the connection (the lock).
A read-only open of a data directory with no catalog, or with one made before the table
existed, reads as an empty table.
"""

from __future__ import annotations

import os
import threading
from typing import Self

import apsw

from eventstore.errors import ResourceNotFound
from eventstore.storage.catalog import CATALOG_FILE, Catalog
from eventstore.storage.segment import storage_errors


class CatalogTable:
    """One data directory's catalog connection, for the store of one added table."""

    def __init__(self, conn: apsw.Connection | None, path: str) -> None:
        self._conn = conn  # None: a read-only catalog that does not exist
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: str, *, readonly: bool = False) -> Self:
        """The store of ``data_dir``; writable opens make the catalog (and the added
        tables) when missing, as Catalog.open does."""
        path = os.path.join(data_dir, CATALOG_FILE)
        if readonly:
            if not os.path.exists(path):
                return cls(None, path)
            with storage_errors(path):
                conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        else:
            Catalog.open(data_dir).close()  # made, migrated, its added tables created
            with storage_errors(path):
                conn = apsw.Connection(path)
        conn.execute("PRAGMA busy_timeout = 5000")
        return cls(conn, path)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        """The rows of a read; none from a catalog without the table."""
        if self._conn is None:
            return []
        try:
            with self._lock, storage_errors(self.path):
                return self._conn.execute(sql, args).fetchall()
        except apsw.SQLError as exc:
            if "no such table" in str(exc):
                return []  # a read-only catalog older than the table
            raise

    def _writable(self) -> apsw.Connection:
        """The connection to write with; ResourceNotFound for a catalog that does not
        exist (read-only)."""
        if self._conn is None:
            raise ResourceNotFound(f"{self.path}: no catalog")
        return self._conn
