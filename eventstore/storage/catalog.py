"""The catalog of a data directory: topics, their config overrides, and committed offsets.

One SQLite file, ``catalog.db``, next to the partition folders. Topic names follow
Kafka's rule; a topic's partition count may grow, never shrink. A committed offset is the
next offset a group will read (the last processed offset + 1).

It also holds the ids Kafka's clients key state by (KIP-516): the data directory's cluster
id, made once when the catalog is (or, for an older catalog, when it is first opened), and
a random id per topic, made when the topic is created, so a topic deleted and created again
gets a new one.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
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
from eventstore.storage.kafka_uuid import ZERO_UUID, from_text, random_uuid, to_text
from eventstore.storage.schema import check_schema_version, create_schema, schema_sql
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
    topic_id: uuid.UUID = ZERO_UUID  # this incarnation's id; zero until the catalog has it


@dataclass(frozen=True)
class CommittedOffset:
    group_id: str
    topic: str
    partition: int
    offset: int
    metadata: str | None
    commit_ms: int
    leader_epoch: int = -1  # the leader epoch the committer last saw; -1: none given


_TOPIC_COLUMNS = "name, partitions, config, created_ms, topic_id"


def _topic_info(row: tuple) -> TopicInfo:
    """A row of ``topics`` (as _TOPIC_COLUMNS lists them) as a TopicInfo."""
    name, partitions, config, created_ms, topic_id = row
    return TopicInfo(name, partitions, json.loads(config), created_ms, from_text(topic_id))


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


def _add_topic_ids(conn: apsw.Connection) -> None:
    """Version 2 to 3: every existing topic gets a random id, and the cluster id's table
    (filled by :func:`_ensure_cluster_id`) is made."""
    conn.execute("ALTER TABLE topics ADD COLUMN topic_id TEXT NOT NULL DEFAULT ''")
    for (name,) in conn.execute("SELECT name FROM topics").fetchall():
        conn.execute("UPDATE topics SET topic_id = ? WHERE name = ?",
                     (to_text(random_uuid()), name))
    conn.execute(
        "CREATE UNIQUE INDEX topics_by_id ON topics (topic_id);"
        " CREATE TABLE cluster (one INTEGER PRIMARY KEY CHECK (one = 1),"
        " cluster_id TEXT NOT NULL);"
        " PRAGMA user_version = 3;")


# what brings a catalog of the version before to the next; each runs in one transaction
_MIGRATIONS = {
    1: "ALTER TABLE group_offsets ADD COLUMN leader_epoch INTEGER NOT NULL DEFAULT -1;"
       " PRAGMA user_version = 2;",
    2: _add_topic_ids,
}


def _migrate(conn: apsw.Connection) -> None:
    """Bring an older catalog to this build's schema version, one version at a time (a
    newer or unknown one is left for check_schema_version to refuse)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    while version in _MIGRATIONS:
        step = _MIGRATIONS[version]
        with conn:
            if callable(step):
                step(conn)
            else:
                conn.execute(step)
        (version,) = conn.execute("PRAGMA user_version").fetchone()


def _add_missing_tables(conn: apsw.Connection) -> None:
    """Make the tables of schema/catalog_additions.sql that the catalog lacks.

    Tables added since version 3 (credentials, ACLs, transactions) need no version step:
    each is made when missing, and a build that predates one ignores it. A reader of a
    read-only catalog takes a missing one for an empty one."""
    with conn:
        conn.execute(schema_sql("catalog_additions"))


def _ensure_cluster_id(conn: apsw.Connection) -> None:
    """Give the data directory its cluster id unless it has one: a random id in Kafka's
    text form, made once and kept (a new catalog, or one made before cluster ids)."""
    with conn:
        conn.execute("INSERT INTO cluster SELECT 1, ? WHERE NOT EXISTS (SELECT 1 FROM cluster)",
                     (to_text(random_uuid()),))


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
                if not readonly:
                    _add_missing_tables(conn)
                    _ensure_cluster_id(conn)
            except BaseException:
                conn.close()
                raise
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    def check(self) -> None:
        """CorruptLog naming the file unless SQLite finds every page of it sound."""
        check_integrity(self._conn, self.path)

    def cluster_id(self) -> str:
        """The data directory's cluster id, in Kafka's text form (22 characters)."""
        with storage_errors(self.path):
            row = self._conn.execute("SELECT cluster_id FROM cluster").fetchone()
        if row is None:
            raise CorruptLog(f"{self.path}: has no cluster id yet (open it for writing once)")
        return row[0]

    # -- topics --------------------------------------------------------------------------

    def topics(self) -> list[TopicInfo]:
        """Every topic, by name."""
        with storage_errors(self.path):
            rows = self._conn.execute(
                f"SELECT {_TOPIC_COLUMNS} FROM topics ORDER BY name").fetchall()
        return [_topic_info(row) for row in rows]

    def topic(self, name: str) -> TopicInfo:
        """One topic; UnknownTopicOrPartition if there is none of that name."""
        with storage_errors(self.path):
            row = self._conn.execute(
                f"SELECT {_TOPIC_COLUMNS} FROM topics WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownTopicOrPartition(f"topic {name!r} does not exist")
        return _topic_info(row)

    def create_topic(
        self, name: str, partitions: int, config: Mapping[str, Any], now_ms: int
    ) -> TopicInfo:
        """Record a new topic with a new random id (its partition folders are the broker's
        job)."""
        validate_topic_name(name)
        if not isinstance(partitions, int) or partitions < 1:
            raise InvalidPartitions(f"topic {name!r}: partitions must be at least 1")
        checked = validate_topic_config(config)
        with storage_errors(self.path), self._conn:
            if self._conn.execute("SELECT 1 FROM topics WHERE name = ?", (name,)).fetchone():
                raise TopicAlreadyExists(f"topic {name!r} already exists")
            topic_id = random_uuid()
            self._conn.execute(
                "INSERT INTO topics (name, partitions, config, created_ms, topic_id)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, partitions, json.dumps(checked, sort_keys=True), now_ms,
                 to_text(topic_id)),
            )
        return TopicInfo(name, partitions, checked, now_ms, topic_id)

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
        return replace(current, partitions=partitions)

    def set_topic_config(self, name: str, config: Mapping[str, Any]) -> TopicInfo:
        """Replace a topic's overrides (checked) with ``config``."""
        current = self.topic(name)
        checked = validate_topic_config(config)
        with storage_errors(self.path), self._conn:
            self._conn.execute(
                "UPDATE topics SET config = ? WHERE name = ?",
                (json.dumps(checked, sort_keys=True), name),
            )
        return replace(current, config=checked)

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

    def delete_offsets(self, group_id: str, partitions: Iterable[tuple[str, int]]) -> int:
        """Forget a group's committed offsets of some partitions (OffsetDelete), all in one
        transaction; returns how many there were."""
        with storage_errors(self.path), self._conn:
            before = self._conn.totalchanges()
            self._conn.executemany(
                "DELETE FROM group_offsets WHERE group_id = ? AND topic = ? AND partition = ?",
                [(group_id, topic, partition) for topic, partition in partitions])
            return self._conn.totalchanges() - before

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
