"""Records/s that `eventstore mirror` copies between two local servers, against a plain
confluent-kafka consume-then-produce loop between the same source and a second target in
the same run (issue 22; target: at least 0.9 of the loop).

    python -m scripts.bench_mirror [--quick] [--records N] [--partitions N] [--rounds N]

Both copy the same topic, already written, to an empty topic of the same partitions made
on their target before the clock starts (making it is the target's work, not the copy's):
the loop reads every partition and produces each record with its key, value, headers and
timestamp to the same partition (idempotent, lz4), flushing at the end; the mirror does the
same plus its topic plan, checkpoints, end checks and caught-up checks, run in this process
(session.run with until_caught_up). ``--rounds`` copies by each, in turns (the order
swapped each round, to new target topics), and the fastest of each counts, so one busy
moment of a shared machine does not decide. Exit 1 when the ratio misses the target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from support import ServerProcess  # noqa: E402 - tests/ holds the server fixture

from eventstore.mirror import session  # noqa: E402
from eventstore.mirror.copier import Sides  # noqa: E402
from eventstore.mirror.plan import Selection  # noqa: E402

TOPIC = "bench"
TARGET_RATIO = 0.9


def fill(bootstrap: str, records: int, partitions: int) -> None:
    make_topic(bootstrap, partitions)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "compression.type": "lz4", "enable.idempotence": True})
    value = b"v" * 100
    for i in range(records):
        while True:
            try:
                producer.produce(TOPIC, value, b"key-%d" % (i % 1000),
                                 headers=[("n", b"%d" % i)], partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0


def make_topic(bootstrap: str, partitions: int, name: str = TOPIC) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions)])[name].result()


def plain_loop(source: str, target: str, records: int, partitions: int, prefix: str
               ) -> float:
    """Seconds a consume-then-produce loop takes to copy the topic (to ``prefix`` + its
    name)."""
    started = time.perf_counter()
    consumer = Consumer({"bootstrap.servers": source, "group.id": "loop",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    producer = Producer({"bootstrap.servers": target, "enable.idempotence": True,
                         "compression.type": "lz4", "linger.ms": 5})
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(partitions)])
    copied = 0
    while copied < records:
        for message in consumer.consume(1000, timeout=0.2):
            if message.error() is not None:
                continue
            while True:
                try:
                    producer.produce(prefix + TOPIC, message.value(), message.key(),
                                     partition=message.partition(),
                                     headers=message.headers(),
                                     timestamp=message.timestamp()[1])
                    break
                except BufferError:
                    producer.poll(0.1)
            copied += 1
        producer.poll(0)
    assert producer.flush(120) == 0
    consumer.close()
    return time.perf_counter() - started


def mirror(source: str, target: str, prefix: str) -> float:
    """Seconds `eventstore mirror --until-caught-up --prefix PREFIX` (in this process)
    takes."""
    started = time.perf_counter()
    done = session.run(Sides({"bootstrap.servers": source}, {"bootstrap.servers": target},
                             "lz4"),
                       session.Options(Selection((TOPIC,)), prefix, until_caught_up=True),
                       lambda: False, lambda _report: None, lambda _m, _d: False,
                       time.monotonic)
    assert done
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer records (a smoke run)")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3,
                        help="copies by each, in turns; the fastest of each counts")
    args = parser.parse_args()
    records = args.records or (20_000 if args.quick else 300_000)
    with tempfile.TemporaryDirectory() as scratch:
        servers = [ServerProcess.start(os.path.join(scratch, name))
                   for name in ("source", "loop-target", "mirror-target")]
        try:
            source, loop_target, mirror_target = (s.bootstrap for s in servers)
            fill(source, records, args.partitions)
            loop_s = mirror_s = float("inf")
            for n in range(args.rounds):  # each round to new target topics, order swapped
                prefix = f"r{n}."
                for target in (loop_target, mirror_target):
                    make_topic(target, args.partitions, prefix + TOPIC)
                for run in ((0, 1) if n % 2 == 0 else (1, 0)):
                    if run == 0:
                        loop_s = min(loop_s, plain_loop(source, loop_target, records,
                                                        args.partitions, prefix))
                    else:
                        mirror_s = min(mirror_s, mirror(source, mirror_target, prefix))
        finally:
            for server in servers:
                server.stop()
    ratio = loop_s / mirror_s
    print(f"{'copy':<34}{'records/s':>12}")
    print(f"{'consume-then-produce loop':<34}{records / loop_s:>12,.0f}")
    print(f"{'eventstore mirror':<34}{records / mirror_s:>12,.0f}")
    print(f"ratio {ratio:.2f} (target >= {TARGET_RATIO}): "
          f"{'met' if ratio >= TARGET_RATIO else 'missed'}")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
