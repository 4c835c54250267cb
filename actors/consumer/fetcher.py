"""Reading the assigned partitions: a reader and a position per partition, and the turn
each gets in ``poll``.

For each assigned partition a :class:`Fetcher` takes the published ``state.view`` and
reads rows through its own LogReader (holding connections only to the segments at or
after its position), so it never waits behind a write and never sees an unacknowledged
record. A partition without a position starts at its committed offset, else where
``auto_offset_reset`` says.

Threads: a Fetcher belongs to the polling thread. The only thing of it another thread
touches is the wake-up it registers on each assigned partition's state, which the
partition's actor calls when the high watermark moves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from operator import itemgetter

import pykka

from actors.broker import Broker
from actors.consumer.records import ConsumerRecord
from actors.partition import PartitionState
from eventstore.errors import IllegalState, KafkaError, NoOffsetForPartition, OffsetOutOfRange
from eventstore.storage.log_reader import LogReader, LogView
from eventstore.storage.records import RECORD_OVERHEAD, StoredRow
from eventstore.storage.transaction_index import hidden_ranges, without_ranges
from eventstore.topic_partition import TopicPartition

Chunk = tuple[type[ConsumerRecord], list[StoredRow]]
_STORED_FIELDS = (itemgetter(2), itemgetter(3), itemgetter(4))


def _stored_bytes(rows: list[StoredRow]) -> int:
    """Bytes the rows count for (``records.record_size`` of each), summed without a Python
    call per row."""
    size = RECORD_OVERHEAD * len(rows)
    for field_of in _STORED_FIELDS:
        size += sum(map(len, filter(None, map(field_of, rows))))
    return size


class PartitionFetch:
    """One assigned partition: its state, the consumer's reader on it, and the position."""

    __slots__ = ("tp", "state", "record", "reader", "position", "prune_at", "segments_seen")

    def __init__(self, tp: TopicPartition, state: PartitionState) -> None:
        self.tp = tp
        self.state = state
        self.record = ConsumerRecord.of(*tp)
        self.reader = LogReader()
        self.position: int | None = None
        self.prune_at = -1  # position at which the reader drops segments behind it
        self.segments_seen = (-1, 0)  # (first base offset, count) of the view last pruned

    def seek(self, offset: int) -> None:
        self.position = offset
        self.prune_at = -1  # prune again from the new position on

    def prune(self, view: LogView) -> None:
        """Close connections to segments wholly behind the position (or deleted)."""
        index = view.segment_index(self.position)
        self.reader.prune(replace(view, segments=view.segments[index:]))
        following = view.segments[index + 1:index + 2]
        self.prune_at = following[0].base_offset if following else view.high_watermark + 1
        self.segments_seen = (view.segments[0].base_offset, len(view.segments))


class Fetcher:
    """The partitions a consumer reads, and reading them.

    ``committed(partitions)`` gives the group's (offset, metadata) of each, (-1, '') where
    nothing is committed; ``wake`` is registered on every assigned partition's state.
    """

    def __init__(
        self,
        broker: pykka.ActorProxy[Broker],
        auto_offset_reset: str,
        committed: Callable[[list[TopicPartition]], dict[TopicPartition, tuple[int, str]]],
        wake: Callable[[], None],
        read_committed: bool = False,
    ) -> None:
        self._broker = broker
        self._auto_offset_reset = auto_offset_reset
        self._read_committed = read_committed
        self._committed = committed
        self._wake = wake
        self._fetches: dict[TopicPartition, PartitionFetch] = {}
        self._order: list[PartitionFetch] = []
        self._next = 0

    # -- assignment -------------------------------------------------------------------------

    def assigned(self) -> set[TopicPartition]:
        """The partitions read now."""
        return set(self._fetches)

    def assign(self, partitions: set[TopicPartition]) -> None:
        """Keep the readers of partitions still assigned; open, close the others."""
        for tp in [tp for tp in self._fetches if tp not in partitions]:
            fetch = self._fetches.pop(tp)
            fetch.state.remove_listener(self._wake)
            fetch.reader.close()
        for topic in sorted({tp.topic for tp in partitions if tp not in self._fetches}):
            handles = self._broker.partitions(topic).get()
            for tp in partitions:
                if tp.topic == topic and tp not in self._fetches:
                    fetch = self._fetches[tp] = PartitionFetch(tp, handles[tp.partition].state)
                    fetch.state.add_listener(self._wake)
                    if fetch.state.view is None:  # not opened since start-up: open it
                        with contextlib.suppress(KafkaError):  # offline: its state says so
                            self._broker.partition(*tp).get()
        self._order = [self._fetches[tp] for tp in sorted(self._fetches)]
        self._next = 0

    # -- positions --------------------------------------------------------------------------

    def position(self, partition: tuple[str, int]) -> int:
        """The offset of the next record read from ``partition``."""
        fetch = self._fetch_of(partition)
        if fetch.position is None:
            self._resolve_positions([fetch])
        return fetch.position

    def positions(self) -> dict[TopicPartition, tuple[int, str]]:
        """(position, '') of every partition that has one: what a commit takes by default."""
        return {f.tp: (f.position, "") for f in self._order if f.position is not None}

    def seek(self, partition: tuple[str, int], offset: int) -> None:
        """Read ``partition`` from ``offset`` on."""
        self._fetch_of(partition).seek(offset)

    def seek_to_beginning(self, partitions: tuple[tuple[str, int], ...]) -> None:
        """Read from each partition's log-start-offset (every assigned one if none given)."""
        for fetch in self._fetches_of(partitions):
            fetch.seek(self._view(fetch).log_start_offset)

    def seek_to_end(self, partitions: tuple[tuple[str, int], ...]) -> None:
        """Read only records appended from now on (every assigned partition if none given)."""
        for fetch in self._fetches_of(partitions):
            fetch.seek(self._end(self._view(fetch)))

    def _resolve_positions(self, fetches: list[PartitionFetch]) -> None:
        """Positions from the committed offsets, else by ``auto_offset_reset``."""
        committed = self._committed([f.tp for f in fetches])
        for fetch in fetches:
            offset, _ = committed.get(fetch.tp, (-1, ""))
            if offset >= 0:
                fetch.seek(offset)
            else:
                self._reset_position(fetch, "has no committed offset")

    def _reset_position(self, fetch: PartitionFetch, why: str) -> None:
        policy = self._auto_offset_reset
        if policy == "none":
            error = NoOffsetForPartition if fetch.position is None else OffsetOutOfRange
            raise error(f"{fetch.tp.topic}-{fetch.tp.partition} {why} and auto_offset_reset"
                        " is none")
        view = self._view(fetch)
        fetch.seek(view.log_start_offset if policy == "earliest" else self._end(view))

    # -- reading ----------------------------------------------------------------------------

    def fetch(self, limit: int) -> list[Chunk]:
        """Rows of up to ``limit`` records, taking partitions in turn so none starves."""
        order = self._order
        if not order:
            return []
        unresolved = [f for f in order if f.position is None and f.state.view is not None]
        if unresolved:
            self._resolve_positions(unresolved)
        chunks = []
        wanted = limit
        start = self._next
        self._next = (start + 1) % len(order)
        for i in range(len(order)):
            fetch = order[(start + i) % len(order)]
            state = fetch.state
            view = state.view
            position = fetch.position
            if view is None or state.error is not None or position is None:
                continue
            if (position >= fetch.prune_at
                    or (view.segments[0].base_offset, len(view.segments)) != fetch.segments_seen):
                fetch.prune(view)
            end = self._end(view)
            if position >= end:
                continue
            try:
                rows = fetch.reader.read(
                    view if end == view.high_watermark else replace(view, high_watermark=end),
                    position, wanted)
            except OffsetOutOfRange:
                self._reset_position(fetch, "is out of range")
                continue
            except KafkaError:
                if chunks:  # hand out what was read (positions moved); the error comes next
                    break
                raise
            if rows:
                fetch.position = rows[-1][0] + 1
                if view.transactional:
                    rows = self._visible(fetch, view, rows)
            if rows:
                state.stats.add_fetched(len(rows), _stored_bytes(rows))
                chunks.append((fetch.record, rows))
                wanted -= len(rows)
                if not wanted:
                    break
        return chunks

    def end_offset(self, partition: tuple[str, int]) -> int:
        """Where reading ``partition`` ends now: its high watermark, under read_committed
        its last stable offset (Kafka's end offset for that isolation level)."""
        return self._end(self._view(self._fetch_of(partition)))

    # -- internals --------------------------------------------------------------------------

    def _end(self, view: LogView) -> int:
        if self._read_committed and view.transactional:
            return min(view.last_stable_offset, view.high_watermark)
        return view.high_watermark

    def _visible(self, fetch: PartitionFetch, view: LogView, rows: list[StoredRow]
                 ) -> list[StoredRow]:
        """``rows`` without markers (control records) and, under read_committed, without
        aborted transactions' records, as Kafka's clients drop them."""
        batches = fetch.reader.txn_batches(view, rows[0][0], rows[-1][0] + 1)
        return without_ranges(rows, hidden_ranges(batches, view.aborted, self._read_committed))

    def _view(self, fetch: PartitionFetch) -> LogView:
        view = fetch.state.view
        if view is None:
            raise fetch.state.error or IllegalState(f"{fetch.tp} is not open")
        return view

    def _fetch_of(self, partition: tuple[str, int]) -> PartitionFetch:
        fetch = self._fetches.get(TopicPartition(*partition))
        if fetch is None:
            raise IllegalState(f"partition {partition} is not assigned to this consumer")
        return fetch

    def _fetches_of(self, partitions: tuple[tuple[str, int], ...]) -> list[PartitionFetch]:
        return [self._fetch_of(tp) for tp in partitions] if partitions else list(self._order)
