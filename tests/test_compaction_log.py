"""Log compaction in the partition log: what a compacted topic accepts and refuses, reads
across the gaps a cleaning leaves, retention on top of it, the swap its owner makes (and
refuses when the chain changed), the status it reports, and `eventstore verify` on it."""

from __future__ import annotations

import os

import apsw
import pytest

from actors.system import ActorSystem
from eventstore.config import TopicConfig
from eventstore.errors import InvalidRecord, PolicyViolation
from eventstore.storage.cleaning_swap import PENDING_SUFFIX
from eventstore.storage.compaction import (
    CleaningSettings,
    cleaning_status,
    prepare_cleaning,
)
from eventstore.storage.log import PartitionLog
from eventstore.storage.log_reader import LogReader
from eventstore.storage.records import ProducerBatchInfo
from eventstore.storage.verify import verify
from tests.support import ManualClock

COMPACT = {"cleanup.policy": "compact", "segment.bytes": 120}


def open_log(directory: str, clock: ManualClock, **config: object) -> PartitionLog:
    return PartitionLog.open(directory, TopicConfig.from_mapping({**COMPACT, **config}),
                             clock=clock, create=True)


def put(log: PartitionLog, key: bytes | None, value: bytes | None) -> int:
    return log.append([(None, key, value, None)]).base_offset


def table(log: PartitionLog, start: int = 0) -> dict[bytes, tuple[int, bytes | None]]:
    """Each key's last record read from ``start``: (offset, value)."""
    seen: dict[bytes, tuple[int, bytes | None]] = {}
    offset = start
    while offset < log.high_watermark:
        rows = log.read(offset, 3)
        if not rows:
            break
        for row in rows:
            seen[row[2]] = (row[0], row[3])
        offset = rows[-1][0] + 1
    return seen


def test_a_record_without_a_key_is_refused_on_a_compacted_topic(tmp_path):
    log = open_log(str(tmp_path / "t-0"), ManualClock())
    with pytest.raises(InvalidRecord, match="without a key"):
        log.append([(None, b"k", b"v", None), (None, None, b"v", None)])
    assert log.high_watermark == 0
    log.update_config(TopicConfig())  # delete: a keyless record is fine
    assert put(log, None, b"v") == 0


def test_delete_records_is_a_policy_violation_unless_the_policy_has_delete(tmp_path):
    log = open_log(str(tmp_path / "t-0"), ManualClock())
    put(log, b"k", b"v")
    with pytest.raises(PolicyViolation, match="cleanup.policy is compact"):
        log.delete_records(1)
    log.update_config(TopicConfig.from_mapping({"cleanup.policy": "compact,delete"}))
    assert log.delete_records(1) == 1


def fill(log: PartitionLog, rounds: int) -> None:
    """Updates of three keys, enough to roll several segments."""
    for index in range(rounds):
        put(log, b"k%d" % (index % 3), b"v%d" % index)


def test_compact_alone_keeps_segments_retention_would_delete(tmp_path):
    clock = ManualClock()
    log = open_log(str(tmp_path / "t-0"), clock, **{"retention.ms": 10})
    fill(log, 12)
    sealed = len(log.segments()) - 1
    assert sealed >= 2
    clock.advance(1000)
    assert log.apply_retention() == []
    log.update_config(TopicConfig.from_mapping({**COMPACT, "cleanup.policy": "compact,delete",
                                                "retention.ms": 10}))
    assert len(log.apply_retention()) == sealed
    assert log.log_start_offset == log.segments()[0].base_offset


def test_reads_cross_the_gaps_and_land_on_the_next_record(tmp_path):
    clock = ManualClock()
    directory = str(tmp_path / "t-0")
    log = open_log(directory, clock)
    fill(log, 12)
    put(log, b"last", b"x")  # rolled into its own active segment below
    log.roll()
    before = {"hw": log.high_watermark, "start": log.log_start_offset}
    result = log.clean()
    assert result.records_removed > 0
    assert (log.high_watermark, log.log_start_offset) == (before["hw"], before["start"])
    kept = [row[0] for row in log.read(0, 1000)]
    assert kept == sorted(kept) and len(kept) < before["hw"]
    gaps = [offset for offset in range(before["hw"]) if offset not in kept]
    for offset in gaps:  # a committed offset inside a removed range reads the next record
        assert log.read(offset, 1)[0][0] == min(k for k in kept if k > offset)
    # the latest value of every key, at the offset it was written at
    assert table(log) == {b"k0": (9, b"v9"), b"k1": (10, b"v10"), b"k2": (11, b"v11"),
                          b"last": (12, b"x")}
    # a fresh reader, with only one record wanted at a time, never stalls in a gap
    reader = LogReader()
    try:
        offset, seen = 0, []
        while offset < log.high_watermark:
            rows = reader.read(log.view(), offset, 1, max_bytes=1)
            seen += [row[0] for row in rows]
            offset = rows[-1][0] + 1
        assert seen == kept
    finally:
        reader.close()


def test_a_read_starting_in_a_gap_at_a_sealed_segments_end_moves_on(tmp_path):
    clock = ManualClock()
    log = open_log(str(tmp_path / "t-0"), clock, **{"segment.bytes": 1 << 20})
    for value in (b"a", b"b", b"c"):
        put(log, b"k", value)  # 0 1 2: one key, 0 and 1 go
    put(log, b"other", b"o")  # 3
    log.roll()
    put(log, b"k", b"d")  # 4, in the active segment
    log.roll()
    log.clean()
    # offsets 0..2 of the first segment: 0 and 1 removed... and 2 as well (k's last is 4)
    assert [row[0] for row in log.read(0, 10)] == [3, 4]
    assert [row[0] for row in log.read(2, 10)] == [3, 4]
    log.update_config(TopicConfig.from_mapping(COMPACT))
    put(log, b"other", b"p")  # 5: now 3 goes and the first segment is all gap
    log.roll()
    log.clean()
    assert [row[0] for row in log.read(0, 10)] == [4, 5]
    assert [row[0] for row in log.read(3, 10)] == [4, 5]


def test_list_offsets_by_time_across_gaps_finds_the_next_record(tmp_path):
    clock = ManualClock()
    log = open_log(str(tmp_path / "t-0"), clock)
    stamps = []
    for index in range(9):
        stamps.append(clock())
        put(log, b"k%d" % (index % 3), b"v")
        clock.advance(10)
    log.roll()
    log.clean()
    kept = [row[0] for row in log.read(0, 100)]
    assert kept == [6, 7, 8]
    assert log.offset_for_timestamp(stamps[0]) == 6
    assert log.offset_for_timestamp(stamps[7]) == 7


def test_a_segment_a_cleaning_emptied_is_expired_by_its_seal_time(tmp_path):
    clock = ManualClock()
    policy = {"cleanup.policy": "compact,delete", "retention.ms": 1000,
              "segment.bytes": 25}  # one record a segment: none merge
    log = open_log(str(tmp_path / "t-0"), clock, **policy)
    put(log, b"k", b"old")
    log.roll()
    clock.advance(600)
    put(log, b"k", b"new")
    log.roll()
    log.clean()
    first = log.segments()[0]
    assert first.max_timestamp is None and first.bytes == 0  # emptied, kept as a gap
    clock.advance(300)  # sealed 900 ms ago
    assert log.apply_retention() == []
    clock.advance(200)
    assert [s.base_offset for s in log.apply_retention()] == [0]
    assert log.log_start_offset == 1


def test_a_cleaning_is_refused_when_the_chain_changed_meanwhile(tmp_path):
    clock = ManualClock()
    directory = str(tmp_path / "t-0")
    log = open_log(directory, clock, **{"cleanup.policy": "compact,delete"})
    fill(log, 12)
    sealed, active_base = log.cleanable()
    prepared = prepare_cleaning(directory, sealed, active_base, clock(),
                                CleaningSettings.of(log.config))
    assert any(name.endswith(PENDING_SUFFIX) for name in os.listdir(directory))
    log.delete_records(sealed[0].next_offset)  # deletes the first sealed segment
    files = sorted(os.listdir(directory))
    assert log.install_cleaning(prepared) is False
    assert not any(name.endswith(PENDING_SUFFIX) for name in os.listdir(directory))
    assert sorted(os.listdir(directory)) == [n for n in files if not n.endswith(PENDING_SUFFIX)]
    assert log.cleaning_status().runs == 0
    # a cleaning planned on the chain as it is now goes in
    assert log.clean().records_removed > 0
    assert log.cleaning_status().runs == 1


def test_status_from_the_folder_agrees_with_the_log_and_survives_reopening(tmp_path):
    clock = ManualClock()
    directory = str(tmp_path / "t-0")
    log = open_log(directory, clock)
    assert cleaning_status(directory).runs == 0
    fill(log, 12)
    dirty = cleaning_status(directory)
    assert dirty.dirty_ratio == 1.0 and dirty.cleaned_bytes == 0 and dirty.dirty_bytes > 0
    result = log.clean()
    status = cleaning_status(directory)
    assert status == log.cleaning_status()
    assert (status.runs, status.records_removed, status.bytes_removed) == (
        1, result.records_removed, result.bytes_removed)
    assert status.last_cleaned_ms == clock()
    assert status.dirty_ratio == 0.0 and status.cleaned_through == log.segments()[-1].base_offset
    log.close()
    reopened = PartitionLog.open(directory, TopicConfig.from_mapping(COMPACT), clock=clock)
    assert reopened.cleaning_status() == status
    reopened.close()


def test_cleaning_a_topic_that_is_not_compacted_is_a_policy_violation(tmp_path):
    log = PartitionLog.open(str(tmp_path / "t-0"), create=True)
    with pytest.raises(PolicyViolation, match="not compact"):
        log.clean()


def test_an_idempotent_producer_goes_on_after_a_cleaning_and_a_reopen(tmp_path):
    clock = ManualClock()
    directory = str(tmp_path / "t-0")
    log = open_log(directory, clock)
    for sequence in range(8):
        log.append([(None, b"k", b"v%d" % sequence, None)],
                   ProducerBatchInfo(7, 0, sequence))
    log.roll()
    log.clean()
    log.close()
    log = PartitionLog.open(directory, TopicConfig.from_mapping(COMPACT), clock=clock)
    retry = log.append([(None, b"k", b"v7", None)], ProducerBatchInfo(7, 0, 7))
    assert retry.duplicate and retry.base_offset == 7
    assert log.append([(None, b"k", b"v8", None)],
                      ProducerBatchInfo(7, 0, 8)).base_offset == 8
    log.close()


def make_data_dir(tmp_path) -> tuple[str, str]:
    """A data directory with one compacted topic (through the broker's catalog)."""
    data = str(tmp_path / "data")
    system = ActorSystem(data, {"log.cleaner.enable": False}).start()
    try:
        system.broker.create_topic("table", 1, COMPACT).get()
        handle = system.broker.partition("table", 0).get()
        for index in range(12):
            handle.append([(None, b"k%d" % (index % 3), b"v%d" % index, None)]).result(10)
    finally:
        system.stop()
    return data, os.path.join(data, "table-0")


def test_verify_passes_on_cleaned_files_and_still_finds_a_missing_record(tmp_path):
    data, directory = make_data_dir(tmp_path)
    log = PartitionLog.open(directory, TopicConfig.from_mapping(COMPACT))
    log.clean()
    first_dirty = log.cleaning_status().cleaned_through
    put(log, b"k0", b"after")
    log.roll()
    log.close()
    report = verify(data)
    assert report.ok, [str(p) for p in report.problems]
    # a record missing at or past the cleaned part is still a problem
    newest_sealed = os.path.join(directory, sorted(
        n for n in os.listdir(directory) if n.endswith(".db"))[-2])
    conn = apsw.Connection(newest_sealed)
    conn.execute("DELETE FROM records WHERE offset = ?", (first_dirty,))
    conn.close()
    report = verify(data)
    assert [p.path for p in report.problems] == [newest_sealed]
