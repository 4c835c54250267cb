"""The metrics actor: one consistent snapshot of the store's figures, taken at scrape time.

A Prometheus scrape asks this actor for a :class:`MetricsSnapshot`. The actor asks the
broker for every topic's partition handles and the group coordinator for its groups and
committed offsets, then reads what each partition has already published (its LogView,
its PartitionStats, its actor's inbox size) without sending a partition actor a single
message, so a scrape never waits behind an append and never slows one down. Every
question it asks is bounded by one deadline, so a scrape takes bounded time; the actor
serializes scrapes, so several scrapers at once cost the broker no more than one each.

A compacted topic's partition also has its dirty ratio, from its view and the cleaner's
state the partition published with the last cleaning it swapped in; a partition that has
had transactions its last stable offset, from its view; and the transaction coordinator
answers its counts (open now, commits and aborts completed).

The snapshot is plain frozen data; turning it into Prometheus metric families is
:mod:`actors.exposition`'s job.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pykka

from actors.partition import LATENCY_BUCKETS, PartitionHandle
from actors.runtime import Actor
from actors.transactions import TransactionStats
from eventstore.errors import KafkaError
from eventstore.topic_partition import TopicPartition

# How long one snapshot may take before the scrape fails instead of hanging.
SNAPSHOT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class PartitionFigures:
    """One partition as a scrape sees it.

    Offsets are -1 while nothing of the log is known (neither a published view nor, for
    one not opened since start-up, its segments' metadata yet). ``open``: an actor runs
    it (its files are open); a partition unused for a while is not. An offline
    partition that was open keeps the offsets of its last view, which are what is on disk.
    A partition with a damaged segment counts as offline although it serves the rest.
    ``latency_counts[i]`` counts appends that took at most ``LATENCY_BUCKETS[i]`` seconds
    (not cumulative); the last entry counts the slower ones.
    """

    topic: str
    partition: int
    offline: bool
    log_start_offset: int
    log_end_offset: int
    segments: int
    bytes: int
    mailbox_depth: int
    records_appended: int
    bytes_appended: int
    records_fetched: int
    bytes_fetched: int
    failed_reads: int
    latency_counts: tuple[int, ...]
    latency_sum: float
    rolls: Mapping[str, int]
    segments_deleted: int
    restarts: int
    cleaner_runs: int = 0
    cleaner_bytes_removed: int = 0
    dirty_ratio: float | None = None  # a compacted topic's partition only
    open: bool = False
    last_stable_offset: int = -1  # a partition that has had transactional batches only


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """A consumer group: its member count and its committed offsets (the next to read)."""

    group_id: str
    members: int
    committed: Mapping[TopicPartition, int]
    epoch: int | None = None  # a ``consumer`` (KIP-848) group's group epoch


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything one scrape exports; partitions by topic then partition, groups by id."""

    partitions: tuple[PartitionFigures, ...]
    groups: tuple[GroupFigures, ...]
    rebalances_total: int
    mailbox_depths: Mapping[str, int]
    latency_bounds: tuple[float, ...] = LATENCY_BUCKETS
    transactions: TransactionStats | None = None  # the transaction coordinator's, if any


class MetricsActor(Actor):
    """Answers :meth:`snapshot` from the broker, the coordinator and published state."""

    def __init__(self, broker: pykka.ActorProxy[Any], coordinator: pykka.ActorProxy[Any],
                 timeout_s: float = SNAPSHOT_TIMEOUT_S,
                 transactions: pykka.ActorProxy[Any] | None = None) -> None:
        super().__init__()
        self._broker = broker
        self._coordinator = coordinator
        self._timeout_s = timeout_s
        self._transactions = transactions

    def snapshot(self) -> MetricsSnapshot:
        """The store's figures now; raises pykka's Timeout past the snapshot deadline."""
        deadline = _Deadline(self._timeout_s)
        # ask both actors at once; each answers on its own thread
        topics = self._broker.list_topics()
        compacted_partitions = self._broker.compacted_partitions()
        coordinator_stats = self._coordinator.stats()
        txn_stats = None if self._transactions is None else self._transactions.stats()
        handles = [self._broker.partitions(info.name) for info in deadline.get(topics)]
        compacted = {handle.topic_partition
                     for handle, _, _ in deadline.get(compacted_partitions)}
        stats = deadline.get(coordinator_stats)
        offsets = {group_id: self._coordinator.fetch_offsets(group_id, None)
                   for group_id in stats.members_per_group}
        partitions = []
        for future in handles:
            try:
                partitions.extend(_figures(handle, handle.topic_partition in compacted)
                                  for handle in deadline.get(future))
            except KafkaError:  # deleted since it was listed
                continue
        groups = tuple(
            GroupFigures(group_id, members, {
                TopicPartition(*tp): offset
                for tp, (offset, _) in deadline.get(offsets[group_id]).items()
            }, stats.group_epochs.get(group_id))
            for group_id, members in stats.members_per_group.items()
        )
        return MetricsSnapshot(
            partitions=tuple(partitions),
            groups=groups,
            rebalances_total=stats.rebalances_total,
            mailbox_depths={
                "broker": self._broker.actor_ref.actor_inbox.qsize(),
                "coordinator": self._coordinator.actor_ref.actor_inbox.qsize(),
            },
            transactions=None if txn_stats is None else deadline.get(txn_stats),
        )


class _Deadline:
    """One time budget shared by every answer a snapshot waits for."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def get(self, future: pykka.Future[Any]) -> Any:
        return future.get(timeout=max(self._end - time.monotonic(), 0.0))


def _figures(handle: PartitionHandle, compacted: bool) -> PartitionFigures:
    """Read one partition's published view and counters (no message to its actor), and
    of a ``compacted`` topic's partition its dirty ratio."""
    state = handle.state
    view = state.known  # of a partition not opened since start-up: its segments' metadata
    stats = state.stats
    histogram = stats.append_latency
    cleaning = state.cleaning_status()
    actor = handle.slot.actor  # read without counting as a use: no actor is kept running
    return PartitionFigures(
        topic=state.topic,
        partition=state.partition,
        # damaged: some offsets the log holds cannot be read, so it is not wholly serving
        offline=state.error is not None or bool(view and view.damage),
        log_start_offset=-1 if view is None else view.log_start_offset,
        log_end_offset=-1 if view is None else view.high_watermark,
        segments=0 if view is None else len(view.segments),
        bytes=0 if view is None else sum(s.bytes for s in view.segments),
        mailbox_depth=0 if actor is None else actor.actor_ref.actor_inbox.qsize(),
        open=actor is not None,
        records_appended=stats.records_appended,
        bytes_appended=stats.bytes_appended,
        records_fetched=stats.records_fetched,
        bytes_fetched=stats.bytes_fetched,
        failed_reads=stats.failed_reads,
        latency_counts=tuple(histogram.counts),
        latency_sum=histogram.sum,
        rolls=dict(stats.rolls),
        segments_deleted=stats.segments_deleted,
        restarts=stats.restarts,
        cleaner_runs=stats.cleaner.runs,
        cleaner_bytes_removed=stats.cleaner.bytes_removed,
        dirty_ratio=None if cleaning is None or not compacted else cleaning.dirty_ratio,
        last_stable_offset=view.last_stable_offset if view and view.transactional else -1,
    )
