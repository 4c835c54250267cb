"""SQL over a compacted topic: ``records`` shows what the log holds now (gaps where a
cleaning removed records), ``segments`` counts the records each file holds and its gaps,
``partitions`` the cleaned and dirty bytes, the dirty ratio and the last cleaning time.
Real segment files, cleaned by the storage core's cleaning on the partition's folder."""

from __future__ import annotations

import os

import pytest
from support import T0, ManualClock
from test_sql_data import create_topic

from eventstore.sql import SqlEngine
from eventstore.storage.catalog import Catalog, partition_dir
from eventstore.storage.compaction import STATE_FILE, CleaningSettings, clean_segments
from eventstore.storage.log import PartitionLog

COMPACT = {"cleanup.policy": "compact"}


def clean(directory: str, now_ms: int) -> None:
    """One cleaning of a partition's sealed segments, as its owner runs it."""
    log = PartitionLog.open(directory)
    *sealed, active = log.segments()
    log.close()
    clean_segments(directory, sealed, active.base_offset, now_ms, CleaningSettings())


@pytest.fixture
def store(tmp_path) -> str:
    """Topic ``table`` (compacted): offsets 0..5 write a, b, a, b, a, c in two sealed
    segments, then a third (active) with ``a`` again; cleaned once at T0 + 10."""
    data_dir = str(tmp_path / "data")
    config = create_topic(data_dir, "table", 1, COMPACT)
    create_topic(data_dir, "plain", 1)
    clock = ManualClock()
    log = PartitionLog.open(partition_dir(data_dir, "table", 0), config, clock=clock,
                            create=True)
    for keys in ((b"a", b"b", b"a"), (b"b", b"a", b"c"), (b"a",)):
        for key in keys:
            log.append([(None, key, key + b"-%d" % log.log_end_offset, None)])
        if keys != (b"a",):
            log.roll()
    log.close()
    plain = PartitionLog.open(partition_dir(data_dir, "plain", 0), clock=clock, create=True)
    plain.append([(None, b"k", b"v", None)])
    plain.roll()
    plain.close()
    clean(partition_dir(data_dir, "table", 0), T0 + 10)
    return data_dir


def test_records_show_what_the_log_holds_now(store: str) -> None:
    with SqlEngine(store) as engine:
        _, rows = engine.query("SELECT offset, key, value FROM records WHERE topic = 'table'"
                               " ORDER BY offset")
        assert rows == [(3, b"b", b"b-3"), (4, b"a", b"a-4"), (5, b"c", b"c-5"),
                        (6, b"a", b"a-6")]
        # a point read inside a removed range finds nothing; offsets are never reused
        assert engine.query("SELECT count(*) FROM records WHERE topic = 'table'"
                            " AND offset BETWEEN 0 AND 2")[1] == [(0,)]
        _, [bounds] = engine.query("SELECT log_start_offset, log_end_offset FROM partitions"
                                   " WHERE topic = 'table'")
        assert bounds == (0, 7)  # a cleaning moves neither


def test_segments_count_held_records_and_gaps(store: str) -> None:
    with SqlEngine(store) as engine:
        _, rows = engine.query(
            "SELECT base_offset, last_offset, record_count, gaps, active FROM segments"
            " WHERE topic = 'table' ORDER BY base_offset")
        # the two small sealed segments were merged into one cleaned file
        assert rows == [(0, 5, 3, 3, 0), (6, 6, 1, 0, 1)]
        _, plain = engine.query("SELECT record_count, gaps FROM segments WHERE topic = 'plain'")
        assert plain == [(1, 0), (0, 0)]


def test_partitions_show_cleaned_and_dirty_bytes(store: str) -> None:
    directory = partition_dir(store, "table", 0)
    with SqlEngine(store) as engine:
        query = ("SELECT cleaned_bytes, dirty_bytes, dirty_ratio, last_cleaned_ms,"
                 " cleaner_runs, cleaner_bytes_removed FROM partitions WHERE topic = ?")
        _, [(cleaned, dirty, ratio, last, runs, removed)] = engine.query(query, ("table",))
        _, [(sealed_bytes,)] = engine.query(
            "SELECT sum(bytes) FROM segments WHERE topic = 'table' AND active = 0")
        assert (cleaned, dirty, ratio, last, runs) == (sealed_bytes, 0, 0.0, T0 + 10, 1)
        assert removed == 3 * 24  # three records of 4 bytes + 20 each
        # a topic without compact in cleanup.policy has no cleaning figures
        assert engine.query(query, ("plain",))[1] == [(None,) * 6]
        # new writes rolled into a sealed segment are dirty until the next cleaning
        log = PartitionLog.open(directory, clock=ManualClock(T0 + 20))
        log.append([(None, b"a", b"again", None)])
        log.roll()
        log.close()
        _, [(cleaned_now, dirty, ratio, *_)] = engine.query(query, ("table",))
        _, [(newest,)] = engine.query(
            "SELECT bytes FROM segments WHERE topic = 'table' AND base_offset = 6")
        assert (cleaned_now, dirty) == (cleaned, newest)
        assert ratio == pytest.approx(newest / (cleaned + newest))


def test_a_damaged_cleaner_state_is_a_problem_naming_the_file(store: str) -> None:
    path = os.path.join(partition_dir(store, "table", 0), STATE_FILE)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("{not json")
    with SqlEngine(store) as engine:
        _, [(problem, dirty)] = engine.query(
            "SELECT problem, dirty_bytes FROM partitions WHERE topic = 'table'")
        assert path in problem and dirty is None
        assert any(path in warning for warning in engine.warnings())


def test_a_cleaned_partition_keeps_its_figures_after_the_policy_changed(store: str) -> None:
    catalog = Catalog.open(store)
    try:
        catalog.set_topic_config("table", {"cleanup.policy": "delete"})
    finally:
        catalog.close()
    with SqlEngine(store) as engine:
        _, [(runs, last)] = engine.query("SELECT cleaner_runs, last_cleaned_ms FROM partitions"
                                         " WHERE topic = 'table'")
        assert (runs, last) == (1, T0 + 10)
