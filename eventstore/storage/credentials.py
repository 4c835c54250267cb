"""SCRAM credentials in the catalog: per user and mechanism, what RFC 5802 lets a server
keep (salt, iterations, StoredKey, ServerKey), never a password.

The table is ``scram_credentials`` of schema/catalog_additions.sql, in ``catalog.db``. The
server reads it on every login (a user added while it runs can log in at once), and
writes it for AlterUserScramCredentials; ``eventstore users`` writes it on a data
directory offline. A read-only catalog made before the table existed holds no user.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eventstore.errors import ResourceNotFound, UnacceptableCredential
from eventstore.security.scram import MAX_ITERATIONS, MECHANISMS, MIN_ITERATIONS, ScramCredential
from eventstore.storage.catalog_table import CatalogTable
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


class CredentialStore(CatalogTable):
    """The ``scram_credentials`` table of one data directory's catalog (logins read it
    from a pool of threads, one at a time)."""

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
        conn = self._writable()
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
