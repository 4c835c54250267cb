"""The store's figures as Prometheus metrics: the catalogue of names and the collector.

Names follow the widely used Kafka exporter (``kafka_topic_partition_current_offset``,
``kafka_consumergroup_lag``...) so the dashboards and alerts Kafka users already have
keep working; eventstore's own figures are under ``eventstore_``. :data:`METRICS` is the
one list of what is exported (README.md documents each entry, a test keeps them equal).

:class:`StoreCollector` is a prometheus-client custom collector: every ``collect()``
builds fresh families from one :class:`~actors.metrics.MetricsSnapshot`, so a deleted
topic or group is simply absent from the next scrape, and counters are read from the
partitions' own counters (they survive actor restarts) rather than mirrored here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from actors.metrics import GroupFigures, MetricsSnapshot, PartitionFigures

_FAMILIES = {
    "gauge": GaugeMetricFamily,
    "counter": CounterMetricFamily,
    "histogram": HistogramMetricFamily,
}


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric: its name as scraped, its type, labels, and meaning."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str

    def family(self) -> Metric:
        """An empty family of this metric to add samples to."""
        return _FAMILIES[self.kind](self.name, self.help, labels=self.labels)


TOPIC, PARTITION, GROUP = "topic", "partition", "consumergroup"

METRICS: tuple[MetricSpec, ...] = (
    # -- the Kafka exporter's names -------------------------------------------------------
    MetricSpec("kafka_topic_partitions", "gauge", (TOPIC,),
               "Number of partitions of the topic"),
    MetricSpec("kafka_topic_partition_current_offset", "gauge", (TOPIC, PARTITION),
               "Log-end-offset of the partition: the offset the next record will get"),
    MetricSpec("kafka_topic_partition_oldest_offset", "gauge", (TOPIC, PARTITION),
               "Log-start-offset of the partition: the first offset retention still keeps"),
    MetricSpec("kafka_consumergroup_current_offset", "gauge", (GROUP, TOPIC, PARTITION),
               "Committed offset of the group (the next it reads); -1 where none is"
               " committed in a topic the group consumes"),
    MetricSpec("kafka_consumergroup_lag", "gauge", (GROUP, TOPIC, PARTITION),
               "Log-end-offset minus committed offset; -1 where none is committed"),
    MetricSpec("kafka_consumergroup_lag_sum", "gauge", (GROUP, TOPIC),
               "Lag of the group summed over the topic's partitions that have a commit"),
    MetricSpec("kafka_consumergroup_members", "gauge", (GROUP,),
               "Members of the consumer group"),
    MetricSpec("eventstore_group_epoch", "gauge", (GROUP,),
               "Group epoch of a `consumer` (KIP-848) group: bumped by every change of"
               " members, subscriptions or subscribed topics"),
    # -- eventstore's own -----------------------------------------------------------------
    MetricSpec("eventstore_records_appended_total", "counter", (TOPIC,),
               "Records appended durably to the topic"),
    MetricSpec("eventstore_bytes_appended_total", "counter", (TOPIC,),
               "Bytes of records appended durably to the topic"),
    MetricSpec("eventstore_records_fetched_total", "counter", (TOPIC,),
               "Records of the topic handed to consumers"),
    MetricSpec("eventstore_bytes_fetched_total", "counter", (TOPIC,),
               "Bytes of records of the topic handed to consumers"),
    MetricSpec("eventstore_failed_reads_total", "counter", (TOPIC,),
               "Reads of the topic (fetches, polls) that a storage error stopped: a damaged"
               " or missing segment, an I/O error"),
    MetricSpec("eventstore_append_latency_seconds", "histogram", (TOPIC,),
               "Time a partition actor took to append one batch durably"),
    MetricSpec("eventstore_partition_segments", "gauge", (TOPIC, PARTITION),
               "Segment files of the partition, the active one included"),
    MetricSpec("eventstore_partition_bytes", "gauge", (TOPIC, PARTITION),
               "Bytes of records kept in the partition's segments"),
    MetricSpec("eventstore_segment_rolls_total", "counter", (TOPIC, "reason"),
               "Segments sealed and replaced, by reason: size (segment.bytes) or age"
               " (segment.ms)"),
    MetricSpec("eventstore_segments_deleted_total", "counter", (TOPIC,),
               "Sealed segments deleted by retention (retention.ms, retention.bytes)"),
    MetricSpec("eventstore_log_cleaner_runs_total", "counter", (TOPIC,),
               "Cleanings (log compaction) swapped into the topic's partitions"),
    MetricSpec("eventstore_log_cleaner_bytes_removed_total", "counter", (TOPIC,),
               "Bytes of records that cleanings removed from the topic's sealed segments"),
    MetricSpec("eventstore_partition_dirty_ratio", "gauge", (TOPIC, PARTITION),
               "Share of a compacted partition's sealed segment bytes not cleaned yet (what"
               " min.cleanable.dirty.ratio is compared with); only for cleanup.policy compact"),
    MetricSpec("eventstore_partition_restarts_total", "counter", (TOPIC,),
               "Partition actors restarted from disk after a failure"),
    MetricSpec("eventstore_partitions_offline", "gauge", (TOPIC,),
               "Partitions of the topic that are offline (failed, corrupt, restarting) or"
               " have a segment that cannot be read"),
    MetricSpec("eventstore_partition_mailbox_depth", "gauge", (TOPIC, PARTITION),
               "Messages (append batches, timers) waiting in the partition actor's inbox"),
    MetricSpec("eventstore_partitions_open", "gauge", (),
               "Partitions whose actor runs (their files open); an unused one closes"),
    MetricSpec("eventstore_actor_mailbox_depth", "gauge", ("actor",),
               "Messages waiting in the inbox of the broker or the group coordinator actor"),
    MetricSpec("eventstore_group_rebalances_total", "counter", (),
               "Consumer-group rebalances started since the store started"),
    MetricSpec("eventstore_partition_last_stable_offset_lag", "gauge", (TOPIC, PARTITION),
               "Log-end-offset minus last stable offset (LSO): records read_committed"
               " consumers cannot read yet, held back by open transactions; only for"
               " partitions that have had transactional records"),
    MetricSpec("eventstore_transactions_open", "gauge", (),
               "Transactions open now (Ongoing, or a commit or abort being completed)"),
    MetricSpec("eventstore_transactions_committed_total", "counter", (),
               "Transactions committed (markers written) since the store started"),
    MetricSpec("eventstore_transactions_aborted_total", "counter", (),
               "Transactions aborted (markers written) since the store started, by their"
               " producer or on timeout"),
)


class StoreCollector:
    """A prometheus-client collector over ``snapshot()``, called once per scrape.

    ``snapshot`` returns None while the store is not running (nothing is exported) and
    raises when it cannot answer in time, which fails the scrape rather than exporting
    figures that are not current.
    """

    def __init__(self, snapshot: Callable[[], MetricsSnapshot | None]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        """The families :meth:`collect` yields (prometheus-client uses their names)."""
        return [spec.family() for spec in METRICS]

    def collect(self) -> Iterable[Metric]:
        snapshot = self._snapshot()
        if snapshot is None:
            return []
        families = {spec.name: spec.family() for spec in METRICS}
        for name, labels, value in _samples(snapshot):
            families[name].add_metric(labels, value)
        latency = families["eventstore_append_latency_seconds"]
        for topic, (buckets, total) in _topic_latency(snapshot).items():
            latency.add_metric([topic], buckets, total)
        return list(families.values())


Sample = tuple[str, list[str], float]


def _samples(snapshot: MetricsSnapshot) -> Iterator[Sample]:
    """Every sample but the latency histogram's, as (metric name, label values, value)."""
    by_topic: dict[str, list[PartitionFigures]] = defaultdict(list)
    for figures in snapshot.partitions:
        by_topic[figures.topic].append(figures)
    for topic, partitions in by_topic.items():
        yield from _topic_samples(topic, partitions)
    for group in snapshot.groups:
        yield from _group_samples(group, by_topic)
    yield "eventstore_group_rebalances_total", [], snapshot.rebalances_total
    yield "eventstore_partitions_open", [], sum(p.open for p in snapshot.partitions)
    txns = snapshot.transactions
    if txns is not None:
        yield "eventstore_transactions_open", [], txns.open
        yield "eventstore_transactions_committed_total", [], txns.commits
        yield "eventstore_transactions_aborted_total", [], txns.aborts
    for actor, depth in snapshot.mailbox_depths.items():
        yield "eventstore_actor_mailbox_depth", [actor], depth


def _topic_samples(topic: str, partitions: list[PartitionFigures]) -> Iterator[Sample]:
    yield "kafka_topic_partitions", [topic], len(partitions)
    for p in partitions:
        labels = [topic, str(p.partition)]
        if p.log_end_offset >= 0:
            yield "kafka_topic_partition_current_offset", labels, p.log_end_offset
            yield "kafka_topic_partition_oldest_offset", labels, p.log_start_offset
        yield "eventstore_partition_segments", labels, p.segments
        yield "eventstore_partition_bytes", labels, p.bytes
        yield "eventstore_partition_mailbox_depth", labels, p.mailbox_depth
        if p.dirty_ratio is not None:
            yield "eventstore_partition_dirty_ratio", labels, p.dirty_ratio
        if p.last_stable_offset >= 0:
            yield ("eventstore_partition_last_stable_offset_lag", labels,
                   p.log_end_offset - p.last_stable_offset)
    for name, field in (("eventstore_records_appended_total", "records_appended"),
                        ("eventstore_bytes_appended_total", "bytes_appended"),
                        ("eventstore_records_fetched_total", "records_fetched"),
                        ("eventstore_bytes_fetched_total", "bytes_fetched"),
                        ("eventstore_failed_reads_total", "failed_reads"),
                        ("eventstore_segments_deleted_total", "segments_deleted"),
                        ("eventstore_log_cleaner_runs_total", "cleaner_runs"),
                        ("eventstore_log_cleaner_bytes_removed_total", "cleaner_bytes_removed"),
                        ("eventstore_partition_restarts_total", "restarts"),
                        ("eventstore_partitions_offline", "offline")):
        yield name, [topic], sum(getattr(p, field) for p in partitions)
    rolls: dict[str, int] = defaultdict(int)
    for p in partitions:
        for reason, count in p.rolls.items():
            rolls[reason] += count
    for reason, count in sorted(rolls.items()):
        yield "eventstore_segment_rolls_total", [topic, reason], count


def _group_samples(group: GroupFigures, by_topic: dict[str, list[PartitionFigures]]
                   ) -> Iterator[Sample]:
    """A group's rows as the Kafka exporter makes them.

    Only topics where the group has committed at least one offset (and which still exist)
    are reported; there, every partition gets a current offset (-1 if none is committed)
    and, where the log-end-offset is known, a lag (-1 if none is committed, else never
    below 0, as ``describe_group`` reports it). The lag sum adds the known lags.
    """
    yield "kafka_consumergroup_members", [group.group_id], group.members
    if group.epoch is not None:
        yield "eventstore_group_epoch", [group.group_id], group.epoch
    consumed = sorted({tp.topic for tp, offset in group.committed.items()
                       if offset >= 0 and tp.topic in by_topic})
    for topic in consumed:
        lag_sum = 0
        for p in by_topic[topic]:
            labels = [group.group_id, topic, str(p.partition)]
            committed = group.committed.get((topic, p.partition), -1)
            yield "kafka_consumergroup_current_offset", labels, committed
            if p.log_end_offset < 0:
                continue
            lag = -1 if committed < 0 else max(p.log_end_offset - committed, 0)
            lag_sum += max(lag, 0)
            yield "kafka_consumergroup_lag", labels, lag
        yield "kafka_consumergroup_lag_sum", [group.group_id, topic], lag_sum


def _topic_latency(snapshot: MetricsSnapshot
                   ) -> dict[str, tuple[list[tuple[str, float]], float]]:
    """Per topic: the partitions' append latency histograms added up, as cumulative
    ``(le, count)`` buckets ending with ``+Inf``, and the sum of latencies."""
    counts: dict[str, list[int]] = {}
    sums: dict[str, float] = defaultdict(float)
    for p in snapshot.partitions:
        topic_counts = counts.setdefault(p.topic, [0] * len(p.latency_counts))
        for i, count in enumerate(p.latency_counts):
            topic_counts[i] += count
        sums[p.topic] += p.latency_sum
    bounds = [floatToGoString(b) for b in snapshot.latency_bounds] + ["+Inf"]
    return {topic: (list(zip(bounds, accumulate(c), strict=True)), sums[topic])
            for topic, c in counts.items()}
