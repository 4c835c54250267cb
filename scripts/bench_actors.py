"""Benchmark the actor system against bare SQLite: produce, consume, end-to-end latency.

    python scripts/bench_actors.py [--quick]

In one run, for 100-byte values with null keys, with the clients' defaults (Kafka's:
``batch_size`` 16384, ``linger_ms`` 5, ``max_poll_records`` 500, auto-commit every 5 s),
which are what users keep:

- in-process produce throughput (``store.producer().send`` then ``flush``) into 1 and
  into 8 partitions, against a bare apsw loop inserting identical rows, in transactions
  of 256 KiB, into a table made from ``schema/segment.sql`` with the segment writer's
  pragmas;
- consume throughput (``consumer.poll`` over the produced log) of a member of a consumer
  group and of a consumer without one, against a bare apsw scan of the same rows in
  chunks of 5,000; counted from each consumer's first records on. The group member's
  first poll joins a new group, which waits ``group.initial.rebalance.delay.ms`` (3 s, as
  in Kafka) for more members: that is reported on its own line, as start-up. Each
  consumer's timed polls follow 0.3 s of busy CPU, so that the member's idle 3 s do not
  count against its reading (a virtual CPU wakes slowly from idle, see benchlib.busy);
- the same with tuned settings, labelled so: 256 KiB producer batches, 5,000 records a
  poll without a group;
- end-to-end latency from ``send`` to ``poll`` at 10,000 records/s (``linger_ms`` 0),
  p50 and p99;
- for reference, produce against the same rows inserted from an array (apsw.carray), the
  fastest bare insert, which segments use for batches of shared timestamp.

Targets: produce >= 0.6 of the bare insert rate, consume >= 0.5 of the bare scan rate,
p99 <= 10 ms. Each rate is the best of a few rounds, bare and actor rounds alternating,
so that a machine busy with something else skews both sides alike; the ratio is of the
best rates. "each round" shows the lowest and highest ratio of a round's measure to the
same round's baseline, measured seconds apart: where a busy machine gave one side a
lucky round, the best rates may come from different moments.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

from benchlib import (
    CONSUMER,
    PRODUCER,
    bare_insert,
    bare_scan,
    consume_timed,
    produce,
    rows_per_batch,
)

from eventstore import EventStore

VALUE = b"v" * 100
ROWS_PER_BATCH = rows_per_batch(len(VALUE))
DEFAULTS: dict = {}
FROM_THE_START = {"auto_offset_reset": "earliest"}
WARM_UP_S = 0.3  # busy CPU before each consumer's timed polls (see benchlib.busy)
# (measure, its baseline, target); "tuned" measures are shown beside, with no target
MEASURES = [
    ("produce, 1 partition", "bare insert", 0.6),
    ("produce, 8 partitions", "bare insert", 0.6),
    ("consume in a group", "bare scan", 0.5),
    ("consume without a group", "bare scan", 0.5),
    ("tuned: produce, 1 partition", "bare insert", None),
    ("tuned: consume", "bare scan", None),
]


def latency(store: EventStore, per_second: int, seconds: float) -> tuple[float, float]:
    """p50 and p99 in ms from send() to the record coming out of poll(), paced sends."""
    store.create_topic("latency", 1)
    consumer = store.consumer("latency", auto_offset_reset="latest")
    consumer.poll(timeout_ms=0)
    producer = store.producer(linger_ms=0)
    total = int(per_second * seconds)
    sent_at: dict[int, int] = {}
    delays: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while len(delays) < total:
            for record in consumer.poll(timeout_ms=100):
                delays.append((time.perf_counter_ns() - sent_at[int(record.value[:12])]) / 1e6)
        done.set()

    poller = threading.Thread(target=poll)
    poller.start()
    tick = 0.001  # send a millisecond's worth at a time
    per_tick = max(per_second // 1000, 1)
    pause = threading.Event()
    started = time.perf_counter()
    for i in range(0, total, per_tick):
        for n in range(i, min(i + per_tick, total)):
            sent_at[n] = time.perf_counter_ns()
            producer.send("latency", b"%012d" % n + VALUE[12:])
        pause.wait(max(started + (i // per_tick + 1) * tick - time.perf_counter(), 0))
    done.wait(60)
    poller.join()
    producer.close()
    consumer.close()
    ordered = sorted(delays)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer records, one round")
    args = parser.parse_args()
    count = 100_000 if args.quick else 500_000
    rounds = 1 if args.quick else 3
    workdir = tempfile.mkdtemp(prefix="bench-actors-")
    results: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    try:
        for round_ in range(rounds):
            data_dir = os.path.join(workdir, f"data-{round_}")
            bare_dir = os.path.join(workdir, f"bare-{round_}")
            os.makedirs(bare_dir)
            record("bare insert", bare_insert(bare_dir, count, VALUE))
            array_dir = os.path.join(workdir, f"bare-array-{round_}")
            os.makedirs(array_dir)
            record("bare array insert", bare_insert(array_dir, count, VALUE, from_array=True))
            shutil.rmtree(array_dir)
            with EventStore.open(data_dir) as store:
                for topic, partitions in (("one", 1), ("eight", 8), ("tuned", 1)):
                    store.create_topic(topic, partitions)
                record("produce, 1 partition", produce(store, "one", count, VALUE, DEFAULTS))
                record("produce, 8 partitions",
                       produce(store, "eight", count, VALUE, DEFAULTS))
                record("tuned: produce, 1 partition",
                       produce(store, "tuned", count, VALUE, PRODUCER))
                record("bare scan", bare_scan(bare_dir, count))
                rate, join_s = consume_timed(store, "one", count,
                                             {"group_id": "bench", **FROM_THE_START}, WARM_UP_S)
                record("consume in a group", rate)
                record("joining a new group", join_s)
                record("consume without a group",
                       consume_timed(store, "one", count, FROM_THE_START, WARM_UP_S)[0])
                record("tuned: consume",
                       consume_timed(store, "one", count, CONSUMER, WARM_UP_S)[0])
            shutil.rmtree(data_dir)
            shutil.rmtree(bare_dir)
        with EventStore.open(os.path.join(workdir, "latency")) as store:
            p50, p99 = latency(store, 10_000, 2 if args.quick else 5)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    best = {name: max(values) for name, values in results.items()}
    print(f"{count:,} records of {len(VALUE)} bytes, null keys, best of {rounds} round(s);"
          f" clients at their defaults unless tuned (producer {PRODUCER}, consumer"
          f" {CONSUMER}); {ROWS_PER_BATCH} rows per bare transaction")
    print(f"{'measure':<30}{'records/s':>12}{'bare/s':>12}{'ratio':>8}{'target':>8}"
          f"{'':10}each round")
    for name, baseline, target in MEASURES:
        ratio = best[name] / best[baseline]
        verdict = "" if target is None else "ok" if ratio >= target else "MISSED"
        paired = [value / bare
                  for value, bare in zip(results[name], results[baseline], strict=True)]
        print(f"{name:<30}{best[name]:>12,.0f}{best[baseline]:>12,.0f}{ratio:>8.2f}"
              f"{'' if target is None else '>= ' + str(target):>8}  {verdict:<8}"
              f"{min(paired):.2f}-{max(paired):.2f}")
    array = best["bare array insert"]
    print(f"{'(for reference)':<30}{'':>12}{array:>12,.0f}"
          f"{best['produce, 1 partition'] / array:>8.2f}  produce, 1 partition against a bare"
          " insert from an array (carray), the fastest bare insert")
    joins = results["joining a new group"]
    print(f"{'joining a new group':<30}{min(joins):>11.2f}s{max(joins):>11.2f}s"
          f"{'':>16}  fastest and slowest first poll of the group member, start-up:"
          " group.initial.rebalance.delay.ms")
    print(f"{'latency at 10,000/s':<30}{'p50 ' + format(p50, '.2f') + ' ms':>12}"
          f"{'p99 ' + format(p99, '.2f') + ' ms':>13}{'':>7}{'<= 10':>8}"
          f"  {'ok' if p99 <= 10 else 'MISSED'}  (linger_ms 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
