"""Opening the SQLite files of a data directory for reading, creating and changing none of them.

SQLite would create ``-wal`` and ``-shm`` files next to a WAL-mode database (the catalog and
every active segment are WAL mode) even for a read-only connection. So:

- a file with a ``-wal`` beside it is held open in WAL mode by a writer (``eventstore serve``):
  it is opened read-only with SQLite's locking, so every read sees committed transactions
  only; the writer's ``-wal``/``-shm`` already exist and no file is created (after a crash
  the ``-wal`` may be left alone, and SQLite then adds the ``-shm`` index it needs to read
  the committed transactions in it);
- a file without one is not open in WAL mode anywhere (a sealed segment, or any file while no
  server runs): a WAL file exists for as long as any connection has the database open in WAL
  mode, so the main file holds every committed transaction. It is opened ``immutable``:
  read without locks and without creating any file.

The one window this leaves is a server starting while a query reads an active segment it has
not opened yet: the server only appends to its WAL, and changes the main file at its first
checkpoint (about 4 MB of appends later), so a query is over long before that could matter.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import quote

import apsw

from eventstore.errors import CorruptLog, KafkaStorageError
from eventstore.storage.segment import storage_errors

_FLAGS = apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
# How long a read waits for a writer's brief exclusive moments (WAL recovery, checkpoint reset).
_BUSY_TIMEOUT_MS = 5000


def readonly_uri(path: str, *, immutable: bool) -> str:
    """The ``file:`` URI that opens ``path`` read-only (and, if asked, immutable)."""
    mode = "mode=ro&immutable=1" if immutable else "mode=ro"
    return f"file:{quote(os.path.abspath(path))}?{mode}"


def open_database(path: str) -> apsw.Connection:
    """Open a data-directory file read-only; FileNotFoundError if it does not exist.

    Other failures raise KafkaStorageError (or CorruptLog) naming the file.
    """
    immutable = not os.path.exists(path + "-wal")
    try:
        with storage_errors(path):
            conn = apsw.Connection(readonly_uri(path, immutable=immutable), flags=_FLAGS)
    except KafkaStorageError:
        if not os.path.exists(path):
            raise FileNotFoundError(path) from None
        raise
    conn.set_busy_timeout(_BUSY_TIMEOUT_MS)
    return conn


@contextlib.contextmanager
def reading(path: str) -> Iterator[None]:
    """Name ``path`` in any error SQLite raises while reading it.

    Corruption and I/O errors become CorruptLog / KafkaStorageError as in the storage core,
    a writer holding the file too long KafkaStorageError (retriable). Any other SQLite error
    on a file that passed its schema check means its content is not what a segment holds,
    so it is reported as CorruptLog too.
    """
    try:
        with storage_errors(path):
            yield
    except apsw.BusyError as exc:
        raise KafkaStorageError(f"{path}: busy for over {_BUSY_TIMEOUT_MS} ms ({exc})") from exc
    except apsw.Error as exc:
        raise CorruptLog(f"{path}: {exc}") from exc
