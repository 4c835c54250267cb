"""Property test of the cleaning plan: Kafka's guarantee on any keyed history."""

from hypothesis import given
from hypothesis import strategies as st

from eventstore.storage.cleaner import plan_cleaning
from eventstore.storage.records import LogRecord

writes = st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c"]), st.booleans()), max_size=40)


@given(writes, st.integers(0, 40), st.integers(0, 200))
def test_last_record_per_key_kept_at_its_offset(history, end, elapsed):
    records = [LogRecord(offset, 0, key, None if tomb else b"v")
               for offset, (key, tomb) in enumerate(history)]
    end = min(end, len(records))
    plan = plan_cleaning(records, end, end, cleaned_at_ms=0, now_ms=elapsed,
                         delete_retention_ms=100)
    kept = set(plan.kept)
    assert all(offset in kept for offset in range(end, len(records)))
    last = {record.key: record for record in records[:end]}
    for key, record in last.items():
        expected = record.value is not None or elapsed < 100
        assert (record.offset in kept) == expected, key
    assert kept | set(plan.removed) == set(range(len(records)))
