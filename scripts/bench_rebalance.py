"""Benchmark a rebalance under load: classic eager, cooperative-sticky and KIP-848.

    python scripts/bench_rebalance.py [--quick] [--records N] [--protocols P,...]
                                      [--member-rate R]

An ``eventstore serve`` this script starts holds a 24-partition topic filled beforehand;
four confluent-kafka consumers of one group read it, each on its own thread, a fifth joins
once they are balanced, and when the five are, one of the first four closes (leaves). Each
member reads at most ``--member-rate`` records per second (paced per batch of
``BATCH`` records, a stall never caught up afterwards; 0: as fast as it can). Paced, the
members need less than the machine's CPU, so the staying members' rate measures whether
the protocol lets them go on reading, not how a fifth thread shares two busy cores with
them (which ``--member-rate 0`` measures too). From the members' assign/revoke callbacks
and reads (timestamps under one lock) the script reports, for each protocol:

- ``unowned``: the longest time any partition had no owner after the join, from its
  revocation to its next assignment;
- ``unconsumed``: the longest time any partition moved after the join went unread, from
  its revocation to its new owner's first record of it: the time it had no *consuming*
  owner (the topic is full, so every partition always has records to read);
- ``rate before`` and ``rate during``: records per second read by the three members that
  stay throughout, from the join until the group is balanced again after the leave, and
  in the second before the join (balanced); ``ratio`` is during / before;
- ``stall``: the longest gap between two reads of any one staying member in the change
  (paced, a member reads every BATCH / rate seconds);
- ``unread at join``: records no member had read when the fifth joined (a rate is only
  meaningful while this is well above what the change takes to read).

Target: with ``consumer`` no partition unconsumed longer than one heartbeat interval
(``HEARTBEAT_MS``), and the staying members' rate not lower during the change (ratio
>= 0.9). The server runs with short timings for every protocol (heartbeats every
HEARTBEAT_MS, no initial rebalance delay), so the figures compare the protocols rather
than Kafka's defaults. Members keep small fetch queues (``queued.min.messages``,
``max.partition.fetch.bytes``) so a partition's first record reaches the application soon
after its assignment.
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
BATCH = 100  # records per consume() call
MEMBER_RATE = 5000  # records/s each member reads at most, by default
SETTLE_S = 1.0  # balanced this long before the fifth joins: the window "before"


@dataclass
class Timeline:
    """Every member's callbacks and reads, in one place under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    events: list[tuple[float, str, str, frozenset]] = field(default_factory=list)
    owned: dict[str, set] = field(default_factory=dict)
    reads: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # (at, partition)

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
    """One consumer reading at most ``rate`` records/s (0: as fast as it can) until told to
    stop (closing: it leaves)."""

    def __init__(self, name: str, config: dict, timeline: Timeline, rate: int) -> None:
        super().__init__(daemon=True)
        self.name_ = name
        self.config = config
        self.timeline = timeline
        self.rate = rate
        self.stop = threading.Event()
        timeline.reads[name] = []

    def run(self) -> None:
        consumer = Consumer(self.config)
        consumer.subscribe(
            ["rebalance"],
            on_assign=lambda _, ps: self.timeline.note(self.name_, "assign", ps),
            on_revoke=lambda _, ps: self.timeline.note(self.name_, "revoke", ps))
        reads = self.timeline.reads[self.name_]
        next_at = time.monotonic()
        while not self.stop.is_set():
            messages = consumer.consume(BATCH, 0.05)
            now = time.monotonic()
            for message in messages:
                if message.error() is None:
                    reads.append((now, message.partition()))
            if self.rate and messages:
                # paced from now, not from the start: time lost in a stall is not made up
                next_at = max(next_at, now) + len(messages) / self.rate
                self.stop.wait(max(next_at - time.monotonic(), 0))
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


def unconsumed_ms(events: list, reads: dict[str, list], after: float) -> float:
    """The longest time from a partition's revocation after ``after`` to its next owner's
    first read of it (a partition never read again counts up to the last read at all)."""
    end = max(t for member_reads in reads.values() for t, _ in member_reads)
    read_times: dict[tuple[str, int], list[float]] = {}  # (member, partition) -> times
    for member, member_reads in reads.items():
        for t, partition in member_reads:
            read_times.setdefault((member, partition), []).append(t)
    longest = 0.0
    ordered = sorted(events, key=lambda e: e[0])
    for i, (at, _, kind, tps) in enumerate(ordered):
        if kind != "revoke" or at < after:
            continue
        for topic, partition in tps:
            owner = next((m for _, m, k, ps in ordered[i + 1:]
                          if k == "assign" and (topic, partition) in ps), None)
            times = read_times.get((owner, partition), []) if owner else []
            read_at = next((t for t in times if t >= at), end)
            longest = max(longest, read_at - at)
    return longest * 1000


def staying_figures(reads: dict[str, list], joined_at: float, done_at: float
                    ) -> dict[str, float]:
    """The staying members' rate in the change and in the settled second before the join,
    and the longest gap between two reads of one of them in the change."""
    times = {name: [t for t, _ in reads[name]] for name in ("m1", "m2", "m3")}
    before = sum(1 for ts in times.values() for t in ts
                 if joined_at - SETTLE_S <= t < joined_at) / SETTLE_S
    during = sum(1 for ts in times.values() for t in ts
                 if joined_at <= t < done_at) / (done_at - joined_at)
    stall = 0.0
    for ts in times.values():
        marks = [joined_at, *(t for t in ts if joined_at <= t < done_at), done_at]
        stall = max(stall, *(b - a for a, b in zip(marks, marks[1:], strict=False)))
    return {"rate_before": before, "rate_during": during,
            "ratio": during / before if before else 0.0, "stall_ms": stall * 1000}


def run(protocol: str, records: int, rate: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        server = ServerProcess.start(directory, settings=SERVER)
        try:
            fill(server, records)
            timeline = Timeline()
            base = {"bootstrap.servers": server.bootstrap, "group.id": f"bench-{protocol}",
                    "auto.offset.reset": "earliest", "enable.auto.commit": True,
                    "fetch.queue.backoff.ms": 10, "queued.min.messages": 500,
                    "max.partition.fetch.bytes": 65536,
                    **PROTOCOLS[protocol]}
            if protocol != "consumer":
                base |= {"session.timeout.ms": SESSION_MS,
                         "heartbeat.interval.ms": HEARTBEAT_MS}
            members = [Member(f"m{i}", base, timeline, rate) for i in range(5)]
            for member in members[:4]:
                member.start()
            wait(lambda: timeline.balanced(4), "four members balanced")
            time.sleep(SETTLE_S)
            joined_at = time.monotonic()
            members[4].start()
            wait(lambda: timeline.balanced(5), "five members balanced")
            members[0].stop.set()
            members[0].join()
            with timeline.lock:
                timeline.owned.pop("m0", None)
            wait(lambda: timeline.balanced(4), "four members balanced again")
            done_at = time.monotonic()
            time.sleep(1.0)  # the last moved partitions' first reads
            for member in members[1:]:
                member.stop.set()
            for member in members[1:]:
                member.join()
        finally:
            server.stop()
    return {"unowned_ms": unowned_ms(timeline.events, joined_at),
            "unconsumed_ms": unconsumed_ms(timeline.events, timeline.reads, joined_at),
            **staying_figures(timeline.reads, joined_at, done_at),
            "change_s": done_at - joined_at,
            "unread_at_join": records - sum(
                1 for reads in timeline.reads.values() for t, _ in reads if t < joined_at)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer records (a smoke run)")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--member-rate", type=int, default=MEMBER_RATE,
                        help="records/s each member reads at most (0: as fast as it can)")
    args = parser.parse_args()
    records = args.records or (200_000 if args.quick else 1_500_000)
    pace = f"at most {args.member_rate} rec/s each" if args.member_rate else "at full speed"
    print(f"{PARTITIONS} partitions, {records} records of {len(VALUE)} B, heartbeat"
          f" {HEARTBEAT_MS} ms; 4 members reading {pace}, a 5th joins, one leaves")
    print(f"{'protocol':<20} {'unowned ms':>10} {'unconsumed ms':>13} {'rate before':>12}"
          f" {'rate during':>12} {'ratio':>6} {'stall ms':>9} {'change s':>9}"
          f" {'unread at join':>15}")
    for protocol in args.protocols.split(","):
        r = run(protocol, records, args.member_rate)
        print(f"{protocol:<20} {r['unowned_ms']:>10.0f} {r['unconsumed_ms']:>13.0f}"
              f" {r['rate_before']:>12.0f} {r['rate_during']:>12.0f} {r['ratio']:>6.2f}"
              f" {r['stall_ms']:>9.0f} {r['change_s']:>9.2f} {r['unread_at_join']:>15}",
              flush=True)


if __name__ == "__main__":
    main()
