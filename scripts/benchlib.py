"""What the benchmarks share: the bare apsw baseline and eventstore's embedded loops.

The baseline is the ceiling of this storage design: rows identical to a segment's, in a
table made from ``schema/segment.sql``, written with the segment writer's pragmas and read
back by offset range, with no actors, batching or bookkeeping around them. The embedded
loops are what an application does: ``send`` then ``flush``, ``poll`` until done, with
the client settings given (``PRODUCER`` and ``CONSUMER`` are the tuned ones: large
batches and polls; ``{}`` is the clients' defaults, which are Kafka's).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import apsw

from eventstore import EventStore
from eventstore.storage.records import RECORD_OVERHEAD
from eventstore.storage.schema import schema_sql
from eventstore.storage.segment import apply_writer_pragmas

BATCH_SIZE = 256 * 1024  # bytes: what a producer batch holds
PRODUCER = {"linger_ms": 5, "batch_size": BATCH_SIZE}
CONSUMER = {"auto_offset_reset": "earliest", "max_poll_records": 5000}
JOIN_TIMEOUT_MS = 60_000  # a first poll's wait for records (and for the group's join)
# librdkafka stops fetching for fetch.queue.backoff.ms once its local queue holds
# queued.min.messages; at the default (1 s) a server faster than the Python loop reading
# that queue is measured as one that stalls for a second at a time.
LIBRDKAFKA_CONSUMER = {"fetch.queue.backoff.ms": 10}


def rows_per_batch(value_size: int) -> int:
    """Records of ``value_size`` bytes (null key) that fill one producer batch."""
    return BATCH_SIZE // (RECORD_OVERHEAD + value_size)


def rate(count: int, run: Callable[[], None]) -> float:
    """``count`` divided by the seconds ``run`` takes."""
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def bare_table(path: str) -> apsw.Connection:
    """The bare loop's connection: the segment schema's tables and the writer's pragmas."""
    conn = apsw.Connection(path)
    conn.execute(schema_sql("segment"))
    apply_writer_pragmas(conn, fsync=False)
    return conn


def bare_insert(directory: str, count: int, value: bytes, *, from_array: bool = False
                ) -> float:
    """Rows/s of executemany into ``directory``/bare.db, one transaction per batch of
    ``rows_per_batch`` rows (what one producer batch holds).

    ``from_array``: insert each batch from an array instead (apsw.carray), as segments
    insert a batch whose records share their timestamp; the fastest bare insert, shown
    for reference beside the plain loop the targets are measured against.
    """
    conn = bare_table(os.path.join(directory, "bare.db"))
    per_batch = rows_per_batch(len(value))
    now = time.time_ns() // 1_000_000

    def run() -> None:
        for start in range(0, count, per_batch):
            values = [value] * min(per_batch, count - start)
            with conn:
                if from_array:
                    conn.execute("INSERT INTO records (timestamp, key, value, headers)"
                                 " SELECT ?, NULL, value, NULL FROM carray(?)",
                                 (now, apsw.carray(tuple(values))))
                else:
                    conn.executemany("INSERT INTO records (timestamp, key, value, headers)"
                                     " VALUES (?, ?, ?, ?)", [(now, None, v, None) for v in values])

    result = rate(count, run)
    conn.close()
    return result


def bare_scan(directory: str, count: int) -> float:
    """Rows/s of reading back the table bare_insert made, in chunks as a consumer reads,
    each row handed to a Python loop as a consumer's records are."""
    conn = apsw.Connection(os.path.join(directory, "bare.db"), flags=apsw.SQLITE_OPEN_READONLY)
    chunk = CONSUMER["max_poll_records"]

    def run() -> None:
        offset = read = 0
        while read < count:
            for row in conn.execute(
                    "SELECT offset, timestamp, key, value, headers FROM records"
                    " WHERE offset >= ? AND offset < ? ORDER BY offset LIMIT ?",
                    (offset, offset + chunk, chunk)):
                read += 1
                offset = row[0] + 1
    result = rate(count, run)
    conn.close()
    return result


def produce(store: EventStore, topic: str, count: int, value: bytes,
            config: Mapping[str, Any] = PRODUCER) -> float:
    """Records/s of ``send`` (null key) then ``flush`` through an embedded producer made
    with ``config``."""
    producer = store.producer(**config)

    def run() -> None:
        send = producer.send
        for _ in range(count):
            send(topic, value)
        producer.flush()
    result = rate(count, run)
    producer.close()
    return result


def consume(store: EventStore, topic: str, count: int) -> float:
    """Records/s of ``poll`` with the tuned ``CONSUMER`` (see :func:`consume_timed`)."""
    return consume_timed(store, topic, count, CONSUMER)[0]


def busy(seconds: float) -> None:
    """Keep this thread's CPU busy for ``seconds``: a virtual CPU left idle for a few
    seconds runs the next fraction of a second markedly slower (a pure Python loop, about
    40 % slower in its first 0.15 s after a 3 s sleep, on the 2-core machine these figures
    come from), which a timed loop after an idle wait would count as its own."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def consume_timed(store: EventStore, topic: str, count: int, config: Mapping[str, Any],
                  warm_up_s: float = 0.0) -> tuple[float, float]:
    """Records/s of ``poll`` until ``count`` records of ``topic`` came, through a consumer
    made with ``config``, counted from its first records on; and the seconds its first
    poll took to return any, which for a member of a new group is joining it (it waits
    ``group.initial.rebalance.delay.ms`` for more members): start-up, not reading.

    ``warm_up_s``: seconds of :func:`busy` between the first poll and the timed ones, so
    that a group member, whose first poll idles through the join, and a consumer without
    a group start reading alike."""
    consumer = store.consumer(topic, **config)
    started = time.perf_counter()
    # one record only: with a short run a first poll could otherwise return every record,
    # leaving nothing to time
    first = len(consumer.poll(timeout_ms=JOIN_TIMEOUT_MS, max_records=1))
    joined = time.perf_counter()
    busy(warm_up_s)
    rest = count - first

    def run() -> None:
        read = 0
        while read < rest:
            for _record in consumer.poll(timeout_ms=1000):
                read += 1
    result = rate(rest, run)
    consumer.close()
    return result, joined - started
