"""The mirror's source read from a data directory (``--source-data-dir``), not a server.

The segments are read with the project's read-only SQL engine (eventstore.sql), which opens
every file read-only and so may read beside a running server: topics and their configs from
its ``topics`` table, log start and end from ``partitions``, records from ``records``, the
groups' committed offsets from ``consumer_groups``. ``DirReader`` answers the few calls the
copy loop makes of its source consumer (assign, consume, watermarks), records and end of
partition events included, so the copy, its checkpoints on the target and the group
translation are the same code as from a server.

The ``records`` table holds every record the log acknowledged: a partition written by
transactions would have its aborted records copied, so a partition holding transactional
batches is refused (MirrorError) rather than copied wrong; mirror it through a server.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import apsw
from confluent_kafka import KafkaError, TopicPartition

from eventstore.errors import KafkaStorageError
from eventstore.mirror.plan import Selection, TopicPlan, plan_topics
from eventstore.mirror.topics import MirrorError
from eventstore.sql.engine import SqlEngine
from eventstore.storage.readonly import open_database
from eventstore.storage.records import decode_headers

Key = tuple[str, int]
TIMESTAMP_CREATE_TIME = 1  # confluent-kafka's TIMESTAMP_CREATE_TIME


@dataclass(frozen=True)
class EndOfPartition:
    """What the copy loop reads as a consumer's end-of-partition event's error."""

    def code(self) -> int:
        return KafkaError._PARTITION_EOF

    def str(self) -> str:
        return "end of partition"


@dataclass(frozen=True)
class DirRecord:
    """One record of a data directory, asked as a confluent-kafka Message is."""

    at: Key
    position: int
    stamp: int = -1
    record_key: bytes | None = None
    record_value: bytes | None = None
    record_headers: tuple[tuple[str, bytes | None], ...] = ()
    end: EndOfPartition | None = None

    def topic(self) -> str:
        return self.at[0]

    def partition(self) -> int:
        return self.at[1]

    def offset(self) -> int:
        return self.position

    def error(self) -> EndOfPartition | None:
        return self.end

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, self.stamp

    def key(self) -> bytes | None:
        return self.record_key

    def value(self) -> bytes | None:
        return self.record_value

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return list(self.record_headers) or None


def open_engine(data_dir: str) -> SqlEngine:
    """The read-only SQL engine over ``data_dir``; MirrorError when it cannot be read."""
    try:
        return SqlEngine(data_dir)
    except KafkaStorageError as error:
        raise MirrorError(f"cannot read the source data directory: {error}") from error


class DirSource:
    """A data directory as the mirror's source: its plan, readers and groups' commits."""

    def __init__(self, data_dir: str) -> None:
        self.engine = open_engine(data_dir)

    def plan(self, selection: Selection, prefix: str) -> tuple[TopicPlan, ...]:
        """The selected topics with their partitions and carried configs."""
        _, rows = self.engine.query("SELECT topic, partitions, config FROM topics")
        configs = {name: {k: str(v) for k, v in json.loads(config).items()}
                   for name, _, config in rows}
        return plan_topics({name: count for name, count, _ in rows}, configs, selection,
                           prefix)

    def reader(self) -> DirReader:
        return DirReader(self.engine)

    def group_commits(self, wanted: set[Key], own_group: str) -> dict[str, dict[Key, int]]:
        """Each group's committed offsets on the partitions ``wanted``."""
        _, rows = self.engine.query(
            "SELECT group_id, topic, partition, committed_offset FROM consumer_groups"
            " WHERE committed_offset >= 0")
        out: dict[str, dict[Key, int]] = {}
        for group, topic, partition, offset in rows:
            if group != own_group and (topic, partition) in wanted:
                out.setdefault(group, {})[(topic, partition)] = offset
        return out

    def close(self) -> None:
        self.engine.close()


class DirReader:
    """The calls the copy loop makes of its source consumer, answered from the files."""

    def __init__(self, engine: SqlEngine) -> None:
        self._engine = engine
        self._positions: dict[Key, int] = {}
        self._ended: set[Key] = set()
        self._known: dict[Key, tuple[int, int]] = {}  # the bounds the last consume read

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._check_no_transactions(tp.topic, tp.partition)
            self._positions[(tp.topic, tp.partition)] = tp.offset

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> None:
        """Nothing to learn: the files are read at each call."""

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float | None = None,
                              cached: bool = False) -> tuple[int, int]:
        """A partition's (log start, end): as the last consume read them if ``cached``."""
        key = (tp.topic, tp.partition)
        if cached and key in self._known:
            return self._known[key]
        return self._bounds()[key]

    def consume(self, num_messages: int, timeout: float) -> list[DirRecord]:
        """The next records of one assigned partition, or its end once reached; waits
        ``timeout`` when every partition is at its end (the files may grow beside a
        running server)."""
        bounds = self._known = self._bounds()
        for key, position in self._positions.items():
            start, end = bounds[key]
            position = max(position, start)  # retention moved the log start past it
            if position < end:
                _, rows = self._engine.query(
                    "SELECT offset, timestamp, key, value, headers FROM records WHERE"
                    " topic = ? AND partition = ? AND offset >= ? AND offset < ?"
                    " ORDER BY offset LIMIT ?", (*key, position, end, num_messages))
                if rows:
                    self._positions[key] = rows[-1][0] + 1
                    self._ended.discard(key)
                    return [DirRecord(key, o, t, k, v, decode_headers(h))
                            for o, t, k, v, h in rows]
            self._positions[key] = end
            if key not in self._ended:
                self._ended.add(key)
                return [DirRecord(key, end, end=EndOfPartition())]
        time.sleep(timeout)  # the poll interval, as a consumer's long poll
        return []

    def close(self) -> None:
        """The engine is the source's, closed with it."""

    def _bounds(self) -> dict[Key, tuple[int, int]]:
        _, rows = self._engine.query(
            "SELECT topic, partition, log_start_offset, log_end_offset FROM partitions")
        return {(t, p): (start, end) for t, p, start, end in rows}

    def _check_no_transactions(self, topic: str, partition: int) -> None:
        """MirrorError if a segment of the partition holds transactional batches (see the
        module); each segment file opened read-only."""
        _, rows = self._engine.query(
            "SELECT path FROM segments WHERE topic = ? AND partition = ?", (topic, partition))
        for (path,) in rows:
            if _transactional(path):
                raise MirrorError(
                    f"{topic}-{partition}: {os.path.basename(path)} holds transactional"
                    " batches, whose aborted records a data directory read would copy:"
                    " mirror it through a server (--source-bootstrap-server)")


def _transactional(path: str) -> bool:
    connection = open_database(path)
    try:
        return bool(connection.execute("SELECT 1 FROM txn_batches LIMIT 1").fetchall())
    except apsw.SQLError:  # a segment of a build before transactions lacks the table
        return False
    finally:
        connection.close()
