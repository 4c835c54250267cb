"""SQL results equal what a brute-force read of the log gives, for random queries.

The reference is an ordinary SQLite table with the same declared column types, loaded from
``PartitionLog.read`` of every partition: the same SQL against both must give the same
rows, whatever the WHERE clause pushes down (odd constraint values included: '7', 7.5,
NULL, blobs, unknown topics), the ORDER BY, the LIMIT or the aggregates.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import apsw
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_sql_data import append_batches, commit, create_topic, read_log

from eventstore.config import TopicConfig
from eventstore.errors import InvalidRequest
from eventstore.sql import SqlEngine
from eventstore.storage.records import encode_headers


def _events(rng: random.Random, partition: int, first: int, count: int) -> list[tuple]:
    rows = []
    for n in range(first, first + count):
        key = None if rng.random() < 0.2 else b"k%d" % rng.randrange(5)
        value = None if rng.random() < 0.1 else json.dumps(
            {"user": f"u{rng.randrange(4)}", "n": n, "p": partition}
        ).encode()
        trace = bytes([rng.randrange(256)])
        headers = encode_headers((("trace", trace),)) if rng.random() < 0.3 else None
        rows.append((1000 + rng.randrange(200), key, value, headers))  # not monotonic
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """events: 3 partitions of many small segments (partition 2 trimmed by retention);
    other: one partition; empty: one partition without a folder, one without records."""
    data_dir = str(tmp_path_factory.mktemp("sql") / "data")
    rng = random.Random(7)
    config = create_topic(data_dir, "events", 3, {"segment.bytes": 300})
    for partition in range(3):
        batches, offset = [], 0
        for _ in range(14):
            size = rng.randrange(1, 5)
            batches.append(_events(rng, partition, offset, size))
            offset += size
        trimmed = partition == 2
        append_batches(
            data_dir, "events", partition, batches,
            TopicConfig(segment_bytes=300, retention_bytes=900) if trimmed else config,
            retention=trimmed,
        )
    other = create_topic(data_dir, "other", 1)
    append_batches(data_dir, "other", 0, [_events(rng, 0, 0, 20)], other)
    empty = create_topic(data_dir, "empty", 2)
    append_batches(data_dir, "empty", 1, [], empty)
    commit(data_dir, "g", "events", 0, 3)
    return data_dir


@pytest.fixture(scope="module")
def engine(store: str) -> SqlEngine:
    with SqlEngine(store) as engine:
        yield engine


@pytest.fixture(scope="module")
def reference(store: str) -> apsw.Connection:
    conn = apsw.Connection(":memory:")
    conn.execute(
        "CREATE TABLE records (topic TEXT, partition INTEGER, offset INTEGER,"
        " timestamp INTEGER, key BLOB, value BLOB, headers TEXT, txn_state TEXT)"
    )  # no transactions here: txn_state is NULL (see test_txn_surfaces)
    conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, NULL)", read_log(store))
    return conn


def test_the_store_has_what_the_tests_need(engine: SqlEngine) -> None:
    _, rows = engine.query(
        "SELECT topic, partition, log_start_offset, segment_count FROM partitions"
        " WHERE topic = 'events'"
    )
    assert all(count > 3 for *_, count in rows)
    assert rows[2][2] > 0  # retention moved the log-start-offset of partition 2


# -- random queries ------------------------------------------------------------------------

ODD = st.sampled_from([None, "abc", " 7", "7.0", "1e1", b"7", 7.5, -0.5, float("inf")])
OFFSETS = st.one_of(st.integers(-3, 60), st.integers(-3, 60).map(str), ODD)
TIMESTAMPS = st.one_of(st.integers(990, 1210), ODD)
TOPICS = st.sampled_from(["events", "other", "empty", "nope", 5, None, b"events"])
PARTITIONS = st.one_of(st.integers(-1, 3), ODD)
OPS = st.sampled_from(["=", "<", "<=", ">", ">="])


@st.composite
def conditions(draw: st.DrawFn) -> tuple[str, list]:
    kind = draw(st.sampled_from(
        ["topic", "topic_in", "partition", "partition_in", "offset", "offset_between",
         "offset_in", "timestamp", "timestamp_between", "key", "or"]
    ))
    if kind == "topic":
        return "topic = ?", [draw(TOPICS)]
    if kind == "topic_in":
        return "topic IN (?, ?)", [draw(TOPICS), draw(TOPICS)]
    if kind == "partition":
        return "partition = ?", [draw(PARTITIONS)]
    if kind == "partition_in":
        return "partition IN (?, ?)", [draw(PARTITIONS), draw(PARTITIONS)]
    if kind == "offset":
        return f"offset {draw(OPS)} ?", [draw(OFFSETS)]
    if kind == "offset_between":
        return "offset BETWEEN ? AND ?", [draw(OFFSETS), draw(OFFSETS)]
    if kind == "offset_in":
        return "offset IN (?, ?, ?)", [draw(OFFSETS), draw(OFFSETS), draw(OFFSETS)]
    if kind == "timestamp":
        return f"timestamp {draw(OPS)} ?", [draw(TIMESTAMPS)]
    if kind == "timestamp_between":
        return "timestamp BETWEEN ? AND ?", [draw(TIMESTAMPS), draw(TIMESTAMPS)]
    if kind == "key":
        return "key = ?", [draw(st.sampled_from([b"k1", b"k3", None]))]
    return "(partition = ? OR offset < ?)", [draw(PARTITIONS), draw(OFFSETS)]


SELECTS = [
    ("*", ""),
    ("topic, partition, offset", ""),
    ("offset, json_extract(value, '$.user') AS user, unhex(json_extract(headers, '$[0][1]'))", ""),
    ("count(*), sum(length(value)), min(timestamp), max(offset)", "aggregate"),
    ("topic, partition, count(*), max(offset), min(timestamp)", "GROUP BY topic, partition"),
    ("key, count(*)", "GROUP BY key"),
]
# Orders that fully determine the result (so LIMIT is deterministic), and whether they do.
ORDERS = [
    ("", False),
    ("ORDER BY topic, partition, offset", True),
    ("ORDER BY topic DESC, partition DESC, offset DESC", True),
    ("ORDER BY offset, topic, partition", True),
    ("ORDER BY timestamp DESC, topic, partition, offset", True),
    ("ORDER BY partition, offset DESC, topic", True),
    ("ORDER BY topic", False),
]


@st.composite
def queries(draw: st.DrawFn) -> tuple[str, list, bool]:
    columns, grouping = draw(st.sampled_from(SELECTS))
    terms = draw(st.lists(conditions(), max_size=4))
    sql = f"SELECT {columns} FROM records"
    params: list = []
    if terms:
        sql += " WHERE " + " AND ".join(t for t, _ in terms)
        params = [p for _, ps in terms for p in ps]
    ordered = False
    if grouping.startswith("GROUP"):
        sql += " " + grouping
    elif not grouping:
        order, ordered = draw(st.sampled_from(ORDERS))
        sql += " " + order
        if ordered and draw(st.booleans()):
            sql += f" LIMIT {draw(st.integers(0, 30))}"
    return sql, params, ordered


def _canonical(rows: list) -> list:
    return sorted(rows, key=repr)


@given(queries())
def test_random_queries_match_a_brute_force_read(
    engine: SqlEngine, reference: apsw.Connection, query: tuple[str, list, bool]
) -> None:
    sql, params, ordered = query
    _, got = engine.query(sql, params)
    expected = reference.execute(sql, params).fetchall()
    if ordered:
        assert got == expected, sql
    else:
        assert _canonical(got) == _canonical(expected), sql


# -- the table's own order and values --------------------------------------------------------


def test_rows_come_in_topic_partition_offset_order(engine: SqlEngine, store: str) -> None:
    _, rows = engine.query("SELECT topic, partition, offset FROM records")
    assert rows == sorted(rows)
    assert len(rows) == len(read_log(store))


def test_order_by_the_natural_order_needs_no_sort(engine: SqlEngine) -> None:
    for order in ("topic, partition, offset", "topic DESC, partition DESC, offset DESC"):
        _, plan = engine.query(f"EXPLAIN QUERY PLAN SELECT * FROM records ORDER BY {order}")
        assert not any("TEMP B-TREE" in str(row) for row in plan), order
    _, plan = engine.query(
        "EXPLAIN QUERY PLAN SELECT * FROM records WHERE topic = 'events' AND partition = 1"
        " ORDER BY offset DESC"
    )
    assert not any("TEMP B-TREE" in str(row) for row in plan)
    _, plan = engine.query("EXPLAIN QUERY PLAN SELECT * FROM records ORDER BY timestamp")
    assert any("TEMP B-TREE" in str(row) for row in plan)


def test_json_extract_reads_json_values(engine: SqlEngine, reference: apsw.Connection) -> None:
    sql = (
        "SELECT json_extract(value, '$.user') AS user, count(*) FROM records"
        " WHERE topic = 'events' AND value IS NOT NULL GROUP BY user ORDER BY user"
    )
    columns, rows = engine.query(sql)
    assert columns == ["user", "count(*)"]
    assert rows == reference.execute(sql).fetchall()
    assert [user for user, _ in rows] == ["u0", "u1", "u2", "u3"]


def test_header_values_decode_with_unhex(engine: SqlEngine) -> None:
    _, rows = engine.query(
        "SELECT unhex(h.value ->> 1) FROM records, json_each(records.headers) AS h"
        " WHERE h.value ->> 0 = 'trace' LIMIT 1"
    )
    assert len(rows) == 1 and isinstance(rows[0][0], bytes) and len(rows[0][0]) == 1


def test_consumer_group_lag_is_log_end_minus_committed(engine: SqlEngine) -> None:
    _, rows = engine.query(
        "SELECT g.group_id, g.committed_offset, g.log_end_offset, g.lag, p.log_end_offset"
        " FROM consumer_groups AS g JOIN partitions AS p USING (topic, partition)"
    )
    [(group, committed, end, lag, partition_end)] = rows
    assert (group, committed) == ("g", 3)
    assert end == partition_end and lag == end - committed


def test_info_tables_describe_the_chain(engine: SqlEngine, store: str) -> None:
    _, topics = engine.query("SELECT topic, partitions, config FROM topics")
    assert topics == [
        ("empty", 2, "{}"), ("events", 3, '{"segment.bytes": 300}'), ("other", 1, "{}"),
    ]
    _, parts = engine.query("SELECT * FROM partitions WHERE topic = 'empty'")
    nothing_cleaned = (None,) * 6  # not a compacted topic
    assert parts == [("empty", 0, 0, 0, 0, 0, None, *nothing_cleaned),
                     ("empty", 1, 0, 0, 1, 0, None, *nothing_cleaned)]
    _, segments = engine.query(
        "SELECT base_offset, last_offset, record_count, active FROM segments"
        " WHERE topic = 'events' AND partition = 0 ORDER BY base_offset"
    )
    for older, newer in zip(segments, segments[1:], strict=False):
        assert older[1] + 1 == newer[0]  # contiguous chain
        assert older[2] == older[1] - older[0] + 1
    assert [s[3] for s in segments] == [0] * (len(segments) - 1) + [1]
    _, [(count, total)] = engine.query(
        "SELECT count(*), sum(record_count) FROM segments WHERE topic = 'events'"
    )
    _, [(records,)] = engine.query("SELECT count(*) FROM records WHERE topic = 'events'")
    assert total == records and count > 15


def test_a_bad_query_is_a_clear_typed_error(engine: SqlEngine) -> None:
    for sql, words in [
        ("SELEC * FROM records", "syntax error"),
        ("SELECT * FROM nope", "no such table: nope"),
        ("SELECT nope FROM records", "no such column: nope"),
        ("", "empty"),
        ("SELECT 1; SELECT 2", "one SQL statement"),
    ]:
        with pytest.raises(InvalidRequest, match=words):
            engine.query(sql)
    with pytest.raises(InvalidRequest, match="parameter"):
        engine.query("SELECT ?", [object()])
    with pytest.raises(InvalidRequest, match="SQL error"):
        engine.query("SELECT ?, ?", [1])


def test_stream_reads_rows_as_they_are_iterated(engine: SqlEngine) -> None:
    opens = engine.segment_opens
    with engine.stream("SELECT offset FROM records WHERE topic = 'events'") as result:
        assert result.columns == ["offset"]
        first = [next(iter(result)) for _ in range(2)]
    assert first == [(0,), (1,)]
    assert engine.segment_opens - opens <= 3  # metadata of partition 0, first segment or two


def test_a_missing_data_directory_is_a_storage_error(tmp_path: Path) -> None:
    from eventstore.errors import KafkaStorageError

    with pytest.raises(KafkaStorageError, match="does not exist"):
        SqlEngine(str(tmp_path / "nothing"))
