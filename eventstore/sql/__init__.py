"""Read-only SQL over the event log: every segment of every topic, plus topics, partitions,
segments and consumer groups, as SQLite tables (see ``engine``)."""

from eventstore.sql.engine import TABLES, QueryResult, SqlEngine
from eventstore.sql.output import FORMATS, render_bytes, render_value, write_rows
from eventstore.sql.shell import run_shell

__all__ = [
    "FORMATS",
    "TABLES",
    "QueryResult",
    "SqlEngine",
    "render_bytes",
    "render_value",
    "run_shell",
    "write_rows",
]
