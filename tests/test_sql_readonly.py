"""Read-only without exception: every write is refused with a typed error, and every file of
the data directory is unchanged byte for byte afterwards (and no file is added)."""

from __future__ import annotations

import io
import os
import re

import pytest
from test_sql_data import append_batches, commit, create_topic, file_hashes

from eventstore.errors import InvalidRequest
from eventstore.sql import SqlEngine, run_shell


@pytest.fixture
def store(data_dir: str) -> str:
    config = create_topic(data_dir, "t", 2, {"segment.bytes": 200})
    for partition in range(2):
        batches = [[(i, b"k", b'{"n": %d}' % i, None)] * 3 for i in range(8)]
        append_batches(data_dir, "t", partition, batches, config)
    commit(data_dir, "g", "t", 0, 2)
    return data_dir


def refused_statements(data_dir: str) -> list[str]:
    segment = os.path.join(data_dir, "t-0", "00000000000000000000.db")
    return [
        "INSERT INTO records VALUES ('t', 0, 999, 1, NULL, NULL, NULL)",
        "UPDATE records SET value = x'00'",
        "DELETE FROM records",
        "DELETE FROM consumer_groups",
        "DROP TABLE records",
        "DROP TABLE IF EXISTS absent",
        "CREATE TABLE copy AS SELECT * FROM records",
        "CREATE TEMP TABLE scratch (x)",
        "CREATE VIEW v AS SELECT 1",
        "CREATE VIRTUAL TABLE more USING eventstore_records",
        "ALTER TABLE records RENAME TO r",
        f"ATTACH '{segment}' AS segment",
        f"ATTACH '{os.path.join(data_dir, 'new.db')}' AS fresh",
        "DETACH main",
        f"VACUUM INTO '{os.path.join(data_dir, 'copy.db')}'",
        "VACUUM",
        "ANALYZE",
        "REINDEX",
        "PRAGMA user_version = 5",
        "PRAGMA journal_mode = delete",
        "PRAGMA query_only = 0",
        "PRAGMA writable_schema = 1",
        "PRAGMA wal_checkpoint",
        "SELECT load_extension('libnothing')",
    ]


def test_writes_are_refused_and_no_file_changes(store: str) -> None:
    before = file_hashes(store)
    with SqlEngine(store) as engine:
        for table in ("records", "topics", "partitions", "segments", "consumer_groups"):
            engine.query(f"SELECT * FROM {table}")  # reading creates nothing either
        for sql in refused_statements(store):
            with pytest.raises(InvalidRequest, match="not allowed") as raised:
                engine.query(sql)
            assert "\n" not in str(raised.value)
        assert engine.query("SELECT count(*) FROM records")[1] == [(48,)]
        assert engine.query("PRAGMA table_info(records)")[1][0][1] == "topic"
    assert file_hashes(store) == before


def test_the_shell_refuses_writes_and_file_commands(store: str) -> None:
    before = file_hashes(store)
    script = "\n".join([
        "SELECT count(*) FROM records;",
        "INSERT INTO records VALUES ('t', 0, 999, 1, NULL, NULL, NULL);",
        f"VACUUM INTO '{os.path.join(store, 'copy.db')}';",
        f".open {os.path.join(store, 't-0', '00000000000000000000.db')}",
        f".backup main {os.path.join(store, 'catalog.db')}",
        f".output {os.path.join(store, 'out.txt')}",
        ".shell touch nothing",
        ".py print('x')",
        ".dbconfig defensive 0",
        "REINDEX;",
        "SELECT 'still here';",
    ]) + "\n"
    stdout, stderr = io.StringIO(), io.StringIO()
    run_shell(store, stdin=io.StringIO(script), stdout=stdout, stderr=stderr)
    assert "48" in stdout.getvalue() and "still here" in stdout.getvalue()
    errors = stderr.getvalue()
    assert "INSERT into records is not allowed" in errors
    assert re.search("VACUUM (is|are) not allowed", errors)
    assert "REINDEX is not allowed" in errors
    for command in ("open", "backup", "shell", "py", "dbconfig"):
        assert f".{command} is not available" in errors
    assert "cannot write inside the data directory" in errors
    assert file_hashes(store) == before


def test_an_empty_data_directory_stays_empty(data_dir: str) -> None:
    with SqlEngine(data_dir) as engine:
        for table in ("records", "topics", "partitions", "segments", "consumer_groups"):
            assert engine.query(f"SELECT * FROM {table}")[1] == []
    assert os.listdir(data_dir) == []
