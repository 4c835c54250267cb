"""What ``poll`` returns: :class:`ConsumerRecords`, each partition's rows as read, made into
:class:`ConsumerRecord` objects only while they are iterated.

Records are plain values: any thread may read them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from operator import itemgetter

from eventstore.storage.records import Headers, StoredRow, decode_headers
from eventstore.topic_partition import TopicPartition


class ConsumerRecord(tuple):
    """One record as ``poll`` returns it: ``topic``, ``partition``, ``offset``,
    ``timestamp``, ``key``, ``value`` and ``headers`` (a tuple of (key, value) pairs, ()
    when there are none).

    Underneath it is the stored row, the tuple (offset, timestamp, key, value, headers),
    and its class knows the topic and partition: each assigned partition has its own
    subclass (see :meth:`of`), so that making a record is one C call and no Python code,
    as building records is most of what a consumer does.
    """

    __slots__ = ()
    _fields = ("topic", "partition", "offset", "timestamp", "key", "value", "headers")
    topic: str = ""
    partition: int = -1

    offset = property(itemgetter(0))
    timestamp = property(itemgetter(1))
    key = property(itemgetter(2))
    value = property(itemgetter(3))

    @property
    def headers(self) -> Headers:
        return self[4] or ()

    @staticmethod
    def of(topic: str, partition: int) -> type[ConsumerRecord]:
        """The record class of one partition."""
        return type("ConsumerRecord", (ConsumerRecord,),
                    {"__slots__": (), "topic": topic, "partition": partition})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConsumerRecord):
            return NotImplemented
        return (tuple.__eq__(self, other) and self.topic == other.topic
                and self.partition == other.partition)

    def __hash__(self) -> int:
        return hash((self.topic, self.partition, *self))

    def __reduce__(self) -> tuple:
        return _restore_record, (self.topic, self.partition, tuple(self))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"ConsumerRecord({fields})"


def _restore_record(topic: str, partition: int, row: tuple) -> ConsumerRecord:
    """Unpickle a record (its partition's class is made per consumer, so not importable)."""
    return ConsumerRecord.of(topic, partition)(row)


_stored_headers = itemgetter(4)


def _records(record: type[ConsumerRecord], rows: list[StoredRow]) -> Iterator[ConsumerRecord]:
    """Records of one partition from its stored rows, made as they are iterated; headers
    are decoded only where there are some."""
    if not any(map(_stored_headers, rows)):
        return map(record, rows)
    return (record((*row[:4], decode_headers(row[4]) if row[4] else None)) for row in rows)


class ConsumerRecords:
    """What ``poll`` returns: each partition's records in offset order, as Java's
    ConsumerRecords; iterate it, index it, or ask for one partition's ``records``.

    Records are made while you iterate, from the rows as read, so a record is a short-lived
    object and a large poll does not pile up work for Python's garbage collector.
    """

    __slots__ = ("_chunks", "_count", "_convert")

    def __init__(self, chunks: list[tuple[type[ConsumerRecord], list[StoredRow]]],
                 convert: Callable[[ConsumerRecord], ConsumerRecord] | None = None) -> None:
        self._chunks = chunks
        self._count = sum(len(rows) for _, rows in chunks)
        self._convert = convert

    def __iter__(self) -> Iterator[ConsumerRecord]:
        records = itertools.chain.from_iterable(
            _records(record, rows) for record, rows in self._chunks)
        return records if self._convert is None else map(self._convert, records)

    def __len__(self) -> int:
        return self._count

    def count(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> ConsumerRecord:
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("ConsumerRecords index out of range")
        for record, rows in self._chunks:
            if index < len(rows):
                return next(iter(ConsumerRecords([(record, rows[index:index + 1])],
                                                 self._convert)))
            index -= len(rows)
        raise AssertionError("unreachable: the index was checked")

    def partitions(self) -> set[TopicPartition]:
        """The partitions this poll returned records of."""
        return {TopicPartition(record.topic, record.partition) for record, _ in self._chunks}

    def records(self, partition: tuple[str, int]) -> list[ConsumerRecord]:
        """One partition's records, in offset order."""
        tp = TopicPartition(*partition)
        return list(ConsumerRecords(
            [c for c in self._chunks if (c[0].topic, c[0].partition) == tp], self._convert))

    def __repr__(self) -> str:
        return f"ConsumerRecords({self._count} records from {len(self._chunks)} partitions)"
