"""Building data directories for the SQL tests, with the storage core only (no actors).

Not a test module of its own: the SQL test modules import it. ``read_log`` is the
brute-force reference the SQL results are compared with: every record of every partition
read with ``PartitionLog.read`` from the log-start-offset to the high watermark.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from support import ManualClock

from eventstore.config import TopicConfig
from eventstore.storage.catalog import Catalog, CommittedOffset, partition_dir
from eventstore.storage.log import PartitionLog
from eventstore.storage.records import AppendRow

Row = tuple[Any, ...]


def create_topic(
    data_dir: str, name: str, partitions: int, config: Mapping[str, Any] | None = None
) -> TopicConfig:
    """Record a topic in the catalog; returns its effective config."""
    catalog = Catalog.open(data_dir)
    try:
        catalog.create_topic(name, partitions, dict(config or {}), 0)
    finally:
        catalog.close()
    return TopicConfig.from_mapping(config or {})


def append_batches(
    data_dir: str,
    topic: str,
    partition: int,
    batches: Iterable[Sequence[AppendRow]],
    config: TopicConfig,
    *,
    retention: bool = False,
) -> None:
    """Append each batch to a partition (created if new); apply retention at the end if asked.
    The log's clock stands still, so segment metadata times are predictable."""
    log = PartitionLog.open(
        partition_dir(data_dir, topic, partition), config, clock=ManualClock(1_000_000), create=True
    )
    try:
        for batch in batches:
            log.append(batch)
        if retention:
            log.apply_retention()
    finally:
        log.close()


def commit(data_dir: str, group: str, topic: str, partition: int, offset: int) -> None:
    catalog = Catalog.open(data_dir)
    try:
        catalog.commit_offsets(group, [CommittedOffset(group, topic, partition, offset, None, 7)])
    finally:
        catalog.close()


def read_log(data_dir: str) -> list[Row]:
    """Every visible record as (topic, partition, offset, timestamp, key, value, headers)."""
    catalog = Catalog.open(data_dir, readonly=True)
    try:
        topics = catalog.topics()
    finally:
        catalog.close()
    rows: list[Row] = []
    for topic in topics:
        for partition in range(topic.partitions):
            directory = partition_dir(data_dir, topic.name, partition)
            if not os.path.isdir(directory):
                continue
            log = PartitionLog.open(directory, TopicConfig.from_mapping(topic.config))
            try:
                stored = log.read(log.log_start_offset, max_records=10**9)
            finally:
                log.close()
            rows += [(topic.name, partition, *row) for row in stored]
    return rows


def file_hashes(data_dir: str) -> dict[str, str]:
    """sha256 of every file under ``data_dir``, by relative path."""
    hashes = {}
    for root, _, names in os.walk(data_dir):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                hashes[os.path.relpath(path, data_dir)] = hashlib.sha256(fh.read()).hexdigest()
    return hashes
