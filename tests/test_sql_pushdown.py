"""Pushdown: a query opens only the segment files that can hold its rows (counted by the engine).

The partition has 100 segments of 10 records, offsets 10*i .. 10*i+9 in segment i, and
timestamps 10_000 + 100*i + j, so both offsets and timestamps locate a segment. Every query
also opens the active (newest) segment once, for the high watermark.
"""

from __future__ import annotations

import pytest
from test_sql_data import append_batches, create_topic

from eventstore.sql import SqlEngine

SEGMENTS = 100
PER_SEGMENT = 10


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    data_dir = str(tmp_path_factory.mktemp("pushdown") / "data")
    # one batch of 10 records is ~420 bytes: the next batch never fits in the same segment
    config = create_topic(data_dir, "big", 2, {"segment.bytes": 500})
    batches = [
        [(10_000 + 100 * i + j, b"key", b"v" * 20, None) for j in range(PER_SEGMENT)]
        for i in range(SEGMENTS)
    ]
    append_batches(data_dir, "big", 0, batches, config)
    append_batches(data_dir, "big", 1, batches[:3], config)
    return data_dir


@pytest.fixture
def engine(store: str) -> SqlEngine:
    with SqlEngine(store) as engine:
        yield engine


def opens(engine: SqlEngine, sql: str, params: tuple = ()) -> tuple[int, list]:
    before = engine.segment_opens
    _, rows = engine.query(sql, params)
    return engine.segment_opens - before, rows


def test_the_partition_has_100_segments(engine: SqlEngine) -> None:
    _, [(count,)] = engine.query(
        "SELECT count(*) FROM segments WHERE topic = 'big' AND partition = 0"
    )
    assert count == SEGMENTS


def test_an_offset_range_opens_at_most_two_segments(engine: SqlEngine) -> None:
    sql = (
        "SELECT offset FROM records WHERE topic = ? AND partition = ? AND offset >= ?"
        " AND offset < ?"
    )
    for low, high in [(503, 508), (0, 10), (990, 1000), (10 * 57, 10 * 58)]:
        count, rows = opens(engine, sql, ("big", 0, low, high))
        assert rows == [(o,) for o in range(low, high)]
        assert count <= 2, (low, high)
    count, rows = opens(engine, "SELECT * FROM records WHERE topic='big' AND partition=0"
                        " AND offset = 777")
    assert count == 2 and rows[0][2] == 777
    count, rows = opens(engine, "SELECT offset FROM records WHERE topic = 'big' AND partition = 0"
                        " AND offset IN (5, 6, 955)")
    assert count == 3 and rows == [(5,), (6,), (955,)]  # 2 segments + the active one


def test_last_records_first_opens_only_the_newest_segment(engine: SqlEngine) -> None:
    count, rows = opens(
        engine,
        "SELECT offset FROM records WHERE topic = 'big' AND partition = 0"
        " ORDER BY offset DESC LIMIT 3",
    )
    assert rows == [(999,), (998,), (997,)]
    assert count == 2  # metadata and records of the active segment


def test_a_timestamp_range_opens_only_overlapping_segments(engine: SqlEngine) -> None:
    sql = (
        "SELECT offset FROM records WHERE topic = 'big' AND partition = 0"
        " AND timestamp BETWEEN ? AND ?"
    )
    low, high = 10_000 + 100 * 20 + 5, 10_000 + 100 * 24 + 2  # segments 20..24
    cold, rows = opens(engine, sql, (low, high))
    assert [o for (o,) in rows] == list(range(205, 243))
    assert cold <= SEGMENTS + 5  # the first time, each segment's metadata is read once
    warm, rows_again = opens(engine, sql, (low, high))
    assert rows_again == rows
    assert warm == 5 + 1  # the five overlapping segments and the active one's metadata


def test_a_partition_constraint_skips_other_partitions(engine: SqlEngine) -> None:
    count, rows = opens(engine, "SELECT count(*) FROM records WHERE partition = 1")
    assert rows == [(30,)]
    assert count == 1 + 3  # active metadata, and its three segments


def test_an_empty_range_opens_only_the_metadata(engine: SqlEngine) -> None:
    for where in ("offset > 5000", "offset < 0", "offset > 10 AND offset < 5", "topic = 'nope'"):
        count, rows = opens(engine, f"SELECT * FROM records WHERE partition = 0 AND {where}")
        assert rows == []
        assert count <= 1, where
