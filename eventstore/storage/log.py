"""A partition log: the ordered chain of segment files in ``<data>/<topic>-<partition>/``.

Only the newest (active) segment is written. It rolls when the next batch would push it
past ``segment.bytes`` or once its first record is older than ``segment.ms``; retention
deletes whole sealed segments, oldest first, and advances the log-start-offset. The high
watermark (log-end-offset) is stored with every append, never derived from the rows left.

Opening a log reads each segment's metadata row, not its records, so start-up does not
grow with the data kept; idempotent producers' state is rebuilt from the ``batches`` rows
of the segments written within ``producer.id.expiration.ms`` (see producer_state).
Nothing here deletes or rewrites data to "repair" it: a broken chain raises CorruptLog
naming the file.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import apsw

from eventstore.clock import Clock, wall_clock_ms
from eventstore.config import ServerConfig, TopicConfig
from eventstore.errors import CorruptLog, InvalidRecord, OffsetOutOfRange
from eventstore.storage.producer_state import ProducerStateTable, load_producer_state
from eventstore.storage.records import AppendRow, ProducerBatchInfo, StoredRow
from eventstore.storage.segment import (
    ActiveSegment,
    AppendResult,
    SegmentFull,
    SegmentInfo,
    end_offset_within_bytes,
    finish_seal,
    first_offset_at_or_after,
    is_wal_mode,
    open_readonly,
    parse_segment_name,
    read_rows,
    read_segment_info,
    segment_name,
)


@dataclass(frozen=True, slots=True)
class LogView:
    """A consistent snapshot of a partition for readers: its segments and bounds.

    Readers never see past ``high_watermark``: only acknowledged records are visible.
    """

    segments: tuple[SegmentInfo, ...]
    log_start_offset: int
    high_watermark: int
    # the topic's message.timestamp.type: what the stored timestamps are, for fetches
    timestamp_type: str = "CreateTime"

    def segment_index(self, offset: int) -> int:
        """Index of the segment holding ``offset``."""
        bases = [s.base_offset for s in self.segments]
        return max(bisect.bisect_right(bases, offset) - 1, 0)


@dataclass
class LogStats:
    """Counters a partition log keeps for the metrics actor."""

    rolls: dict[str, int] = field(default_factory=lambda: {"size": 0, "age": 0})
    segments_deleted: int = 0


class LogReader:
    """Reads records through its own read-only connections, so a read never waits on a write.

    Each consumer (and the log itself) has one; connections are kept per segment file and
    dropped once a segment leaves the view.
    """

    def __init__(self) -> None:
        self._conns: dict[str, apsw.Connection] = {}

    def _conn(self, segment: SegmentInfo) -> apsw.Connection:
        conn = self._conns.get(segment.path)
        if conn is None:
            if not os.path.exists(segment.path):
                raise OffsetOutOfRange(
                    f"segment {os.path.basename(segment.path)} was deleted by retention"
                )
            conn = self._conns[segment.path] = open_readonly(segment.path)
        return conn

    def read(
        self, view: LogView, offset: int, max_records: int, max_bytes: int | None = None
    ) -> list[StoredRow]:
        """Rows from ``offset`` on, up to the high watermark, within both limits.

        A fetch at the high watermark returns nothing; below the log-start-offset or past
        the high watermark raises OffsetOutOfRange, as Kafka does.
        """
        check_offset(view, offset)
        rows: list[StoredRow] = []
        budget = max_bytes
        index = view.segment_index(offset)
        while offset < view.high_watermark and len(rows) < max_records:
            segment = view.segments[index]
            segment_end = min(
                segment.next_offset if segment.is_sealed else view.high_watermark,
                view.high_watermark,
            )
            end = segment_end
            conn = self._conn(segment)
            if budget is not None:
                end, used = end_offset_within_bytes(
                    conn, segment.path, offset, end, budget, at_least_one=not rows
                )
                budget -= used
            chunk = read_rows(conn, segment.path, offset, end, max_records - len(rows))
            rows.extend(chunk)
            if chunk:
                offset = chunk[-1][0] + 1
            # stop unless this segment was read to its end: the byte budget may have cut it
            # short, and moving on to the next segment would then skip records
            if offset < segment_end or (budget is not None and budget <= 0):
                break
            index += 1
            if index == len(view.segments):
                break
        return rows

    def offset_for_timestamp(self, view: LogView, timestamp: int) -> int | None:
        """The first offset whose timestamp is >= ``timestamp``; None if there is none."""
        for segment in view.segments:
            if segment.max_timestamp is None and segment.is_sealed:
                continue
            if segment.is_sealed and segment.max_timestamp < timestamp:
                continue
            found = first_offset_at_or_after(self._conn(segment), segment.path, timestamp)
            if found is not None and found < view.high_watermark:
                return max(found, view.log_start_offset)
        return None

    def forget(self, path: str) -> None:
        """Close the connection to one segment file, if open (the log is about to seal it)."""
        conn = self._conns.pop(path, None)
        if conn is not None:
            conn.close()

    def prune(self, view: LogView) -> None:
        """Close connections to segments that are no longer part of ``view``."""
        live = {s.path for s in view.segments}
        for path in [p for p in self._conns if p not in live]:
            self._conns.pop(path).close()

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


def check_offset(view: LogView, offset: int) -> None:
    """OffsetOutOfRange unless log-start-offset <= offset <= high watermark."""
    if offset < view.log_start_offset or offset > view.high_watermark:
        raise OffsetOutOfRange(
            f"offset {offset} is outside the log: log-start-offset {view.log_start_offset},"
            f" log-end-offset {view.high_watermark}"
        )


class PartitionLog:
    """One partition's commit log; the only writer of its files (not thread-safe)."""

    def __init__(
        self,
        directory: str,
        config: TopicConfig,
        clock: Clock,
        sealed: list[SegmentInfo],
        active: ActiveSegment,
        producers: ProducerStateTable,
    ) -> None:
        self.directory = directory
        self.config = config
        self._clock = clock
        self._sealed = sealed
        self._active = active
        self.producers = producers
        self._pending_seals: list[str] = []
        self._unflushed = 0
        self._reader = LogReader()
        self.stats = LogStats()
        self._view = self._make_view()

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str,
        config: TopicConfig | None = None,
        *,
        clock: Clock = wall_clock_ms,
        create: bool = False,
        producer_id_expiration_ms: int = ServerConfig.producer_id_expiration_ms,
    ) -> PartitionLog:
        """Open (or with ``create``, create) a partition log and recover its active segment.

        Verifies that the chain is contiguous; finishes a roll or a retention run that a
        crash interrupted; raises CorruptLog naming the file when anything else is wrong.
        Idempotent producers are forgotten ``producer_id_expiration_ms`` after their last
        append (Kafka's ``producer.id.expiration.ms``).
        """
        config = config or TopicConfig()
        fsync = config.flush_messages == 1
        if not os.path.isdir(directory):
            if not create:
                raise CorruptLog(f"{directory}: partition directory is missing")
            os.makedirs(directory)
        bases = sorted(
            b for b in map(parse_segment_name, os.listdir(directory)) if b is not None
        )
        paths = [os.path.join(directory, segment_name(b)) for b in bases]
        if not paths:
            if not create:
                # a partition's first segment is made before its topic is cataloged, so one
                # without any lost its files: starting over at offset 0 would hand out again
                # offsets consumers have already read and committed
                raise CorruptLog(f"{directory}: no segment file: the partition's data is gone")
            active = ActiveSegment.create(directory, 0, 0, clock(), fsync=fsync)
            producers = ProducerStateTable(producer_id_expiration_ms)
            return cls(directory, config, clock, [], active, producers)
        for path in paths[:-1]:
            if is_wal_mode(path):
                finish_seal(path)
        last = paths[-1]
        active = ActiveSegment.open(last, fsync=fsync)
        try:
            infos = [read_segment_info(p) for p in paths[:-1]]
            if active.info.is_sealed:
                infos.append(active.info)
                active.close()
                finish_seal(last)
                active = ActiveSegment.create(
                    directory, active.info.next_offset, active.info.log_start_offset, clock(),
                    fsync=fsync,
                )
            sealed = _recover_chain(infos, active.info)
            producers = load_producer_state(
                [*sealed, active.info], clock(), producer_id_expiration_ms)
        except BaseException:
            active.close()
            raise
        return cls(directory, config, clock, sealed, active, producers)

    # -- state ---------------------------------------------------------------------------

    def _make_view(self) -> LogView:
        return LogView(
            tuple(self._sealed) + (self._active.info,),
            self._active.info.log_start_offset,
            self._active.info.next_offset,
            self.config.message_timestamp_type,
        )

    def view(self) -> LogView:
        """The snapshot readers use: segments, log-start-offset, high watermark."""
        return self._view

    @property
    def log_start_offset(self) -> int:
        return self._active.info.log_start_offset

    @property
    def log_end_offset(self) -> int:
        """The offset the next record will get; also the high watermark (single node)."""
        return self._active.info.next_offset

    high_watermark = log_end_offset

    def segments(self) -> list[SegmentInfo]:
        """Every segment, oldest first; the last is the active one."""
        return list(self._view.segments)

    @property
    def size_bytes(self) -> int:
        return sum(s.bytes for s in self._view.segments)

    def update_config(self, config: TopicConfig) -> None:
        """Apply a changed topic config from the next append or timer tick on."""
        self.config = config
        self._view = self._make_view()

    # -- writing -------------------------------------------------------------------------

    def append(
        self,
        rows: Sequence[AppendRow],
        producer: ProducerBatchInfo | None = None,
        sent_bytes: int | None = None,
        *,
        checkpoint: bool = True,
    ) -> AppendResult:
        """Append one batch durably (all or nothing) and return where it landed.

        ``max.message.bytes`` limits the batch as a Kafka client sent it (``sent_bytes``,
        after compression, as Kafka measures it) when that is known, else its stored size.

        A batch ``producer`` stamped is first checked against that producer's state: a
        retry of a batch already appended is answered with its original offsets and not
        written again; one out of sequence or of an old epoch raises (nothing written).
        """
        if not rows:
            raise InvalidRecord("a record batch must hold at least one record")
        config = self.config
        now = self._clock()
        if producer is not None:
            duplicate = self.producers.check(producer, len(rows), now)
            if duplicate is not None:
                log_append_time = (duplicate.appended_ms
                                   if config.message_timestamp_type == "LogAppendTime" else -1)
                return AppendResult(duplicate.base_offset, duplicate.last_offset,
                                    log_append_time, 0, self.log_start_offset, duplicate=True)
        self._finish_roll()
        if self._is_too_old(now):
            self.roll("age")
        kwargs = {
            "log_append_time": config.message_timestamp_type == "LogAppendTime",
            "max_batch_bytes": config.max_message_bytes,
            "sent_bytes": sent_bytes,
            "producer": producer,
        }
        try:
            result = self._active.append(rows, now, roll_at_bytes=config.segment_bytes, **kwargs)
        except SegmentFull:
            self.roll("size")
            result = self._active.append(rows, now, roll_at_bytes=None, **kwargs)
        if producer is not None:
            self.producers.record(producer, result.base_offset, result.last_offset, now)
        self._unflushed += len(rows)
        if 1 < config.flush_messages <= self._unflushed:
            self.flush()
        self._view = self._make_view()
        if checkpoint:
            self.checkpoint_if_due()
        return result

    def checkpoint_if_due(self) -> bool:
        """Copy the active segment's WAL into it once it has grown (about 4 MiB), as
        SQLite's auto-checkpoint would. ``append(checkpoint=False)`` leaves this to the
        caller, to run after the append is acknowledged; returns whether it ran."""
        return self._active.checkpoint_if_due()

    def expire_producers(self) -> int:
        """Forget producers idle past ``producer.id.expiration.ms``; returns how many."""
        return self.producers.expire(self._clock())

    def flush(self) -> None:
        """Force every appended record to disk."""
        self._active.flush()
        self._unflushed = 0

    def _is_too_old(self, now: int) -> bool:
        first = self._active.info.first_append_ms
        return first is not None and now - first >= self.config.segment_ms

    def maybe_roll(self) -> bool:
        """Roll an idle active segment past ``segment.ms``; finish seals readers delayed."""
        self._pending_seals = [p for p in self._pending_seals if not finish_seal(p)]
        if self._finish_roll():
            return True
        if self._is_too_old(self._clock()):
            self.roll("age")
            return True
        return False

    def roll(self, reason: str = "size") -> None:
        """Seal the active segment and start a new one at the log-end-offset.

        When the new one cannot be made (a full disk), the sealed segment stays the log's
        last, read as any sealed one, and the next append or timer makes the new one
        (``_finish_roll``): the log never has to be reopened to go on.
        """
        if self._active.info.record_count == 0:
            return
        # the log's own read connection would keep the WAL open and delay the seal forever
        self._reader.forget(self._active.path)
        self._active.seal(self._clock())
        self.stats.rolls[reason] = self.stats.rolls.get(reason, 0) + 1
        self._finish_roll()

    def _finish_roll(self) -> bool:
        """Start the segment after a sealed active one: a roll's second half, retried until
        it succeeds. Returns whether there was one to start."""
        if not self._active.info.is_sealed:
            return False
        sealed = self._active.info
        active = ActiveSegment.create(
            self.directory, sealed.next_offset, sealed.log_start_offset, self._clock(),
            fsync=self.config.flush_messages == 1,
        )
        if is_wal_mode(sealed.path):
            self._pending_seals.append(sealed.path)
        self._sealed.append(sealed)
        self._active = active
        self._view = self._make_view()
        return True

    def apply_retention(self) -> list[SegmentInfo]:
        """Delete sealed segments past ``retention.ms`` or ``retention.bytes``, oldest first.

        The new log-start-offset is made durable before any file is deleted.
        """
        count = max(self._expired_by_time(), self._expired_by_size())
        if count == 0:
            return []
        doomed, self._sealed = self._sealed[:count], self._sealed[count:]
        # a seal still pending on a doomed file must not be retried: it would recreate it
        gone = {segment.path for segment in doomed}
        self._pending_seals = [p for p in self._pending_seals if p not in gone]
        start = self._sealed[0].base_offset if self._sealed else self._active.info.base_offset
        self._active.set_log_start_offset(start)
        self._view = self._make_view()
        for segment in doomed:
            _remove_segment_files(segment.path)
        self.stats.segments_deleted += len(doomed)
        return doomed

    def _expired_by_time(self) -> int:
        retention = self.config.retention_ms
        if retention < 0:
            return 0
        cutoff = self._clock() - retention
        count = 0
        for segment in self._sealed:
            if segment.max_timestamp is None or segment.max_timestamp >= cutoff:
                break
            count += 1
        return count

    def _expired_by_size(self) -> int:
        limit = self.config.retention_bytes
        if limit < 0:
            return 0
        excess = self.size_bytes - limit
        count = 0
        for segment in self._sealed:
            if excess - segment.bytes < 0:
                break
            excess -= segment.bytes
            count += 1
        return count

    # -- reading -------------------------------------------------------------------------

    def read(
        self, offset: int, max_records: int = 500, max_bytes: int | None = None
    ) -> list[StoredRow]:
        """Rows from ``offset``, crossing segment boundaries, within the limits."""
        self._reader.prune(self._view)
        return self._reader.read(self._view, offset, max_records, max_bytes)

    def offset_for_timestamp(self, timestamp: int) -> int | None:
        """The earliest offset whose timestamp is >= ``timestamp`` (None: none is)."""
        return self._reader.offset_for_timestamp(self._view, timestamp)

    def close(self) -> None:
        """Close every file; a crash instead of close loses no appended record."""
        self._reader.close()
        self._active.close()
        for path in self._pending_seals:
            with contextlib.suppress(Exception):
                finish_seal(path)
        self._pending_seals = []


def _recover_chain(infos: list[SegmentInfo], active: SegmentInfo) -> list[SegmentInfo]:
    """The sealed segments still kept, after checking that the chain has no gap."""
    expired, kept = split_expired(infos, active)
    for info in expired:
        # retention decided to delete it and then the process stopped
        _remove_segment_files(info.path)
    check_chain([*kept, active], active.log_start_offset)
    return kept


def split_expired(
    infos: Sequence[SegmentInfo], active: SegmentInfo
) -> tuple[list[SegmentInfo], list[SegmentInfo]]:
    """(expired, kept): sealed segments wholly below the log-start-offset, which a retention
    run interrupted by a crash left to delete, and the rest."""
    expired, kept = [], []
    for info in infos:
        gone = info.next_offset <= active.log_start_offset and info.base_offset < active.base_offset
        (expired if gone else kept).append(info)
    return expired, kept


def check_chain(chain: Sequence[SegmentInfo], log_start: int) -> None:
    """CorruptLog naming the file unless ``chain`` (oldest first, the active segment last)
    starts at ``log_start``, has every older segment sealed, and leaves no offset out.

    Pure: ``eventstore verify`` runs the same checks on a data directory it only reads.
    """
    for info in chain:
        if os.path.basename(info.path) != segment_name(info.base_offset):
            raise CorruptLog(
                f"{info.path}: file name does not match its base offset {info.base_offset}"
            )
    if chain[0].base_offset != log_start:
        raise CorruptLog(
            f"{chain[0].path}: log-start-offset is {log_start} but the first segment starts at"
            f" {chain[0].base_offset}: a segment is missing"
        )
    for older, newer in zip(chain, chain[1:], strict=False):
        if not older.is_sealed:
            raise CorruptLog(f"{older.path}: an older segment was never sealed")
        if older.next_offset != newer.base_offset:
            raise CorruptLog(
                f"{newer.path}: starts at offset {newer.base_offset} but the segment before it"
                f" ends at {older.next_offset - 1}: the chain has a gap"
            )


def _remove_segment_files(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)
