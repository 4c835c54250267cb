"""``SqlEngine``: read-only SQL over a data directory, on an in-memory apsw connection.

The connection holds five virtual tables, ``records``, ``topics``, ``partitions``,
``segments`` and ``consumer_groups``, that read the data directory's files through their
own read-only connections, so SQLite's functions (``json_extract(value, '$.user')``,
``unhex`` on header values, window functions, ...) work on them. It runs beside a server
writing the same directory, or with none. Not thread-safe: one engine per thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import apsw

from eventstore.errors import InvalidRequest, KafkaError, KafkaStorageError
from eventstore.sql import records_table
from eventstore.sql.coerce import Affinity, Row, SqlValue
from eventstore.sql.guard import READ_ONLY, check_statement, checked_cursor, make_read_only
from eventstore.sql.info_tables import INFO_TABLES, InfoTable
from eventstore.sql.reader import DataReader
from eventstore.sql.snapshot import SnapshotScope
from eventstore.sql.timeout import QueryTimeout

Params = Sequence[SqlValue] | Mapping[str, SqlValue]

TABLES = ("records",) + tuple(spec.name for spec in INFO_TABLES)
_VALUE_TYPES = (type(None), int, float, str, bytes)


class _Module:
    """A virtual-table module with one table object, created once by the engine."""

    def __init__(self, schema: str, table: object) -> None:
        self._schema = schema
        self._table = table

    def Create(self, _conn: apsw.Connection, _module: str, _db: str, _name: str, *_args: Any):
        return self._schema, self._table

    Connect = Create


@contextlib.contextmanager
def _sql_errors(timeout: QueryTimeout) -> Iterator[None]:
    """SQLite's complaints about a statement (syntax, unknown table, ...) as InvalidRequest,
    and its stop at the end of ``timeout`` as KafkaTimeoutError."""
    try:
        yield
    except KafkaError:
        raise
    except apsw.InterruptError as exc:
        timeout.raise_if_expired(exc)
        raise InvalidRequest("the query was interrupted") from exc
    except apsw.Error as exc:
        if "may not be modified" in str(exc):  # SQLite's own refusal to write a virtual table
            raise InvalidRequest(f"{exc}: writing is not allowed: {READ_ONLY}") from exc
        raise InvalidRequest(f"SQL error: {exc}") from exc


def _check_params(params: Params) -> None:
    values = params.values() if isinstance(params, Mapping) else params
    for value in values:
        if not isinstance(value, _VALUE_TYPES):
            raise InvalidRequest(
                f"query parameter {value!r} is a {type(value).__name__}: use None, int, float,"
                " str or bytes"
            )


class QueryResult:
    """The rows of one statement, read as they are iterated; ``columns`` names them.

    ``timeout`` runs until ``close``: reading the rows counts against it.
    """

    def __init__(self, columns: list[str], cursor: apsw.Cursor, timeout: QueryTimeout) -> None:
        self.columns = columns
        self._cursor = cursor
        self._timeout = timeout
        self._rows = self._read()

    def _read(self) -> Iterator[Row]:
        with _sql_errors(self._timeout):
            yield from self._cursor

    def __iter__(self) -> Iterator[Row]:
        return self._rows

    def close(self) -> None:
        """Stop reading: releases the segment files the statement holds open."""
        self._rows.close()
        self._cursor.close()
        self._timeout.close()

    def __enter__(self) -> QueryResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqlEngine:
    """Read-only SQL over the data directory ``data_dir``."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = os.path.abspath(data_dir)
        if not os.path.isdir(self.data_dir):
            raise KafkaStorageError(f"{self.data_dir}: data directory does not exist")
        self._reader = DataReader(self.data_dir)
        self._affinity = Affinity()
        scope = SnapshotScope(self._reader)
        self.connection = apsw.Connection(":memory:")
        records = records_table.RecordsTable(scope, self._affinity)
        tables = [(records_table.SCHEMA, "records", records)]
        tables += [(spec.schema, spec.name, InfoTable(spec, scope)) for spec in INFO_TABLES]
        for schema, name, table in tables:
            self.connection.create_module(
                f"eventstore_{name}", _Module(schema, table),
                use_bestindex_object=True, read_only=True,
            )
            self.connection.execute(f"CREATE VIRTUAL TABLE {name} USING eventstore_{name}")
        make_read_only(self.connection)
        self.connection.cursor_factory = checked_cursor

    @property
    def segment_opens(self) -> int:
        """How many times a segment file was opened (metadata or records) since creation."""
        return self._reader.segment_opens

    def warnings(self) -> list[str]:
        """What the statements since the last call met and left out, one line each: offsets
        no segment file holds (a gap in a chain, missing newest segments), unreadable
        segment metadata. Empty when every record they asked for was there."""
        return self._reader.take_warnings()

    def stream(self, sql: str, params: Params = (), timeout: float | None = None) -> QueryResult:
        """Run one statement; its rows are read from the segments as they are iterated.

        Raises InvalidRequest for what SQL cannot run (syntax, unknown table or column, any
        attempt to write), the storage errors (CorruptLog naming the file, ...) of what it
        reads, and KafkaTimeoutError once it has run ``timeout`` seconds (running and
        reading its rows). Ctrl-C (KeyboardInterrupt) stops it too.
        """
        if not sql.strip():
            raise InvalidRequest("the query is empty")
        _check_params(params)
        limit = QueryTimeout(self.connection, timeout)
        columns: list[str] = []
        statements: list[str] = []

        def trace(cursor: apsw.Cursor, statement: str, bindings: object) -> bool:
            if statements:
                raise InvalidRequest("send one SQL statement at a time")
            check_statement(cursor, statement, bindings)
            statements.append(statement)
            columns.extend(name for name, _ in cursor.get_description())
            return True

        cursor = self.connection.cursor()
        cursor.exec_trace = trace
        try:
            with _sql_errors(limit):
                cursor.execute(sql, params)
        except BaseException:
            cursor.close()
            limit.close()
            raise
        return QueryResult(columns, cursor, limit)

    def query(
        self, sql: str, params: Params = (), timeout: float | None = None
    ) -> tuple[list[str], list[Row]]:
        """Run one statement and return (column names, all rows); ``timeout`` as ``stream``."""
        with self.stream(sql, params, timeout) as result:
            return result.columns, list(result)

    def close(self) -> None:
        self.connection.close()
        self._affinity.close()

    def __enter__(self) -> SqlEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
