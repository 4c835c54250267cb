"""The metrics exposition tells what the store itself reports.

An embedded store runs a known workload (rolls by size, retention deletions, a group that
committed part of a topic, a live group member); its registry is rendered and parsed with
prometheus-client's own parser, and every offset, lag, segment and counter must equal
what ``describe_topic`` / ``describe_group`` say. Also: deleted topics and groups leave
the exposition, the Kafka exporter's rules for partitions without a commit or offline,
a scrape that cannot be answered in time fails in bounded time, and README.md documents
every metric.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pykka
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support import poll_until, wait_until

from actors.exposition import METRICS, StoreCollector
from actors.metrics import GroupFigures, MetricsActor, MetricsSnapshot, PartitionFigures
from actors.partition import LATENCY_BUCKETS
from actors.runtime import Actor, stop_actor
from eventstore import EventStore
from eventstore.topic_partition import TopicPartition

TIMEOUT = 20.0
README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
FAST = {"group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 100,
        "log.retention.check.interval.ms": 50}
MEMBER = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 100,
          "auto_offset_reset": "earliest", "enable_auto_commit": False}

Labels = tuple[tuple[str, str], ...]


class Exposition:
    """A parsed scrape: sample values by (sample name, labels) and family names by type."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, Labels], float] = {}
        self.families: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            exported = family.name + ("_total" if family.type == "counter" else "")
            self.families[exported] = family.type
            for sample in family.samples:
                self.samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str | int) -> float | None:
        key = tuple(sorted((k, str(v)) for k, v in labels.items()))
        return self.samples.get((name, key))

    def series(self, name: str) -> dict[Labels, float]:
        return {labels: value for (sample, labels), value in self.samples.items()
                if sample == name}


def scrape(store: EventStore) -> Exposition:
    return Exposition(generate_latest(store.metrics_registry).decode())


def produce(store: EventStore, topic: str, batches: dict[int, int], size: int = 100) -> None:
    """``batches[partition]`` batches of 5 records of ``size`` bytes, one flush each."""
    producer = store.producer(linger_ms=1000)
    for partition, count in batches.items():
        for _ in range(count):
            for _ in range(5):
                producer.send(topic, b"v" * size, partition=partition)
            producer.flush()
    producer.close()


def consume_all(consumer, expected: int) -> int:
    """Poll until at least ``expected`` records came; returns how many came."""
    return len(poll_until(lambda: consumer.poll(timeout_ms=200), expected, TIMEOUT,
                          f"{expected} records"))


def test_exposition_holds_the_offsets_and_lag_the_store_reports(data_dir):
    with EventStore.open(data_dir, config=FAST) as store:
        store.create_topic("orders", partitions=3,
                           config={"segment.bytes": 1000, "retention.bytes": 2500})
        store.create_topic("audit", partitions=1)
        produce(store, "orders", {0: 8, 1: 2, 2: 1})
        produce(store, "audit", {0: 1}, size=10)
        wait_until(lambda: store.describe_topic("orders").partitions[0].log_start_offset > 0,
                   TIMEOUT, "retention to delete a segment of orders-0")

        billing = store.consumer(group_id="billing", **MEMBER)
        billing.assign([("orders", 0), ("orders", 1)])
        billing.seek_to_beginning()
        fetched = consume_all(billing, 1)
        end0 = store.describe_topic("orders").partitions[0].log_end_offset
        billing.commit({("orders", 0): end0, ("orders", 1): 3})  # orders-2: nothing
        live = store.consumer("audit", group_id="live", **MEMBER)
        fetched_audit = consume_all(live, 5)
        live.commit()

        exposition = scrape(store)
        topic = store.describe_topic("orders")
        groups = {g: store.describe_group(g) for g in ("billing", "live")}

        assert exposition.value("kafka_topic_partitions", topic="orders") == 3
        assert exposition.value("kafka_topic_partitions", topic="audit") == 1
        for p in topic.partitions:
            labels = {"topic": "orders", "partition": p.partition}
            assert exposition.value("kafka_topic_partition_current_offset",
                                    **labels) == p.log_end_offset
            assert exposition.value("kafka_topic_partition_oldest_offset",
                                    **labels) == p.log_start_offset
            assert exposition.value("eventstore_partition_segments", **labels) == p.segments
            assert exposition.value("eventstore_partition_bytes", **labels) == p.bytes
        assert topic.partitions[0].log_start_offset > 0

        for group_id, description in groups.items():
            reported = {(gp.topic, gp.partition): gp for gp in description.partitions}
            for name in {gp.topic for gp in description.partitions}:
                lag_sum = 0
                for p in store.describe_topic(name).partitions:
                    labels = {"consumergroup": group_id, "topic": name,
                              "partition": p.partition}
                    gp = reported.get((name, p.partition))
                    committed = -1 if gp is None else gp.committed_offset
                    lag = -1 if gp is None else gp.lag
                    lag_sum += max(lag, 0)
                    assert exposition.value("kafka_consumergroup_current_offset",
                                            **labels) == committed
                    assert exposition.value("kafka_consumergroup_lag", **labels) == lag
                assert exposition.value("kafka_consumergroup_lag_sum", consumergroup=group_id,
                                        topic=name) == lag_sum
            assert exposition.value("kafka_consumergroup_members",
                                    consumergroup=group_id) == len(description.members)
        assert exposition.value("kafka_consumergroup_lag", consumergroup="billing",
                                topic="orders", partition=1) == 10 - 3
        assert exposition.value("kafka_consumergroup_lag", consumergroup="billing",
                                topic="orders", partition=2) == -1
        assert exposition.value("kafka_consumergroup_members", consumergroup="live") == 1
        assert exposition.value("eventstore_group_rebalances_total") >= 1

        appended = {"orders": 55, "audit": 5}
        for name, records in appended.items():
            assert exposition.value("eventstore_records_appended_total", topic=name) == records
            assert exposition.value("eventstore_append_latency_seconds_count",
                                    topic=name) == records / 5
            assert exposition.value("eventstore_append_latency_seconds_bucket",
                                    topic=name, le="+Inf") == records / 5
        assert exposition.value("eventstore_bytes_appended_total", topic="audit") == 5 * 30
        assert exposition.value("eventstore_records_fetched_total", topic="orders") == fetched
        assert exposition.value("eventstore_records_fetched_total", topic="audit") == 5
        assert fetched_audit == 5

        rolls = exposition.series("eventstore_segment_rolls_total")
        size_rolls = rolls[(("reason", "size"), ("topic", "orders"))]
        deleted = exposition.value("eventstore_segments_deleted_total", topic="orders")
        segments = sum(p.segments for p in topic.partitions)
        assert size_rolls >= 4 and deleted >= 1
        assert segments == 3 + size_rolls + rolls[(("reason", "age"), ("topic", "orders"))] \
            - deleted
        assert exposition.value("eventstore_partitions_offline", topic="orders") == 0
        assert exposition.value("eventstore_actor_mailbox_depth", actor="broker") is not None


def test_deleted_topics_and_groups_leave_the_exposition(data_dir):
    with EventStore.open(data_dir, config=FAST) as store:
        for name in ("kept", "doomed"):
            store.create_topic(name, partitions=2)
            produce(store, name, {0: 1})
        committer = store.consumer(group_id="doomed-group", **MEMBER)
        committer.commit({("doomed", 0): 2, ("kept", 0): 1})
        committer.close()
        before = scrape(store)
        assert before.value("kafka_consumergroup_lag", consumergroup="doomed-group",
                            topic="doomed", partition=0) == 3

        store.delete_topic("doomed")
        after_topic = scrape(store)
        assert not [labels for _, labels in after_topic.samples
                    if ("topic", "doomed") in labels]
        assert after_topic.value("kafka_consumergroup_lag", consumergroup="doomed-group",
                                 topic="kept", partition=0) == 4

        assert store.system.coordinator.delete_group("doomed-group").get() == 0
        after_group = scrape(store)
        assert not [labels for _, labels in after_group.samples
                    if ("consumergroup", "doomed-group") in labels]
        assert after_group.value("kafka_topic_partitions", topic="kept") == 2


def _partition(partition: int, end: int, **overrides: object) -> PartitionFigures:
    figures = dict(
        topic="t", partition=partition, offline=False, log_start_offset=0,
        log_end_offset=end, segments=1, bytes=0, mailbox_depth=0, records_appended=end,
        bytes_appended=0, records_fetched=0, bytes_fetched=0, failed_reads=0,
        latency_counts=(0,) * (len(LATENCY_BUCKETS) + 1), latency_sum=0.0,
        rolls={"size": 0, "age": 0}, segments_deleted=0, restarts=0)
    figures.update(overrides)
    return PartitionFigures(**figures)


def test_the_kafka_exporter_rules_for_missing_commits_and_offline_partitions():
    """A never-opened offline partition has no offsets and no lag; a commit past the
    log end is lag 0 (as describe_group says); a topic the group never committed to
    (or that no longer exists) is not reported for it."""
    snapshot = MetricsSnapshot(
        partitions=(_partition(0, 10), _partition(1, -1, offline=True, segments=0),
                    _partition(2, 4)),
        groups=(GroupFigures("g", 2, {TopicPartition("t", 0): 12,
                                      TopicPartition("gone", 0): 1}),),
        rebalances_total=3, mailbox_depths={"broker": 0, "coordinator": 0})
    registry = CollectorRegistry()
    registry.register(StoreCollector(lambda: snapshot))
    exposition = Exposition(generate_latest(registry).decode())
    assert exposition.value("kafka_topic_partition_current_offset",
                            topic="t", partition=1) is None
    assert exposition.value("eventstore_partitions_offline", topic="t") == 1
    current = exposition.series("kafka_consumergroup_current_offset")
    assert {dict(k)["partition"]: v for k, v in current.items()} == {
        "0": 12, "1": -1, "2": -1}
    lag = exposition.series("kafka_consumergroup_lag")
    assert {dict(k)["partition"]: v for k, v in lag.items()} == {"0": 0, "2": -1}
    assert exposition.value("kafka_consumergroup_lag_sum", consumergroup="g", topic="t") == 0
    assert exposition.value("kafka_consumergroup_members", consumergroup="g") == 2
    assert exposition.value("eventstore_group_rebalances_total") == 3


class _Stuck(Actor):
    """A broker and coordinator that answer listings but never finish ``stats``."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self._release = release

    def list_topics(self) -> list:
        return []

    def compacted_partitions(self) -> tuple:
        return ()

    def stats(self) -> None:
        self._release.wait(TIMEOUT)


def test_a_scrape_that_cannot_be_answered_fails_in_bounded_time():
    release = threading.Event()
    stuck = _Stuck.start(release)
    metrics = MetricsActor.start(stuck.proxy(), stuck.proxy(), timeout_s=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(pykka.Timeout):
            metrics.proxy().snapshot().get(timeout=TIMEOUT)
        assert time.monotonic() - started < 2
    finally:
        release.set()
        stop_actor(metrics)
        stop_actor(stuck)


def test_a_stopped_store_exports_nothing(data_dir):
    store = EventStore.open(data_dir)
    store.create_topic("t")
    registry = store.metrics_registry
    store.close()
    assert generate_latest(registry) == b""


def test_readme_documents_every_exported_metric(data_dir):
    with EventStore.open(data_dir, config=FAST) as store:
        store.create_topic("t")
        produce(store, "t", {0: 1})
        committer = store.consumer(group_id="g", **MEMBER)
        committer.commit({("t", 0): 1})
        exported = scrape(store).families
    declared = {spec.name for spec in METRICS}
    assert set(exported) == declared
    section = README.split("## Metrics and dashboards", 1)[1].split("\n## ", 1)[0]
    for spec in METRICS:
        assert f"| `{spec.name}` |" in section, spec.name
        for label in spec.labels:
            assert f"`{label}`" in section
