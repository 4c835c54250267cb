"""Transactions as the offline surfaces show them (issue 19), on real files: the
``txn_state`` column of SQL's ``records``, ``eventstore consume`` on a data directory
(markers never printed, aborted and open transactions left out under read_committed),
and ``eventstore verify`` checking the markers against their records."""

from __future__ import annotations

import json
import os
import subprocess

import apsw
import pytest
from support import ManualClock, eventstore_command
from test_sql_data import create_topic

from eventstore.sql import SqlEngine
from eventstore.storage.catalog import partition_dir
from eventstore.storage.log import PartitionLog
from eventstore.storage.records import ProducerBatchInfo
from eventstore.storage.transaction_index import ABORT, COMMIT
from eventstore.storage.verify import verify


def _rows(*values: bytes) -> list[tuple]:
    return [(None, None, v, None) for v in values]


def build(data_dir: str, segment_bytes: int = 1 << 20) -> PartitionLog:
    """Topic t, one partition: plain 0, txn of 7 (1-2) committed by 3, txn of 8 (4) and
    plain 5, txn 8 aborted by 6, plain 7, txn of 9 (8) left open. Returns the open log."""
    config = create_topic(data_dir, "t", 1, {"segment.bytes": segment_bytes})
    log = PartitionLog.open(partition_dir(data_dir, "t", 0), config, clock=ManualClock(),
                            create=True)
    log.append(_rows(b"plain0"))
    log.append(_rows(b"c1", b"c2"), ProducerBatchInfo(7, 0, 0), transactional=True)
    log.append_marker(7, 0, COMMIT)
    log.append(_rows(b"a4"), ProducerBatchInfo(8, 0, 0), transactional=True)
    log.append(_rows(b"plain5"))
    log.append_marker(8, 0, ABORT)
    log.append(_rows(b"plain7"))
    log.append(_rows(b"o8"), ProducerBatchInfo(9, 0, 0), transactional=True)
    return log


EXPECTED = [(0, None), (1, "committed"), (2, "committed"), (3, "control"), (4, "aborted"),
            (5, None), (6, "control"), (7, None), (8, "ongoing")]


@pytest.mark.parametrize("segment_bytes", [1 << 20, 60])
def test_records_says_each_records_transaction_state(tmp_path, segment_bytes):
    """One segment, or a roll every batch or two (outcomes found in later segments)."""
    data_dir = str(tmp_path)
    log = build(data_dir, segment_bytes)
    try:
        with SqlEngine(data_dir) as engine:
            _, rows = engine.query("SELECT offset, txn_state FROM records ORDER BY offset")
            assert rows == EXPECTED
            _, desc = engine.query("SELECT offset, txn_state FROM records"
                                   " ORDER BY offset DESC")
            assert desc == EXPECTED[::-1]
            _, data = engine.query("SELECT value FROM records WHERE txn_state IS NOT 'control'"
                                   " AND (txn_state IS NULL OR txn_state = 'committed')")
            assert [v for (v,) in data] == [b"plain0", b"c1", b"c2", b"plain5", b"plain7"]
            _, star = engine.query("SELECT * FROM records WHERE offset = 4")
            assert star[0][-1] == "aborted" and star[0][5] == b"a4"
            _, one = engine.query("SELECT txn_state FROM records WHERE offset = 2")
            assert one == [("committed",)]
            log.append_marker(9, 0, COMMIT)  # the open one commits: the next query sees it
            _, after = engine.query("SELECT txn_state FROM records WHERE offset >= 8")
            assert after == [("committed",), ("control",)]
    finally:
        log.close()
    if segment_bytes < 1000:
        assert len(os.listdir(partition_dir(data_dir, "t", 0))) > 3


def test_records_of_a_partition_without_transactions_have_no_state(tmp_path):
    data_dir = str(tmp_path)
    config = create_topic(data_dir, "p", 1)
    log = PartitionLog.open(partition_dir(data_dir, "p", 0), config, clock=ManualClock(),
                            create=True)
    log.append(_rows(b"a", b"b"))
    log.close()
    with SqlEngine(data_dir) as engine:
        _, rows = engine.query("SELECT offset, txn_state, value FROM records")
    assert rows == [(0, None, b"a"), (1, None, b"b")]


def _consume(data_dir: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*eventstore_command(), "consume", "t", "--from-beginning", "--json",
         "--data-dir", data_dir, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("group", [False, True])
def test_consume_skips_markers_and_read_committed_skips_aborted(tmp_path, group):
    data_dir = str(tmp_path)
    build(data_dir).close()
    extra = ["--group", "g"] if group else []
    plain = _consume(data_dir, *extra)
    assert plain.returncode == 0, plain.stderr
    shown = [json.loads(line) for line in plain.stdout.splitlines()]
    assert [r["offset"] for r in shown] == [0, 1, 2, 4, 5, 7, 8]  # no markers (3, 6)
    committed = _consume(data_dir, "--isolation-level", "read_committed",
                         *(["--group", "h"] if group else []))
    assert committed.returncode == 0, committed.stderr
    values = [json.loads(line)["value"] for line in committed.stdout.splitlines()]
    # aborted a4 left out; the open transaction at 8 is the last stable offset: stop there
    assert values == ["plain0", "c1", "c2", "plain5", "plain7"]


def test_verify_accepts_markers_and_reports_one_that_disagrees(tmp_path):
    data_dir = str(tmp_path)
    build(data_dir).close()
    assert verify(data_dir).ok, verify(data_dir).problems
    segment = os.path.join(partition_dir(data_dir, "t", 0), "00000000000000000000.db")
    conn = apsw.Connection(segment)
    conn.execute("UPDATE txn_batches SET marker = 'COMMIT' WHERE base_offset = 6")
    conn.close()
    report = verify(data_dir)
    assert [p.message for p in report.problems] == [
        "marker at offset 6 says COMMIT in txn_batches, its control record says ABORT"]
    out = subprocess.run([*eventstore_command(), "verify", "--data-dir", data_dir],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "marker at offset 6 says COMMIT" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("change, problem", [
    ("producer_id = 70 WHERE base_offset = 1", "transactional batch 1..2 of producer 70 epoch"
     " 0: the batch there is 1..2 of producer 7 epoch 0"),
    ("last_offset = 5 WHERE base_offset = 4", "transactional batch 4..5 of producer 8 epoch"
     " 0: the batch there is 4..4 of producer 8 epoch 0"),
    ("base_offset = 5, last_offset = 5 WHERE base_offset = 6", "marker at offset 5 says"
     " ABORT in txn_batches, the record there is not a control record"),
])
def test_verify_reports_a_transactional_row_that_disagrees_with_its_batch(
        tmp_path, change, problem):
    data_dir = str(tmp_path)
    build(data_dir).close()
    segment = os.path.join(partition_dir(data_dir, "t", 0), "00000000000000000000.db")
    conn = apsw.Connection(segment)
    conn.execute(f"UPDATE txn_batches SET {change}")
    conn.close()
    assert [p.message for p in verify(data_dir).problems] == [problem]


def test_compaction_keeps_markers_and_transactional_rows_consistent(tmp_path):
    """A compacted topic cleans plain records around transactions: every transactional
    record and marker stays with its txn_batches row, so verify, the aborted index, the
    LSO and txn_state read the same before, after and on reopening (markers are kept for
    good, a simplification of Kafka, which drops them delete.retention.ms after the
    transaction's last data)."""
    data_dir = str(tmp_path)
    config = create_topic(data_dir, "c", 1, {"cleanup.policy": "compact",
                                             "segment.bytes": 150})
    directory = partition_dir(data_dir, "c", 0)
    log = PartitionLog.open(directory, config, clock=ManualClock(), create=True)
    sequence = 0
    for n in range(6):
        log.append([(None, b"k", b"plain%d" % n, None)])
        log.append([(None, b"k", b"txn%d" % n, None)], ProducerBatchInfo(7, 0, sequence),
                   transactional=True)
        sequence += 1
        log.append_marker(7, 0, ABORT if n % 2 else COMMIT)
    log.append([(None, b"k", b"open", None)], ProducerBatchInfo(7, 0, sequence),
               transactional=True)
    log.roll()
    before = log.view()
    with SqlEngine(data_dir) as engine:
        states = engine.query("SELECT offset, txn_state FROM records"
                              " WHERE txn_state IS NOT NULL")[1]
    result = log.clean()
    assert result.records_removed >= 5  # the plain records of k but its newest
    after = log.view()
    assert (after.aborted, after.last_stable_offset) == (before.aborted,
                                                         before.last_stable_offset)
    log.close()
    assert verify(data_dir).ok, verify(data_dir).problems
    with SqlEngine(data_dir) as engine:
        assert engine.query("SELECT offset, txn_state FROM records"
                            " WHERE txn_state IS NOT NULL")[1] == states
        plain = engine.query("SELECT value FROM records WHERE txn_state IS NULL")[1]
    assert plain == [(b"plain5",)]
    again = PartitionLog.open(directory, config, clock=ManualClock())
    try:
        assert (again.view().aborted, again.view().last_stable_offset) == (
            before.aborted, before.last_stable_offset)
    finally:
        again.close()
