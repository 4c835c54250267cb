"""Property tests of the cleaning plan: Kafka's guarantee on any keyed history, plain logic."""

from hypothesis import given
from hypothesis import strategies as st

from eventstore.storage.cleaner import (
    BatchRow,
    CleanedPart,
    cleaning_due,
    dirty_ratio,
    group_segments,
    kept_batches,
    plan_cleaning,
)
from eventstore.storage.records import LogRecord
from eventstore.storage.segment import SegmentInfo

writes = st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c", None]), st.booleans()),
                  max_size=40)


@given(writes, st.integers(0, 40), st.integers(0, 200))
def test_last_record_per_key_kept_at_its_offset(history, end, elapsed):
    records = [LogRecord(offset, 0, key, None if tomb else b"v")
               for offset, (key, tomb) in enumerate(history)]
    end = min(end, len(records))
    cleaned = CleanedPart(((end, 0),)) if end else CleanedPart()
    plan = plan_cleaning(records, end, cleaned, now_ms=elapsed, delete_retention_ms=100)
    kept = set(plan.kept)
    assert all(offset in kept for offset in range(end, len(records)))
    last = {record.key: record for record in records[:end] if record.key is not None}
    assert not kept & {record.offset for record in records[:end] if record.key is None}
    for key, record in last.items():
        expected = record.value is not None or elapsed < 100
        assert (record.offset in kept) == expected, key
    assert kept | set(plan.removed) == set(range(len(records)))


def test_a_tombstone_counts_from_the_cleaning_that_took_it_in():
    # cleanings every 10 ms must not keep restarting a tombstone's delete.retention.ms
    records = [LogRecord(0, 0, b"k", b"v"), LogRecord(1, 0, b"k", None)]
    cleaned = CleanedPart()
    for now in range(0, 200, 10):
        plan = plan_cleaning(records, 2, cleaned, now, delete_retention_ms=100)
        cleaned = plan.cleaned
        records = [record for record in records if record.offset in plan.kept]
        assert records == ([] if now >= 100 else [LogRecord(1, 0, b"k", None)]), now
    assert cleaned.through == 2


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 300)), max_size=12))
def test_cleaned_part_remembers_when_each_offset_entered(cleanings):
    cleaned, truth, end, now = CleanedPart(), {}, 0, 0
    for grow, wait in cleanings:
        now += wait
        for offset in range(end, end + grow):
            truth[offset] = now
        end += grow
        cleaned = cleaned.extended(end, now, delete_retention_ms=100)
    assert cleaned.through == end
    for offset, entered in truth.items():
        found = cleaned.entered_ms(offset)
        # merged spans only ever move an expired time later, still expired
        assert found == entered or (now - entered >= 100 and now - found >= 100)
    assert cleaned.entered_ms(end) is None


def test_emptied_batches_go_but_a_producers_last_one_stays():
    batches = [BatchRow(0, 1, 0, 0, 0, 7, 0, 0), BatchRow(2, 3, 0, 0, 0, 7, 0, 2),
               BatchRow(4, 4, 0, 0, 0, None, None, None), BatchRow(5, 6, 0, 0, 0, None, None, None)]
    assert kept_batches(batches, kept=[1, 6]) == (0, 2, 5)


@given(st.lists(st.integers(1, 50), max_size=20), st.integers(1, 120))
def test_groups_are_consecutive_and_within_segment_bytes(sizes, limit):
    groups = group_segments(sizes, limit)
    assert [i for group in groups for i in group] == list(range(len(sizes)))
    for group in groups:
        assert len(group) == 1 or sum(sizes[i] for i in group) <= limit
    for before, after in zip(groups, groups[1:], strict=False):
        assert sum(sizes[i] for i in before) + sizes[after[0]] > limit


def _segment(base: int, end: int, size: int, oldest: int) -> SegmentInfo:
    return SegmentInfo(f"{base}.db", base, end, 0, size, oldest, oldest, 0, 0, 0)


def test_dirty_ratio_and_when_a_cleaning_is_due():
    sealed = [_segment(0, 10, 300, 0), _segment(10, 20, 100, 50), _segment(20, 30, 100, 90)]
    assert dirty_ratio(sealed, 0) == 1.0
    assert dirty_ratio(sealed, 10) == 0.4
    assert dirty_ratio(sealed, 15) == 0.4  # the segment the cleaned part ends in is dirty
    assert dirty_ratio([], 0) == 0.0
    assert not cleaning_due(sealed, 10, now_ms=100, min_dirty_ratio=0.5, max_lag_ms=1000)
    assert cleaning_due(sealed, 10, now_ms=100, min_dirty_ratio=0.4, max_lag_ms=1000)
    # max.compaction.lag.ms: the oldest dirty record (at 50) is overdue whatever the ratio
    assert cleaning_due(sealed, 10, now_ms=1051, min_dirty_ratio=0.5, max_lag_ms=1000)
    assert not cleaning_due(sealed, 30, now_ms=10**9, min_dirty_ratio=0.0, max_lag_ms=0)
