"""The catalog of a data directory: topics, their config overrides, and committed offsets.

One SQLite file, ``catalog.db``, next to the partition folders. Topic names follow
Kafka's rule; a topic's partition count may grow, never shrink. A committed offset is the
next offset a group will read (the last processed offset + 1).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import apsw

from eventstore.config import validate_topic_config
from eventstore.errors import (
    CorruptLog,
    InvalidPartitions,
    InvalidTopic,
    TopicAlreadyExists,
    UnknownTopicOrPartition,
)
from eventstore.storage.schema import check_schema_version, create_schema
from eventstore.storage.segment import check_integrity, parse_segment_name, storage_errors

CATALOG_FILE = "catalog.db"
MAX_TOPIC_NAME = 249
_TOPIC_CHARS = re.compile(r"[a-zA-Z0-9._-]+")


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    config: Mapping[str, Any] = field(default_factory=dict)
    created_ms: int = 0


@dataclass(frozen=True)
class CommittedOffset:
    group_id: str
    topic: str
    partition: int
    offset: int
    metadata: str | None
    commit_ms: int
    leader_epoch: int = -1  # the leader epoch the committer last saw; -1: none given


def validate_topic_name(name: str) -> None:
    """InvalidTopic unless ``name`` is a legal Kafka topic name."""
    if not isinstance(name, str) or not name:
        raise InvalidTopic("topic name must not be empty")
    if name in (".", ".."):
        raise InvalidTopic(f"topic name cannot be {name!r}")
    if len(name) > MAX_TOPIC_NAME:
        raise InvalidTopic(f"topic name is {len(name)} characters, the limit is {MAX_TOPIC_NAME}")
    if not _TOPIC_CHARS.fullmatch(name):
        raise InvalidTopic(
            f"topic name {name!r} is illegal: use only ASCII letters, digits, '.', '_' and '-'"
        )


def partition_dir(data_dir: str, topic: str, partition: int) -> str:
    """Kafka's folder name for a partition: ``<topic>-<partition>``."""
    return os.path.join(data_dir, f"{topic}-{partition}")


def partition_folders(data_dir: str) -> list[str]:
    """Names of the folders in ``data_dir`` that hold segment files (partitions), sorted."""
    if not os.path.isdir(data_dir):
        return []
    return sorted(
        entry.name for entry in os.scandir(data_dir)
        if entry.is_dir() and any(parse_segment_name(name) is not None
                                   for name in os.listdir(entry))
    )


# what brings a catalog of the version before to the next; each runs in one transaction
_MIGRATIONS = {
    1: "ALTER TABLE group_offsets ADD COLUMN leader_epoch INTEGER NOT NULL DEFAULT -1;"
       " PRAGMA user_version = 2;",
}


def _migrate(conn: apsw.Connection) -> None:
    """Bring an older catalog to this build's schema version, one version at a time (a
    newer or unknown one is left for check_schema_version to refuse)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    while version in _MIGRATIONS:
        with conn:
            conn.execute(_MIGRATIONS[version])
        (version,) = conn.execute("PRAGMA user_version").fetchone()


class Catalog:
    """Access to ``catalog.db``; one writer (the broker or coordinator), any number of readers."""

    def __init__(self, conn: apsw.Connection, path: str) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, data_dir: str, *, readonly: bool = False) -> Catalog:
        """Open the catalog of ``data_dir``, creating it (and the directory) when new.

        A missing catalog beside partition folders is CorruptLog, not a new catalog: with
        no topics known, creating a topic of the same name again would take its folders
        for leftovers of a deleted topic and remove them.
        """
        path = os.path.join(data_dir, CATALOG_FILE)
        if not readonly and not os.path.exists(path):
            orphans = partition_folders(data_dir)
            if orphans:
                raise CorruptLog(
                    f"{path}: missing, but the data directory holds partition folders"
                    f" ({', '.join(orphans[:3])}{', ...' if len(orphans) > 3 else ''}):"
                    " restore the catalog from a backup"
                )
        with storage_errors(path):
            if readonly:
                conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
            else:
                os.makedirs(data_dir, exist_ok=True)
                conn = apsw.Connection(path)
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
                conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA busy_timeout = 5000")
            try:
                if not readonly and not conn.execute(
                    "SELECT 1 FROM sqlite_schema LIMIT 1"
                ).fetchall():
                    create_schema(conn, "catalog")
                elif not readonly:
                    _migrate(conn)
                check_schema_version(conn, "catalog", path)
            except BaseException:
                conn.close()
                raise
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    def check(self) -> None:
        """CorruptLog naming the file unless SQLite finds every page of it sound."""
        check_integrity(self._conn, self.path)

    # -- topics --------------------------------------------------------------------------

    def topics(self) -> list[TopicInfo]:
        """Every topic, by name."""
        with storage_errors(self.path):
            rows = self._conn.execute(
                "SELECT name, partitions, config, created_ms FROM topics ORDER BY name"
            ).fetchall()
        return [TopicInfo(n, p, json.loads(c), t) for n, p, c, t in rows]

    def topic(self, name: str) -> TopicInfo:
        """One topic; UnknownTopicOrPartition if there is none of that name."""
        with storage_errors(self.path):
            row = self._conn.execute(
                "SELECT name, partitions, config, created_ms FROM topics WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise UnknownTopicOrPartition(f"topic {name!r} does not exist")
        n, p, c, t = row
        return TopicInfo(n, p, json.loads(c), t)

    def create_topic(
        self, name: str, partitions: int, config: Mapping[str, Any], now_ms: int
    ) -> TopicInfo:
        """Record a new topic (its partition folders are the broker's job)."""
        validate_topic_name(name)
        if not isinstance(partitions, int) or partitions < 1:
            raise InvalidPartitions(f"topic {name!r}: partitions must be at least 1")
        checked = validate_topic_config(config)
        with storage_errors(self.path), self._conn:
            if self._conn.execute("SELECT 1 FROM topics WHERE name = ?", (name,)).fetchone():
                raise TopicAlreadyExists(f"topic {name!r} already exists")
            self._conn.execute(
                "INSERT INTO topics VALUES (?, ?, ?, ?)",
                (name, partitions, json.dumps(checked, sort_keys=True), now_ms),
            )
        return TopicInfo(name, partitions, checked, now_ms)

    def set_partitions(self, name: str, partitions: int) -> TopicInfo:
        """Increase a topic's partition count; InvalidPartitions if it would not grow."""
        current = self.topic(name)
        if partitions <= current.partitions:
            raise InvalidPartitions(
                f"topic {name!r} has {current.partitions} partitions; the count can only grow"
                f" (asked for {partitions})"
            )
        with storage_errors(self.path), self._conn:
            self._conn.execute(
                "UPDATE topics SET partitions = ? WHERE name = ?", (partitions, name)
            )
        return TopicInfo(name, partitions, current.config, current.created_ms)

    def set_topic_config(self, name: str, config: Mapping[str, Any]) -> TopicInfo:
        """Replace a topic's overrides (checked) with ``config``."""
        current = self.topic(name)
        checked = validate_topic_config(config)
        with storage_errors(self.path), self._conn:
            self._conn.execute(
                "UPDATE topics SET config = ? WHERE name = ?",
                (json.dumps(checked, sort_keys=True), name),
            )
        return TopicInfo(name, current.partitions, checked, current.created_ms)

    def delete_topic(self, name: str) -> TopicInfo:
        """Forget a topic and its groups' offsets (its folders are the broker's job)."""
        current = self.topic(name)
        with storage_errors(self.path), self._conn:
            self._conn.execute("DELETE FROM topics WHERE name = ?", (name,))
            self._conn.execute("DELETE FROM group_offsets WHERE topic = ?", (name,))
        return current

    # -- committed offsets ---------------------------------------------------------------

    def commit_offsets(self, group_id: str, offsets: Iterable[CommittedOffset]) -> None:
        """Store a group's committed offsets, all in one transaction."""
        with storage_errors(self.path), self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO group_offsets VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(group_id, o.topic, o.partition, o.offset, o.metadata, o.commit_ms,
                  o.leader_epoch) for o in offsets],
            )

    def committed_offsets(self, group_id: str | None = None) -> list[CommittedOffset]:
        """Committed offsets of one group (or of all), ordered by group, topic, partition."""
        query = ("SELECT group_id, topic, partition, offset, metadata, commit_ms, leader_epoch"
                 " FROM group_offsets")
        args: tuple = ()
        if group_id is not None:
            query += " WHERE group_id = ?"
            args = (group_id,)
        with storage_errors(self.path):
            rows = self._conn.execute(query + " ORDER BY 1, 2, 3", args).fetchall()
        return [CommittedOffset(*row) for row in rows]

    def groups(self) -> list[str]:
        """Groups that have committed offsets."""
        with storage_errors(self.path):
            return [g for (g,) in self._conn.execute(
                "SELECT DISTINCT group_id FROM group_offsets ORDER BY 1")]

    def delete_group_offsets(self, group_id: str) -> int:
        """Forget a group's committed offsets; returns how many there were."""
        with storage_errors(self.path), self._conn:
            self._conn.execute("DELETE FROM group_offsets WHERE group_id = ?", (group_id,))
            return self._conn.changes()

    def expire_offsets(self, older_than_ms: int, keep_groups: Iterable[str] = ()) -> int:
        """Delete offsets committed before ``older_than_ms`` (offsets.retention.minutes)."""
        keep = list(keep_groups)
        marks = ",".join("?" * len(keep))
        with storage_errors(self.path), self._conn:
            self._conn.execute(
                f"DELETE FROM group_offsets WHERE commit_ms < ? AND group_id NOT IN ({marks})",
                (older_than_ms, *keep),
            )
            return self._conn.changes()

    # -- counters ------------------------------------------------------------------------

    def next_in_sequence(self, name: str, count: int = 1) -> int:
        """Reserve ``count`` values of a counter that never goes back; returns the first."""
        with storage_errors(self.path), self._conn:
            row = self._conn.execute(
                "SELECT value FROM sequences WHERE name = ?", (name,)
            ).fetchone()
            first = row[0] if row else 0
            self._conn.execute(
                "INSERT OR REPLACE INTO sequences VALUES (?, ?)", (name, first + count)
            )
        return first
