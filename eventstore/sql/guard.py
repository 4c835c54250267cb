"""Keeping the query connection read-only: nothing sent through it can change a file.

Layers, each enough on its own for what it covers:

- the tables read segments and the catalog through their own read-only connections
  (``files.open_database``), so no statement can reach a data file directly;
- an authorizer allows reading (SELECT, reading columns, functions, recursive CTEs,
  transactions on the in-memory database) and read-only PRAGMAs, and refuses everything
  else at prepare time with InvalidRequest: INSERT, UPDATE, DELETE, CREATE, DROP, ALTER,
  ATTACH/DETACH (VACUUM, VACUUM INTO attach their target too), ANALYZE, REINDEX, writing
  PRAGMAs and ``load_extension()``;
- ``PRAGMA query_only``, no attached databases allowed, extension loading switched off;
- ``check_statement``, the exec tracer of every cursor of the connection (``checked_cursor``
  is its cursor factory, so apsw's shell gets it too), refuses REINDEX, which SQLite never shows
  the authorizer when there is nothing to rebuild, and, as a last line, any statement SQLite
  itself does not call read-only.
"""

from __future__ import annotations

import re

import apsw

from eventstore.errors import InvalidRequest

READ_ONLY = "SQL over the event log is read-only"

_ALLOWED = {
    apsw.SQLITE_SELECT,
    apsw.SQLITE_READ,
    apsw.SQLITE_RECURSIVE,
    apsw.SQLITE_TRANSACTION,
    apsw.SQLITE_SAVEPOINT,
}

_ROW_WRITES = {apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE}
# Where SQLite records a schema change: CREATE, DROP and ANALYZE write here first.
_SCHEMA_TABLES = {"sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_temp_schema"}

# Functions that load code or write files (the last two exist only in SQLite's own shell).
_REFUSED_FUNCTIONS = {"load_extension", "fts3_tokenizer", "writefile", "edit"}

# PRAGMAs that only report, asked without a value ...
_READ_PRAGMAS = {
    "application_id", "auto_vacuum", "collation_list", "compile_options", "data_version",
    "database_list", "encoding", "foreign_keys", "freelist_count", "function_list",
    "integrity_check", "journal_mode", "max_page_count", "module_list", "page_count",
    "page_size", "pragma_list", "query_only", "quick_check", "schema_version", "table_list",
    "user_version",
}
# ... and those whose argument names what to report on.
_INSPECT_PRAGMAS = {
    "foreign_key_list", "index_info", "index_list", "index_xinfo", "integrity_check",
    "quick_check", "table_info", "table_list", "table_xinfo",
}


# Whitespace and comments before a statement's first keyword.
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]+")


def _action(code: int) -> str:
    name = apsw.mapping_authorizer_function.get(code, str(code))
    return name.removeprefix("SQLITE_").replace("_", " ")


def authorize(
    code: int, arg1: str | None, arg2: str | None, _db: str | None, _via: str | None
) -> int:
    """The query connection's authorizer: allow reading, raise InvalidRequest for the rest."""
    if code in _ALLOWED:
        return apsw.SQLITE_OK
    if code == apsw.SQLITE_FUNCTION:
        if (arg2 or "").lower() in _REFUSED_FUNCTIONS:
            raise InvalidRequest(f"{arg2}() is not allowed: {READ_ONLY}")
        return apsw.SQLITE_OK
    if code == apsw.SQLITE_PRAGMA:
        pragma = (arg1 or "").lower()
        if pragma in (_INSPECT_PRAGMAS if arg2 is not None else _READ_PRAGMAS):
            return apsw.SQLITE_OK
        shown = f"PRAGMA {arg1}" + (f" = {arg2}" if arg2 is not None else "")
        raise InvalidRequest(f"{shown} is not allowed: {READ_ONLY}")
    if code == apsw.SQLITE_ATTACH:
        raise InvalidRequest(
            f"ATTACH and VACUUM are not allowed (they open or write a database file): {READ_ONLY}"
        )
    if code in _ROW_WRITES and arg1 in _SCHEMA_TABLES:
        raise InvalidRequest(
            f"changing the schema (CREATE, DROP, ALTER, ANALYZE) is not allowed: {READ_ONLY}"
        )
    if code in _ROW_WRITES:
        preposition = "into" if code == apsw.SQLITE_INSERT else "of"
        raise InvalidRequest(f"{_action(code)} {preposition} {arg1} is not allowed: {READ_ONLY}")
    raise InvalidRequest(f"{_action(code)} is not allowed: {READ_ONLY}")


def make_read_only(conn: apsw.Connection) -> None:
    """Lock down the query connection once its tables exist."""
    conn.execute("PRAGMA query_only = ON")
    conn.limit(apsw.SQLITE_LIMIT_ATTACHED, 0)
    conn.enable_load_extension(False)
    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0)
    conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
    conn.authorizer = authorize


def first_keyword(sql: str) -> str:
    """The first keyword of a statement, upper case ("" if there is none)."""
    word = _WORD.match(sql, _LEADING.match(sql).end())
    return word.group(0).upper() if word else ""


def check_statement(cursor: apsw.Cursor, sql: str, _bindings: object) -> bool:
    """Exec tracer: let a statement run only if it is a read (see the module doc)."""
    keyword = first_keyword(sql)
    if keyword == "REINDEX" or not cursor.is_readonly:
        raise InvalidRequest(f"{keyword or 'this statement'} is not allowed: {READ_ONLY}")
    return True


def checked_cursor(connection: apsw.Connection) -> apsw.Cursor:
    """The query connection's cursor factory: cursors that run ``check_statement`` first."""
    cursor = apsw.Cursor(connection)
    cursor.exec_trace = check_statement
    return cursor
