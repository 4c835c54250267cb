"""Every dashboard panel works against a real Prometheus scraping a real ``eventstore serve``.

A server gets a topic, records, and a consumer group (librdkafka) that consumed part of
it and committed; a Prometheus server (Debian's ``/usr/bin/prometheus``) scrapes it every second
with the shipped ``grafana/prometheus.yml`` (interval and target adjusted). Then every
PromQL expression of every dashboard panel, with Grafana's variables filled in, must
return at least one series, every template variable must offer the topic and the group,
and the lag Prometheus shows must equal the lag the store reports over the Kafka protocol
(committed offsets from OffsetFetch, log-end-offsets from ListOffsets). A group moved back
with ``groups reset-offsets --shift-by`` shows no consumption on the committed-rate panel.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from support import ServerProcess, eventstore_command, wait_until

from eventstore.sql import SqlEngine

PROMETHEUS = "/usr/bin/prometheus"
GRAFANA = Path(__file__).resolve().parents[1] / "grafana"
TOPIC, GROUP = "orders", "billing"
COMPACTED = "prices"  # cleanup.policy=compact: the dirty ratio panel shows its partitions
TRANSACTIONAL = "ledger"  # written in a transaction: the LSO lag panel shows its partitions
PRODUCED = {0: 10, 1: 12}
COMMITTED = {0: 4, 1: 7}
TIMEOUT_S = 30
# Grafana's built-in variables, as Grafana would fill them for a 1 s scrape interval
BUILTINS = {"__rate_interval": "10s", "__interval": "2s", "__range": "1m"}

pytestmark = pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK),
                                reason=f"{PROMETHEUS} is absent (Debian package prometheus)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape_config(example: str, target: str) -> str:
    """The shipped example, scraping ``target`` every second."""
    for old, new in (("scrape_interval: 5s", "scrape_interval: 1s"),
                     ("evaluation_interval: 5s", "evaluation_interval: 1s"),
                     ('"127.0.0.1:9308"', f'"{target}"')):
        assert old in example, f"grafana/prometheus.yml no longer has {old!r}"
        example = example.replace(old, new)
    return example


class Prometheus:
    """A Prometheus server's HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]

    def targets_up(self) -> bool:
        active = self.get("/api/v1/targets")["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)


@pytest.fixture
def prometheus(server: ServerProcess, tmp_path: Path) -> Iterator[Prometheus]:
    """Prometheus scraping ``server`` every second, up and with its target healthy."""
    target = server.metrics_url.split("//", 1)[1].split("/", 1)[0]
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config((GRAFANA / "prometheus.yml").read_text(), target))
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address={address}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    api = Prometheus(f"http://{address}")
    try:
        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            try:
                return api.targets_up()
            except OSError:
                return False

        wait_until(ready, TIMEOUT_S, "Prometheus to scrape eventstore")
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def fill(expr: str, variables: dict[str, str]) -> str:
    """``expr`` with ``$name`` and ``${name}`` replaced as Grafana would."""
    filled = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables[m[1] or m[2]], expr)
    assert "$" not in filled, filled
    return filled


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))]


@pytest.fixture
def workload(server: ServerProcess) -> Iterator[dict[int, int]]:
    """Produce PRODUCED records, consume some as group GROUP and commit COMMITTED (the
    member stays in the group while the test runs); yields the lag the store reports."""
    config = {"bootstrap.servers": server.bootstrap}
    admin = AdminClient(config)  # referenced until the topic exists: its futures need it
    admin.create_topics([NewTopic(TOPIC, len(PRODUCED))])[TOPIC].result(TIMEOUT_S)
    compacted = NewTopic(COMPACTED, 1, config={"cleanup.policy": "compact",
                                                "segment.bytes": "100"})
    admin.create_topics([compacted])[COMPACTED].result(TIMEOUT_S)
    producer = Producer(config)
    for partition, count in PRODUCED.items():
        for i in range(count):
            producer.produce(TOPIC, b"record %d" % i, partition=partition)
    for i in range(10):  # one record per request: each fills a segment, which rolls
        producer.produce(COMPACTED, b"%d" % i, key=b"item %d" % (i % 3))
        assert producer.flush(TIMEOUT_S) == 0
    assert producer.flush(TIMEOUT_S) == 0
    admin.create_topics([NewTopic(TRANSACTIONAL, 1)])[TRANSACTIONAL].result(TIMEOUT_S)
    transactional = Producer({**config, "transactional.id": "dashboard-test"})
    transactional.init_transactions(TIMEOUT_S)
    transactional.begin_transaction()
    transactional.produce(TRANSACTIONAL, b"entry")
    transactional.commit_transaction(TIMEOUT_S)
    consumer = Consumer({**config, "group.id": GROUP, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([TOPIC])
    wait_until(lambda: consumer.poll(0.1), TIMEOUT_S, "a record for the group")
    partitions = [TopicPartition(TOPIC, p, offset) for p, offset in COMMITTED.items()]
    consumer.commit(offsets=partitions, asynchronous=False)
    try:
        committed = consumer.committed(partitions, timeout=TIMEOUT_S)  # OffsetFetch
        yield {tp.partition: consumer.get_watermark_offsets(tp, TIMEOUT_S)[1] - tp.offset
               for tp in committed}  # ListOffsets: the log-end-offset
    finally:
        consumer.close()


def assert_idle_group_has_no_time_to_drain(prometheus: Prometheus, expr: str,
                                           variables: dict[str, str]) -> None:
    """The group committed once and stays idle: once Prometheus sees its committed offsets
    standing still, "Time to drain" shows no value (not +Inf, not NaN)."""
    standing = fill("sum by (consumergroup, topic) (deriv(kafka_consumergroup_current_offset"
                    '{consumergroup=~"$consumergroup", topic=~"$topic"}[$__rate_interval]))'
                    " == 0", variables)
    wait_until(lambda: prometheus.query(standing), TIMEOUT_S,
               "Prometheus to see the idle group's committed offsets standing still")
    assert prometheus.query(expr) == []


def test_every_dashboard_query_returns_data_and_lag_matches_the_store(
        workload: dict[int, int], prometheus: Prometheus) -> None:
    expected_lag = {p: PRODUCED[p] - offset for p, offset in COMMITTED.items()}
    assert workload == expected_lag
    variables = {**BUILTINS, "topic": TOPIC, "consumergroup": GROUP}
    for dashboard in dashboards():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)",
                                         variable["query"]).groups()
            offered = prometheus.get(f"/api/v1/label/{label}/values", **{"match[]": metric})
            assert variables[variable["name"]] in offered, (variable["name"], offered)
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                if "dirty_ratio" in target["expr"]:  # compacted topics only
                    expr = fill(target["expr"], {**variables, "topic": COMPACTED})
                elif "last_stable_offset" in target["expr"]:  # transactional ones only
                    expr = fill(target["expr"], {**variables, "topic": TRANSACTIONAL})
                else:
                    expr = fill(target["expr"], variables)
                if panel["title"] == "Time to drain":
                    assert_idle_group_has_no_time_to_drain(prometheus, expr, variables)
                    continue
                wait_until(lambda expr=expr: prometheus.query(expr), TIMEOUT_S,
                           f"panel {panel['title']!r} to show data: {expr}")

    def lag_shown() -> dict[int, int] | None:
        series = prometheus.query(
            f'kafka_consumergroup_lag{{consumergroup="{GROUP}", topic="{TOPIC}"}}')
        shown = {int(s["metric"]["partition"]): int(float(s["value"][1])) for s in series}
        return shown if shown == workload else None

    wait_until(lag_shown, TIMEOUT_S, f"Prometheus to show the lag {workload}")
    # librdkafka prefetches every record once: Fetch counts each record once
    wait_until(lambda: prometheus.query(
        f'eventstore_records_fetched_total{{topic="{TOPIC}"}} == {sum(PRODUCED.values())}'),
        TIMEOUT_S, "Prometheus to show every record fetched once")
    (lag_sum,) = prometheus.query(
        f'kafka_consumergroup_lag_sum{{consumergroup="{GROUP}", topic="{TOPIC}"}}')
    assert float(lag_sum["value"][1]) == sum(workload.values())
    (members,) = prometheus.query(f'kafka_consumergroup_members{{consumergroup="{GROUP}"}}')
    assert members["value"][1] == "1"


def panel_queries(title: str) -> list[str]:
    """The PromQL expressions of the dashboard panel titled ``title``."""
    return [target["expr"] for dashboard in dashboards() for panel in dashboard["panels"]
            if panel["title"] == title for target in panel["targets"]]


def committed_rate_query() -> str:
    """The "Consume rate" panel's committed-offset query (its other target counts fetches)."""
    (expr,) = [expr for expr in panel_queries("Consume rate")
               if "kafka_consumergroup_current_offset" in expr]
    return expr


def test_a_reset_offsets_shows_no_phantom_consumption(
        server: ServerProcess, prometheus: Prometheus) -> None:
    """``groups reset-offsets --shift-by -600`` moves an idle group's committed offset back
    by 600: "Consume rate - committed" must not read the drop as consumption (rate() on
    the gauge did: it takes the drop for a counter reset), and the idle group's "Time to
    drain" shows no value before and after."""
    topic, group, records, shift = "ledger", "audit", 1000, 600
    config = {"bootstrap.servers": server.bootstrap}
    admin = AdminClient(config)
    admin.create_topics([NewTopic(topic, 1)])[topic].result(TIMEOUT_S)
    producer = Producer(config)
    for i in range(records):
        producer.produce(topic, b"entry %d" % i, partition=0)
    assert producer.flush(TIMEOUT_S) == 0
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, 0, records)], asynchronous=False)
    consumer.close()  # the group is empty: reset-offsets may change it

    variables = {**BUILTINS, "topic": topic, "consumergroup": group}
    committed = f'kafka_consumergroup_current_offset{{consumergroup="{group}", topic="{topic}"}}'
    (drain,) = (fill(expr, variables) for expr in panel_queries("Time to drain"))
    assert_idle_group_has_no_time_to_drain(prometheus, drain, variables)

    done = subprocess.run(
        [*eventstore_command(), "groups", "reset-offsets", group, "--topic", topic,
         "--shift-by", str(-shift), "--execute", "--bootstrap-server", server.bootstrap],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: prometheus.query(f"{committed} == {records - shift}"), TIMEOUT_S,
               "Prometheus to see the committed offset moved back")
    # the window that holds the drop: rate() reads it as ~(records - shift) / 10 s consumed
    as_counter = fill(committed_rate_query().replace("deriv(", "rate("), variables)
    wait_until(lambda: prometheus.query(f"max_over_time(({as_counter})[1m:1s]) > 10"),
               TIMEOUT_S, "rate() to show the phantom consumption the panel must not")
    panel = fill(committed_rate_query(), variables)
    (highest,) = prometheus.query(f"max_over_time(({panel})[1m:1s])")
    assert float(highest["value"][1]) <= 0, "the panel showed consumption that never happened"
    assert_idle_group_has_no_time_to_drain(prometheus, drain, variables)


def test_a_cleaning_shows_in_prometheus(server: ServerProcess, prometheus: Prometheus) -> None:
    """A compacted topic's dirty ratio is 1 until a cleaning (`eventstore compact` through
    the server's HTTP endpoint); then the cleaner's counters count it and the ratio is 0."""
    topic = "inventory"
    config = {"bootstrap.servers": server.bootstrap}
    admin = AdminClient(config)
    new = NewTopic(topic, 1, config={"cleanup.policy": "compact", "segment.bytes": "100"})
    admin.create_topics([new])[topic].result(TIMEOUT_S)
    producer = Producer(config)
    for i in range(9):  # one record per request: each fills a segment, which rolls
        producer.produce(topic, b"count %d" % i, key=b"item %d" % (i % 3))
        assert producer.flush(TIMEOUT_S) == 0
    selector = f'{{topic="{topic}"}}'
    wait_until(lambda: prometheus.query(f"eventstore_partition_dirty_ratio{selector} > 0"),
               TIMEOUT_S, "Prometheus to see the partition dirty")
    http = server.metrics_url.split("//", 1)[1].split("/", 1)[0]
    done = subprocess.run([*eventstore_command(), "compact", topic, "--server-http", http,
                           "--json"], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: prometheus.query(f"eventstore_partition_dirty_ratio{selector} == 0"),
               TIMEOUT_S, "Prometheus to see the partition cleaned")
    # what the partition's folder says its cleanings removed (the automatic cleaner may
    # have run first, then the command's cleaning found less)
    with SqlEngine(server.data_dir) as engine:
        _, [(runs, removed)] = engine.query(
            "SELECT cleaner_runs, cleaner_bytes_removed FROM partitions WHERE topic = ?",
            (topic,))
    (cleaned,) = json.loads(done.stdout)
    assert runs >= 1 and removed > 0 and removed >= cleaned["bytes_removed"]
    wait_until(lambda: prometheus.query(
        f"eventstore_log_cleaner_runs_total{selector} == {runs}"
        f" and eventstore_log_cleaner_bytes_removed_total{selector} == {removed}"),
        TIMEOUT_S, f"Prometheus to count {runs} cleanings removing {removed} bytes")
