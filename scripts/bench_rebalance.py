"""Benchmark a rebalance under load: classic eager, cooperative-sticky and KIP-848.

    python scripts/bench_rebalance.py [--quick] [--records N] [--protocols P,...]

An ``eventstore serve`` this script starts holds a 24-partition topic filled beforehand;
four confluent-kafka consumers of one group read it at full speed, each on its own thread,
a fifth joins once they are balanced, and when the five are, one of the first four closes
(leaves). From their assign/revoke callbacks (timestamps under one lock) the script
reports, for each protocol:

- ``unowned``: the longest time any partition had no owner, from its revocation to its
  next assignment (a partition assigned straight from one owner to the next, with no
  revocation in between, would be counted 0; librdkafka revokes first in every protocol);
- ``rate before`` and ``rate during``: records per second read by the three members that
  stay throughout, in the second before the join and from the join until the group is
  balanced again after the leave;
- ``unread at join``: records no member had read when the fifth joined (a rate is only
  meaningful while this is well above what the change takes to read).

Target: with ``consumer`` no partition unowned longer than one heartbeat interval
(``HEARTBEAT_MS``), and the staying members' rate not lower during the change. The server
runs with short timings for every protocol (heartbeats every HEARTBEAT_MS, no initial
rebalance delay), so the figures compare the protocols rather than Kafka's defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from support import ServerProcess  # noqa: E402 - tests/ holds the server fixture

PARTITIONS = 24
HEARTBEAT_MS = 250
SESSION_MS = 6000
SERVER = {"group.consumer.heartbeat.interval.ms": HEARTBEAT_MS,
          "group.consumer.min.heartbeat.interval.ms": HEARTBEAT_MS,
          "group.consumer.session.timeout.ms": SESSION_MS,
          "group.consumer.min.session.timeout.ms": SESSION_MS,
          "group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 1000}
PROTOCOLS = {
    "eager": {"partition.assignment.strategy": "range"},
    "cooperative-sticky": {"partition.assignment.strategy": "cooperative-sticky"},
    "consumer": {"group.protocol": "consumer"},
}
TIMEOUT_S = 120
VALUE = b"v" * 100


@dataclass
class Timeline:
    """Every member's callbacks and reads, in one place under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    events: list[tuple[float, str, str, frozenset]] = field(default_factory=list)
    owned: dict[str, set] = field(default_factory=dict)
    reads: dict[str, list[float]] = field(default_factory=dict)

    def note(self, member: str, kind: str, partitions) -> None:
        tps = frozenset((p.topic, p.partition) for p in partitions)
        with self.lock:
            self.events.append((time.monotonic(), member, kind, tps))
            mine = self.owned.setdefault(member, set())
            if kind == "assign":
                mine |= tps
            else:
                mine -= tps

    def balanced(self, members: int) -> bool:
        with self.lock:
            counts = sorted(len(tps) for tps in self.owned.values() if tps)
            total = sum(counts)
        return (len(counts) == members and total == PARTITIONS
                and counts[-1] - counts[0] <= 1)


class Member(threading.Thread):
    """One consumer polling as fast as it can until told to stop (closing: it leaves)."""

    def __init__(self, name: str, config: dict, timeline: Timeline) -> None:
        super().__init__(daemon=True)
        self.name_ = name
        self.config = config
        self.timeline = timeline
        self.stop = threading.Event()
        timeline.reads[name] = []

    def run(self) -> None:
        consumer = Consumer(self.config)
        consumer.subscribe(
            ["rebalance"],
            on_assign=lambda _, ps: self.timeline.note(self.name_, "assign", ps),
            on_revoke=lambda _, ps: self.timeline.note(self.name_, "revoke", ps))
        reads = self.timeline.reads[self.name_]
        while not self.stop.is_set():
            for message in consumer.consume(500, 0.05):
                if message.error() is None:
                    reads.append(time.monotonic())
        consumer.close()


def wait(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def fill(server: ServerProcess, records: int) -> None:
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("rebalance", PARTITIONS, 1)])["rebalance"].result(60)
    producer = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 5,
                         "batch.size": 256 * 1024, "queue.buffering.max.messages": 1_000_000})
    for i in range(records):
        while True:
            try:
                producer.produce("rebalance", VALUE, partition=i % PARTITIONS)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)


def unowned_ms(events: list, after: float) -> float:
    """The longest revocation-to-assignment gap of any partition after ``after``."""
    revoked_at: dict = {}
    longest = 0.0
    for at, _, kind, tps in sorted(events, key=lambda e: e[0]):
        for tp in tps:
            if kind == "revoke":
                revoked_at[tp] = at
            elif tp in revoked_at and at >= after:
                longest = max(longest, at - revoked_at.pop(tp))
    return longest * 1000


def run(protocol: str, records: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        server = ServerProcess.start(directory, settings=SERVER)
        try:
            fill(server, records)
            timeline = Timeline()
            base = {"bootstrap.servers": server.bootstrap, "group.id": f"bench-{protocol}",
                    "auto.offset.reset": "earliest", "enable.auto.commit": True,
                    "fetch.queue.backoff.ms": 10, **PROTOCOLS[protocol]}
            if protocol != "consumer":
                base |= {"session.timeout.ms": SESSION_MS,
                         "heartbeat.interval.ms": HEARTBEAT_MS}
            members = [Member(f"m{i}", base, timeline) for i in range(5)]
            for member in members[:4]:
                member.start()
            wait(lambda: timeline.balanced(4), "four members balanced")
            time.sleep(1.0)
            joined_at = time.monotonic()
            members[4].start()
            wait(lambda: timeline.balanced(5), "five members balanced")
            members[0].stop.set()
            members[0].join()
            with timeline.lock:
                timeline.owned.pop("m0", None)
            wait(lambda: timeline.balanced(4), "four members balanced again")
            done_at = time.monotonic()
            for member in members[1:]:
                member.stop.set()
            for member in members[1:]:
                member.join()
        finally:
            server.stop()
    staying = [t for name in ("m1", "m2", "m3") for t in timeline.reads[name]]
    before = sum(1 for t in staying if joined_at - 1.0 <= t < joined_at)
    during = sum(1 for t in staying if joined_at <= t < done_at)
    return {"unowned_ms": unowned_ms(timeline.events, joined_at),
            "rate_before": before / 1.0,
            "rate_during": during / (done_at - joined_at),
            "change_s": done_at - joined_at,
            "unread_at_join": records - sum(
                1 for reads in timeline.reads.values() for t in reads if t < joined_at)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer records (a smoke run)")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    args = parser.parse_args()
    records = args.records or (200_000 if args.quick else 1_500_000)
    print(f"{PARTITIONS} partitions, {records} records of {len(VALUE)} B, heartbeat"
          f" {HEARTBEAT_MS} ms; 4 members, a 5th joins, one leaves")
    print(f"{'protocol':<20} {'unowned ms':>10} {'rate before':>12} {'rate during':>12}"
          f" {'change s':>9} {'unread at join':>15}")
    for protocol in args.protocols.split(","):
        r = run(protocol, records)
        print(f"{protocol:<20} {r['unowned_ms']:>10.0f} {r['rate_before']:>12.0f}"
              f" {r['rate_during']:>12.0f} {r['change_s']:>9.2f}"
              f" {r['unread_at_join']:>15}", flush=True)


if __name__ == "__main__":
    main()
