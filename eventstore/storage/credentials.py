"""SCRAM credentials in the catalog: per user and mechanism, what RFC 5802 lets a server
keep (salt, iterations, StoredKey, ServerKey), never a password.

The table is ``scram_credentials`` of schema/catalog_additions.sql, in ``catalog.db``. The
server reads it on every login (a user added while it runs can log in at once), and
writes it for AlterUserScramCredentials; ``eventstore users`` writes it on a data
directory offline. A read-only catalog made before the table existed holds no user.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import apsw

from eventstore.errors import ResourceNotFound, UnacceptableCredential
from eventstore.security.scram import MAX_ITERATIONS, MECHANISMS, MIN_ITERATIONS, ScramCredential
from eventstore.storage.catalog import CATALOG_FILE, Catalog
from eventstore.storage.segment import storage_errors

_COLUMNS = "mechanism, salt, iterations, stored_key, server_key"


@dataclass(frozen=True)
class UserCredential:
    """One user's credential for one mechanism, as DescribeUserScramCredentials lists it."""

    user: str
    mechanism: str
    iterations: int


def check_credential(user: str, credential: ScramCredential) -> None:
    """UnacceptableCredential for an empty user name, an unknown mechanism or an iteration
    count outside what SCRAM clients accept (Kafka's 4096 to 16384)."""
    if not user:
        raise UnacceptableCredential("the user name is empty")
    if credential.mechanism not in MECHANISMS:
        raise UnacceptableCredential(f"unknown SCRAM mechanism {credential.mechanism!r}")
    if not MIN_ITERATIONS <= credential.iterations <= MAX_ITERATIONS:
        raise UnacceptableCredential(
            f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS},"
            f" got {credential.iterations}")
    if not credential.salt:
        raise UnacceptableCredential("the salt is empty")


class CredentialStore:
    """The ``scram_credentials`` table of one data directory's catalog.

    Its own SQLite connection to ``catalog.db`` (WAL: readers never wait on the broker's
    writes; a write waits up to the busy timeout for the catalog's writer), used by one
    thread at a time (logins run on a pool of threads)."""

    def __init__(self, conn: apsw.Connection | None, path: str) -> None:
        self._conn = conn  # None: a read-only catalog that does not exist
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: str, *, readonly: bool = False) -> CredentialStore:
        """The store of ``data_dir``; writable opens make the catalog (and the table) when
        missing, as Catalog.open does."""
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

    def __enter__(self) -> CredentialStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        if self._conn is None:
            return []
        try:
            with self._lock, storage_errors(self.path):
                return self._conn.execute(sql, args).fetchall()
        except apsw.SQLError as exc:
            if "no such table" in str(exc):
                return []  # a read-only catalog older than the table: no users
            raise

    def credential(self, user: str, mechanism: str) -> ScramCredential | None:
        """The stored credential of ``user`` for ``mechanism``, or None."""
        rows = self._rows(f"SELECT {_COLUMNS} FROM scram_credentials"
                          " WHERE user = ? AND mechanism = ?", (user, mechanism))
        return ScramCredential(*rows[0]) if rows else None

    def credentials(self, user: str) -> list[ScramCredential]:
        """Every credential of ``user``, by mechanism."""
        rows = self._rows(f"SELECT {_COLUMNS} FROM scram_credentials WHERE user = ?"
                          " ORDER BY mechanism", (user,))
        return [ScramCredential(*row) for row in rows]

    def users(self, names: Iterable[str] | None = None) -> list[UserCredential]:
        """The credentials of the users named (every user when None), by user and
        mechanism: names and iteration counts only."""
        rows = self._rows("SELECT user, mechanism, iterations FROM scram_credentials"
                          " ORDER BY user, mechanism")
        wanted = None if names is None else set(names)
        return [UserCredential(*row) for row in rows if wanted is None or row[0] in wanted]

    def upsert(self, user: str, credential: ScramCredential) -> None:
        """Store ``credential`` for ``user``, replacing the user's one of that mechanism."""
        self.alter(user, [credential], [])

    def delete(self, user: str, mechanism: str) -> None:
        """Remove ``user``'s credential for ``mechanism``; ResourceNotFound when none."""
        self.alter(user, [], [mechanism])

    def alter(self, user: str, upserts: Sequence[ScramCredential],
              deletions: Sequence[str]) -> None:
        """Store and remove ``user``'s credentials (by mechanism) in one transaction: all
        of it, or (UnacceptableCredential, ResourceNotFound) none of it."""
        for credential in upserts:
            check_credential(user, credential)
        if self._conn is None:
            raise ResourceNotFound(f"{self.path}: no catalog")
        conn = self._conn
        with self._lock, storage_errors(self.path), conn:
            for mechanism in deletions:
                conn.execute("DELETE FROM scram_credentials WHERE user = ? AND mechanism = ?",
                             (user, mechanism))
                if not conn.changes():
                    raise ResourceNotFound(f"user {user!r} has no {mechanism} credential")
            for credential in upserts:
                conn.execute(
                    f"INSERT OR REPLACE INTO scram_credentials (user, {_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (user, credential.mechanism, credential.salt, credential.iterations,
                     credential.stored_key, credential.server_key))
