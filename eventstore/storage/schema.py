"""The SQL that defines segment and catalog files, loaded from the installed `schema` package."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import apsw

from eventstore.errors import CorruptLog, UnsupportedSchemaVersion


@cache
def schema_sql(name: str) -> str:
    """The text of ``schema/<name>.sql``."""
    return resources.files("schema").joinpath(f"{name}.sql").read_text(encoding="utf-8")


@cache
def schema_version(name: str) -> int:
    """The PRAGMA user_version that ``schema/<name>.sql`` sets."""
    match = re.search(r"PRAGMA user_version = (\d+);", schema_sql(name))
    if match is None:
        raise RuntimeError(f"schema/{name}.sql does not set PRAGMA user_version")
    return int(match.group(1))


def create_schema(conn: apsw.Connection, name: str) -> None:
    """Create the tables of ``schema/<name>.sql`` in an empty database, in one transaction."""
    with conn:
        conn.execute(schema_sql(name))


def check_schema_version(conn: apsw.Connection, name: str, path: str) -> None:
    """Raise UnsupportedSchemaVersion unless the file at ``path`` has this build's version."""
    (found,) = conn.execute("PRAGMA user_version").fetchone()
    expected = schema_version(name)
    if found == 0:
        # what an empty (truncated) file reads as, or a database eventstore did not write
        raise CorruptLog(f"{path}: not a {name} file: it is empty or has no schema version")
    if found != expected:
        raise UnsupportedSchemaVersion(
            f"{path}: {name} schema version {found}, this eventstore reads version {expected}"
        )
