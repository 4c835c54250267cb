"""Partitions cost nothing while idle (issue 17, item 3), against real ``eventstore serve``
processes and real clients.

A partition's actor (a thread, its log's open files) starts on first use and stops after
``partition.idle.close.ms`` unused; start-up opens no partition, creating a topic starts no
actor, and at most ``partition.open.max`` are open at once. So thousands of partitions
under the default open-file limit (1,024, set in the server's process before it starts)
all serve, with threads and open files bounded (``/proc/PID/status``, ``/proc/PID/fd``).
An idle partition's actor stops and starts again without its clients noticing: offsets,
committed offsets and an idempotent producer's sequence carry on; many connections using
one stopped partition at once start one actor. Metrics (log-end offsets, lag) report
partitions no actor holds, and retention and ``segment.ms`` still fire for partitions
with no traffic, before and after a restart.
"""

from __future__ import annotations

import os
import resource
import threading
import urllib.request
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer
from prometheus_client.parser import text_string_to_metric_families
from reliability import metric, proc_status
from support import (
    KafkaConnection,
    ServerProcess,
    create_topic,
    fetch,
    metadata_errors,
    produce,
    wait_until,
)

TIMEOUT = 60.0
FILE_LIMIT = 1024  # Linux's default soft ``ulimit -n``
IDLE_MS = 300
# what a server holds besides its partition actors: the timer, broker, coordinators,
# cleaner, metrics, listener threads and a pool or two
BASE_THREADS = 64


def lower_file_limit(soft: int) -> Callable[[], None]:
    """A ``preexec_fn`` lowering the server's soft open-file limit to ``soft``."""

    def limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


def threads(pid: int) -> int:
    return proc_status(pid, "Threads")


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def scrape(server: ServerProcess) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics as {metric: {labels: value}}."""
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = (
                sample.value)
    return found


def partition_actors(server: ServerProcess) -> int:
    """Partitions whose actor runs now, as /metrics counts them (a scrape starts none)."""
    return int(metric(server, "eventstore_partitions_open"))


def end_offsets(server: ServerProcess, topic: str) -> dict[int, int]:
    rows = scrape(server).get("kafka_topic_partition_current_offset", {})
    return {int(dict(labels)["partition"]): int(value) for labels, value in rows.items()
            if dict(labels)["topic"] == topic}


def settle_idle(server: ServerProcess) -> None:
    wait_until(lambda: partition_actors(server) == 0, TIMEOUT,
               "every partition actor to stop while idle")


# -- thousands of partitions ------------------------------------------------------------------


def many_partitions(serve, topics: int, partitions: int, file_limit: int = FILE_LIMIT) -> None:
    """Topics × partitions under an open-file limit (by default Linux's): created,
    restarted, each partition produced to and fetched, with threads and open files bounded
    throughout."""
    server = serve(settings={"partition.idle.close.ms": IDLE_MS},
                   preexec_fn=lower_file_limit(file_limit))
    names = [f"t{i}" for i in range(topics)]
    with KafkaConnection(server.address, timeout=TIMEOUT) as conn:
        for name in names:
            create_topic(conn, name, partitions)
    # creating starts no actor and leaves no file open
    assert partition_actors(server) == 0
    assert threads(server.pid) <= BASE_THREADS
    assert open_files(server.pid) < 100
    server.stop()
    server.launch()  # start-up opens no partition
    assert threads(server.pid) <= BASE_THREADS
    assert open_files(server.pid) < 100
    with KafkaConnection(server.address, timeout=TIMEOUT) as conn:
        for name in names:
            errors = metadata_errors(conn, name)
            assert len(errors) == partitions and not any(errors.values())
        for name in names:
            for p in range(partitions):
                produced = produce(conn, name, p, [b"%s-%d" % (name.encode(), p)])
                assert (produced.error_code, produced.base_offset) == (0, 0), (name, p)
        peak = open_files(server.pid)
        for name in names:
            for p in range(partitions):
                fetched = fetch(conn, name, p, 0)
                assert fetched.error_code == 0, (name, p)
                assert [r.value for r in fetched.records] == [b"%s-%d" % (name.encode(), p)]
        peak = max(peak, open_files(server.pid))
    assert peak < file_limit
    assert not [line for line in server.lines if "partition offline" in line]
    settle_idle(server)
    assert threads(server.pid) <= BASE_THREADS
    assert open_files(server.pid) < 100


def test_more_partitions_than_a_low_file_limit_holds_all_serve(serve) -> None:
    many_partitions(serve, 4, 150, file_limit=512)  # 600: ~1,800 files if all were open


@pytest.mark.slow
def test_two_thousand_partitions_serve_under_the_default_file_limit(serve) -> None:
    many_partitions(serve, 4, 500)


@pytest.mark.slow
def test_ten_thousand_partitions_serve_under_the_default_file_limit(serve) -> None:
    many_partitions(serve, 10, 1000)


# -- an idle partition stops and starts again ---------------------------------------------------


def test_an_idle_partition_stops_and_starts_again_without_its_clients_noticing(serve) -> None:
    server = serve(settings={"partition.idle.close.ms": IDLE_MS,
                             "group.initial.rebalance.delay.ms": 0})
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "idle", 2)
    producer = Producer({"bootstrap.servers": server.bootstrap, "enable.idempotence": True,
                         "linger.ms": 0})
    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "g",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        offsets: list[int] = []

        def send(values: range) -> None:
            for n in values:
                producer.produce("idle", b"%d" % n, partition=0,
                                 on_delivery=lambda err, msg: offsets.append(
                                     -1 if err else msg.offset()))
            assert producer.flush(TIMEOUT) == 0

        send(range(5))
        settle_idle(server)
        send(range(5, 10))  # the same idempotent producer: its sequence carries on
        assert offsets == list(range(10))
        consumer.subscribe(["idle"])
        values = []
        while len(values) < 10:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
        assert values == [b"%d" % n for n in range(10)]
        consumer.commit(asynchronous=False)
        settle_idle(server)
        send(range(10, 13))
        settle_idle(server)
        # lag and log-end offsets of partitions no actor holds
        lags = scrape(server)["kafka_consumergroup_lag"]
        assert lags[(("consumergroup", "g"), ("partition", "0"), ("topic", "idle"))] == 3
        assert end_offsets(server, "idle") == {0: 13, 1: 0}
        assert partition_actors(server) == 0  # the scrape started none
        values = []
        while len(values) < 3:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
        assert values == [b"10", b"11", b"12"]
    finally:
        consumer.close()
    assert not [line for line in server.lines if "restarted from disk" in line]


def test_many_connections_first_using_a_stopped_partition_start_one_actor(serve) -> None:
    server = serve(settings={"partition.idle.close.ms": 60000})
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "shared", 1)
    server.stop()
    server.launch()
    produced: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def client() -> None:
        try:
            with KafkaConnection(server.address) as conn:
                start.wait(TIMEOUT)
                for _ in range(5):
                    answer = produce(conn, "shared", 0, [b"x"])
                    assert answer.error_code == 0
                    produced.append(answer.base_offset)
        except BaseException as exc:
            errors.append(exc)

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(TIMEOUT)
    assert not errors
    assert sorted(produced) == list(range(40))
    assert partition_actors(server) == 1


def test_metrics_of_partitions_not_opened_since_start_up_come_from_their_segments(serve
                                                                                  ) -> None:
    server = serve(settings={"partition.idle.close.ms": IDLE_MS})
    with KafkaConnection(server.address) as conn:
        create_topic(conn, "quiet", 20)
        for p in range(20):
            if p:
                assert produce(conn, "quiet", p, [b"r"] * p).error_code == 0
    server.stop()
    server.launch()
    expected = {p: p for p in range(20)}
    wait_until(lambda: end_offsets(server, "quiet") == expected, TIMEOUT,
               "the log-end offsets of every partition")
    assert partition_actors(server) == 0


# -- maintenance of partitions with no traffic ---------------------------------------------------


def segment_files(server: ServerProcess, topic: str, partition: int) -> list[str]:
    directory = os.path.join(server.data_dir, f"{topic}-{partition}")
    return sorted(name for name in os.listdir(directory) if name.endswith(".db"))


@pytest.mark.parametrize("restart", [False, True], ids=["stopped-idle", "after-restart"])
def test_retention_and_segment_ms_fire_for_partitions_with_no_traffic(serve, restart) -> None:
    # retention's first run waits a check interval after start-up, as Kafka's does
    server = serve(settings={"partition.idle.close.ms": IDLE_MS,
                             "log.retention.check.interval.ms": 500})
    with KafkaConnection(server.address) as conn:
        created = conn.request(19, 4, timeout=10000, validate_only=False, topics=[{
            "name": "aging", "num_partitions": 1, "replication_factor": 1, "assignments": [],
            "configs": [{"name": "segment.ms", "value": "1500"},
                        {"name": "retention.ms", "value": "3000"}]}])
        assert int(created.topics[0].error_code) == 0
        assert produce(conn, "aging", 0, [b"old"]).error_code == 0
    if restart:
        server.stop()
        server.launch()
    else:
        settle_idle(server)
    # segment.ms rolls the segment holding the record, with no traffic at all...
    wait_until(lambda: len(segment_files(server, "aging", 0)) == 2, TIMEOUT,
               "a roll on segment.ms")
    # ...and retention.ms then deletes it
    wait_until(lambda: segment_files(server, "aging", 0) == ["00000000000000000001.db"],
               TIMEOUT, "retention to delete the rolled segment")
    with KafkaConnection(server.address) as conn:
        assert fetch(conn, "aging", 0, 1).error_code == 0
    settle_idle(server)
