"""What a query needs to know about a data directory: topics, offsets, each partition's chain.

A ``DataReader`` lives as long as its engine. It caches what never changes (the metadata of
sealed segments) and what rarely does (a partition folder's listing, until the folder
changes or its newest segment turns out sealed, i.e. a roll happened), and counts every
segment file it opens, so tests can check that a query opens only what it must.

Each query still reads, per partition it touches, the newest segment's metadata: the high
watermark (log-end-offset) and the log-start-offset. Rows past that high watermark are never
shown, so a query sees acknowledged records only, even while a server appends. It reads the
partition's anchor too (see eventstore.storage.anchor): a chain that ends before it lost its
newest segments, which ``problem`` says. Problems that queries meet on the way (a gap in a
chain) are kept as warnings until :meth:`DataReader.take_warnings`.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import apsw

from eventstore.errors import KafkaStorageError
from eventstore.groups.consumer_store import read_group_epochs
from eventstore.storage.anchor import check_anchor, read_anchor
from eventstore.storage.catalog import (
    CATALOG_FILE,
    Catalog,
    CommittedOffset,
    TopicInfo,
    partition_dir,
)
from eventstore.storage.compaction import STATE_FILE, CleanerState, read_cleaner_state
from eventstore.storage.readonly import open_database, reading
from eventstore.storage.schema import check_schema_version
from eventstore.storage.segment import SegmentInfo, parse_segment_name, read_info, segment_name

# A roll between listing a folder and reading its newest segment makes us list again; after
# this many tries the (sealed) newest listed segment's end serves as the high watermark.
_LISTING_TRIES = 3

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CatalogState:
    """The catalog as one read transaction saw it; ``group_epochs``: (group epoch, target
    assignment epoch) of each ``consumer`` (KIP-848) group."""

    topics: tuple[TopicInfo, ...]
    offsets: tuple[CommittedOffset, ...]
    group_epochs: Mapping[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PartitionState:
    """One partition as a query sees it: its live segments and its bounds.

    ``bases`` are the base offsets of the segments still kept (from the one holding the
    log-start-offset), oldest first; the last is the active segment, described by ``active``.
    ``problem``: why the chain ends before its anchor (newest segments gone), if it does;
    ``log_end_offset`` is then where the anchor says the log reached, which no query can
    read up to (``high_watermark`` stays where the segments left end).
    """

    topic: str
    partition: int
    directory: str
    bases: tuple[int, ...]
    active: SegmentInfo | None
    log_start_offset: int
    high_watermark: int
    problem: str | None = None
    anchored_end: int = 0

    @property
    def log_end_offset(self) -> int:
        """The log-end-offset the partition should have: its anchor's, if segments are lost."""
        return max(self.high_watermark, self.anchored_end)

    @property
    def name(self) -> str:
        """Kafka's name of the partition: ``<topic>-<partition>``."""
        return f"{self.topic}-{self.partition}"

    def path(self, index: int) -> str:
        return os.path.join(self.directory, segment_name(self.bases[index]))

    def end(self, index: int) -> int:
        """The offset after segment ``index``'s last visible record."""
        return self.bases[index + 1] if index + 1 < len(self.bases) else self.high_watermark

    def is_active(self, index: int) -> bool:
        return index == len(self.bases) - 1

    def index_of(self, offset: int) -> int:
        """Index of the segment that holds ``offset`` (clamped to the first segment)."""
        return max(bisect.bisect_right(self.bases, offset) - 1, 0)


def _file_key(path: str) -> tuple[int, int, int] | None:
    """What tells one file under ``path`` from another (a cleaning replaces a segment file
    under its name): its inode, mtime and size; None if there is no file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _empty_partition(topic: str, partition: int, directory: str,
                     problem: str | None = None) -> PartitionState:
    return PartitionState(topic, partition, directory, (), None, 0, 0, problem)


class DataReader:
    """Reads catalog and segment metadata of one data directory, read-only, with caches."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.segment_opens = 0
        # folder -> ((inode, mtime), base offsets listed)
        self._listings: dict[str, tuple[tuple[int, int], tuple[int, ...]]] = {}
        # folder -> base offset -> ((inode, mtime, size), metadata of a sealed segment)
        self._sealed: dict[str, dict[int, tuple[tuple[int, int, int], SegmentInfo]]] = {}
        self._warnings: dict[str, None] = {}  # problems met, in order, each once
        # folder -> base offset -> ((inode, mtime, size), records a sealed segment holds)
        self._held: dict[str, dict[int, tuple[tuple[int, int, int], int]]] = {}

    # -- warnings --------------------------------------------------------------------------

    def warn(self, problem: str) -> None:
        """Keep ``problem`` (records a result leaves out, and why) for take_warnings."""
        self._warnings[problem] = None

    def take_warnings(self) -> list[str]:
        """The problems met since the last call, each once, in the order they were met."""
        warnings, self._warnings = list(self._warnings), {}
        return warnings

    # -- segments --------------------------------------------------------------------------

    def open_segment(self, path: str) -> apsw.Connection:
        """A read-only connection to a segment file (counted); FileNotFoundError if gone."""
        conn = open_database(path)
        self.segment_opens += 1
        try:
            with reading(path):
                check_schema_version(conn, "segment", path)
        except BaseException:
            conn.close()
            raise
        return conn

    def _read_metadata(self, path: str) -> SegmentInfo:
        conn = self.open_segment(path)
        try:
            return read_info(conn, path)
        finally:
            conn.close()

    def segment_info(self, state: PartitionState, index: int) -> SegmentInfo | None:
        """Metadata of segment ``index`` of ``state``; None if retention deleted it meanwhile.

        The active segment's is the one read with the partition; a sealed segment's is read
        once and cached while the file stays the same.
        """
        if state.is_active(index):
            return state.active
        return self._per_file(self._sealed, state, index, self._read_metadata,
                              lambda info: info.is_sealed)

    def held_records(self, state: PartitionState, index: int) -> int | None:
        """How many records sealed segment ``index`` of ``state`` holds (fewer than its
        offsets once a cleaning left gaps); None if it was deleted meanwhile. Counted once
        per file."""
        return self._per_file(self._held, state, index, self._count_records)

    def _per_file(self, caches: dict[str, dict[int, tuple[tuple[int, int, int], T]]],
                  state: PartitionState, index: int, read: Callable[[str], T],
                  keep: Callable[[T], bool] = lambda _: True) -> T | None:
        """``read`` of segment ``index``'s file, cached in ``caches`` (when ``keep`` says)
        while the file stays the same; None if the file is gone."""
        path = state.path(index)
        key = _file_key(path)
        if key is None:
            return None
        cache = caches.setdefault(state.directory, {})
        hit = cache.get(state.bases[index])
        if hit is not None and hit[0] == key:
            return hit[1]
        try:
            value = read(path)
        except FileNotFoundError:
            return None
        if keep(value):
            cache[state.bases[index]] = (key, value)
        return value

    def _count_records(self, path: str) -> int:
        conn = self.open_segment(path)
        try:
            with reading(path):
                (count,) = conn.execute("SELECT count(*) FROM records").fetchone()
        finally:
            conn.close()
        return count

    def cleaner_state(self, state: PartitionState) -> CleanerState:
        """The partition's cleaner's state as its last cleaning left it (nothing cleaned
        if never); KafkaStorageError naming the file if it cannot be read."""
        try:
            return read_cleaner_state(state.directory)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            path = os.path.join(state.directory, STATE_FILE)
            raise KafkaStorageError(f"{path}: the cleaner's state cannot be read ({exc})"
                                    ) from exc

    # -- partitions ------------------------------------------------------------------------

    def _listing(self, directory: str, *, fresh: bool) -> tuple[int, ...]:
        try:
            st = os.stat(directory)
        except FileNotFoundError:
            return ()
        key = (st.st_ino, st.st_mtime_ns)
        hit = self._listings.get(directory)
        if hit is not None and hit[0] == key and not fresh:
            return hit[1]
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return ()
        bases = tuple(sorted(b for b in map(parse_segment_name, names) if b is not None))
        self._listings[directory] = (key, bases)
        for cache in (self._sealed.get(directory), self._held.get(directory)):
            for gone in (cache or {}).keys() - set(bases):
                del cache[gone]
        return bases

    def partition(self, topic: str, partition: int) -> PartitionState:
        """The partition's live segments, log-start-offset and high watermark, read now."""
        directory = partition_dir(self.data_dir, topic, partition)
        bases: tuple[int, ...] = ()
        newest: SegmentInfo | None = None
        try:
            # read before the folder is listed: a server anchors a segment only once its
            # file exists, so what the anchor names is in the listing unless it was deleted
            anchor = read_anchor(directory)
        except KafkaStorageError as exc:
            anchor, problem = None, exc.args[0]
        else:
            problem = None
        for attempt in range(_LISTING_TRIES):
            bases = self._listing(directory, fresh=attempt > 0)
            if not bases:
                gone = None if anchor is None else (
                    f"{directory}: no segment file: the partition's data is gone")
                return _empty_partition(topic, partition, directory, problem or gone)
            try:
                newest = self._read_metadata(os.path.join(directory, segment_name(bases[-1])))
            except FileNotFoundError:
                newest = None  # the folder is being deleted, or changed under us: list again
                continue
            if not newest.is_sealed:
                break
        if newest is None:
            return _empty_partition(topic, partition, directory)
        anchored_end = 0
        try:
            check_anchor(anchor, newest)
        except KafkaStorageError as exc:
            problem = exc.args[0]
            if anchor is not None:
                anchored_end = max(anchor.log_end_offset, anchor.newest_segment)
        log_start = newest.log_start_offset
        first = max(bisect.bisect_right(bases, log_start) - 1, 0)
        return PartitionState(topic, partition, directory, bases[first:], newest, log_start,
                              newest.next_offset, problem, anchored_end)

    # -- catalog ---------------------------------------------------------------------------

    def catalog(self) -> CatalogState:
        """Topics and committed offsets, read in one transaction (empty if no catalog yet)."""
        path = os.path.join(self.data_dir, CATALOG_FILE)
        try:
            conn = open_database(path)
        except FileNotFoundError:
            return CatalogState((), ())
        try:
            with reading(path):
                check_schema_version(conn, "catalog", path)
                conn.execute("BEGIN")
                catalog = Catalog(conn, path)
                state = CatalogState(tuple(catalog.topics()), tuple(catalog.committed_offsets()),
                                     read_group_epochs(conn))
                conn.execute("COMMIT")
            return state
        finally:
            conn.close()
