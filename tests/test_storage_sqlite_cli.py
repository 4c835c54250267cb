"""A sealed segment is a plain SQLite file: the ``sqlite3`` command line tool reads it as is."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from eventstore.config import TopicConfig
from eventstore.storage.log import PartitionLog
from eventstore.storage.records import AppendRow

SQLITE3 = "/usr/bin/sqlite3"

pytestmark = pytest.mark.skipif(
    not os.path.exists(SQLITE3), reason=f"the sqlite3 command line tool is not at {SQLITE3}"
)

ROWS: list[AppendRow] = [
    (1_700_000_000_000, b"key-1", b"value-1", None),
    (1_700_000_000_001, None, b"\x00\xff binary", '[["trace","0a0b"]]'),
    (1_700_000_000_002, b"\x00", None, None),
    (1_699_999_999_000, b"", b"", '[["a",null],["a","62"]]'),
]


def sqlite3_cli(path: str, sql: str) -> str:
    """Run ``sqlite3 -readonly`` on ``path``; its standard output."""
    done = subprocess.run(
        [SQLITE3, "-readonly", path, sql], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.fixture
def sealed_log(data_dir: str) -> Iterator[PartitionLog]:
    """A log whose first segment holds ROWS and is sealed; the log stays open."""
    log = PartitionLog.open(
        os.path.join(data_dir, "topic-0"), TopicConfig(), clock=lambda: 1, create=True
    )
    log.append(ROWS[:2])
    assert len(log.read(0, 10)) == 2  # the log's own reader now holds the file open
    log.append(ROWS[2:])
    log.roll()
    log.append([(None, b"in the active segment", b"x", None)])
    yield log
    log.close()


def test_sqlite3_cli_reads_the_same_records(sealed_log: PartitionLog) -> None:
    path = sealed_log.segments()[0].path
    out = sqlite3_cli(
        path,
        "SELECT json_group_array(json_array(offset, timestamp, hex(key), hex(value),"
        " key IS NULL, value IS NULL, headers)) FROM (SELECT * FROM records ORDER BY offset)",
    )
    expected = [
        [offset, ts, (key or b"").hex().upper(), (value or b"").hex().upper(),
         int(key is None), int(value is None), headers]
        for offset, (ts, key, value, headers) in enumerate(ROWS)
    ]
    assert json.loads(out) == expected
    assert [list(row[:4]) for row in sealed_log.read(0, 4)] == [
        [offset, ts, key, value] for offset, (ts, key, value, _) in enumerate(ROWS)
    ]


def test_a_sealed_segment_is_one_self_contained_rollback_journal_file(
    sealed_log: PartitionLog,
) -> None:
    path = sealed_log.segments()[0].path
    for suffix in ("-wal", "-shm", "-journal"):
        assert not os.path.exists(path + suffix), f"{path}{suffix} is left beside the segment"
    with open(path, "rb") as fh:
        header = fh.read(20)
    assert header[:16] == b"SQLite format 3\x00"
    assert (header[18], header[19]) == (1, 1), "write/read versions 1: rollback journal"
    before = digest(path)
    assert sqlite3_cli(path, "PRAGMA journal_mode").strip() == "delete"
    assert sqlite3_cli(path, "PRAGMA integrity_check").strip() == "ok"
    assert sqlite3_cli(path, "SELECT base_offset, next_offset FROM segment").strip() == "0|4"
    assert digest(path) == before, "reading a sealed segment must not change it"
    assert sorted(os.listdir(os.path.dirname(path))) == [
        "00000000000000000000.db",
        "00000000000000000004.db",
        "00000000000000000004.db-shm",
        "00000000000000000004.db-wal",
        "anchor.json",
    ], "only the active segment has WAL files (beside them: the chain's anchor)"
