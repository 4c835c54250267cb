"""Partition log behaviour: rolling, retention, offsets, durability settings, how batches
are inserted, checkpoints."""

from __future__ import annotations

import os
from collections.abc import Iterator

import apsw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import T0, ManualClock

from eventstore.config import TopicConfig
from eventstore.errors import (
    CorruptLog,
    InvalidRecord,
    OffsetOutOfRange,
    RecordTooLarge,
)
from eventstore.storage.log import PartitionLog
from eventstore.storage.log_reader import LogReader
from eventstore.storage.records import RECORD_OVERHEAD, AppendRow
from eventstore.storage.segment import WAL_CHECKPOINT_PAGES, finish_seal, is_wal_mode

RECORD_BYTES = 120  # a 100-byte value plus the 20 bytes every record counts for


def batch(count: int, tag: int = 0, timestamp: int | None = None) -> list[AppendRow]:
    """``count`` records of RECORD_BYTES each, recognisable by ``tag``."""
    return [(timestamp, None, bytes([tag % 256]) * 100, None) for _ in range(count)]


def open_log(data_dir: str, clock: ManualClock | None = None, **config: object) -> PartitionLog:
    """A new partition log in ``data_dir`` with the given topic config overrides."""
    return PartitionLog.open(
        os.path.join(data_dir, "topic-0"),
        TopicConfig.from_mapping(config),
        clock=clock or ManualClock(),
        create=True,
    )


def bounds(log: PartitionLog) -> list[tuple[int, int]]:
    """(base offset, next offset) of every segment, oldest first."""
    return [(s.base_offset, s.next_offset) for s in log.segments()]


# -- rolling -------------------------------------------------------------------------------


def test_rolls_when_the_next_batch_would_pass_segment_bytes(data_dir: str) -> None:
    log = open_log(data_dir, **{"segment.bytes": 1000})
    for tag in range(5):
        log.append(batch(3, tag))  # 360 bytes: two batches fit in 1000, a third does not
    assert bounds(log) == [(0, 6), (6, 12), (12, 15)]
    assert all(s.bytes <= 1000 for s in log.segments())
    assert log.stats.rolls["size"] == 2
    assert [row[0] for row in log.read(0, 100)] == list(range(15))


def test_a_batch_larger_than_segment_bytes_gets_a_segment_of_its_own(data_dir: str) -> None:
    log = open_log(data_dir, **{"segment.bytes": 500})
    log.append(batch(1))
    log.append(batch(10))  # 1200 bytes: more than a whole segment
    log.append(batch(1))
    assert bounds(log) == [(0, 1), (1, 11), (11, 12)]


def test_rolls_by_age_on_append(data_dir: str) -> None:
    clock = ManualClock()
    log = open_log(data_dir, clock, **{"segment.ms": 1000})
    log.append(batch(1))
    clock.advance(999)
    log.append(batch(1))
    assert bounds(log) == [(0, 2)]
    clock.advance(1)  # the first record of the segment is now segment.ms old
    log.append(batch(1))
    assert bounds(log) == [(0, 2), (2, 3)]
    assert log.stats.rolls["age"] == 1


def test_maybe_roll_rolls_an_idle_partition(data_dir: str) -> None:
    clock = ManualClock()
    log = open_log(data_dir, clock, **{"segment.ms": 1000})
    assert not log.maybe_roll()
    clock.advance(5000)
    assert not log.maybe_roll(), "an empty segment never rolls"
    log.append(batch(2))
    clock.advance(999)
    assert not log.maybe_roll()
    clock.advance(1)
    assert log.maybe_roll()
    assert bounds(log) == [(0, 2), (2, 2)]
    sealed = log.segments()[0]
    assert sealed.is_sealed and not is_wal_mode(sealed.path)
    clock.advance(5000)
    assert not log.maybe_roll(), "the new, empty active segment has nothing to roll"


def test_segment_ms_counts_from_the_first_append_not_from_creation(data_dir: str) -> None:
    clock = ManualClock()
    log = open_log(data_dir, clock, **{"segment.ms": 1000})
    clock.advance(5000)  # the active segment is old, but empty
    log.append(batch(1))
    clock.advance(999)
    log.append(batch(1))
    assert bounds(log) == [(0, 2)]


# -- retention -----------------------------------------------------------------------------


def test_retention_by_time_deletes_old_sealed_segments_only(data_dir: str) -> None:
    clock = ManualClock()
    log = open_log(data_dir, clock, **{"retention.ms": 10_000, "segment.bytes": 500})
    for tag in range(6):  # segments of two 2-record batches, one batch per second
        log.append(batch(2, tag))
        clock.advance(1000)
    assert bounds(log) == [(0, 4), (4, 8), (8, 12)]
    old_paths = [s.path for s in log.segments()[:2]]
    clock.advance(10_000 - 4000)  # the first segment's newest record is 1001 ms over
    assert [s.base_offset for s in log.apply_retention()] == [0]
    assert log.log_start_offset == 4
    assert not os.path.exists(old_paths[0]) and os.path.exists(old_paths[1])
    clock.advance(1_000_000)  # everything is expired now, the active segment included
    assert [s.base_offset for s in log.apply_retention()] == [4]
    assert bounds(log) == [(8, 12)], "the active segment is never deleted"
    assert log.log_start_offset == 8 and log.log_end_offset == 12
    assert [row[0] for row in log.read(8, 100)] == [8, 9, 10, 11]
    with pytest.raises(OffsetOutOfRange):
        log.read(7, 100)


def test_retention_by_bytes_keeps_the_newest_data(data_dir: str) -> None:
    log = open_log(data_dir, **{"retention.bytes": 960, "segment.bytes": 480})
    for tag in range(8):
        log.append(batch(2, tag))  # 240 bytes a batch, two batches a segment
    assert bounds(log) == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert log.size_bytes == 1920
    deleted = log.apply_retention()
    assert [s.base_offset for s in deleted] == [0, 4]
    assert log.log_start_offset == 8 and log.size_bytes == 960
    assert log.apply_retention() == [], "what is left is within retention.bytes"


def test_retention_bytes_never_deletes_the_active_segment(data_dir: str) -> None:
    log = open_log(data_dir, **{"retention.bytes": 0})
    log.append(batch(5))
    assert log.apply_retention() == []
    log.roll()
    log.append(batch(1))
    assert [s.base_offset for s in log.apply_retention()] == [0]
    assert bounds(log) == [(5, 6)]
    assert log.log_start_offset == 5


def test_log_start_offset_survives_reopening(data_dir: str) -> None:
    clock = ManualClock()
    log = open_log(data_dir, clock, **{"retention.ms": 100, "segment.bytes": 240})
    for tag in range(3):
        log.append(batch(2, tag))
    clock.advance(1000)
    log.apply_retention()
    assert log.log_start_offset == 4
    config, directory = log.config, log.directory
    log.close()
    reopened = PartitionLog.open(directory, config, clock=clock)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (4, 6)
    assert [row[0] for row in reopened.read(4, 10)] == [4, 5]


def test_retention_of_a_segment_a_consumer_holds_leaves_no_file_behind(data_dir: str) -> None:
    clock = ManualClock()
    log = open_log(data_dir, clock, **{"retention.ms": 100})
    consumer = LogReader()
    log.append(batch(2))
    assert len(consumer.read(log.view(), 0, 10)) == 2  # holds the active segment open
    log.roll()
    first = log.segments()[0].path
    log.append(batch(1))
    clock.advance(1000)
    assert [s.path for s in log.apply_retention()] == [first]
    log.maybe_roll()  # retries seals that readers delayed
    consumer.close()
    log.close()
    assert not os.path.exists(first)
    reopened = PartitionLog.open(log.directory, log.config, clock=clock)
    assert bounds(reopened) == [(2, 3)]


# -- reading -------------------------------------------------------------------------------


def test_reads_outside_the_log_raise_offset_out_of_range(data_dir: str) -> None:
    log = open_log(data_dir, **{"retention.bytes": 0, "segment.bytes": 240})
    for tag in range(3):
        log.append(batch(2, tag))
    log.apply_retention()
    assert (log.log_start_offset, log.log_end_offset) == (4, 6)
    assert log.read(6, 10) == [], "a read at the log-end-offset waits for data"
    for offset in (-1, 0, 3, 7, 1000):
        with pytest.raises(OffsetOutOfRange, match=f"offset {offset} is outside the log"):
            log.read(offset, 10)


def test_a_byte_limited_read_stops_where_the_limit_cuts_a_segment(data_dir: str) -> None:
    log = open_log(data_dir, **{"segment.bytes": 370})
    log.append([(None, None, b"a", None)])  # 21 bytes
    log.append([(None, None, b"b" * 300, None)])  # 320 bytes
    log.append([(None, None, b"c", None)])  # 21 bytes
    log.append([(None, None, b"d", None)])  # would pass 370: next segment
    assert bounds(log) == [(0, 3), (3, 4)]
    assert [row[0] for row in log.read(0, 100, max_bytes=100)] == [0]
    assert [row[0] for row in log.read(2, 100, max_bytes=100)] == [2, 3]
    assert [row[0] for row in log.read(1, 100, max_bytes=100)] == [1], "at least one batch"


def test_reads_cross_segment_boundaries(data_dir: str) -> None:
    log = open_log(data_dir, **{"segment.bytes": 500})
    for tag in range(10):
        log.append(batch(3, tag))
    assert len(log.segments()) == 10
    rows = log.read(1, 1000)
    assert [row[0] for row in rows] == list(range(1, 30))
    assert [row[3][0] for row in rows] == [offset // 3 for offset in range(1, 30)]


def test_offset_for_timestamp_finds_the_first_record_at_or_after(data_dir: str) -> None:
    log = open_log(data_dir, **{"segment.bytes": 240})
    for ts in (100, 300, 200, 400, 50, 500):
        log.append(batch(1, timestamp=ts))
    assert log.offset_for_timestamp(0) == 0
    assert log.offset_for_timestamp(150) == 1
    assert log.offset_for_timestamp(250) == 1
    assert log.offset_for_timestamp(350) == 3
    assert log.offset_for_timestamp(450) == 5
    assert log.offset_for_timestamp(501) is None


# -- appending -----------------------------------------------------------------------------


class CountingVFS(apsw.VFS):
    """The default SQLite VFS, counting the fsyncs of every file opened through it."""

    def __init__(self) -> None:
        self.syncs = 0
        super().__init__("counting-fsyncs", "unix", makedefault=True)

    def xOpen(self, name: str | apsw.URIFilename | None, flags: list[int]) -> apsw.VFSFile:
        return CountingFile(self, name, flags)


class CountingFile(apsw.VFSFile):
    """A file of :class:`CountingVFS`."""

    def __init__(
        self, vfs: CountingVFS, name: str | apsw.URIFilename | None, flags: list[int]
    ) -> None:
        self._vfs = vfs
        super().__init__("unix", name, flags)

    def xSync(self, flags: int) -> None:
        self._vfs.syncs += 1
        super().xSync(flags)


@pytest.fixture
def fsyncs() -> Iterator[CountingVFS]:
    """Counts fsyncs of SQLite files opened while the test runs."""
    vfs = CountingVFS()
    yield vfs
    vfs.unregister()


def syncs_per_append(log: PartitionLog, vfs: CountingVFS, appends: int) -> list[int]:
    """How many fsyncs each of ``appends`` single-record appends made."""
    counts = []
    for tag in range(appends):
        before = vfs.syncs
        log.append(batch(1, tag))
        counts.append(vfs.syncs - before)
    return counts


def test_flush_messages_1_fsyncs_every_append(data_dir: str, fsyncs: CountingVFS) -> None:
    log = open_log(data_dir, **{"flush.messages": 1})
    counts = syncs_per_append(log, fsyncs, 5)
    assert all(count >= 1 for count in counts), counts
    assert [row[0] for row in log.read(0, 10)] == [0, 1, 2, 3, 4]
    log.close()


def test_by_default_appends_commit_without_fsync(data_dir: str, fsyncs: CountingVFS) -> None:
    log = open_log(data_dir)
    counts = syncs_per_append(log, fsyncs, 5)
    assert counts[1:] == [0, 0, 0, 0], counts
    log.close()


def test_flush_messages_n_fsyncs_after_n_records(data_dir: str, fsyncs: CountingVFS) -> None:
    log = open_log(data_dir, **{"flush.messages": 3})
    counts = syncs_per_append(log, fsyncs, 3)
    assert counts[1] == 0 and counts[2] >= 1, counts
    log.close()


def test_log_append_time_stamps_the_append_time(data_dir: str) -> None:
    clock = ManualClock()
    log = open_log(data_dir, clock, **{"message.timestamp.type": "LogAppendTime"})
    result = log.append(batch(2, timestamp=42))
    assert result.log_append_time == T0
    clock.advance(7)
    log.append(batch(1))
    assert [row[1] for row in log.read(0, 10)] == [T0, T0, T0 + 7]


def test_create_time_keeps_the_producers_timestamp(data_dir: str) -> None:
    clock = ManualClock()
    log = open_log(data_dir, clock)
    result = log.append([(42, None, b"x", None), (None, None, b"y", None)])
    assert result.log_append_time == -1
    assert [row[1] for row in log.read(0, 10)] == [42, T0], "None means the append time"


def test_a_batch_over_max_message_bytes_writes_nothing(data_dir: str) -> None:
    log = open_log(data_dir, **{"max.message.bytes": 1000, "segment.bytes": 1100})
    log.append(batch(5))
    before = log.segments()
    with pytest.raises(RecordTooLarge, match="over max.message.bytes 1000"):
        log.append(batch(9))  # 1080 bytes; it would also have rolled the segment
    assert log.segments() == before
    assert log.log_end_offset == 5
    assert log.append(batch(1, 7)).base_offset == 5
    assert [row[3][0] for row in log.read(0, 100)] == [0] * 5 + [7]


def test_max_message_bytes_measures_the_batch_as_sent_when_known(data_dir: str) -> None:
    """Kafka limits the batch as the producer sent it (varint framing, compression), which
    is smaller than the stored rows: a full librdkafka batch must fit."""
    log = open_log(data_dir, **{"max.message.bytes": 1000})
    assert log.append(batch(9), sent_bytes=900).last_offset == 8  # stored: 1080 bytes
    with pytest.raises(RecordTooLarge, match="is 1001 bytes, over max.message.bytes 1000"):
        log.append(batch(1), sent_bytes=1001)
    assert log.log_end_offset == 9


def test_an_empty_batch_is_refused(data_dir: str) -> None:
    log = open_log(data_dir)
    with pytest.raises(InvalidRecord):
        log.append([])
    assert log.log_end_offset == 0


def test_records_read_back_exactly_after_reopening(data_dir: str) -> None:
    log = open_log(data_dir, **{"segment.bytes": 200})
    rows = [
        (5, b"k", b"v", '[["h","00ff"]]'),
        (6, None, None, None),
        (7, b"", b"", '[["a",null],["a","61"]]'),
    ]
    for row in rows:
        log.append([row])
    log.close()
    reopened = PartitionLog.open(log.directory, log.config)
    assert reopened.read(0, 10) == [(offset, *row) for offset, row in enumerate(rows)]


def test_finishing_a_seal_while_another_connection_locks_the_file_waits(data_dir: str) -> None:
    """A reader elsewhere (another process's SQL query) may hold the file: the seal is
    then left pending for a later try, never an error in the appending path."""
    log = open_log(data_dir, **{"segment.bytes": 1000})
    log.append(batch(5))
    path = log.segments()[0].path
    log.close()
    holder = apsw.Connection(path)
    holder.execute("PRAGMA journal_mode = WAL").fetchall()
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert finish_seal(path) is False
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert finish_seal(path) is True
    assert not is_wal_mode(path)


# -- how a batch is inserted -----------------------------------------------------------------

_STAMPS = st.sampled_from([None, T0 - 5, T0, T0 + 1])
_KEYS = st.sampled_from([None, b"", b"k", "ключ".encode()])
_HEADERS = st.sampled_from([None, '[["h","00ff"]]', '[["é",null]]'])
_VALUES = st.one_of(st.none(), st.binary(max_size=40), st.binary(max_size=40).map(bytearray))


@st.composite
def _batches(draw: st.DrawFn) -> list[AppendRow]:
    """Batches that fall into runs of shared (timestamp, key, headers), or do not."""
    runs = draw(st.lists(st.tuples(_STAMPS, _KEYS, _HEADERS, st.integers(1, 30)),
                         min_size=1, max_size=12))
    return [(stamp, key, draw(_VALUES), headers)
            for stamp, key, headers, count in runs for _ in range(count)]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(_batches(), min_size=1, max_size=4))
def test_batches_read_back_exactly_whichever_way_they_are_inserted(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[AppendRow]]
) -> None:
    """Run inserts (from an array of values) and row-by-row inserts store the same rows and
    count the same bytes and timestamps as SQLite does over the stored rows."""
    clock = ManualClock()
    log = open_log(str(tmp_path_factory.mktemp("log")), clock)
    expected = []
    for rows in batches:
        log.append(rows)
        expected += [(ts if ts is not None else clock.now, key,
                      None if value is None else bytes(value), headers)
                     for ts, key, value, headers in rows]
        clock.advance(1)
    stored = log.read(0, len(expected))
    assert stored == [(offset, *row) for offset, row in enumerate(expected)]
    info = log.segments()[-1]
    assert info.bytes == sum(RECORD_OVERHEAD + len(k or b"") + len(v or b"")
                             + len((h or "").encode()) for _, k, v, h in expected)
    assert (info.min_timestamp, info.max_timestamp) == (
        min(r[0] for r in expected), max(r[0] for r in expected))
    log.close()


# -- checkpoints -----------------------------------------------------------------------------

WAL_LIMIT = 2 * 4096 * WAL_CHECKPOINT_PAGES  # twice what a checkpoint lets it reach


def wal_bytes(log: PartitionLog) -> int:
    return os.path.getsize(log.segments()[-1].path + "-wal")


def test_appends_keep_the_wal_to_a_few_megabytes(data_dir: str) -> None:
    log = open_log(data_dir)
    for n in range(100):  # about 12 MB of records
        log.append(batch(1000, n))
        assert wal_bytes(log) < WAL_LIMIT
    assert log.read(0, 1)[0][3] == bytes([0]) * 100
    log.close()


def test_a_deferred_checkpoint_runs_when_its_owner_asks(data_dir: str) -> None:
    log = open_log(data_dir)
    for n in range(60):
        log.append(batch(1000, n), checkpoint=False)
    assert wal_bytes(log) > WAL_LIMIT  # nothing copied back yet: SQLite's own is off
    assert log.checkpoint_if_due()
    assert not log.checkpoint_if_due()  # nothing more to copy
    size = wal_bytes(log)
    for n in range(60, 70):  # the WAL starts over: written in place, the file does not grow
        log.append(batch(1000, n), checkpoint=False)
    assert wal_bytes(log) == size
    log.close()
    reopened = PartitionLog.open(log.directory, log.config)
    assert [row[3][0] for row in reopened.read(59_999, 2)] == [59, 60]
    reopened.close()


@pytest.mark.parametrize("rows", [
    [(T0, None, b"v", None)] * 3,  # inserted from an array
    [(T0 + n, b"k%d" % n, b"v", None) for n in range(3)],  # row by row
])
def test_an_append_after_rows_the_metadata_does_not_know_is_refused(
    data_dir: str, rows: list[AppendRow]
) -> None:
    log = open_log(data_dir)
    log.append(batch(2))
    stray = apsw.Connection(log.segments()[-1].path)
    stray.execute("INSERT INTO records VALUES (2, ?, NULL, x'00', NULL)", (T0,))
    stray.close()
    with pytest.raises(CorruptLog, match="do not continue at offset 2"):
        log.append(rows)
    log.close()
