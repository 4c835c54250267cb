"""A partition log: the ordered chain of segment files in ``<data>/<topic>-<partition>/``.

Only the newest (active) segment is written. It rolls when the next batch would push it
past ``segment.bytes`` or once its first record is older than ``segment.ms``; retention
deletes whole sealed segments, oldest first, and advances the log-start-offset. The high
watermark (log-end-offset) is stored with every append, never derived from the rows left.

Opening a log reads each segment's metadata row, not its records, so start-up does not
grow with the data kept; idempotent producers' state is rebuilt from the ``batches`` rows
of the segments written within ``producer.id.expiration.ms`` (see producer_state).
Nothing here deletes or rewrites data to "repair" it: a broken chain raises CorruptLog
naming the file, and so does a chain that ends before its anchor (see anchor.py): its newest
segments are gone, and starting over at its end would hand out acknowledged offsets again.

Damage found while the log is open stays local: a segment whose file a reader finds gone
or damaged, or that a file check finds deleted or replaced, is marked in the view
(``LogView.damage``); reads stop before it and a read at it raises CorruptLog, while the
offsets before and after it are served and appends go on. The active segment's own file
deleted or replaced is CorruptLog from the next file check or roll: appending on would
acknowledge records into a file no one can open again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from eventstore.clock import Clock, wall_clock_ms
from eventstore.config import ServerConfig, TopicConfig
from eventstore.errors import (
    CorruptLog,
    InvalidRecord,
    KafkaStorageError,
    OffsetOutOfRange,
    PolicyViolation,
)
from eventstore.storage.anchor import (
    Anchor,
    check_anchor,
    newest_missing,
    read_anchor,
    write_anchor,
)
from eventstore.storage.cleaning_swap import discard_pending, recover_swap, swap_in
from eventstore.storage.compaction import (
    CleanerState,
    CleaningResult,
    CleaningSettings,
    CleaningStatus,
    PreparedCleaning,
    deletes,
    is_compacted,
    prepare_cleaning,
    read_cleaner_state,
    status_of,
)
from eventstore.storage.log_reader import Damage, LogReader, LogView, ReadFailureHook
from eventstore.storage.producer_state import ProducerStateTable, load_producer_state
from eventstore.storage.records import AppendRow, ProducerBatchInfo, StoredRow
from eventstore.storage.recovery import recover_chain, remove_segment_files
from eventstore.storage.segment import (
    ActiveSegment,
    AppendResult,
    SegmentFull,
    SegmentInfo,
    copy_segment_file,
    file_id,
    finish_seal,
    fsync_file,
    is_wal_mode,
    os_errors,
    parse_segment_name,
    read_segment_info,
    segment_name,
    write_empty_segment,
)
from eventstore.storage.timestamp_bounds import check_timestamps
from eventstore.storage.transaction_index import (
    PartitionTransactions,
    TxnBatch,
    control_record,
    load_transactions,
)

log = logging.getLogger(__name__)

DELETE_TO_HIGH_WATERMARK = -1  # DeleteRecords' offset meaning "up to the high watermark"


@dataclass
class LogStats:
    """Counters a partition log keeps for the metrics actor."""

    rolls: dict[str, int] = field(default_factory=lambda: {"size": 0, "age": 0})
    segments_deleted: int = 0


def create_partition(directory: str, template: SegmentInfo | None = None,
                     clock: Clock = wall_clock_ms) -> SegmentInfo:
    """Make a new partition: its folder and first, empty segment, opening nothing (its
    first use opens it with :meth:`PartitionLog.open`, which also writes its anchor). The
    segment is written, or copied from ``template`` (the first segment of a partition this
    made, not opened since), which costs a file copy instead of a schema creation: what
    makes creating thousands of partitions quick."""
    with os_errors(directory):
        os.makedirs(directory)
    if template is None:
        return read_segment_info(write_empty_segment(directory, 0, 0, clock()))
    return replace(template, path=copy_segment_file(template.path, directory))


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
        anchor: Anchor,
    ) -> None:
        self.directory = directory
        self.config = config
        self._clock = clock
        self._sealed = sealed
        self._active = active
        self.producers = producers
        self._anchor = anchor  # as it is on disk
        # each sealed segment's file as it was when the log opened it (see check_files)
        self._file_ids = {info.path: file_id(info.path) for info in sealed}
        self._damage: dict[int, Damage] = {}  # by base offset
        self._damage_view: tuple[Damage, ...] = ()
        self._on_read_failure: ReadFailureHook | None = None
        self._pending_seals: list[str] = []
        self._unflushed = 0
        self._reader = LogReader()
        self.stats = LogStats()
        self.cleaner_state: CleanerState = read_cleaner_state(directory)
        self.transactions = PartitionTransactions()  # open() rebuilds it from the segments
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

        Verifies that the chain is contiguous and reaches its anchor; finishes a roll or a
        retention run that a crash interrupted; raises CorruptLog naming the file when
        anything else is wrong. Idempotent producers are forgotten
        ``producer_id_expiration_ms`` after their last append (Kafka's
        ``producer.id.expiration.ms``).
        """
        config = config or TopicConfig()
        fsync = config.flush_messages == 1
        if not os.path.isdir(directory):
            if not create:
                raise CorruptLog(f"{directory}: partition directory is missing")
            os.makedirs(directory)
        recover_swap(directory)  # a cleaning's swap a crash cut short: old set or new
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
            try:
                write_anchor(directory, Anchor(0, 0))
            except BaseException:
                active.close()
                raise
            producers = ProducerStateTable(producer_id_expiration_ms)
            return cls(directory, config, clock, [], active, producers, Anchor(0, 0))
        anchor = read_anchor(directory)
        last = paths[-1]
        if anchor is not None and anchor.newest_segment > bases[-1]:
            # refused before the last file is opened for writing (which would switch a
            # sealed one to WAL mode): a failed open changes no file
            try:
                newest = read_segment_info(last)
            except KafkaStorageError:
                raise newest_missing(directory, anchor, None) from None  # names less
            check_anchor(anchor, newest)
        # a seal a reader holds back (another process's open read) is finished later, by
        # maybe_roll, as after a roll: a sealed segment must not stay in WAL mode
        unsealed = [path for path in paths[:-1] if is_wal_mode(path) and not finish_seal(path)]
        active = ActiveSegment.open(last, fsync=fsync)
        try:
            check_anchor(anchor, active.info)
            infos = [read_segment_info(p) for p in paths[:-1]]
            if active.info.is_sealed:
                infos.append(active.info)
                active.close()
                if not finish_seal(last):
                    unsealed.append(last)
                active = ActiveSegment.create(
                    directory, active.info.next_offset, active.info.log_start_offset, clock(),
                    fsync=fsync,
                )
            sealed = recover_chain(infos, active.info)
            producers = load_producer_state(
                [*sealed, active.info], clock(), producer_id_expiration_ms)
            # the active segment's base is durable: the segments before it are sealed
            base = active.info.base_offset
            # no anchor says no more than Anchor(0, 0): a new partition gets its first at
            # its first close or roll, not at every first open
            on_disk = anchor or Anchor(0, 0)
            moved = on_disk.advanced(base, base)
            if moved != on_disk:
                write_anchor(directory, moved)
        except BaseException:
            active.close()
            raise
        opened = cls(directory, config, clock, sealed, active, producers, moved)
        opened._pending_seals.extend(unsealed)
        opened.transactions = load_transactions([*sealed, active.info])
        opened._view = opened._make_view()
        return opened

    # -- state ---------------------------------------------------------------------------

    def _make_view(self) -> LogView:
        txns = self.transactions
        txns.forget_before(self._active.info.log_start_offset)
        return LogView(
            tuple(self._sealed) + (self._active.info,),
            self._active.info.log_start_offset,
            self._active.info.next_offset,
            self.config.message_timestamp_type,
            self._damage_view,
            self._on_read_failure,
            self.config.compression_type,
            txns.last_stable_offset(self._active.info.next_offset),
            txns.aborted,
            txns.seen,
        )

    def set_read_failure_hook(self, hook: ReadFailureHook | None) -> None:
        """Have every view from now on report failed reads to ``hook`` (the partition's
        owner, which then marks what is damaged)."""
        self._on_read_failure = hook
        self._view = self._make_view()

    # -- damage --------------------------------------------------------------------------

    def mark_damaged(self, segment: SegmentInfo, error: KafkaStorageError) -> Damage | None:
        """Record that ``segment`` cannot be read, so that reads stop before it; the new
        Damage, or None when it is known already or no longer part of the log (retention
        deleted it)."""
        kept = [s for s in self._view.segments
                if s.base_offset == segment.base_offset and s.path == segment.path]
        if not kept or segment.base_offset in self._damage:
            return None
        info = kept[0]
        damage = Damage(info.path, info.base_offset, info.next_offset,
                        error.args[0] if error.args else str(error))
        self._damage[info.base_offset] = damage
        self._damage_view = tuple(self._damage[b] for b in sorted(self._damage))
        self._view = self._make_view()
        return damage

    def check_files(self, *, sealed: bool) -> list[Damage]:
        """Check that the files being read and written are the ones the log opened.

        The active segment's file (and its WAL) deleted or replaced raises CorruptLog: the
        owner must stop appending. With ``sealed``, each sealed segment's file is checked
        too (a stat each); one gone or replaced is marked damaged. Returns the new damage.
        """
        if not self._active.info.is_sealed:  # else a roll waits to finish: it is closed
            self._active.check_files()
        found = []
        for info in self._sealed if sealed else ():
            now = file_id(info.path)
            if now != self._file_ids.get(info.path):
                what = "deleted" if now is None else "replaced"
                damage = self.mark_damaged(info, CorruptLog(
                    f"{info.path}: the segment file was {what} while the log was open"))
                if damage is not None:
                    found.append(damage)
        return found

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
        transactional: bool = False,
    ) -> AppendResult:
        """Append one batch durably (all or nothing) and return where it landed.

        A ``transactional`` batch (its producer's) opens or extends that producer's
        transaction here, which holds the last stable offset back until its marker; one
        of a fenced epoch raises INVALID_PRODUCER_EPOCH.

        ``max.message.bytes`` limits the batch as a Kafka client sent it (``sent_bytes``,
        after compression, as Kafka measures it) when that is known, else its stored size.
        A record stamped outside ``message.timestamp.before.max.ms`` /
        ``message.timestamp.after.max.ms`` raises InvalidTimestamp (see timestamp_bounds).

        A batch ``producer`` stamped is first checked against that producer's state: a
        retry of a batch already appended is answered with its original offsets and not
        written again; one out of sequence or of an old epoch raises (nothing written).
        """
        if not rows:
            raise InvalidRecord("a record batch must hold at least one record")
        config = self.config
        now = self._clock()
        check_timestamps(rows, now, config)  # first, as Kafka validates before duplicates
        if is_compacted(config) and any(row[1] is None for row in rows):
            # as Kafka's LogValidator: the cleaner keeps records by key
            raise InvalidRecord("a compacted topic cannot accept a record without a key")
        if transactional:
            if producer is None:
                raise InvalidRecord("a transactional batch must carry its producer id")
            self.transactions.check_epoch(producer.producer_id, producer.producer_epoch)
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
        txn = (producer.producer_id, producer.producer_epoch, None) if transactional else None
        result = self._write(rows, now, sent_bytes, producer, txn)
        if producer is not None:
            self.producers.record(producer, result.base_offset, result.last_offset, now)
        if txn is not None:
            self.transactions.apply(TxnBatch(result.base_offset, result.last_offset, *txn))
        return self._appended(rows, result, checkpoint)

    def _write(self, rows: Sequence[AppendRow], now: int, sent_bytes: int | None,
               producer: ProducerBatchInfo | None, txn: tuple[int, int, str | None] | None
               ) -> AppendResult:
        """Write one batch into the active segment, rolling first when it is full."""
        config = self.config
        kwargs = {
            "log_append_time": config.message_timestamp_type == "LogAppendTime",
            "max_batch_bytes": config.max_message_bytes,
            "sent_bytes": sent_bytes,
            "producer": producer,
            "txn": txn,
        }
        try:
            return self._active.append(rows, now, roll_at_bytes=config.segment_bytes, **kwargs)
        except SegmentFull:
            self.roll("size")
            return self._active.append(rows, now, roll_at_bytes=None, **kwargs)

    def append_marker(self, producer_id: int, producer_epoch: int, marker: str,
                      coordinator_epoch: int = 0) -> AppendResult | None:
        """Write a transaction's COMMIT or ABORT marker (a control batch of one record)
        and close the producer's transaction here; None, writing nothing, when it has none
        open (a marker written before a restart is not written twice). A marker of a
        fenced epoch raises INVALID_PRODUCER_EPOCH."""
        txns = self.transactions
        txns.check_epoch(producer_id, producer_epoch)
        if not txns.has_open(producer_id):
            return None
        now = self._clock()
        self._finish_roll()
        key, value = control_record(marker, coordinator_epoch)
        rows = [(now, key, value, None)]
        txn = (producer_id, producer_epoch, marker)
        result = self._write(rows, now, None, None, txn)
        txns.apply(TxnBatch(result.base_offset, result.last_offset, *txn))
        return self._appended(rows, result, checkpoint=True)

    def _appended(self, rows: Sequence[AppendRow], result: AppendResult, checkpoint: bool
                  ) -> AppendResult:
        """After a write: flush when due, publish the view, checkpoint when asked."""
        config = self.config
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
        # sealing a file deleted or replaced under the log would seal records no one can
        # read again, and carry on as if they were kept
        self._active.check_files()
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
        opened = self._active.file_ids[0]
        active = ActiveSegment.create(
            self.directory, sealed.next_offset, sealed.log_start_offset, self._clock(),
            fsync=self.config.flush_messages == 1,
        )
        if is_wal_mode(sealed.path):
            self._pending_seals.append(sealed.path)
        self._sealed.append(sealed)
        self._file_ids[sealed.path] = opened
        self._active = active
        self._view = self._make_view()
        base = sealed.next_offset  # every record below it is sealed: checkpointed, synced
        self._write_anchor(self._anchor.advanced(base, base))
        return True

    def _write_anchor(self, anchor: Anchor) -> None:
        if anchor != self._anchor:
            write_anchor(self.directory, anchor)
            self._anchor = anchor

    def apply_retention(
        self, publish: Callable[[LogView], None] | None = None
    ) -> list[SegmentInfo]:
        """Delete sealed segments past ``retention.ms`` or ``retention.bytes``, oldest first.

        The new log-start-offset is made durable before any file is deleted, and handed to
        ``publish`` (the owner showing it to readers) before too, so that a reader that
        finds a file gone can tell retention from damage by the latest view.
        """
        if not deletes(self.config):
            return []  # cleanup.policy=compact alone: no retention by time or size
        by_time = self._expired_by_time()
        count = max(by_time, self._expired_by_size())
        if count == 0:
            return []
        size_before = self.size_bytes
        doomed = self._delete_oldest(count, publish)
        for index, segment in enumerate(doomed):
            self._log_retention(segment, "retention.ms" if index < by_time else "retention.bytes",
                                size_before)
        return doomed

    def _log_retention(self, segment: SegmentInfo, reason: str, size_before: int) -> None:
        """One line per segment retention deleted, as Kafka logs each: the partition, the
        file, the offsets it held, and the key (``reason``) that deleted it with the figure
        that passed it (its newest timestamp, or the partition's size before)."""
        config = self.config
        if reason == "retention.ms":
            passed = {"retention_ms": config.retention_ms,
                      "newest_timestamp": segment.max_timestamp}
        else:
            passed = {"retention_bytes": config.retention_bytes,
                      "partition_bytes_before": size_before}
        log.info("retention deleted a segment", extra={"fields": {
            "partition": os.path.basename(self.directory),
            "segment": os.path.basename(segment.path),
            "offsets": f"{segment.base_offset}-{segment.last_offset}",
            "reason": reason, **passed}})

    def delete_records(
        self, offset: int, publish: Callable[[LogView], None] | None = None
    ) -> int:
        """DeleteRecords: move the log-start-offset up to ``offset`` (-1: the high
        watermark) and delete every sealed segment wholly below it; returns the
        log-start-offset after (Kafka's low watermark).

        As Kafka's ``Partition.deleteRecordsOnLeader`` and
        ``UnifiedLog.maybeIncrementLogStartOffset``: OFFSET_OUT_OF_RANGE for an offset
        below 0 or past the high watermark; an offset at or below the log-start-offset
        changes nothing. Records below the new start stay in the segment holding it, hidden from
        readers; the new start is durable (the active segment's metadata row) before any
        file goes, and ``publish`` sees it before too (see apply_retention).
        """
        if not deletes(self.config):
            # as Kafka's ReplicaManager: only a log whose cleanup.policy has delete
            raise PolicyViolation(
                f"records of partition {os.path.basename(self.directory)} cannot be deleted:"
                f" its cleanup.policy is {self.config.cleanup_policy}")
        target = self.high_watermark if offset == DELETE_TO_HIGH_WATERMARK else offset
        if not 0 <= target <= self.high_watermark:
            raise OffsetOutOfRange(
                f"cannot delete records before offset {target}: the log ends at offset"
                f" {self.high_watermark} (its high watermark)")
        if target <= self.log_start_offset:
            return self.log_start_offset
        self._finish_roll()  # the log-start-offset is kept in the active segment
        self._active.set_log_start_offset(target)
        self._view = self._make_view()
        count = sum(1 for segment in self._sealed if segment.next_offset <= target)
        if count:
            self._delete_oldest(count, publish)
        elif publish is not None:
            publish(self._view)
        return self.log_start_offset

    def _delete_oldest(
        self, count: int, publish: Callable[[LogView], None] | None
    ) -> list[SegmentInfo]:
        """Delete the ``count`` oldest sealed segments, the log-start-offset (never moving
        back: DeleteRecords puts it inside the oldest one kept) durable and published
        first."""
        doomed, self._sealed = self._sealed[:count], self._sealed[count:]
        # a seal still pending on a doomed file must not be retried: it would recreate it
        gone = {segment.path for segment in doomed}
        self._pending_seals = [p for p in self._pending_seals if p not in gone]
        for segment in doomed:
            self._file_ids.pop(segment.path, None)
            if self._damage.pop(segment.base_offset, None) is not None:
                self._damage_view = tuple(self._damage[b] for b in sorted(self._damage))
        start = self._sealed[0].base_offset if self._sealed else self._active.info.base_offset
        start = max(start, self.log_start_offset)
        if start != self.log_start_offset:
            self._active.set_log_start_offset(start)
        self._view = self._make_view()
        if publish is not None:
            publish(self._view)
        for segment in doomed:
            remove_segment_files(segment.path)
        self.stats.segments_deleted += len(doomed)
        return doomed

    def _expired_by_time(self) -> int:
        retention = self.config.retention_ms
        if retention < 0:
            return 0
        cutoff = self._clock() - retention
        count = 0
        for segment in self._sealed:
            # a segment a cleaning emptied has no timestamp: its seal's time stands in, as
            # Kafka takes an empty segment's file time
            newest = segment.sealed_ms if segment.max_timestamp is None else segment.max_timestamp
            if newest is None or newest >= cutoff:
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

    # -- compaction ----------------------------------------------------------------------

    def cleanable(self) -> tuple[tuple[SegmentInfo, ...], int]:
        """What a cleaning may rewrite now: the sealed chain, oldest first, and the base
        of the segment after it (everything below it is sealed); a seal a reader holds back
        ends it, as that file is not final yet."""
        sealed = []
        for info in self._sealed:
            if info.path in self._pending_seals:
                break
            sealed.append(info)
        return tuple(sealed), sealed[-1].next_offset if sealed else 0

    def clean(self, now_ms: int | None = None) -> CleaningResult:
        """Run one cleaning of this log now, whatever its dirty ratio (``eventstore
        compact``, offline; a server's cleaner prepares off the owner's thread and hands
        the result to :meth:`install_cleaning`). PolicyViolation unless the topic's
        cleanup.policy has compact."""
        if not is_compacted(self.config):
            raise PolicyViolation(
                f"{os.path.basename(self.directory)}: cleanup.policy is"
                f" {self.config.cleanup_policy}, not compact: nothing to clean")
        sealed, active_base = self.cleanable()
        now = self._clock() if now_ms is None else now_ms
        prepared = prepare_cleaning(self.directory, sealed, active_base, now,
                                    CleaningSettings.of(self.config))
        self.install_cleaning(prepared)
        return prepared.result

    def install_cleaning(self, prepared: PreparedCleaning) -> bool:
        """Swap a prepared cleaning's files in for the ones it replaces and read the log
        as it left it; False (its pending files removed, nothing changed) when the chain
        changed since it was planned (retention or DeleteRecords deleted a segment it
        read, or its pending files are gone), as the cleaning no longer fits the log.

        Only the log's owner calls this, so no append runs meanwhile; a reader with an
        older view finishes its read on the old files (open connections keep them)."""
        count = len(prepared.replaced)
        fits = (tuple(self._sealed[:count]) == prepared.replaced and all(
            file_id(info.path) == self._file_ids.get(info.path) for info in prepared.replaced)
            and prepared.swap.pending_exist())
        if not fits:
            discard_pending(prepared.swap)
            return False
        swap_in(prepared.swap)
        new = {info.path for info in prepared.segments}
        for info in prepared.replaced:
            self._file_ids.pop(info.path, None)
            self._reader.forget(info.path)
            self._damage.pop(info.base_offset, None)
        self._damage_view = tuple(self._damage[b] for b in sorted(self._damage))
        for path in new:
            self._file_ids[path] = file_id(path)
        self._sealed = [*prepared.segments, *self._sealed[count:]]
        self.cleaner_state = prepared.state
        self._view = self._make_view()
        return True

    def cleaning_status(self) -> CleaningStatus:
        """This log's cleaning status (see compaction.CleaningStatus), from memory."""
        return status_of(self._sealed, self.cleaner_state)

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
        """Close every file and anchor the log-end-offset; a crash instead of close loses
        no appended record (the anchor then stays where the last roll or open put it)."""
        self._reader.close()
        self._active.close()
        for path in self._pending_seals:
            with contextlib.suppress(Exception):
                finish_seal(path)
        self._pending_seals = []
        info = self._active.info
        # A failed anchor write keeps the older anchor, which the chain still reaches: safe.
        with contextlib.suppress(KafkaStorageError, OSError):
            # closing checkpointed the WAL into the segment and synced both, unless a
            # reader (another process) held it: then the WAL itself is synced here
            if os.path.exists(info.path + "-wal"):
                fsync_file(info.path + "-wal")
            self._write_anchor(self._anchor.advanced(info.base_offset, info.next_offset))
