"""One workload run, start to finish, on an open target.

1. Create the topics; note each partition's log-end-offset (the run's records come after).
2. Start every group's members and wait until each group has all its partitions
   assigned, one member each (the initial join, timed but not part of the run).
3. ``t0``: start the producers. Every ``tick_s`` the sampling loop drains the workers'
   queues into the ledger, records a sample (totals, lag, members), applies the
   scenario's membership changes that are due, and refreshes the live view.
4. Once every producer has flushed, the groups get ``drain_timeout_s`` to reach lag 0.
5. Members leave (committing what they read), then the store is asked for each
   partition's offsets and each group's committed offsets, and the ledger verifies.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .clients import TP, PartitionOffsets, Target, WireTarget
from .ledger import GroupVerdict, Ledger
from .remote import RemoteMember, RemoteProducer
from .scenario import GroupSpec, Scenario
from .workers import Member, ProducerWorker

JOIN_TIMEOUT_S = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Sample:
    """The run at ``t`` seconds after t0: running totals, lag and members per group."""

    t: float
    produced: int
    consumed: dict[str, int]
    lag: dict[str, int]
    members: dict[str, int]
    phase: str


@dataclass
class GroupRun:
    """One group during the run: its members (those that left included) and outcomes."""

    spec: GroupSpec
    partitions: list[TP]
    members: list[Member] = field(default_factory=list)
    joined_s: float | None = None  # initial join, from the first member's start
    drained_at: float | None = None  # monotonic time lag reached 0 after producing
    verdict: GroupVerdict | None = None
    committed: dict[TP, int | None] = field(default_factory=dict)

    def active(self) -> list[Member]:
        return [m for m in self.members if not m.leave.is_set()]

    def stable(self) -> bool:
        """Every active member has an assignment; together they hold each partition once."""
        held: list[TP] = []
        for member in self.active():
            if member.assignment is None:
                return False
            held += member.assignment
        return len(held) == len(set(held)) and set(held) == set(self.partitions)

    def counter(self, name: str) -> int:
        return sum(getattr(member, name) for member in self.members)

    def errors(self) -> Counter[str]:
        return sum((m.errors for m in self.members), Counter())


@dataclass
class RunResult:
    """Everything the report needs."""

    scenario: Scenario
    target: str
    t0: float
    producing_done_at: float
    ended_at: float
    samples: list[Sample]
    ledger: Ledger
    producers: list[ProducerWorker]
    groups: dict[str, GroupRun]
    changes: list[tuple[float, str, int]]  # (s after t0, group, member delta) applied
    changes_not_reached: list[tuple[float, str, int]]
    store: dict[TP, PartitionOffsets]
    failures: list[str]
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core, by process

    def produce_errors(self) -> Counter[str]:
        return sum((p.errors for p in self.producers), Counter())

    def errors(self) -> dict[str, dict[str, int]]:
        """Errors clients raised or reported, by who saw them (empty ones left out)."""
        seen = {"producers": dict(self.produce_errors())}
        seen |= {f"group {name}": dict(group.errors()) for name, group in self.groups.items()}
        return {who: errors for who, errors in seen.items() if errors}

    @property
    def passed(self) -> bool:
        """The data verification passed (errors are reported apart)."""
        return not self.failures

    @property
    def clean(self) -> bool:
        """Verified, and no client saw an error."""
        return self.passed and not self.errors()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (from /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Runner:
    """Runs ``scenario`` on ``target``; ``show(sample, runner)`` is called every tick."""

    def __init__(self, scenario: Scenario, target: Target, tick_s: float,
                 show: Callable[[Sample, Runner], None], server_pid: int | None = None,
                 ) -> None:
        self.scenario = scenario
        self.target = target
        # over the wire every client runs in its own process (see remote.py)
        self.bootstrap = target.bootstrap if isinstance(target, WireTarget) else None
        self.server_pid = server_pid
        self.tick_s = tick_s
        self.show = show
        self.changed = threading.Condition()
        self.groups: dict[str, GroupRun] = {}
        self.producers: list[ProducerWorker] = []
        self.ledger: Ledger | None = None
        self.samples: list[Sample] = []
        self.t0 = 0.0  # monotonic time the producers started

    # -- setup ------------------------------------------------------------------------------

    def _setup(self) -> None:
        scenario = self.scenario
        self.target.create_topics(scenario.topics)
        bases = {tp: o.log_end_offset
                 for tp, o in self.target.log_offsets(scenario.topics).items()}
        for spec in scenario.groups:
            self.groups[spec.name] = GroupRun(
                spec, sorted(tp for tp in bases if tp[0] in spec.topics))
        self.ledger = Ledger(bases, {name: g.partitions for name, g in self.groups.items()})

    def _add_member(self, group: GroupRun) -> None:
        number = len(group.members)
        member = (Member(group.spec, number, self.target, self.changed)
                  if self.bootstrap is None
                  else RemoteMember(group.spec, number, self.bootstrap, self.changed))
        group.members.append(member)
        member.start()

    def _join_groups(self) -> None:
        started = time.monotonic()
        for group in self.groups.values():
            for _ in range(group.spec.members):
                self._add_member(group)
        deadline = started + JOIN_TIMEOUT_S
        with self.changed:
            while True:
                for group in self.groups.values():
                    if group.joined_s is None and group.stable():
                        group.joined_s = time.monotonic() - started
                if all(g.joined_s is not None for g in self.groups.values()):
                    return
                if time.monotonic() >= deadline or not self.changed.wait(
                        deadline - time.monotonic()):
                    late = [g.spec.name for g in self.groups.values() if g.joined_s is None]
                    errors = {n: dict(self.groups[n].errors()) for n in late}
                    raise RuntimeError(f"groups {late} did not get all their partitions"
                                       f" within {JOIN_TIMEOUT_S:.0f} s (errors: {errors})")

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> RunResult:
        self._setup()
        try:
            self._join_groups()
            cpu_before = self._cpu_seconds()
            producing_done_at, applied, pending = self._produce_and_drain()
            cpu = self._cpu_percent(cpu_before, time.monotonic() - self.t0)
        finally:
            for producer in self.producers:
                producer.halt.set()
            self._stop_members()
        ended_at = time.monotonic()
        store = self.target.log_offsets(self.scenario.topics)
        return RunResult(self.scenario, self.target.name, self.t0, producing_done_at, ended_at,
                         self.samples, self.ledger, self.producers, self.groups, applied,
                         pending, store, self._verify(store), cpu)

    def _cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far of this process, of the server (when it is known) and of
        each client process (as it last reported)."""
        found = {"runner": time.process_time()}
        if self.server_pid is not None:
            found["server"] = process_cpu_seconds(self.server_pid)
        workers = [*self.producers, *(m for g in self.groups.values() for m in g.members)]
        found |= {w.name: w.cpu_s for w in workers if getattr(w, "cpu_s", None) is not None}
        return found

    def _cpu_percent(self, before: dict[str, float], wall_s: float) -> dict[str, float]:
        """% of one core from t0 to the drain of the server, of this process (with its
        clients, when they run here) and of each client process."""
        after = self._cpu_seconds()
        return {name: round((seconds - before.get(name, 0.0)) / wall_s * 100, 1)
                for name, seconds in after.items()}

    def _produce_and_drain(self) -> tuple[float, list[tuple[float, str, int]],
                                          list[tuple[float, str, int]]]:
        """Steps 3 and 4: when producing ended, the changes applied, those not reached."""
        scenario = self.scenario
        changes = sorted((c.at_s, g.name, c.members)
                         for g in scenario.groups for c in g.changes)
        applied: list[tuple[float, str, int]] = []
        t0 = self.t0 = time.monotonic()
        number = 0
        for spec in scenario.producers:
            for _ in range(spec.count):
                number += 1
                self.producers.append(
                    ProducerWorker(number, spec, self.target, t0, scenario.duration_s,
                                   scenario.records) if self.bootstrap is None
                    else RemoteProducer(number, spec, self.bootstrap, t0, scenario.duration_s,
                                        scenario.records))
        for producer in self.producers:
            producer.start()
        producing_done_at = None
        pause = threading.Event()  # never set: the loop's clock
        next_tick = t0
        while True:
            next_tick += self.tick_s
            pause.wait(max(next_tick - time.monotonic(), 0))
            now = time.monotonic()
            self._drain()
            while changes and changes[0][0] <= now - t0:
                _, name, delta = changes.pop(0)
                self._change(self.groups[name], delta)
                applied.append((now - t0, name, delta))
            if producing_done_at is None and not any(p.is_alive() for p in self.producers):
                producing_done_at = max(p.finished_at for p in self.producers)
                self._drain()
            sample = self._sample(now - t0, "producing" if producing_done_at is None
                                  else "draining")
            self.samples.append(sample)
            self.show(sample, self)
            if producing_done_at is not None and self._drained(now, producing_done_at, sample):
                return producing_done_at, applied, changes

    def _change(self, group: GroupRun, delta: int) -> None:
        if delta > 0:
            for _ in range(delta):
                self._add_member(group)
        else:
            for member in group.active()[delta:]:
                member.leave.set()

    def _drain(self) -> None:
        """Move what the workers queued into the ledger."""
        ledger = self.ledger
        for producer in self.producers:
            acks = producer.acks
            size = producer.spec.record_bytes
            while acks:
                topic, partition, offset, ident = acks.popleft()
                ledger.ack(topic, partition, offset, ident, size)
        for name, group in self.groups.items():
            for member in group.members:
                reads = member.reads
                while reads:
                    tp, offset, ident, size = reads.popleft()
                    ledger.read(name, tp, offset, ident, size)

    def _sample(self, t: float, phase: str) -> Sample:
        ledger = self.ledger
        ends = self.target.high_watermarks(self.scenario.topics)
        return Sample(
            t=t,
            produced=ledger.produced,
            consumed={n: ledger.reads[n].records for n in self.groups},
            lag={n: ledger.lag(n, ends) for n in self.groups},
            members={n: len(g.active()) for n, g in self.groups.items()},
            phase=phase,
        )

    def _drained(self, now: float, producing_done_at: float, sample: Sample) -> bool:
        """Note groups that reached lag 0; True once all did, or the drain timed out."""
        for name, group in self.groups.items():
            if group.drained_at is None and sample.lag[name] == 0:
                group.drained_at = now
        if all(g.drained_at is not None for g in self.groups.values()):
            return True
        return now - producing_done_at > self.scenario.drain_timeout_s

    def _stop_members(self) -> None:
        members = [m for g in self.groups.values() for m in g.members]
        for member in members:
            member.leave.set()
        for member in members:
            member.join(STOP_TIMEOUT_S)
        self._drain()

    # -- verification -----------------------------------------------------------------------

    def _verify(self, store: dict[TP, PartitionOffsets]) -> list[str]:
        produce_errors = sum(sum(p.errors.values()) for p in self.producers)
        failures = self.ledger.verify_store(store, produce_errors)
        for name, group in self.groups.items():
            group.committed = self.target.committed(name, group.partitions)
            group.verdict = self.ledger.verify_group(name, store, group.committed,
                                                     produce_errors)
            failures += [f"group {name}: {f}" for f in group.verdict.failures]
            if group.drained_at is None:
                failures.append(f"group {name}: still lagging {self.samples[-1].lag[name]:,}"
                                " records after the drain timeout")
            for counter, what in (("order_violations", "reads out of partition order"),
                                  ("skipped_present", "records skipped while still stored")):
                if group.counter(counter):
                    failures.append(f"group {name}: {group.counter(counter)} {what}")
            alive = [m.name for m in group.members if m.is_alive()]
            if alive:
                failures.append(f"group {name}: members {alive} did not stop")
        return failures
