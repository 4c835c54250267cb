"""Property test of a partition log against a small in-memory model of it.

Hypothesis drives any sequence of appends, clock ticks, rolls (by size, by age on append,
by ``maybe_roll`` and on demand), retention runs and close/reopen cycles. After every step
the log must read back exactly what the model holds from the log-start-offset on, in
order and with contiguous offsets, its segment chain must match the model's, and the
log-end-offset must never go backwards. Reads with limits must return the model's prefix,
and ``offset_for_timestamp`` must agree with a brute-force search.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from support import T0, ManualClock

from eventstore.config import TopicConfig
from eventstore.errors import OffsetOutOfRange
from eventstore.storage.log import PartitionLog
from eventstore.storage.log_reader import LogReader
from eventstore.storage.records import StoredRow, encode_headers, record_size
from eventstore.storage.segment import is_wal_mode

headers = st.lists(
    st.tuples(st.text(max_size=4), st.none() | st.binary(max_size=4)), max_size=2
).map(tuple)
records = st.tuples(
    st.none() | st.integers(T0 - 5_000, T0 + 20_000),  # None: stamped with the append time
    st.none() | st.binary(max_size=16),
    st.none() | st.binary(max_size=80),
    headers,
)


@dataclass
class ModelSegment:
    """What the model expects of one segment."""

    base: int
    next: int
    bytes: int = 0
    max_ts: int | None = None
    first_append: int | None = None


class PartitionLogMachine(RuleBasedStateMachine):
    """Runs a PartitionLog and a model of it side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="eventstore-prop-")
        self.path = os.path.join(self.root, "topic-0")
        self.clock = ManualClock(T0)
        self.rows: list[StoredRow] = []  # every record ever appended, at its offset
        self.batches: list[tuple[int, int, int]] = []  # (base, last, bytes)
        self.segments = [ModelSegment(0, 0)]
        self.log_start = 0
        self.highest_leo = 0
        self.consumer = LogReader()  # keeps connections open, as a consumer does
        self.log: PartitionLog

    @initialize(
        segment_bytes=st.integers(100, 1500),
        segment_ms=st.integers(10, 1000),
        timestamp_type=st.sampled_from(["CreateTime", "LogAppendTime"]),
    )
    def open_log(self, segment_bytes: int, segment_ms: int, timestamp_type: str) -> None:
        config = TopicConfig.from_mapping({
            "segment.bytes": segment_bytes,
            "segment.ms": segment_ms,
            "message.timestamp.type": timestamp_type,
        })
        self.log = PartitionLog.open(self.path, config, clock=self.clock, create=True)

    def teardown(self) -> None:
        self.consumer.close()
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the model -------------------------------------------------------------------------

    @property
    def leo(self) -> int:
        return len(self.rows)

    def model_roll(self) -> None:
        if self.segments[-1].next > self.segments[-1].base:
            self.segments.append(ModelSegment(self.leo, self.leo))

    def expected_read(self, offset: int, max_records: int, max_bytes: int | None) -> list:
        """Whole batches within ``max_bytes`` (the first one always), then ``max_records``."""
        end = self.leo
        if max_bytes is not None:
            total, end = 0, offset
            for _, last, size in self.batches:
                if last < offset:
                    continue
                if total and total + size > max_bytes:
                    break
                total += size
                end = last + 1
        return self.rows[offset:min(end, offset + max_records)]

    # -- rules -----------------------------------------------------------------------------

    @rule(batch=st.lists(records, min_size=1, max_size=8))
    def append(self, batch: list) -> None:
        now = self.clock.now
        config = self.log.config
        size = sum(record_size(key, value, hdrs) for _, key, value, hdrs in batch)
        active = self.segments[-1]
        too_old = active.first_append is not None and now - active.first_append >= config.segment_ms
        too_full = active.bytes > 0 and active.bytes + size > config.segment_bytes
        if too_old or too_full:  # after an age roll the new segment is empty: never too full
            self.model_roll()
        result = self.log.append(
            [(ts, key, value, encode_headers(hdrs)) for ts, key, value, hdrs in batch]
        )
        base = self.leo
        assert (result.base_offset, result.last_offset) == (base, base + len(batch) - 1)
        log_append_time = config.message_timestamp_type == "LogAppendTime"
        for ts, key, value, hdrs in batch:
            stored_ts = now if log_append_time or ts is None else ts
            self.rows.append((self.leo, stored_ts, key, value, encode_headers(hdrs)))
        self.batches.append((base, self.leo - 1, size))
        active = self.segments[-1]
        active.next = self.leo
        active.bytes += size
        batch_max = max(row[1] for row in self.rows[base:])
        active.max_ts = batch_max if active.max_ts is None else max(active.max_ts, batch_max)
        if active.first_append is None:
            active.first_append = now

    @rule(ms=st.integers(0, 1500))
    def tick(self, ms: int) -> None:
        self.clock.now += ms

    @rule()
    def maybe_roll(self) -> None:
        active = self.segments[-1]
        due = (active.first_append is not None
               and self.clock.now - active.first_append >= self.log.config.segment_ms)
        assert self.log.maybe_roll() == due
        if due:
            self.model_roll()

    @rule()
    def roll(self) -> None:
        self.log.roll()
        self.model_roll()

    @rule(
        retention_ms=st.just(-1) | st.integers(0, 3000),
        retention_bytes=st.just(-1) | st.integers(0, 3000),
    )
    def retention(self, retention_ms: int, retention_bytes: int) -> None:
        self.log.update_config(
            replace(self.log.config, retention_ms=retention_ms, retention_bytes=retention_bytes)
        )
        sealed = self.segments[:-1]
        by_time = 0
        if retention_ms >= 0:
            cutoff = self.clock.now - retention_ms
            while by_time < len(sealed) and sealed[by_time].max_ts < cutoff:
                by_time += 1
        by_size = 0
        if retention_bytes >= 0:
            total = sum(s.bytes for s in self.segments)
            while by_size < len(sealed) and total - sealed[by_size].bytes >= retention_bytes:
                total -= sealed[by_size].bytes
                by_size += 1
        doomed = max(by_time, by_size)
        deleted = self.log.apply_retention()
        assert [s.base_offset for s in deleted] == [s.base for s in sealed[:doomed]]
        for segment in deleted:
            assert not os.path.exists(segment.path)
        self.segments = self.segments[doomed:]
        self.log_start = self.segments[0].base

    @rule()
    def reopen(self) -> None:
        """Close and reopen, as a restart does; every sealed segment is then a single file."""
        config = self.log.config
        self.consumer.close()
        self.log.close()
        self.log = PartitionLog.open(self.path, config, clock=self.clock)
        for segment in self.log.segments()[:-1]:
            assert not is_wal_mode(segment.path)
            assert not os.path.exists(segment.path + "-wal")

    @rule(data=st.data())
    def consumer_read(self, data: st.DataObject) -> None:
        view = self.log.view()
        self.consumer.prune(view)
        offset = data.draw(st.integers(self.log_start, self.leo), label="offset")
        assert self.consumer.read(view, offset, 20) == self.rows[offset:offset + 20]

    @rule(data=st.data())
    def read_with_limits(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.log_start, self.leo), label="offset")
        max_records = data.draw(st.integers(1, 40), label="max_records")
        max_bytes = data.draw(st.none() | st.integers(0, 1500), label="max_bytes")
        got = self.log.read(offset, max_records, max_bytes)
        assert got == self.rows[offset:offset + len(got)], "a read must return a prefix"
        assert got == self.expected_read(offset, max_records, max_bytes)

    @rule(data=st.data())
    def read_out_of_range(self, data: st.DataObject) -> None:
        below = list(range(max(0, self.log_start - 3), self.log_start))
        offset = data.draw(st.sampled_from([*below, self.leo + 1, self.leo + 100]))
        with pytest.raises(OffsetOutOfRange):
            self.log.read(offset, 10)

    @rule(timestamp=st.integers(T0 - 6_000, T0 + 60_000))
    def offset_for_timestamp(self, timestamp: int) -> None:
        expected = next(
            (row[0] for row in self.rows[self.log_start:] if row[1] >= timestamp), None
        )
        assert self.log.offset_for_timestamp(timestamp) == expected

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def chain_matches_model(self) -> None:
        segments = self.log.segments()
        assert [(s.base_offset, s.next_offset, s.bytes) for s in segments] == [
            (s.base, s.next, s.bytes) for s in self.segments
        ]
        assert [s.is_sealed for s in segments] == [True] * (len(segments) - 1) + [False]
        assert self.log.log_start_offset == self.log_start

    @invariant()
    def log_end_offset_never_goes_back(self) -> None:
        leo = self.log.log_end_offset
        assert leo == self.leo
        assert leo >= self.highest_leo
        self.highest_leo = leo

    @invariant()
    def reads_back_everything_kept(self) -> None:
        got = self.log.read(self.log_start, max_records=len(self.rows) + 1)
        assert [row[0] for row in got] == list(range(self.log_start, self.leo))
        assert got == self.rows[self.log_start:]


# about 150 runs of up to 40 steps take a few seconds; a "thorough" profile asks for more
PartitionLogMachine.TestCase.settings = settings(
    settings.default,
    max_examples=max(150, settings.default.max_examples),
    stateful_step_count=40,
)
TestPartitionLog = PartitionLogMachine.TestCase
