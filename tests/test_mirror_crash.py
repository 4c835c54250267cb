"""`eventstore mirror` SIGKILLed again and again while producers write (issue 22): after
each kill it restarts from its checkpoints on the target, and at the end the target holds
every source record once, in order, at the same partition (0 lost, 0 duplicated).

The kills follow the copy's progress, not the clock: each comes once the target holds more
records than a random point of the run (between two checkpoints, or just after one; once
all is copied, while the mirror starts). The CI form kills a few times; the slow form many
more times under more load."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from support import eventstore_command, wait_until

PARTITIONS = 4
CHUNK = 250


def _target_records(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(PARTITIONS))
    except Exception:  # the topic not made on the target yet
        return 0
    finally:
        consumer.close()


def _records(bootstrap: str, topic: str) -> list[tuple]:
    """Every record of ``topic``, partition by partition, in offset order (no offsets: the
    target's are compared as a sequence)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    out = []
    for p in range(PARTITIONS):
        consumer.assign([TopicPartition(topic, p, 0)])
        while (message := consumer.poll(10)) is not None and message.error() is None:
            out.append((p, message.key(), message.value(), message.headers(),
                        message.timestamp()))
        assert message is not None, f"partition {p} was not read to its end"
    consumer.close()
    return out


class Writers:
    """A producer writing ``total`` keyed records with headers to the source in a thread, in
    chunks, each once the target holds all but two chunks of what was written: the source
    stays a little ahead, so the mirror copies while it writes, whatever the speeds."""

    def __init__(self, bootstrap: str, topic: str, total: int,
                 copied: Callable[[], int]) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                  "compression.type": "lz4", "linger.ms": 5})
        self.topic, self.total, self.copied, self.error = topic, total, copied, None
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()

    def _write(self) -> None:
        try:
            for i in range(self.total):
                if i % CHUNK == 0:
                    assert self.producer.flush(30) == 0
                    wait_until(lambda i=i: self.copied() >= i - 2 * CHUNK, 120,
                               f"the target past {i - 2 * CHUNK} records")
                self.producer.produce(self.topic, key=f"k{i % 101}".encode(),
                                      value=f"value-{i}".encode() * (1 + i % 5),
                                      headers=[("i", str(i).encode())])
            assert self.producer.flush(60) == 0
        except Exception as error:  # reported by join
            self.error = error

    def join(self) -> None:
        self.thread.join(300)
        assert not self.thread.is_alive() and self.error is None, self.error


def _mirror(source: str, target: str, *extra: str) -> list[str]:
    return [*eventstore_command(), "mirror", "--source-bootstrap-server", source,
            "--target-bootstrap-server", target, "--topics", "load", *extra]


def _kill_loop(serve, kills: int, total: int) -> None:
    source, target = serve(), serve()
    admin = AdminClient({"bootstrap.servers": source.bootstrap})
    for future in admin.create_topics([NewTopic("load", PARTITIONS)]).values():
        future.result()
    writers = Writers(source.bootstrap, "load", total,
                      lambda: _target_records(target.bootstrap, "load"))
    points = sorted(random.Random(kills).sample(range(1, total), kills))
    killed, seen = 0, 0
    try:
        for index, point in enumerate(points):
            # checkpoints often (kills between them) or rarely (kills before the first)
            interval = ("100", "3000")[index % 2]
            mirror = subprocess.Popen(_mirror(source.bootstrap, target.bootstrap,
                                              "--checkpoint-interval-ms", interval),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            goal = min(max(point, seen + 1), total)  # at the end: killed while starting
            seen = wait_until(
                lambda goal=goal: (n := _target_records(target.bootstrap, "load")) >= goal
                and n, 120, f"the target past {goal} records")
            mirror.send_signal(signal.SIGKILL)
            assert mirror.wait(30) == -signal.SIGKILL
            killed += 1
    finally:
        writers.join()
    assert killed == kills
    done = subprocess.run(_mirror(source.bootstrap, target.bootstrap, "--until-caught-up"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    expected = _records(source.bootstrap, "load")
    assert len(expected) == total
    assert _records(target.bootstrap, "load") == expected


def test_sigkilled_mirror_loses_and_duplicates_nothing(serve):
    _kill_loop(serve, kills=5, total=6000)


@pytest.mark.slow
def test_sigkilled_mirror_many_times_under_load(serve):
    _kill_loop(serve, kills=40, total=60000)
