"""Working on a data directory directly: reads through the read-only SQL engine (no lock,
so they work beside a running server), writes through the embedded store, which takes the
directory's lock and so refuses while a server (or another tool) holds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from eventstore.cli.base import EXIT_UNAVAILABLE, CliError
from eventstore.cli.details import GroupDetail, PartitionDetail, TopicDetail
from eventstore.config import TopicConfig
from eventstore.errors import DataDirLocked, UnknownTopicOrPartition, error_for_code
from eventstore.sql import SqlEngine

if TYPE_CHECKING:  # the embedded store (the actor system) is loaded only by writing commands
    from eventstore.client import EventStore

# An offline tool never creates a topic by naming it (a typo must not become a topic), and
# its group consumer is the only possible member (it holds the lock): no wait for others.
STORE_CONFIG = {"auto.create.topics.enable": False, "group.initial.rebalance.delay.ms": 0}


def open_engine(data_dir: str, *, files_only: bool = False) -> SqlEngine:
    """The read-only SQL engine over ``data_dir``; CliError if there is no such directory,
    pointing to --bootstrap-server unless the command reads files only (``files_only``:
    `sql` and `segments`, which no server can answer)."""
    if not os.path.isdir(data_dir):
        other = ("it reads the segment files, not a server" if files_only
                 else "or --bootstrap-server HOST:PORT for a running server")
        raise CliError(f"data directory {data_dir} does not exist (use --data-dir DIR,"
                       f" {other})")
    return SqlEngine(data_dir)


def open_store(data_dir: str, server_option: str = "--bootstrap-server") -> EventStore:
    """The embedded store on ``data_dir``, holding its lock; CliError (exit 3) naming the
    process that holds the lock instead, and ``server_option``, the way through it."""
    from eventstore.client import EventStore

    try:
        return EventStore.open(data_dir, STORE_CONFIG)
    except DataDirLocked as exc:
        raise CliError(f"{exc.args[0]}: stop it or use {server_option} to go through the"
                       " server", EXIT_UNAVAILABLE) from None


def _as_text(config: Mapping[str, Any]) -> dict[str, str]:
    """Config values as text, as Kafka's DescribeConfigs (and so the wire target) gives them."""
    return {key: str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in config.items()}


class LocalCluster:
    """Topic and group administration of a data directory (see the module doc).

    With ``writing`` the store is opened (and the directory locked) at once, so what the
    command reads before it writes cannot change underneath it.
    """

    def __init__(self, data_dir: str, *, writing: bool) -> None:
        self._store = open_store(data_dir) if writing else None
        try:
            self._engine = open_engine(data_dir)
        except BaseException:
            self.close()
            raise

    def _rows(self, sql: str, *params: Any) -> list[tuple]:
        return self._engine.query(sql, params)[1]

    def _writer(self) -> EventStore:
        assert self._store is not None, "a writing command opens LocalCluster(writing=True)"
        return self._store

    # -- topics -----------------------------------------------------------------------------

    def list_topics(self) -> list[tuple[str, int]]:
        return self._rows("SELECT topic, partitions FROM topics ORDER BY topic")

    def describe_topic(self, name: str) -> TopicDetail:
        found = self._rows("SELECT config FROM topics WHERE topic = ?", name)
        if not found:
            raise UnknownTopicOrPartition(f"topic {name!r} does not exist")
        overrides = json.loads(found[0][0])
        partitions = tuple(
            PartitionDetail(*row) for row in self._rows(
                "SELECT topic, partition, log_start_offset, log_end_offset, segment_count, bytes,"
                " problem FROM partitions WHERE topic = ? ORDER BY partition", name)
        )
        self._engine.warnings()  # the problems are in the details
        effective = TopicConfig.from_mapping(overrides).to_mapping()
        return TopicDetail(name, partitions, _as_text(effective), _as_text(overrides))

    def describe_topics(self, names: Sequence[str] | None) -> list[TopicDetail]:
        chosen = [name for name, _ in self.list_topics()] if names is None else names
        return [self.describe_topic(name) for name in chosen]

    def create_topic(self, name: str, partitions: int | None, config: Mapping[str, str]) -> None:
        self._writer().create_topic(name, partitions, config)

    def alter_topic(self, name: str, partitions: int | None,
                    config: Mapping[str, str | None]) -> None:
        store = self._writer()
        store.describe_topic(name)  # UnknownTopicOrPartition before anything changes
        if config:
            store.alter_topic_config(name, config)
        if partitions is not None:
            store.create_partitions(name, partitions)

    def delete_topic(self, name: str) -> None:
        self._writer().delete_topic(name)

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int | None:
        ((offset,),) = self._rows(
            "SELECT min(offset) FROM records WHERE topic = ? AND partition = ?"
            " AND timestamp >= ?", topic, partition, timestamp_ms)
        return offset

    # -- groups -----------------------------------------------------------------------------

    def list_groups(self) -> list[tuple[str, str]]:
        """Groups with committed offsets; with no server running, none has members."""
        return [(g, "Empty") for (g,) in self._rows(
            "SELECT DISTINCT group_id FROM consumer_groups ORDER BY group_id")]

    def describe_group(self, group_id: str) -> GroupDetail:
        rows = self._rows("SELECT topic, partition, committed_offset, group_epoch,"
                          " assignment_epoch FROM consumer_groups WHERE group_id = ?", group_id)
        committed = {(t, p): o for t, p, o, _, _ in rows}
        epochs = rows[0][3:] if rows else (None, None)  # the catalog's, as a server wrote them
        return GroupDetail(group_id, "Empty" if committed else "Dead", (), committed,
                           "", *epochs)

    def commit_offsets(self, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
        consumer = self._writer().consumer(group_id=group_id, enable_auto_commit=False)
        try:
            consumer.commit(dict(offsets))
        finally:
            consumer.close(autocommit=False)

    def delete_group(self, group_id: str) -> None:
        code = self._writer().system.coordinator.delete_group(group_id).get()
        if code:
            raise error_for_code(code, f"consumer group {group_id!r}")

    def close(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.close()
        if self._store is not None:
            self._store.close()
