"""Log compaction on real segment files: the rewrite, the crash-safe swap, and Kafka's
guarantee on any history of keyed writes, tombstones, rolls and cleanings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventstore.errors import CorruptLog, OutOfOrderSequenceNumber
from eventstore.storage.cleaning_swap import MANIFEST, PENDING_SUFFIX, recover_swap, swap_steps
from eventstore.storage.compaction import (
    STATE_FILE,
    CleaningSettings,
    clean_segments,
    prepare_cleaning,
)
from eventstore.storage.log import PartitionLog
from eventstore.storage.records import ProducerBatchInfo
from eventstore.storage.segment import (
    SegmentInfo,
    file_id,
    open_readonly,
    parse_segment_name,
    read_segment_info,
)
from tests.support import ManualClock, read_output, wait_until

RETENTION = 100
LAG = 30
CLEANING = CleaningSettings(RETENTION, 0, 60)  # segment.bytes 60: neighbours merge


def write(log: PartitionLog, key: bytes, value: bytes | None,
          producer: ProducerBatchInfo | None = None) -> int:
    return log.append([(None, key, value, None)], producer).base_offset


def segment_files(directory: str) -> list[str]:
    return sorted(name for name in os.listdir(directory) if parse_segment_name(name) is not None)


def stored(directory: str) -> dict[int, tuple]:
    """Every row of every segment file, read as any reader does, by offset."""
    rows: dict[int, tuple] = {}
    for name in segment_files(directory):
        conn = open_readonly(os.path.join(directory, name))
        try:
            for offset, *rest in conn.execute("SELECT * FROM records"):
                assert offset not in rows, f"offset {offset} twice"
                rows[offset] = tuple(rest)
        finally:
            conn.close()
    return rows


def clean(log: PartitionLog, directory: str, clock: ManualClock,
          cleaning: CleaningSettings) -> PartitionLog:
    """Close the log, clean its sealed segments, reopen it (as its owner will)."""
    *sealed, active = log.segments()
    log.close()
    clean_segments(directory, sealed, active.base_offset, clock(), cleaning)
    return PartitionLog.open(directory, clock=clock)


# rounds of: keyed writes (True: a tombstone), a roll or not, time passing, a cleaning or not
rounds = st.lists(st.tuples(
    st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c", None]), st.booleans()), max_size=5),
    st.booleans(), st.sampled_from([0, 40, 120]), st.booleans(),
), max_size=8)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rounds, st.sampled_from([60, 1 << 30]))
# always tried: a tombstone enters the cleaned part, then outlives delete.retention.ms
@example([([(b"a", False), (b"a", True), (b"b", False)], True, 40, True),
          ([(b"b", False)], True, 120, True), ([(b"c", True)], True, 40, True)], 60)
def test_every_key_keeps_its_last_record_at_its_offset(tmp_path_factory, history, segment_bytes):
    check_history(str(tmp_path_factory.mktemp("log") / "t-0"), history, segment_bytes)


@pytest.mark.slow
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rounds, st.sampled_from([60, 1 << 30]))
def test_every_key_keeps_its_last_record_at_its_offset_at_length(tmp_path_factory, history,
                                                                 segment_bytes):
    check_history(str(tmp_path_factory.mktemp("log") / "t-0"), history, segment_bytes)


def check_history(directory: str, history: list, segment_bytes: int) -> None:
    """Run ``history`` on a new log in ``directory`` against a model of Kafka's guarantee,
    checked after each cleaning and at the end."""
    clock = ManualClock()
    cleaning = CleaningSettings(RETENTION, LAG, segment_bytes)
    log = PartitionLog.open(directory, clock=clock, create=True)
    written: dict[int, tuple] = {}  # offset -> (timestamp, key, value, headers)
    spans: list[tuple[int, int]] = []  # the model's cleaned part: (end, entered)
    present: set[int] = set()
    for batch, roll, wait, cleans in history:
        for key, tombstone in batch:
            value = None if tombstone else b"v%d" % len(written)
            offset = write(log, key, value)
            written[offset] = (clock(), key, value, None)
            present.add(offset)
        if roll:
            log.roll()
        clock.advance(wait)
        if cleans:
            active_base = log.segments()[-1].base_offset
            end = next((o for o in sorted(written) if o < active_base
                        and clock() - written[o][0] < LAG), active_base)
            last = {written[o][1]: o for o in sorted(written) if o < end}  # None: no key
            for offset in list(present):
                if offset >= end:
                    continue
                entered = next((at for stop, at in spans if offset < stop), None)
                expired = entered is not None and clock() - entered >= RETENTION
                key, value = written[offset][1:3]
                if key is None or last[key] != offset or (value is None and expired):
                    present.discard(offset)
            if end > (spans[-1][0] if spans else 0):
                spans.append((end, clock()))
            end_before = log.log_end_offset
            log = clean(log, directory, clock, cleaning)
            assert log.log_end_offset == end_before
            assert log.log_start_offset == 0
            assert stored(directory) == {o: written[o] for o in present}
            assert not [n for n in os.listdir(directory) if n.endswith(PENDING_SUFFIX)]
    assert stored(directory) == {o: written[o] for o in present}
    log.close()


def test_a_tombstone_goes_once_delete_retention_ms_passed_in_the_cleaned_part(tmp_path):
    directory = str(tmp_path / "t-0")
    clock = ManualClock()
    log = PartitionLog.open(directory, clock=clock, create=True)
    write(log, b"k", b"v")
    write(log, b"k", None)
    write(log, b"other", b"v")
    log.roll()
    log = clean(log, directory, clock, CLEANING)
    assert sorted(stored(directory)) == [1, 2]  # the tombstone removed the key
    clock.advance(RETENTION - 1)
    log = clean(log, directory, clock, CLEANING)
    assert sorted(stored(directory)) == [1, 2]  # a consumer still has time to see it
    clock.advance(1)
    log = clean(log, directory, clock, CLEANING)
    assert sorted(stored(directory)) == [2]
    assert log.log_end_offset == 3
    log.close()


def test_min_compaction_lag_and_the_active_segment_are_untouched(tmp_path):
    directory = str(tmp_path / "t-0")
    clock = ManualClock()
    log = PartitionLog.open(directory, clock=clock, create=True)
    write(log, b"k", b"old")
    clock.advance(LAG)
    write(log, b"k", b"recent")  # within min.compaction.lag.ms at the cleaning
    write(log, b"k", b"newer")
    log.roll()
    write(log, b"k", b"active")
    write(log, b"k", b"active2")
    log = clean(log, directory, clock, CleaningSettings(RETENTION, LAG))
    # the cleanable part ends at offset 1: offset 0 is its key's last record in it
    assert sorted(stored(directory)) == [0, 1, 2, 3, 4]
    clock.advance(LAG)
    log = clean(log, directory, clock, CleaningSettings(RETENTION, LAG))
    assert sorted(stored(directory)) == [2, 3, 4]  # up to the active segment now
    log.close()


def test_small_neighbours_merge_into_one_file_sqlite3_reads(tmp_path):
    directory = str(tmp_path / "t-0")
    clock = ManualClock()
    log = PartitionLog.open(directory, clock=clock, create=True)
    for round_ in range(4):
        for key in (b"a", b"b"):
            write(log, key, b"%d" % round_)
        log.roll()
    log = clean(log, directory, clock, CleaningSettings(segment_bytes=1 << 20))
    assert segment_files(directory) == ["00000000000000000000.db", "00000000000000000008.db"]
    [cleaned, active] = log.segments()
    assert (cleaned.base_offset, cleaned.next_offset, cleaned.is_sealed) == (0, 8, True)
    out = subprocess.run(
        ["sqlite3", os.path.join(directory, "00000000000000000000.db"),
         "SELECT offset, key, value FROM records; SELECT base_offset, last_offset, bytes"
         " FROM batches; PRAGMA journal_mode"],
        capture_output=True, text=True, check=True).stdout
    assert out.split() == ["6|a|3", "7|b|3", "6|6|22", "7|7|22", "delete"]
    assert cleaned.bytes == 44
    log.close()


def test_an_idempotent_producers_last_batch_survives_its_records(tmp_path):
    directory = str(tmp_path / "t-0")
    clock = ManualClock()
    log = PartitionLog.open(directory, clock=clock, create=True)
    stamp = ProducerBatchInfo(producer_id=7, producer_epoch=0, base_sequence=0)
    first = write(log, b"k", b"from producer", stamp)
    write(log, b"k", b"overwritten")  # the producer's only record is superseded
    log.roll()
    log = clean(log, directory, clock, CleaningSettings())
    assert sorted(stored(directory)) == [1]
    retry = log.append([(None, b"k", b"from producer", None)], stamp)
    assert (retry.duplicate, retry.base_offset) == (True, first)
    with pytest.raises(OutOfOrderSequenceNumber):
        log.append([(None, b"k", b"gap", None)], ProducerBatchInfo(7, 0, 5))
    log.close()


def snapshot(directory: str) -> dict[str, object]:
    """Every file of the folder by name: a segment's rows, batches and metadata, else its
    bytes (a segment's file bytes are not compared: only what a reader sees)."""
    found: dict[str, object] = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.endswith(("-wal", "-shm")):
            continue  # the active segment's, SQLite's own
        if parse_segment_name(name) is None:
            with open(path, "rb") as fh:
                found[name] = fh.read()
            continue
        conn = open_readonly(path)
        try:
            found[name] = [conn.execute(f"SELECT * FROM {table}").fetchall()
                           for table in ("records", "batches", "segment")]
        finally:
            conn.close()
    return found


def chain(directory: str) -> tuple[list[SegmentInfo], int]:
    """The folder's sealed segments as the log knows them, and the active one's base."""
    *sealed, active = segment_files(directory)
    return ([read_segment_info(os.path.join(directory, name)) for name in sealed],
            parse_segment_name(active))


@pytest.fixture
def pristine(tmp_path) -> tuple[str, int]:
    """A partition folder with a cleaning done before (so cleaner.json exists) and four
    sealed segments to clean now, which merge; and the time of the cleaning."""
    directory = str(tmp_path / "pristine")
    clock = ManualClock()
    log = PartitionLog.open(directory, clock=clock, create=True)
    write(log, b"a", b"1")
    write(log, b"b", None)
    log.roll()
    log = clean(log, directory, clock, CLEANING)
    clock.advance(RETENTION)
    for key, value in ((b"a", b"2"), (b"c", b"3"), (b"a", None), (b"c", b"4")):
        write(log, key, value)
        log.roll()
    log.close()
    return directory, clock()


def test_a_crash_after_any_step_leaves_the_old_set_or_the_new(tmp_path, pristine):
    directory, now = pristine
    old = snapshot(directory)
    done = str(shutil.copytree(directory, tmp_path / "done"))
    clean_segments(done, *chain(done), now, CLEANING)
    new = snapshot(done)
    assert set(new) < set(old) and new != old  # files merged away, the state changed
    crash_after, steps = 0, 1
    while crash_after <= steps:
        folder = str(shutil.copytree(directory, tmp_path / f"crash{crash_after}"))
        swap = prepare_cleaning(folder, *chain(folder), now, CLEANING).swap
        steps = len(swap_steps(swap))
        for step in swap_steps(swap)[:crash_after]:
            step()
        finished = crash_after == steps
        assert recover_swap(folder) is (None if finished else crash_after > 0)
        assert snapshot(folder) == (new if crash_after else old), crash_after
        assert recover_swap(folder) is None  # again: nothing left to do
        PartitionLog.open(folder).close()
        crash_after += 1
    assert steps > 4


def test_a_half_written_pending_file_is_removed_and_the_old_set_stands(pristine):
    directory, now = pristine
    old = snapshot(directory)
    prepare_cleaning(directory, *chain(directory), now, CLEANING)
    pending = sorted(n for n in os.listdir(directory) if n.endswith(PENDING_SUFFIX))
    assert pending and MANIFEST not in os.listdir(directory)
    with open(os.path.join(directory, pending[0]), "r+b") as fh:
        fh.truncate(100)  # the crash came while it was written
    assert recover_swap(directory) is False
    assert snapshot(directory) == old
    assert STATE_FILE in old


def test_a_damaged_manifest_is_corrupt_log_naming_it(pristine):
    directory, _ = pristine
    with open(os.path.join(directory, MANIFEST), "w", encoding="utf-8") as fh:
        fh.write("[[\"0000")
    with pytest.raises(CorruptLog, match=MANIFEST):
        recover_swap(directory)


def test_a_read_in_flight_finishes_on_the_old_file(pristine):
    directory, now = pristine
    first = os.path.join(directory, segment_files(directory)[1])
    reader = open_readonly(first)
    opened = file_id(first)
    try:
        before = reader.execute("SELECT * FROM records").fetchall()
        clean_segments(directory, *chain(directory), now, CLEANING)
        assert file_id(first) != opened  # merged away
        assert reader.execute("SELECT * FROM records").fetchall() == before
    finally:
        reader.close()


CLEANING_LOOP = """
import os, shutil, sys
from eventstore.storage.compaction import CleaningSettings, clean_segments
from eventstore.storage.segment import parse_segment_name, read_segment_info
pristine, work, now, retention = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for k in range(10**6):
    folder = os.path.join(work, str(k))
    shutil.copytree(pristine, folder + ".copying")
    os.rename(folder + ".copying", folder)
    print("cleaning", k, flush=True)
    *sealed, active = sorted(n for n in os.listdir(folder) if parse_segment_name(n) is not None)
    clean_segments(folder, [read_segment_info(os.path.join(folder, n)) for n in sealed],
                   parse_segment_name(active), now, CleaningSettings(retention, 0, 60))
    print("cleaned", k, flush=True)
"""


@pytest.mark.parametrize("moment", ["writing", "swapping"])
def test_sigkill_in_the_midst_of_cleanings_leaves_the_old_set_or_the_new(tmp_path, pristine,
                                                                         moment):
    directory, now = pristine
    old = snapshot(directory)
    done = str(shutil.copytree(directory, tmp_path / "done"))
    clean_segments(done, *chain(done), now, CLEANING)
    new = snapshot(done)
    work = tmp_path / "work"
    work.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", CLEANING_LOOP, directory, str(work), str(now), str(RETENTION)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_output(child, 3, timeout=60)  # two cleanings done, the third begun
        if moment == "swapping":  # a manifest is there: killed between commit and its end
            wait_until(lambda: any((folder / MANIFEST).exists() for folder in work.iterdir()),
                       30, "a cleaning's manifest")
    finally:
        child.kill()
        child.wait()
    folders = [path for path in work.iterdir() if not path.name.endswith(".copying")]
    assert len(folders) >= 2
    for folder in folders:
        recover_swap(str(folder))
        assert snapshot(str(folder)) in (old, new), folder.name
        PartitionLog.open(str(folder)).close()
