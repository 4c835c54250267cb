"""Crash loop: SIGKILL `eventstore serve` again and again under load; lose nothing acknowledged.

Usage: python scripts/crash_loop.py [--kills N] [--seed S] [--dir DIR] [--idempotence]

A confluent-kafka (librdkafka) producer with acks=all writes keyed records to a topic of
three partitions in small segments, while a consumer group reads them and commits
asynchronously. After a random number of newly acknowledged records (never after a
random time) the server is SIGKILLed. While it is down, its data directory is checked
read-only: `eventstore verify` finds nothing, every acknowledged record is at the offset
it was acknowledged with, offsets run without a gap, and the committed offsets on disk are
at least the last commit the client saw acknowledged. Then the server is restarted on
the same directory and port, the clients reconnect by themselves, the group's committed
offsets are asked for again, and the next round begins. At the end every offset must have
been consumed at least once.

Without idempotence, librdkafka's retries of requests the kill cut off may append a record
twice (the first copy was never acknowledged): these are counted as duplicates, not lost.
Prints kills, records acknowledged, records lost (must be 0), duplicates and consumed, and
exits 1 if anything was lost or a check failed.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support import ServerProcess  # noqa: E402

from eventstore.sql import SqlEngine  # noqa: E402
from eventstore.storage.verify import verify  # noqa: E402

TOPIC = "crash"
GROUP = "crash-loop"
PARTITIONS = 3
SETTINGS = {"num.partitions": PARTITIONS, "segment.bytes": 16384}
ACKS_PER_KILL = (20, 2000)  # the kill comes after a random number of new acks in this range
IN_FLIGHT = 2000  # records the producer may have unacknowledged at once
COMMIT_EVERY = 50  # consumed records between two asynchronous commits
STEP_TIMEOUT_S = 30.0  # a stage making no progress this long fails the run


def value_of(record_id: int) -> bytes:
    return f"rec-{record_id:010d}-".encode().ljust(100, b".")


def id_of(value: bytes) -> int:
    return int(value[4:14])


@dataclass
class Tally:
    """What the run saw; ``violations`` lists every failed check (there must be none)."""

    seed: int
    kills: int = 0
    in_flight_at_kills: int = 0  # records sent but not yet acknowledged when killed, summed
    written_unacknowledged: int = 0  # of those, found in the log after the kill, summed
    acknowledged: int = 0
    lost: int = 0
    duplicates: int = 0
    consumed: int = 0
    violations: list[str] = field(default_factory=list)


class CrashLoop:
    """The server, the two clients, and everything the clients were told."""

    def __init__(self, data_dir: str, seed: int, idempotence: bool) -> None:
        self.rng = random.Random(seed)
        self.tally = Tally(seed)
        self.data_dir = data_dir
        self.server = ServerProcess.start(data_dir, settings=SETTINGS)
        quiet = logging.getLogger("librdkafka")
        quiet.setLevel(logging.CRITICAL)  # "connection refused" while the server is down
        common = {"bootstrap.servers": self.server.bootstrap, "logger": quiet,
                  "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200}
        self.producer = Producer({
            **common, "acks": "all", "enable.idempotence": idempotence, "linger.ms": 1,
            "batch.num.messages": 25,
            "message.timeout.ms": 120000,
        })
        self.consumer = Consumer({
            **common, "group.id": GROUP, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500, "on_commit": self._committed,
        })
        self.consumer.subscribe([TOPIC])
        self.next_id = 0
        self.acked: dict[tuple[int, int], int] = {}  # (partition, offset) -> record id
        self.commit_acked: dict[int, int] = {}  # partition -> highest acknowledged commit
        self.consumed: set[tuple[int, int]] = set()
        self._since_commit = 0

    # -- client callbacks ----------------------------------------------------------------------

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.acked[(message.partition(), message.offset())] = id_of(message.value())
        else:
            self.tally.violations.append(f"a record was not delivered: {error}")

    def _committed(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is not None:
            return  # the server was down: the commit was not acknowledged
        for tp in partitions:
            if tp.error is None and tp.offset >= 0:
                self.commit_acked[tp.partition] = max(self.commit_acked.get(tp.partition, 0),
                                                      tp.offset)

    # -- traffic -------------------------------------------------------------------------------

    def _step(self, produce: bool) -> None:
        """Produce up to the in-flight limit, serve callbacks, consume and commit a little."""
        room = IN_FLIGHT - len(self.producer) if produce else 0
        for _ in range(min(room, 200)):
            record_id = self.next_id
            try:
                self.producer.produce(TOPIC, value_of(record_id), str(record_id).encode(),
                                      on_delivery=self._delivered)
            except BufferError:
                break
            self.next_id += 1
        self.producer.poll(0)
        for message in self.consumer.consume(500, timeout=0.005):
            if message.error() is None:
                self.consumed.add((message.partition(), message.offset()))
                self._since_commit += 1
        if self._since_commit >= COMMIT_EVERY:
            self._since_commit = 0
            self.consumer.commit(asynchronous=True)

    def pump_until(self, done: Callable[[], bool], what: str, produce: bool = True) -> None:
        """Keep the traffic going until ``done()``; fail if nothing moves for too long."""
        deadline = time.monotonic() + STEP_TIMEOUT_S
        progress = (len(self.acked), len(self.consumed))
        while not done():
            self._step(produce)
            now = (len(self.acked), len(self.consumed))
            if now != progress:
                progress, deadline = now, time.monotonic() + STEP_TIMEOUT_S
            elif time.monotonic() > deadline:
                raise AssertionError(f"seed {self.tally.seed}: no progress for"
                                     f" {STEP_TIMEOUT_S} s waiting for {what}")

    # -- one round -----------------------------------------------------------------------------

    def kill_and_restart(self) -> None:
        """Run until a random number of new acks, SIGKILL, check the files, restart."""
        target = len(self.acked) + self.rng.randint(*ACKS_PER_KILL)
        self.pump_until(lambda: len(self.acked) >= target, f"{target} acknowledged records")
        self.server.kill()
        self.tally.kills += 1
        self.tally.in_flight_at_kills += len(self.producer)
        committed_on_disk = self.check_files(f"after kill {self.tally.kills}")
        host, port = self.server.address
        metrics = self.server.metrics_url.split("//", 1)[1].split("/", 1)[0]
        self.server.launch(f"{host}:{port}", metrics)
        self.check_group_resumes(committed_on_disk)

    def check_files(self, when: str) -> dict[int, int]:
        """Check the stopped server's directory read-only; the committed offsets on disk."""
        context = f"seed {self.tally.seed}, {when}"
        report = verify(self.data_dir)
        self.tally.violations += [f"{context}: verify: {p}" for p in report.problems]
        with SqlEngine(self.data_dir) as engine:
            _, rows = engine.query("SELECT partition, offset, value FROM records"
                                   " WHERE topic = ? ORDER BY partition, offset", (TOPIC,))
            _, ends = engine.query("SELECT partition, log_end_offset FROM partitions"
                                   " WHERE topic = ?", (TOPIC,))
            _, commits = engine.query("SELECT partition, committed_offset FROM consumer_groups"
                                      " WHERE group_id = ? AND topic = ?", (GROUP, TOPIC))
        log = {(partition, offset): id_of(value) for partition, offset, value in rows}
        acked_ids = set(self.acked.values())
        self.tally.written_unacknowledged += sum(i not in acked_ids for i in log.values())
        for partition, end in ends:
            offsets = sorted(o for p, o in log if p == partition)
            if offsets != list(range(end)):
                self.tally.violations.append(
                    f"{context}: partition {partition} offsets are not 0..{end - 1} without a gap")
        lost = [where for where, record_id in self.acked.items() if log.get(where) != record_id]
        if lost:
            self.tally.violations.append(f"{context}: {len(lost)} acknowledged records lost,"
                                         f" e.g. (partition, offset) {lost[:5]}")
        self.tally.lost = len(lost)
        self.tally.acknowledged = len(self.acked)
        self.tally.duplicates = sum(n - 1 for n in Counter(log.values()).values() if n > 1)
        committed = dict(commits)
        self._check_commits(committed, f"{context}, on disk")
        return committed

    def _check_commits(self, committed: dict[int, int], context: str) -> None:
        for partition, acked in self.commit_acked.items():
            if committed.get(partition, -1) < acked:
                self.tally.violations.append(
                    f"{context}: partition {partition} committed offset"
                    f" {committed.get(partition)} is below the acknowledged commit {acked}")

    def check_group_resumes(self, committed_on_disk: dict[int, int]) -> None:
        """The restarted server answers the group's committed offsets as they were on disk."""
        wanted = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        answered = self.consumer.committed(wanted, timeout=STEP_TIMEOUT_S)
        committed = {tp.partition: tp.offset for tp in answered if tp.offset >= 0}
        context = f"seed {self.tally.seed}, after restart {self.tally.kills}"
        self._check_commits(committed, context)
        for partition, offset in committed_on_disk.items():
            if committed.get(partition, -1) < offset:
                self.tally.violations.append(
                    f"{context}: partition {partition}: the server answers committed offset"
                    f" {committed.get(partition)}, {offset} was on disk")

    # -- the end -------------------------------------------------------------------------------

    def finish(self) -> Tally:
        """Let every record be acknowledged and consumed, stop cleanly, check once more."""
        self.pump_until(lambda: len(self.producer) == 0, "the last acknowledgements",
                        produce=False)
        ends = {p: self.consumer.get_watermark_offsets(TopicPartition(TOPIC, p),
                                                        timeout=STEP_TIMEOUT_S)[1]
                for p in range(PARTITIONS)}
        everything = {(p, offset) for p, end in ends.items() for offset in range(end)}
        self.pump_until(lambda: self.consumed >= everything, "every offset consumed",
                        produce=False)
        self.consumer.close()
        self.server.stop()
        self.check_files("at the end")
        self.tally.consumed = len(self.consumed)
        return self.tally

    def close(self) -> None:
        if self.server.running:
            self.server.kill()


def run(kills: int, seed: int, data_dir: str, idempotence: bool = False) -> Tally:
    """``kills`` rounds of load, SIGKILL, checks and restart; what was seen."""
    loop = CrashLoop(data_dir, seed, idempotence)
    try:
        for _ in range(kills):
            loop.kill_and_restart()
        return loop.finish()
    finally:
        loop.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs (default 100)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--dir", help="parent of the data directory (default: a temp dir)")
    parser.add_argument("--idempotence", action="store_true",
                        help="enable.idempotence=true: retries must not duplicate records")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="crash-loop-") as parent:
        tally = run(args.kills, seed, str(Path(parent) / "data"), args.idempotence)
    print(f"seed {tally.seed}")
    print(f"kills {tally.kills}")
    print(f"records in flight at the kills {tally.in_flight_at_kills}"
          f" (written but not yet acknowledged: {tally.written_unacknowledged})")
    print(f"records acknowledged {tally.acknowledged}")
    print(f"records lost {tally.lost}")
    print(f"duplicates {tally.duplicates}")
    print(f"records consumed {tally.consumed}")
    print(f"seconds {time.monotonic() - started:.1f}")
    for violation in tally.violations:
        print(f"VIOLATION {violation}")
    return 1 if tally.lost or tally.violations else 0


if __name__ == "__main__":
    sys.exit(main())
