"""Idempotent producers in the storage core: each batch checked against its producer's
state, that state rebuilt from the segments' ``batches`` rows on open, and expiry.

A real partition log on a real directory, with a clock that moves only when told.
"""

from __future__ import annotations

import glob
import os

import apsw
import pytest
from support import T0, ManualClock

from eventstore.config import TopicConfig
from eventstore.errors import (
    DuplicateSequenceNumber,
    InvalidProducerEpoch,
    InvalidRecord,
    OutOfOrderSequenceNumber,
)
from eventstore.storage import producer_state
from eventstore.storage.log import PartitionLog
from eventstore.storage.log_reader import LogReader
from eventstore.storage.producer_state import SEQUENCE_MODULUS
from eventstore.storage.records import AppendRow, ProducerBatchInfo

HOUR = 3_600_000
EXPIRATION = 24 * HOUR
PID = 4000


def rows(*values: bytes) -> list[AppendRow]:
    return [(None, None, value, None) for value in values]


def stamp(sequence: int, epoch: int = 0, producer_id: int = PID) -> ProducerBatchInfo:
    return ProducerBatchInfo(producer_id, epoch, sequence)


def open_log(directory: str, clock: ManualClock, **config: object) -> PartitionLog:
    return PartitionLog.open(
        os.path.join(directory, "t-0"), TopicConfig.from_mapping(config), clock=clock,
        create=True, producer_id_expiration_ms=EXPIRATION,
    )


def values(log: PartitionLog) -> list[bytes]:
    reader = LogReader()
    try:
        view = log.view()
        return [row[3] for row in reader.read(view, view.log_start_offset, 1_000_000)]
    finally:
        reader.close()


def segment_rows(data_dir: str, topic: str, partition: int, sql: str) -> list[tuple]:
    """``sql``'s rows from each segment file of a partition in turn, opened read-only (as
    any tool may while a writer runs). The idempotence tests of every layer use it."""
    rows = []
    for path in sorted(glob.glob(os.path.join(data_dir, f"{topic}-{partition}", "*.db"))):
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        rows += conn.execute(sql).fetchall()
        conn.close()
    return rows


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_next_sequence_appends_and_the_stamp_is_stored_with_the_batch(data_dir, clock):
    log = open_log(data_dir, clock)
    first = log.append(rows(b"a", b"b"), stamp(0))
    second = log.append(rows(b"c"), stamp(2))
    assert (first.base_offset, first.last_offset, second.base_offset) == (0, 1, 2)
    assert not first.duplicate and not second.duplicate
    assert segment_rows(data_dir, "t", 0, "SELECT producer_id, producer_epoch, base_sequence,"
                        " base_offset FROM batches") == [(PID, 0, 0, 0), (PID, 0, 2, 2)]
    log.close()


def test_a_retry_of_any_of_the_last_five_batches_gets_its_offsets_and_is_not_written(
        data_dir, clock):
    log = open_log(data_dir, clock)
    log.append(rows(b"x"), None)  # a plain producer's batch in between changes nothing
    originals = [log.append(rows(b"%d" % i, b"%d'" % i), stamp(2 * i)) for i in range(7)]
    for index in range(2, 7):  # the last five
        again = log.append(rows(b"%d" % index, b"%d'" % index), stamp(2 * index))
        assert again.duplicate
        assert (again.base_offset, again.last_offset) == (
            originals[index].base_offset, originals[index].last_offset)
        assert again.log_start_offset == 0 and again.bytes == 0
    with pytest.raises(DuplicateSequenceNumber):  # written, but older than the five kept
        log.append(rows(b"1", b"1'"), stamp(2))
    assert log.log_end_offset == 15
    assert len(values(log)) == 15
    log.close()


def test_a_gap_an_overlap_and_an_old_epoch_are_refused_and_nothing_is_written(
        data_dir, clock):
    log = open_log(data_dir, clock)
    log.append(rows(b"a", b"b"), stamp(0))
    with pytest.raises(OutOfOrderSequenceNumber, match="expected sequence 2"):
        log.append(rows(b"c"), stamp(3))
    with pytest.raises(OutOfOrderSequenceNumber):  # same start, other length: not a retry
        log.append(rows(b"a"), stamp(0))
    with pytest.raises(OutOfOrderSequenceNumber, match="new epoch 1 must start at"):
        log.append(rows(b"c"), stamp(5, epoch=1))
    log.append(rows(b"c"), stamp(0, epoch=1))  # a newer epoch starts again at 0
    with pytest.raises(InvalidProducerEpoch):
        log.append(rows(b"c"), stamp(2, epoch=0))
    with pytest.raises(InvalidProducerEpoch):  # an old epoch's retry is no duplicate either
        log.append(rows(b"a", b"b"), stamp(0, epoch=0))
    with pytest.raises(InvalidRecord):
        log.append(rows(b"c"), ProducerBatchInfo(PID, 1, -1))
    assert values(log) == [b"a", b"b", b"c"]
    log.close()


def test_an_unknown_producer_is_accepted_at_any_sequence(data_dir, clock):
    log = open_log(data_dir, clock)
    assert log.append(rows(b"late"), stamp(999, epoch=3)).base_offset == 0
    assert log.append(rows(b"next"), stamp(1000, epoch=3)).base_offset == 1
    with pytest.raises(OutOfOrderSequenceNumber):
        log.append(rows(b"gap"), stamp(1002, epoch=3))
    log.close()


def test_sequences_wrap_to_zero_after_int32_max(data_dir, clock):
    log = open_log(data_dir, clock)
    top = SEQUENCE_MODULUS - 1
    log.append(rows(b"a", b"b"), stamp(top - 2))  # top-2, top-1
    wrapping = log.append(rows(b"c", b"d"), stamp(top))  # top, 0
    assert log.append(rows(b"c", b"d"), stamp(top)).base_offset == wrapping.base_offset
    with pytest.raises(OutOfOrderSequenceNumber):
        log.append(rows(b"e"), stamp(0))
    assert log.append(rows(b"e"), stamp(1)).base_offset == 4
    for sequence in range(2, 7):
        log.append(rows(b"f"), stamp(sequence))
    with pytest.raises(DuplicateSequenceNumber):  # from before the wrap and the five kept
        log.append(rows(b"a", b"b"), stamp(top - 2))
    log.close()


def test_a_duplicate_in_a_log_append_time_topic_returns_the_original_append_time(
        data_dir, clock):
    log = open_log(data_dir, clock, **{"message.timestamp.type": "LogAppendTime"})
    first = log.append(rows(b"a"), stamp(0))
    clock.now += 5000
    again = log.append(rows(b"a"), stamp(0))
    assert first.log_append_time == again.log_append_time == T0
    log.close()


def test_state_is_rebuilt_from_the_batches_on_disk_across_segments(data_dir, clock):
    log = open_log(data_dir, clock, **{"segment.bytes": 60})  # two batches a segment
    originals = {}
    for sequence in range(8):
        for producer_id in (PID, PID + 1):
            clock.now += 1
            originals[producer_id, sequence] = log.append(
                rows(b"%d-%d" % (producer_id, sequence)), stamp(sequence, 0, producer_id))
    log.append(rows(b"bumped"), stamp(0, epoch=1, producer_id=PID + 2))
    before = {pid: log.producers.entry(pid, clock.now) for pid in (PID, PID + 1, PID + 2)}
    assert len(log.segments()) > 4
    log.close()

    reopened = open_log(data_dir, clock, **{"segment.bytes": 60})
    after = {pid: reopened.producers.entry(pid, clock.now) for pid in before}
    assert after == before, "the rebuilt state is the state the appends left"
    for sequence in range(3, 8):
        again = reopened.append(rows(b"%d-%d" % (PID, sequence)), stamp(sequence))
        assert again.duplicate and again.base_offset == originals[PID, sequence].base_offset
    with pytest.raises(InvalidProducerEpoch):
        reopened.append(rows(b"old"), stamp(1, epoch=0, producer_id=PID + 2))
    assert reopened.append(rows(b"more"), stamp(8)).base_offset == 17
    reopened.close()


def test_rebuilding_reads_only_segments_sealed_within_the_expiration_window(
        data_dir, clock, monkeypatch):
    log = open_log(data_dir, clock)
    log.append(rows(b"old"), stamp(0, producer_id=PID))
    log.roll()
    clock.now += EXPIRATION + HOUR
    log.append(rows(b"new"), stamp(0, producer_id=PID + 1))
    log.roll()
    log.append(rows(b"newest"), stamp(1, producer_id=PID + 1))
    log.close()

    read = []
    original = producer_state.read_producer_batches

    def counting(conn, path, per_producer):
        read.append(os.path.basename(path))
        return original(conn, path, per_producer)

    monkeypatch.setattr(producer_state, "read_producer_batches", counting)
    reopened = open_log(data_dir, clock)
    assert read == ["00000000000000000002.db", "00000000000000000001.db"]
    assert reopened.producers.entry(PID, clock.now) is None
    assert [b.first_seq for b in reopened.producers.entry(PID + 1, clock.now).batches] == [0, 1]
    reopened.close()


def test_a_producer_idle_past_the_expiration_is_forgotten(data_dir, clock):
    log = open_log(data_dir, clock)
    log.append(rows(b"a"), stamp(0, epoch=2))
    clock.now += EXPIRATION - 1
    with pytest.raises(InvalidProducerEpoch):
        log.append(rows(b"b"), stamp(0, epoch=1))
    assert log.expire_producers() == 0
    clock.now += 1
    assert log.expire_producers() == 1
    assert len(log.producers) == 0
    # forgotten: an older epoch at any sequence is a new producer again
    assert log.append(rows(b"b"), stamp(7, epoch=1)).base_offset == 1
    log.close()


def test_expiry_drops_old_batches_of_a_live_producer_on_disk_as_in_memory(data_dir, clock):
    log = open_log(data_dir, clock)
    log.append(rows(b"a"), stamp(0))
    clock.now += EXPIRATION - HOUR
    log.append(rows(b"b"), stamp(1))
    clock.now += 2 * HOUR  # the first batch is now past the window, the second is not
    kept = log.producers.entry(PID, clock.now)
    assert [b.first_seq for b in kept.batches] == [1]
    log.close()
    reopened = open_log(data_dir, clock)
    assert reopened.producers.entry(PID, clock.now) == kept
    with pytest.raises(DuplicateSequenceNumber):
        reopened.append(rows(b"a"), stamp(0))
    reopened.close()


def test_retention_deleting_segments_keeps_the_state_and_a_reopen_forgets_only_the_gone(
        data_dir, clock):
    config = {"segment.bytes": 100, "retention.ms": HOUR}
    log = open_log(data_dir, clock, **config)
    gone = log.append(rows(b"quiet producer"), stamp(0, producer_id=PID))
    log.roll()
    clock.now += 2 * HOUR
    for sequence in range(3):
        log.append(rows(b"busy %d" % sequence), stamp(sequence, producer_id=PID + 1))
    assert log.apply_retention(), "the first segment is past retention.ms"
    assert log.log_start_offset == 1
    again = log.append(rows(b"quiet producer"), stamp(0, producer_id=PID))
    assert again.duplicate and again.base_offset == gone.base_offset
    log.close()

    reopened = open_log(data_dir, clock, **config)
    assert reopened.producers.entry(PID, clock.now) is None, "its batches were deleted"
    busy = reopened.producers.entry(PID + 1, clock.now)
    assert [b.first_seq for b in busy.batches] == [0, 1, 2]
    assert reopened.append(rows(b"quiet again"), stamp(1, producer_id=PID)).base_offset == 4
    reopened.close()
