"""One statement's view of the data directory, shared by every table the statement reads.

A statement that reads ``records`` twice (a self-join, a nested loop re-filtering the inner
table, an ``IN`` list) or joins ``consumer_groups`` with ``partitions`` must see each
partition with one high watermark. A ``Snapshot`` reads the catalog and each partition at
most once; ``SnapshotScope`` hands the same snapshot to every table cursor open at the same
time and drops it when the last one closes, so the next statement reads afresh. (While a
result is left unfinished, statements that overlap it share its snapshot: close streams.)
"""

from __future__ import annotations

from eventstore.sql.reader import CatalogState, DataReader, PartitionState
from eventstore.storage.catalog import TopicInfo


class Snapshot:
    """Catalog and partition states, each read on first use and then kept."""

    def __init__(self, reader: DataReader) -> None:
        self.reader = reader
        self._catalog: CatalogState | None = None
        self._partitions: dict[tuple[str, int], PartitionState] = {}

    @property
    def catalog(self) -> CatalogState:
        if self._catalog is None:
            self._catalog = self.reader.catalog()
        return self._catalog

    def topic(self, name: str) -> TopicInfo | None:
        for topic in self.catalog.topics:
            if topic.name == name:
                return topic
        return None

    def partition(self, topic: str, partition: int) -> PartitionState:
        key = (topic, partition)
        state = self._partitions.get(key)
        if state is None:
            state = self._partitions[key] = self.reader.partition(topic, partition)
        return state


class SnapshotScope:
    """The snapshot of the statement(s) running now, counted by open table cursors."""

    def __init__(self, reader: DataReader) -> None:
        self._reader = reader
        self._current: Snapshot | None = None
        self._users = 0

    def acquire(self) -> Snapshot:
        if self._current is None:
            self._current = Snapshot(self._reader)
        self._users += 1
        return self._current

    def release(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._current = None
