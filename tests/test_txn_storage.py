"""Transactions in a partition's files (real SQLite segments): transactional batches and
COMMIT/ABORT markers, the last stable offset and the aborted-transaction index, rebuilt
when the log opens again; markers readable with the ``sqlite3`` tool; fenced epochs."""

from __future__ import annotations

import os
import subprocess

import pytest
from support import ManualClock

from eventstore.config import TopicConfig
from eventstore.errors import InvalidProducerEpoch
from eventstore.storage.log import PartitionLog
from eventstore.storage.records import ProducerBatchInfo
from eventstore.storage.transaction_index import ABORT, COMMIT, AbortedTxn, aborted_between

SQLITE3 = "/usr/bin/sqlite3"


def rows(*values: bytes) -> list[tuple]:
    return [(None, None, v, None) for v in values]


def txn_append(log: PartitionLog, pid: int, epoch: int, sequence: int, *values: bytes):
    return log.append(rows(*values), ProducerBatchInfo(pid, epoch, sequence),
                      transactional=True)


@pytest.fixture
def log_dir(tmp_path):
    return str(tmp_path / "t-0")


def open_log(path: str, clock: ManualClock, **config) -> PartitionLog:
    return PartitionLog.open(path, TopicConfig.from_mapping(config), clock=clock, create=True)


def test_the_last_stable_offset_waits_for_the_oldest_open_transaction(log_dir):
    clock = ManualClock()
    log = open_log(log_dir, clock)
    log.append(rows(b"plain"))  # offset 0
    txn_append(log, 7, 0, 0, b"a1", b"a2")  # 1-2, producer 7
    txn_append(log, 8, 0, 0, b"b1")  # 3, producer 8
    assert log.view().last_stable_offset == 1 and log.view().high_watermark == 4
    log.append_marker(7, 0, ABORT)  # 4
    assert log.view().last_stable_offset == 3  # producer 8 still open
    assert log.view().aborted == (AbortedTxn(7, 1, 4),)
    log.append_marker(8, 0, COMMIT)  # 5
    view = log.view()
    assert (view.last_stable_offset, view.high_watermark) == (6, 6)
    assert log.append_marker(8, 0, COMMIT) is None  # none open: nothing written twice
    assert aborted_between(view.aborted, 0, 1) == []
    assert aborted_between(view.aborted, 2, 3) == [AbortedTxn(7, 1, 4)]
    assert aborted_between(view.aborted, 5, 6) == []
    log.close()


def test_open_transactions_and_the_aborted_index_are_rebuilt_from_the_segments(log_dir):
    clock = ManualClock()
    log = open_log(log_dir, clock, **{"segment.bytes": 200})  # a roll every few batches
    for n in range(6):
        txn_append(log, 7, 0, 2 * n, b"x" * 40, b"y" * 40)
        log.append_marker(7, 0, ABORT if n % 2 else COMMIT)
    txn_append(log, 9, 3, 0, b"open")  # left open by a crash
    before = log.view()
    assert len(before.segments) > 3
    log.close()
    again = open_log(log_dir, clock)
    view = again.view()
    assert view.aborted == before.aborted and len(view.aborted) == 3
    assert view.last_stable_offset == before.last_stable_offset == view.high_watermark - 1
    with pytest.raises(InvalidProducerEpoch):  # a zombie of producer 9
        txn_append(again, 9, 2, 1, b"zombie")
    again.append_marker(9, 4, ABORT)  # the coordinator's, under the bumped epoch
    assert again.view().last_stable_offset == again.view().high_watermark
    with pytest.raises(InvalidProducerEpoch):
        txn_append(again, 9, 3, 1, b"fenced")
    again.close()


@pytest.mark.skipif(not os.path.exists(SQLITE3), reason=f"no sqlite3 tool at {SQLITE3}")
def test_markers_stay_readable_with_the_sqlite3_tool(log_dir):
    clock = ManualClock()
    log = open_log(log_dir, clock)
    txn_append(log, 7, 0, 0, b"v")
    log.append_marker(7, 0, COMMIT)
    log.roll()
    path = log.segments()[0].path
    log.close()
    out = subprocess.run(
        [SQLITE3, "-readonly", path,
         "SELECT r.offset, hex(r.key), t.producer_id, t.marker FROM records r"
         " JOIN txn_batches t ON r.offset BETWEEN t.base_offset AND t.last_offset"
         " ORDER BY r.offset"],
        capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.splitlines() == ["0||7|", "1|00000001|7|COMMIT"]
