"""Benchmark what many partitions cost a server: creating, holding, restarting, using them.

    python scripts/bench_partitions.py [--quick] [--topics N] [--partitions N]
                                       [--topics-per-request N] [--idle-seconds S]
                                       [--open-files-limit N] [--json PATH]

Against an ``eventstore serve`` this script starts (free loopback ports, its own data
directory), with ``--topics`` topics of ``--partitions`` partitions each (default 1,000 ×
10 = 10,000 partitions; ``--quick`` 200 × 10 = 2,000):

- CreateTopics: confluent-kafka's AdminClient creates the topics, ``--topics-per-request``
  of them in each ``create_topics`` call (one CreateTopics request each, as the admin
  client sends a call's topics), one call after the other;
- the server while its partitions are idle: threads and resident memory
  (``/proc/PID/status``), open files (``/proc/PID/fd``), and CPU (``/proc/PID/stat``)
  used over ``--idle-seconds`` without any client;
- a restart (SIGTERM, then the same command): the seconds until it listens (its ``ready``
  line) and until a Metadata request lists every partition;
- one record produced to each partition by a confluent-kafka producer (explicit
  partition, ``acks=all``), then ``flush``;
- the open-file limit: the server is restarted again with a soft ``RLIMIT_NOFILE`` of
  ``--open-files-limit`` (1,024, Linux's default ``ulimit -n``), set in its process
  before it starts; every partition is then asked for by Metadata, Produce and Fetch
  (one request each, per partition), and the partitions answered with an error are
  counted as offline.

It prints a table with the issue's targets (issue 17, written for 10,000 partitions)
beside the figures, then the same figures as JSON (and writes them to ``--json``). The exit
code is 1 when a target is missed: the report is still complete.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from support import (  # noqa: E402 - tests/ holds the server fixture
    KafkaConnection,
    ServerProcess,
    fetch,
    produce,
)

VALUE = b"v" * 100
READY_TIMEOUT_S = 900.0  # today's start-up grows with the partition count
STOP_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 300.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# issue 17's targets, written for 10,000 partitions: the most each figure may be
TARGETS: dict[str, float] = {
    "create_topics_s": 10.0,
    "idle_threads": 64,
    "idle_rss_mib": 300.0,
    "idle_cpu_percent": 1.0,
    "restart_threads": 64,
    "restart_rss_mib": 300.0,
    "restart_metadata_s": 3.0,
    "produce_each_s": 5.0,
    "produce_each_failed": 0,
    "limited_offline": 0,
}


@dataclass(frozen=True)
class ProcessSample:
    """What the server process holds at one moment, read from ``/proc``."""

    threads: int
    rss_mib: float
    open_files: int

    @classmethod
    def of(cls, pid: int) -> ProcessSample:
        status = dict(line.split(":", 1) for line in _read(f"/proc/{pid}/status").splitlines())
        rss_kib = int(status["VmRSS"].split()[0])
        return cls(int(status["Threads"]), rss_kib / 1024,
                   len(os.listdir(f"/proc/{pid}/fd")))


@dataclass(frozen=True)
class Restarted:
    """A server start timed from its command: until it listens, until Metadata lists
    every partition, and how many partitions that Metadata answered with an error."""

    ready_s: float
    metadata_s: float
    offline: int


def _read(path: str) -> str:
    with open(path) as file:
        return file.read()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used (``/proc/PID/stat``)."""
    # the command name (field 2) may hold spaces: fields are counted after its ")"
    fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def soft_open_files_limit(pid: int) -> int:
    """The process's soft RLIMIT_NOFILE, as ``/proc/PID/limits`` shows it."""
    for line in _read(f"/proc/{pid}/limits").splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise RuntimeError(f"no open-file limit in /proc/{pid}/limits")


def idle_cpu_percent(pid: int, seconds: float) -> float:
    """The process's CPU use over ``seconds`` of wall time, in percent of one core."""
    used, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)  # the figure itself is what happens meanwhile, with no client
    return 100 * (cpu_seconds(pid) - used) / (time.monotonic() - started)


def topic_names(topics: int) -> list[str]:
    """The benchmark's topic names, in the order they are created and used."""
    return [f"bench-{i:05d}" for i in range(topics)]


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    """``items`` in consecutive lists of ``size`` (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def create_topics(bootstrap: str, names: list[str], partitions: int, per_request: int
                  ) -> tuple[float, int]:
    """Seconds to create ``names`` with ``partitions`` each, ``per_request`` topics per
    AdminClient call, calls one after the other; and the number of calls."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    started = time.perf_counter()
    calls = 0
    for batch in chunks(names, per_request):
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in batch],
            request_timeout=REQUEST_TIMEOUT_S, operation_timeout=REQUEST_TIMEOUT_S)
        for future in futures.values():
            future.result()
        calls += 1
    return time.perf_counter() - started, calls


def metadata_errors(conn: KafkaConnection) -> dict[tuple[str, int], int]:
    """(topic, partition) -> error code, for every partition Metadata lists."""
    response = conn.request(3, 8, topics=None, allow_auto_topic_creation=False,
                            include_cluster_authorized_operations=False,
                            include_topic_authorized_operations=False)
    return {(topic.name, p.partition_index): int(p.error_code)
            for topic in response.topics for p in topic.partitions}


def timed_start(server: ServerProcess, launch: Callable[[], None], expected: int) -> Restarted:
    """Run ``launch`` (which starts ``server`` and waits for its ready line), then ask
    Metadata until it lists ``expected`` partitions."""
    started = time.perf_counter()
    launch()
    ready = time.perf_counter() - started
    with KafkaConnection(server.address, timeout=REQUEST_TIMEOUT_S,
                         watchdog=REQUEST_TIMEOUT_S) as conn:
        while len(errors := metadata_errors(conn)) < expected:
            if time.perf_counter() - started > READY_TIMEOUT_S:
                raise RuntimeError(f"Metadata lists {len(errors)} of {expected} partitions")
    return Restarted(ready, time.perf_counter() - started,
                     sum(1 for code in errors.values() if code != 0))


def produce_each(bootstrap: str, names: list[str], partitions: int) -> tuple[float, int]:
    """Seconds for a confluent-kafka producer to get one record into each partition
    acknowledged (acks=all), and how many failed."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "message.timeout.ms": int(REQUEST_TIMEOUT_S * 1000)})
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _: object) -> None:
        if error is not None:
            failures.append(error)

    started = time.perf_counter()
    for name in names:
        for partition in range(partitions):
            producer.produce(name, VALUE, partition=partition, on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(REQUEST_TIMEOUT_S)
    return time.perf_counter() - started, len(failures) + left


def unserved(server: ServerProcess, names: list[str], partitions: int) -> int:
    """Partitions whose Produce or Fetch (one request each) is answered with an error."""
    failed = 0
    with KafkaConnection(server.address, timeout=REQUEST_TIMEOUT_S,
                         watchdog=REQUEST_TIMEOUT_S) as conn:
        for name in names:
            for partition in range(partitions):
                if (produce(conn, name, partition, [VALUE]).error_code
                        or fetch(conn, name, partition, 0).error_code):
                    failed += 1
    return failed


def open_files_limit(limit: int) -> Callable[[], None]:
    """A preexec_fn setting the soft open-file limit of the process it runs in."""
    def apply() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    return apply


def run(topics: int, partitions: int, per_request: int, idle_seconds: float,
        limit: int, workdir: str) -> dict[str, float]:
    """Every figure of one run, by name (see TARGETS for the ones with a target)."""
    names = topic_names(topics)
    total = topics * partitions
    data_dir = os.path.join(workdir, "data")
    figures: dict[str, float] = {}

    def sampled(prefix: str, pid: int) -> None:
        for key, value in asdict(ProcessSample.of(pid)).items():
            figures[f"{prefix}_{key}"] = value

    server = ServerProcess.start(data_dir)
    try:
        figures["create_topics_s"], figures["create_topics_requests"] = create_topics(
            server.bootstrap, names, partitions, per_request)
        sampled("idle", server.pid)
        figures["idle_cpu_percent"] = idle_cpu_percent(server.pid, idle_seconds)
        figures["stop_s"] = server.stop(STOP_TIMEOUT_S)
        restarted = timed_start(server, lambda: server.relaunch(READY_TIMEOUT_S), total)
        figures["restart_ready_s"] = restarted.ready_s
        figures["restart_metadata_s"] = restarted.metadata_s
        sampled("restart", server.pid)
        figures["produce_each_s"], figures["produce_each_failed"] = produce_each(
            server.bootstrap, names, partitions)
        sampled("produced", server.pid)
        figures["produced_stop_s"] = server.stop(STOP_TIMEOUT_S)
    finally:
        server.kill()
    limited = ServerProcess(data_dir, preexec_fn=open_files_limit(limit))
    try:
        restarted = timed_start(limited, lambda: limited.launch(timeout=READY_TIMEOUT_S), total)
        figures["limited_soft_limit"] = soft_open_files_limit(limited.pid)
        figures["limited_ready_s"] = restarted.ready_s
        figures["limited_metadata_s"] = restarted.metadata_s
        figures["limited_metadata_offline"] = restarted.offline
        figures["limited_offline"] = unserved(limited, names, partitions)
        sampled("limited", limited.pid)
        limited.stop(STOP_TIMEOUT_S)
    finally:
        limited.kill()
    return figures


def missed(figures: dict[str, float]) -> list[str]:
    """The figures that miss their target."""
    return [name for name, bound in TARGETS.items() if figures[name] > bound]


# (figure key, label, format); the label may use {limit}
ROWS = [
    ("create_topics_s", "CreateTopics of every partition", "{:.1f} s"),
    ("create_topics_requests", "  CreateTopics requests", "{:,.0f}"),
    ("idle_threads", "idle: server threads", "{:,.0f}"),
    ("idle_rss_mib", "idle: resident memory", "{:,.0f} MiB"),
    ("idle_open_files", "idle: open files", "{:,.0f}"),
    ("idle_cpu_percent", "idle: CPU", "{:.2f} %"),
    ("stop_s", "stop (SIGTERM until it exits)", "{:.1f} s"),
    ("restart_ready_s", "restart until it listens", "{:.1f} s"),
    ("restart_metadata_s", "restart until it answers Metadata", "{:.1f} s"),
    ("restart_threads", "after restart: server threads", "{:,.0f}"),
    ("restart_rss_mib", "after restart: resident memory", "{:,.0f} MiB"),
    ("restart_open_files", "after restart: open files", "{:,.0f}"),
    ("produce_each_s", "one record produced to each partition", "{:.1f} s"),
    ("produce_each_failed", "  records not acknowledged", "{:,.0f}"),
    ("produced_threads", "after producing: server threads", "{:,.0f}"),
    ("produced_rss_mib", "after producing: resident memory", "{:,.0f} MiB"),
    ("produced_open_files", "after producing: open files", "{:,.0f}"),
    ("produced_stop_s", "after producing: stop", "{:.1f} s"),
    ("limited_soft_limit", "ulimit -n {limit}: the server's soft limit", "{:,.0f}"),
    ("limited_ready_s", "ulimit -n {limit}: restart until it listens", "{:.1f} s"),
    ("limited_metadata_s", "ulimit -n {limit}: until it answers Metadata", "{:.1f} s"),
    ("limited_metadata_offline", "ulimit -n {limit}: offline in Metadata", "{:,.0f}"),
    ("limited_offline", "ulimit -n {limit}: offline to Produce or Fetch", "{:,.0f}"),
    ("limited_open_files", "ulimit -n {limit}: open files after using each", "{:,.0f}"),
]


def report(figures: dict[str, float], heading: str, limit: int) -> None:
    """``heading``, then the table of figures, each beside its target."""
    print(heading)
    table = Table()
    for column, justify in (("figure", "left"), ("measured", "right"),
                            ("target (10,000 partitions)", "right"), ("", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for key, label, form in ROWS:
        target, verdict = "", ""
        if key in TARGETS:
            bound = TARGETS[key]
            target = f"<= {form.format(bound)}"
            verdict = "MISSED" if figures[key] > bound else "ok"
        table.add_row(label.format(limit=f"{limit:,}"), form.format(figures[key]), target,
                      verdict)
    Console(width=110).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 topics unless --topics")
    parser.add_argument("--topics", type=int, help="topics (default 1,000)")
    parser.add_argument("--partitions", type=int, default=10, help="partitions per topic")
    parser.add_argument("--topics-per-request", type=int, default=100,
                        help="topics per CreateTopics request")
    parser.add_argument("--idle-seconds", type=float, default=10.0,
                        help="how long idle CPU is measured")
    parser.add_argument("--open-files-limit", type=int, default=1024,
                        help="the soft RLIMIT_NOFILE of the last restart")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    topics = args.topics or (200 if args.quick else 1000)
    workdir = tempfile.mkdtemp(prefix="bench-partitions-")
    try:
        figures = run(topics, args.partitions, args.topics_per_request, args.idle_seconds,
                      args.open_files_limit, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = missed(figures)
    total = topics * args.partitions
    report(figures, f"{total:,} partitions ({topics:,} topics × {args.partitions}),"
           f" {args.topics_per_request} topics per CreateTopics request; idle CPU over"
           f" {args.idle_seconds:g} s; {os.cpu_count()} CPUs", args.open_files_limit)
    document = {"topics": topics, "partitions_per_topic": args.partitions,
                "partitions": total, "topics_per_request": args.topics_per_request,
                "idle_seconds": args.idle_seconds, "open_files_limit": args.open_files_limit,
                "figures": figures,
                "targets": {name: {"max": bound} for name, bound in TARGETS.items()},
                "missed": failed}
    text = json.dumps(document, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as file:
            file.write(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
