"""Benchmark the Kafka wire protocol against the embedded API on the same records.

    python scripts/bench_wire.py [--quick] [--records N] [--rounds N]

In one run, for 100-byte values with null keys into one partition:

- wire: confluent-kafka (librdkafka) producing to an ``eventstore serve`` this script
  starts (``linger.ms=5``, no compression, ``acks=all``), then a confluent-kafka consumer
  reading them back from the beginning: first from the same server, which answers from the
  batches its producers sent while it keeps them (see eventstore/kafka/batchcache.py),
  then from a restarted server, which reads and encodes every record from the segments;
- embedded: ``EventStore.open(...)``, ``store.producer(linger_ms=5)`` and
  ``store.consumer(...)`` on the same records, in this process.

Target: the wire rate >= 0.5 of the embedded rate, for producing and for consuming. Each
rate is the best of a few rounds, wire and embedded rounds alternating, so a machine busy
with something else skews both sides alike. Both producers batch up to BATCH_SIZE bytes.
Consuming is timed from each consumer's first record: librdkafka waits about half a second
before its first ListOffsets, which is start-up, not throughput.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import Producer as KafkaProducer

from eventstore import EventStore

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from benchlib import (  # noqa: E402 - beside this script
    BATCH_SIZE,
    LIBRDKAFKA_CONSUMER,
    PRODUCER,
    produce,
    rate,
)
from support import ServerProcess  # noqa: E402 - tests/ holds the server fixture

VALUE = b"v" * 100
LINGER_MS = PRODUCER["linger_ms"]
POLL_RECORDS = 10_000
TIMEOUT_S = 60
TARGET = 0.5


def wire_produce(bootstrap: str, topic: str, count: int) -> float:
    producer = KafkaProducer({
        "bootstrap.servers": bootstrap, "linger.ms": LINGER_MS, "acks": "all",
        "compression.type": "none", "batch.size": BATCH_SIZE,
        # a Python callback per acknowledged record would cost the client more than the
        # server spends on it; failures are still reported, one by one
        "delivery.report.only.error": True,
    })
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _: object) -> None:
        if error is not None:
            failures.append(error)

    def run() -> None:
        produce, poll = producer.produce, producer.poll
        for i in range(count):
            while True:
                try:
                    produce(topic, VALUE, on_delivery=delivered)
                    break
                except BufferError:  # librdkafka's queue is full: let deliveries drain it
                    poll(0.01)
            if i % 1000 == 0:
                poll(0)
        if producer.flush(TIMEOUT_S):
            raise RuntimeError(f"records still unacknowledged after {TIMEOUT_S} s")

    result = rate(count, run)
    if failures:
        raise RuntimeError(f"{len(failures)} records failed, first: {failures[0]}")
    return result


def wire_consume(bootstrap: str, topic: str, count: int) -> float:
    consumer = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": "bench",
                              "enable.auto.commit": False, **LIBRDKAFKA_CONSUMER})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    if not consumer.consume(1, timeout=TIMEOUT_S):  # start-up is not throughput
        raise RuntimeError(f"no record within {TIMEOUT_S} s")

    def run() -> None:
        read = 1
        while read < count:
            messages = consumer.consume(min(POLL_RECORDS, count - read), timeout=TIMEOUT_S)
            if not messages:
                raise RuntimeError(f"no records within {TIMEOUT_S} s after {read}")
            for message in messages:
                if message.error() is not None:
                    raise RuntimeError(str(message.error()))
                read += 1

    result = rate(count - 1, run)
    consumer.close()
    return result


def embedded_consume(store: EventStore, topic: str, count: int) -> float:
    consumer = store.consumer(topic, auto_offset_reset="earliest",
                              max_poll_records=POLL_RECORDS)
    if not consumer.poll(timeout_ms=TIMEOUT_S * 1000, max_records=1):
        raise RuntimeError(f"no record within {TIMEOUT_S} s")

    def run() -> None:
        read = 1
        while read < count:
            for _record in consumer.poll(timeout_ms=1000):
                read += 1

    result = rate(count - 1, run)
    consumer.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer records, one round")
    parser.add_argument("--records", type=int, help="records per round")
    parser.add_argument("--rounds", type=int, help="rounds (best one counts)")
    args = parser.parse_args()
    count = args.records or (50_000 if args.quick else 300_000)
    rounds = args.rounds or (1 if args.quick else 3)
    workdir = tempfile.mkdtemp(prefix="bench-wire-")
    results: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    try:
        for round_ in range(rounds):
            topic = f"bench-{round_}"
            wire_dir = os.path.join(workdir, f"wire-{round_}")
            with ServerProcess.start(wire_dir) as server:
                record("wire produce", wire_produce(server.bootstrap, topic, count))
                record("wire consume", wire_consume(server.bootstrap, topic, count))
            with ServerProcess.start(wire_dir) as server:  # restarted: nothing kept in memory
                record("wire consume, from segments",
                       wire_consume(server.bootstrap, topic, count))
            with EventStore.open(os.path.join(workdir, f"embedded-{round_}")) as store:
                store.create_topic(topic, 1)
                record("embedded produce", produce(store, topic, count, VALUE))
                record("embedded consume", embedded_consume(store, topic, count))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    best = {name: max(values) for name, values in results.items()}
    print(f"{count:,} records of {len(VALUE)} bytes, null keys, 1 partition, best of"
          f" {rounds} round(s); linger {LINGER_MS} ms, batches up to {BATCH_SIZE:,} bytes,"
          f" acks=all, no compression; {os.cpu_count()} CPUs")
    print(f"{'records/s':<24}{'embedded':>12}{'wire':>12}{'wire/emb':>10}{'target':>9}")
    for what in ("produce", "consume", "consume, from segments"):
        embedded = best[f"embedded {what.split(',')[0]}"]
        wire = best[f"wire {what}"]
        ratio = wire / embedded
        print(f"{what:<24}{embedded:>12,.0f}{wire:>12,.0f}{ratio:>10.2f}"
              f"{'>= ' + str(TARGET):>9}  {'ok' if ratio >= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
