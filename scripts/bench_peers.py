"""Peer benchmark: eventstore against its storage ceiling and against Redis Streams.

    python scripts/bench_peers.py [--quick] [--records N] [--dir DIR]

In one run, on the same records (null key, a value of 100 B, then of 1 KiB), each path
writes N records to one partition (one stream) and reads them back:

- bare apsw: insert of identical rows in transactions of one producer batch, and a scan
  by offset range (``benchlib``): the ceiling of this storage design;
- eventstore embedded: ``producer.send`` then ``flush`` (linger 5 ms, 256 KiB batches);
  ``consumer.poll`` from the start (no group);
- eventstore over the Kafka protocol: an ``eventstore serve`` this script starts, driven
  by confluent-kafka (``produce`` with the same linger and batch size, then ``flush``;
  a consumer assigned the partition from offset 0, no group);
- Redis Streams: a ``redis-server`` this script starts on a free loopback port with
  persistence on (``appendonly yes``, ``appendfsync everysec``), ``XADD`` in pipelines of
  1,000, then ``XREADGROUP`` of 5,000 at a time, each batch acknowledged with ``XACK``,
  through the redis Python client. Skipped, with a note, if redis-server is not installed.

Durability differs: eventstore commits every append in SQLite without fsync (its default
``flush.messages``); Redis appends to its AOF and fsyncs once a second. Each rate is the
best of several rounds (one with --quick); the paths take turns within a round, so that
load from elsewhere on the machine falls on all alike. Ratios are to the bare apsw rate
of the same direction and value size.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    BATCH_SIZE,
    CONSUMER,
    LIBRDKAFKA_CONSUMER,
    bare_insert,
    bare_scan,
    consume,
    produce,
    rate,
)
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka import TopicPartition
from workload.process import ReadyProcess, free_port, start_eventstore

from eventstore import EventStore

SIZES = {"100 B": 100, "1 KiB": 1024}
PIPELINE = 1000  # XADDs per Redis pipeline
READ_COUNT = CONSUMER["max_poll_records"]  # records per XREADGROUP, as per poll
KAFKA_PRODUCER = {"linger.ms": 5, "batch.size": BATCH_SIZE, "log.connection.close": False}
WRITE, READ = "write", "read"


@dataclass(frozen=True)
class Measure:
    """One measured path: its label and its direction (write or read)."""

    label: str
    direction: str


BARE_INSERT = Measure("bare apsw insert (ceiling)", WRITE)
EMBEDDED_PRODUCE = Measure("eventstore embedded produce", WRITE)
KAFKA_PRODUCE = Measure("eventstore Kafka protocol produce (confluent-kafka)", WRITE)
REDIS_XADD = Measure("Redis Streams XADD, pipelined (AOF everysec)", WRITE)
BARE_SCAN = Measure("bare apsw scan (ceiling)", READ)
EMBEDDED_CONSUME = Measure("eventstore embedded consume", READ)
KAFKA_CONSUME = Measure("eventstore Kafka protocol consume (confluent-kafka)", READ)
REDIS_XREADGROUP = Measure("Redis Streams XREADGROUP + XACK", READ)
CEILING = {WRITE: BARE_INSERT, READ: BARE_SCAN}
ORDER = [BARE_INSERT, EMBEDDED_PRODUCE, KAFKA_PRODUCE, REDIS_XADD,
         BARE_SCAN, EMBEDDED_CONSUME, KAFKA_CONSUME, REDIS_XREADGROUP]


def kafka_produce(bootstrap: str, topic: str, count: int, value: bytes) -> float:
    """Records/s of ``produce`` then ``flush``; every delivery must succeed (reports come
    for failures only, so no per-record Python callback caps the rate)."""
    failed: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failed.append(str(error))

    producer = KafkaProducer({"bootstrap.servers": bootstrap, "on_delivery": delivered,
                              "delivery.report.only.error": True, **KAFKA_PRODUCER})

    def run() -> None:
        for _ in range(count):
            while True:
                try:
                    producer.produce(topic, value)
                    break
                except BufferError:  # the local queue is full: serve deliveries, retry
                    producer.poll(0.01)
        producer.flush(120)

    result = rate(count, run)
    if failed or len(producer):
        raise RuntimeError(f"Kafka produce: {len(failed)} failed deliveries, e.g. {failed[:1]},"
                           f" {len(producer)} undelivered")
    return result


def kafka_consume(bootstrap: str, topic: str, count: int) -> float:
    """Records/s of ``consume`` from offset 0 of partition 0 until ``count`` records came."""
    consumer = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": "bench-peers",
                              "enable.auto.commit": False, "log.connection.close": False,
                              **LIBRDKAFKA_CONSUMER})
    consumer.assign([TopicPartition(topic, 0, 0)])

    def run() -> None:
        read = 0
        while read < count:
            for message in consumer.consume(READ_COUNT, 1.0):
                if message.error() is not None:
                    raise RuntimeError(f"Kafka consume: {message.error()}")
                read += 1

    result = rate(count, run)
    consumer.close()
    return result


class RedisPeer:
    """A redis-server on a free loopback port with AOF persistence, and a client to it."""

    def __init__(self, directory: Path) -> None:
        import redis

        port = free_port()
        self.port = port
        self.server = ReadyProcess.start(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir",
             str(directory), "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", "", "--daemonize", "no", "--logfile", ""],
            r"Ready to accept connections", directory / "redis.log", stream="stdout")
        self.client = redis.Redis(host="127.0.0.1", port=port)

    def xadd(self, stream: str, count: int, value: bytes) -> float:
        """Records/s of XADD, PIPELINE commands per round trip."""
        def run() -> None:
            for start in range(0, count, PIPELINE):
                pipe = self.client.pipeline(transaction=False)
                for _ in range(min(PIPELINE, count - start)):
                    pipe.xadd(stream, {"v": value})
                pipe.execute()
        return rate(count, run)

    def xreadgroup(self, stream: str, count: int) -> float:
        """Records/s of XREADGROUP from the stream's start, XACK after each batch."""
        self.client.xgroup_create(stream, "bench", id="0")

        def run() -> None:
            read = 0
            while read < count:
                for _name, entries in self.client.xreadgroup(
                        "bench", "reader", {stream: ">"}, count=READ_COUNT, block=1000):
                    self.client.xack(stream, "bench", *(entry_id for entry_id, _ in entries))
                    read += len(entries)

        result = rate(count, run)
        self.client.delete(stream)
        return result

    def close(self) -> None:
        self.client.close()
        self.server.stop()


def redis_unavailable() -> str | None:
    """Why Redis Streams cannot be measured here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian: apt-get install redis-server)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis Python client is not installed (pip install redis)"
    return None


def one_size(work: Path, bootstrap: str, redis_peer: RedisPeer | None, count: int,
             value: bytes, name: str) -> dict[Measure, float]:
    """Every path once, on ``count`` records of ``value``: the writes, then the reads."""
    rates: dict[Measure, float] = {}
    bare_dir = work / f"bare-{name}"
    bare_dir.mkdir()
    with EventStore.open(str(work / f"embedded-{name}")) as store:
        store.create_topic(name, 1)
        rates[BARE_INSERT] = bare_insert(str(bare_dir), count, value)
        rates[EMBEDDED_PRODUCE] = produce(store, name, count, value)
        rates[KAFKA_PRODUCE] = kafka_produce(bootstrap, name, count, value)
        if redis_peer is not None:
            rates[REDIS_XADD] = redis_peer.xadd(name, count, value)
        rates[BARE_SCAN] = bare_scan(str(bare_dir), count)
        rates[EMBEDDED_CONSUME] = consume(store, name, count)
        rates[KAFKA_CONSUME] = kafka_consume(bootstrap, name, count)
        if redis_peer is not None:
            rates[REDIS_XREADGROUP] = redis_peer.xreadgroup(name, count)
    shutil.rmtree(work / f"embedded-{name}")
    shutil.rmtree(bare_dir)
    return rates


def table(best: dict[tuple[Measure, str], float], skipped: str | None) -> str:
    """Absolute rates (records/s, MB/s) and ratios to the ceiling, per value size."""
    header = ["path"]
    for size_label in SIZES:
        header += [f"{size_label} rec/s", "MB/s", "ratio"]
    rows = [header]
    for path in ORDER:
        if (path, next(iter(SIZES))) not in best:
            continue
        row = [path.label]
        for size_label, size in SIZES.items():
            value = best[path, size_label]
            ceiling = best[CEILING[path.direction], size_label]
            row += [f"{value:,.0f}", f"{value * size / 1e6:,.1f}", f"{value / ceiling:.2f}"]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    if skipped:
        lines.append(f"Redis Streams skipped: {skipped}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer records, one round")
    parser.add_argument("--records", type=int, help="records per path and value size"
                        " (default 200,000, or 20,000 with --quick)")
    parser.add_argument("--dir", help="where to put the data (default: a temp dir)")
    args = parser.parse_args()
    count = args.records or (20_000 if args.quick else 200_000)
    rounds = 1 if args.quick else 3
    work = Path(tempfile.mkdtemp(prefix="bench-peers-", dir=args.dir))
    skipped = redis_unavailable()
    print(f"peer benchmark: {count:,} records per path and value size, null keys, best of"
          f" {rounds}; {os.cpu_count()} cores, {platform.system()} {platform.machine()},"
          f" Python {platform.python_version()}", flush=True)
    best: dict[tuple[Measure, str], float] = {}
    server, bootstrap = start_eventstore(work / "server-data", {}, work / "server.log")
    redis_peer = None
    try:
        if skipped is None:
            (work / "redis").mkdir()
            redis_peer = RedisPeer(work / "redis")
        for round_ in range(rounds):
            for size_label, size in SIZES.items():
                rates = one_size(work, bootstrap, redis_peer, count, b"v" * size,
                                 f"r{round_}-{size}")
                for measure, value in rates.items():
                    best[measure, size_label] = max(best.get((measure, size_label), 0.0), value)
            print(f"  round {round_ + 1} of {rounds} done", flush=True)
    finally:
        if redis_peer is not None:
            redis_peer.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(best, skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
