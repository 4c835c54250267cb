"""The small tables: ``topics``, ``partitions``, ``segments`` and ``consumer_groups``.

Each has a row per topic, partition, segment or committed offset, computed whole when a
scan starts. An equality on the table's topic (and partition) column narrows what is read;
SQLite checks every constraint again, so a value that cannot narrow is simply ignored.

``partitions`` and ``segments`` have a ``problem`` column: NULL, or what `eventstore verify`
would say of the chain (a gap, a missing first or newest segment, a segment whose metadata
cannot be read), in one line naming the file; each problem found is also kept as a warning
(see DataReader.take_warnings). A partition whose newest segments are gone shows the
log-end-offset its anchor says it reached: offsets up to there are the log's, unreadable.

Log compaction shows in both: a compacted topic's partitions have their sealed segments'
cleaned and dirty bytes (the active segment is never cleaned, so not counted; a segment
the cleaned part ends inside is dirty), the dirty ratio, the last cleaning time, and the
cleanings' count and bytes removed so far, as the partition's folder holds them (NULL for
a partition never cleaned of a topic without ``compact`` in its ``cleanup.policy``
overrides); a segment's ``record_count`` is the records it
holds and ``gaps`` the offsets of its range a cleaning removed (offsets are never reused).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import apsw

from eventstore.config import TopicConfig
from eventstore.errors import KafkaStorageError
from eventstore.sql.coerce import EQ, Row, SqlValue
from eventstore.sql.reader import PartitionState
from eventstore.sql.snapshot import Snapshot, SnapshotScope
from eventstore.storage.compaction import STATE_FILE, CleaningStatus, is_compacted, status_of
from eventstore.storage.recovery import chain_problems
from eventstore.storage.segment import SegmentInfo


@dataclass(frozen=True, slots=True)
class Narrowing:
    """The topic and partition a scan may be limited to (None: any)."""

    topic: str | None = None
    partition: int | None = None

    def allows(self, topic: str, partition: int | None = None) -> bool:
        return (self.topic is None or topic == self.topic) and (
            self.partition is None or partition is None or partition == self.partition
        )


Producer = Callable[[Snapshot, Narrowing], Iterator[Row]]


@dataclass(frozen=True, slots=True)
class InfoTableSpec:
    """A table's schema, where its topic/partition columns are, and how to make its rows."""

    name: str
    schema: str
    topic_column: int
    partition_column: int | None
    produce: Producer


@dataclass(frozen=True, slots=True)
class Chain:
    """A partition's kept segments as read now, and what is wrong with them."""

    segments: tuple[tuple[int, SegmentInfo | None], ...]  # (index, metadata; None: unreadable)
    problems: tuple[tuple[str, str], ...]  # (file whose row shows it, one line naming the file)
    cleaning: CleaningStatus | None = None  # a compacted topic's partition only

    @property
    def problem(self) -> str | None:
        return "; ".join(text for _, text in self.problems) or None

    def problem_of(self, path: str) -> str | None:
        return "; ".join(text for at, text in self.problems if at == path) or None


def _chain(snapshot: Snapshot, state: PartitionState) -> Chain:
    """Each kept segment that still exists, oldest first, checked as start-up checks it."""
    segments: list[tuple[int, SegmentInfo | None]] = []
    problems: list[tuple[str, str]] = []
    for index in range(len(state.bases)):
        try:
            info = snapshot.reader.segment_info(state, index)
        except KafkaStorageError as exc:
            segments.append((index, None))
            problems.append((state.path(index), exc.args[0]))
            continue
        if info is not None:
            segments.append((index, info))
    infos = [info for _, info in segments if info is not None]
    if infos and not problems:  # a segment unread leaves the chain unjudged: its problem stands
        # retention deleted the oldest since the listing: the chain starts at what is left
        start = state.log_start_offset if segments[0][0] == 0 else infos[0].base_offset
        problems += [(path, f"{path}: {what}") for path, what in chain_problems(infos, start)]
    if state.problem is not None:
        # the newest segments are gone: the newest one left shows it (else the folder)
        newest = state.path(len(state.bases) - 1) if state.bases else state.directory
        problems.append((newest, state.problem))
    cleaning = None
    topic = snapshot.topic(state.topic)
    # a server-wide cleanup.policy is not in the catalog: a folder the cleaner has
    # cleaned shows its figures whatever the topic's overrides say now
    cleaned_before = os.path.exists(os.path.join(state.directory, STATE_FILE))
    if topic is not None and (cleaned_before
                              or is_compacted(TopicConfig.from_mapping(topic.config))):
        try:
            cleaner = snapshot.reader.cleaner_state(state)
        except KafkaStorageError as exc:
            problems.append((state.directory, exc.args[0]))
        else:
            sealed = [info for index, info in segments
                      if info is not None and not state.is_active(index)]
            cleaning = status_of(sealed, cleaner)
    for _, text in problems:
        snapshot.reader.warn(f"partition {state.name}: {text}")
    return Chain(tuple(segments), tuple(problems), cleaning)


def _partition_states(snapshot: Snapshot, narrowing: Narrowing) -> Iterator[PartitionState]:
    for topic in snapshot.catalog.topics:
        if not narrowing.allows(topic.name):
            continue
        for partition in range(topic.partitions):
            if narrowing.allows(topic.name, partition):
                yield snapshot.partition(topic.name, partition)


def topic_rows(snapshot: Snapshot, narrowing: Narrowing) -> Iterator[Row]:
    for topic in snapshot.catalog.topics:
        if narrowing.allows(topic.name):
            yield topic.name, topic.partitions, json.dumps(dict(topic.config), sort_keys=True)


def partition_rows(snapshot: Snapshot, narrowing: Narrowing) -> Iterator[Row]:
    for state in _partition_states(snapshot, narrowing):
        chain = _chain(snapshot, state)
        infos = [info for _, info in chain.segments if info is not None]
        cleaning = chain.cleaning
        yield (
            state.topic, state.partition, state.log_start_offset, state.log_end_offset,
            len(chain.segments), sum(info.bytes for info in infos), chain.problem,
            *((None,) * 6 if cleaning is None else (
                cleaning.cleaned_bytes, cleaning.dirty_bytes, cleaning.dirty_ratio,
                cleaning.last_cleaned_ms, cleaning.runs, cleaning.bytes_removed)),
        )


def segment_rows(snapshot: Snapshot, narrowing: Narrowing) -> Iterator[Row]:
    for state in _partition_states(snapshot, narrowing):
        chain = _chain(snapshot, state)
        for index, info in chain.segments:
            path = state.path(index)
            end = state.end(index)  # the active segment ends at the high watermark
            problem = chain.problem_of(path)
            if info is None:  # its metadata cannot be read: where it starts is all we know
                yield (state.topic, state.partition, state.bases[index], None, None, None,
                       None, None, None, None, int(state.is_active(index)), path, problem,
                       None)
                continue
            held = _held(snapshot, state, chain, index, end)
            yield (
                state.topic, state.partition, info.base_offset, end - 1,
                held, info.bytes, info.min_timestamp, info.max_timestamp,
                info.created_ms, info.sealed_ms, int(info.sealed_ms is None), path, problem,
                None if held is None else end - info.base_offset - held,
            )


def _held(snapshot: Snapshot, state: PartitionState, chain: Chain, index: int,
          end: int) -> int | None:
    """Records segment ``index`` holds: its offsets, but counted in a file a cleaning
    rewrote (one starting inside the cleaned part), which may have gaps; None if it went
    meanwhile."""
    base = state.bases[index]
    if chain.cleaning is None or base >= chain.cleaning.cleaned_through:
        return end - base
    return snapshot.reader.held_records(state, index)


def group_rows(snapshot: Snapshot, narrowing: Narrowing) -> Iterator[Row]:
    """Committed offsets with the partition's log-end-offset and the lag (LEO - committed),
    and the group's type (Kafka's ``classic`` or ``consumer``) with, for a ``consumer``
    group (KIP-848), its group epoch and target assignment epoch (NULL for a classic one).

    LEO and lag are NULL when the partition no longer exists (its topic was deleted).
    """
    epochs = snapshot.catalog.group_epochs
    for commit in snapshot.catalog.offsets:
        if not narrowing.allows(commit.topic, commit.partition):
            continue
        topic = snapshot.topic(commit.topic)
        end: int | None = None
        if topic is not None and 0 <= commit.partition < topic.partitions:
            end = snapshot.partition(commit.topic, commit.partition).high_watermark
        group_epoch, assignment_epoch = epochs.get(commit.group_id, (None, None))
        yield (
            commit.group_id, commit.topic, commit.partition, commit.offset, end,
            None if end is None else end - commit.offset, commit.metadata, commit.commit_ms,
            "classic" if group_epoch is None else "consumer", group_epoch, assignment_epoch,
        )


INFO_TABLES = (
    InfoTableSpec(
        "topics",
        "CREATE TABLE topics (topic TEXT PRIMARY KEY, partitions INTEGER, config TEXT)"
        " WITHOUT ROWID",
        0, None, topic_rows,
    ),
    InfoTableSpec(
        "partitions",
        "CREATE TABLE partitions (topic TEXT, partition INTEGER, log_start_offset INTEGER,"
        " log_end_offset INTEGER, segment_count INTEGER, bytes INTEGER, problem TEXT,"
        " cleaned_bytes INTEGER, dirty_bytes INTEGER, dirty_ratio REAL,"
        " last_cleaned_ms INTEGER, cleaner_runs INTEGER, cleaner_bytes_removed INTEGER,"
        " PRIMARY KEY (topic, partition)) WITHOUT ROWID",
        0, 1, partition_rows,
    ),
    InfoTableSpec(
        "segments",
        "CREATE TABLE segments (topic TEXT, partition INTEGER, base_offset INTEGER,"
        " last_offset INTEGER, record_count INTEGER, bytes INTEGER, min_timestamp INTEGER,"
        " max_timestamp INTEGER, created_ms INTEGER, sealed_ms INTEGER, active INTEGER,"
        " path TEXT, problem TEXT, gaps INTEGER, PRIMARY KEY (topic, partition, base_offset))"
        " WITHOUT ROWID",
        0, 1, segment_rows,
    ),
    InfoTableSpec(
        "consumer_groups",
        "CREATE TABLE consumer_groups (group_id TEXT, topic TEXT, partition INTEGER,"
        " committed_offset INTEGER, log_end_offset INTEGER, lag INTEGER, metadata TEXT,"
        " commit_ms INTEGER, group_type TEXT, group_epoch INTEGER, assignment_epoch INTEGER,"
        " PRIMARY KEY (group_id, topic, partition)) WITHOUT ROWID",
        1, 2, group_rows,
    ),
)


class InfoCursor:
    """A scan of an info table: its rows are computed in Filter, then walked."""

    def __init__(self, spec: InfoTableSpec, scope: SnapshotScope) -> None:
        self._spec = spec
        self._scope = scope
        self._snapshot = scope.acquire()
        self._rows: list[Row] = []
        self._index = 0

    def Filter(self, idx_num: int, idx_str: str | None, args: tuple) -> None:
        topic: str | None = None
        partition: int | None = None
        for column, value in zip(idx_str.split(",") if idx_str else (), args, strict=True):
            if column == "t" and isinstance(value, str):
                topic = value
            elif column == "p" and isinstance(value, int):
                partition = value
        self._rows = list(self._spec.produce(self._snapshot, Narrowing(topic, partition)))
        self._index = 0

    def Next(self) -> None:
        self._index += 1

    def Eof(self) -> bool:
        return self._index >= len(self._rows)

    def Column(self, number: int) -> SqlValue:
        return self._rows[self._index][number]

    def Close(self) -> None:
        self._scope.release()


class InfoTable:
    """An info table object: passes topic/partition equalities to Filter as hints."""

    def __init__(self, spec: InfoTableSpec, scope: SnapshotScope) -> None:
        self._spec = spec
        self._scope = scope

    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:
        names = {self._spec.topic_column: "t", self._spec.partition_column: "p"}
        used: list[str] = []
        for n in range(info.nConstraint):
            name = names.get(info.get_aConstraint_iColumn(n))
            if (
                name is None or name in used or not info.get_aConstraint_usable(n)
                or info.get_aConstraint_op(n) != EQ or info.get_aConstraintUsage_in(n)
            ):
                continue
            used.append(name)
            info.set_aConstraintUsage_argvIndex(n, len(used))
        info.idxStr = ",".join(used)
        info.estimatedCost = 1000.0 / (10 ** len(used))
        return True

    def Open(self) -> InfoCursor:
        return InfoCursor(self._spec, self._scope)

    def Disconnect(self) -> None:
        """Nothing to release: the engine owns the files and caches."""

    Destroy = Disconnect
