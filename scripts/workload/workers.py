"""The threads of a run: producers sending at their target rate, and group members.

Workers never touch the ledger: they append what happened to their own deques (thread
safe for one appender and one taker), and the runner's sampling loop drains them.

A record's value starts with its id and its send time (``time.monotonic_ns``, the same
clock in every thread of the run), so a member measures end-to-end latency from the
record alone. Members check per-partition order themselves, between the assignment and
the revocation of a partition: offsets must rise; a jump forward is honest only when the
skipped records were gone, which the member asks the store right then (the first offset
after the jump must not be above the log-start-offset). A poll that raises is counted as
an error and retried, as an application would, so one error does not stall a group.
"""

from __future__ import annotations

import bisect
import itertools
import random
import struct
import threading
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable

from .clients import TP, ConsumerClient, ProducerClient, Target
from .scenario import HEADER_BYTES, GroupSpec, ProducerSpec

HEADER = struct.Struct(">QQ")  # record id, send time in ns
assert HEADER.size == HEADER_BYTES
IDENT_SHIFT = 40  # record id = producer number << IDENT_SHIFT | sequence
CHUNK = 500  # records sent between two looks at the clock
POLL_TIMEOUT_S = 0.1
ZIPF_EXPONENT = 1.2
FLUSH_TIMEOUT_S = 60.0
ERROR_BACKOFF_S = 0.1  # after a poll that raised, as retry_backoff_ms
GIVE_UP_AFTER = 100  # polls failing in a row (10 s) before a member stops trying


def key_chooser(spec: ProducerSpec, rng: random.Random) -> Callable[[], bytes | None]:
    """Keys as the spec says: none (sticky partitioner), uniform, or skewed (Zipf)."""
    if spec.keys == "none":
        return lambda: None
    keys = [b"key-%d" % i for i in range(spec.key_space)]
    if spec.keys == "uniform":
        return lambda: keys[rng.randrange(len(keys))]
    weights = itertools.accumulate(1 / (rank + 1) ** ZIPF_EXPONENT for rank in range(len(keys)))
    cumulative = list(weights)
    total = cumulative[-1]
    return lambda: keys[min(bisect.bisect(cumulative, rng.random() * total), len(keys) - 1)]


class ProducerWorker(threading.Thread):
    """One producer client sending ``spec``'s load from ``t0`` until ``end_s`` or ``limit``."""

    def __init__(self, number: int, spec: ProducerSpec, target: Target, t0: float,
                 end_s: float | None, limit: int | None) -> None:
        super().__init__(name=f"producer-{number}", daemon=True)
        self.number = number
        self.spec = spec
        self.target = target
        self.t0 = t0
        self.end_s = end_s if end_s is not None else float("inf")
        self.limit = limit if limit is not None else float("inf")
        self.acks: deque[tuple[str, int, int, int]] = deque()
        self.errors: Counter[str] = Counter()
        self.sent = 0
        self.finished_at: float | None = None
        self.halt = threading.Event()
        self._phase_starts = [phase.at_s for phase in spec.phases]

    # AckSink
    def acked(self, topic: str, partition: int, offset: int, ident: int) -> None:
        self.acks.append((topic, partition, offset, ident))

    def failed(self, error: str) -> None:
        self.errors[error] += 1

    def rate_at(self, elapsed: float) -> float | None:
        """The target rate ``elapsed`` seconds after t0 (None: as fast as possible)."""
        return self.spec.phases[bisect.bisect(self._phase_starts, elapsed) - 1].rate

    def run(self) -> None:
        try:
            client = self.target.producer(self.spec.linger_ms, self)
        except Exception as exc:  # noqa: BLE001 - reported, never raised in a thread
            self.failed(f"{type(exc).__name__}: {exc}")
            self.finished_at = time.monotonic()
            return
        try:
            self._produce(client)
        except Exception as exc:  # noqa: BLE001 - reported, never raised in a thread
            self.failed(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()
            self.finished_at = time.monotonic()

    def _produce(self, client: ProducerClient) -> None:
        spec = self.spec
        choose_key = key_chooser(spec, random.Random(self.number))
        padding = b"w" * (spec.record_bytes - HEADER_BYTES)
        pack, clock = HEADER.pack, time.monotonic_ns
        ident = self.number << IDENT_SHIFT
        due = 0.0
        last = self.t0
        while not self.halt.is_set():
            now = time.monotonic()
            if now - self.t0 >= self.end_s or self.sent >= self.limit:
                break
            rate = self.rate_at(now - self.t0)
            if rate is None:
                count = CHUNK
            else:
                due += rate * (now - last)
                count = min(int(due) - self.sent, CHUNK)
            last = now
            count = int(min(count, self.limit - self.sent))
            if count <= 0:  # ahead of the rate: wait for the next record's time
                client.service()
                self.halt.wait(min((1 - due % 1) / rate, 0.005))
                continue
            for _ in range(count):
                client.send(spec.topic, pack(ident, clock()) + padding, choose_key(), ident)
                ident += 1
            self.sent += count
            client.service()
        client.flush(FLUSH_TIMEOUT_S)


class Member(threading.Thread):
    """One member of a consumer group, polling until told to leave."""

    def __init__(self, group: GroupSpec, number: int, target: Target,
                 changed: threading.Condition) -> None:
        super().__init__(name=f"{group.name}-member-{number}", daemon=True)
        self.group = group
        self.target = target
        self.reads: deque[tuple[TP, int, int, int]] = deque()
        self.latencies_ms = array("d")
        self.order_violations = 0
        self.skipped_present = 0  # records jumped over while the store still had them
        self.skipped_deleted = 0  # records jumped over because retention had deleted them
        self.errors: Counter[str] = Counter()
        self.assignment: set[TP] | None = None  # None until the first assignment
        # (monotonic time, "assigned" | "revoked" | "left", partitions)
        self.events: list[tuple[float, str, int]] = []
        self.started_at = time.monotonic()
        self.leave = threading.Event()
        self._changed = changed
        self._last: dict[TP, int] = {}

    # RebalanceHooks (called in this thread, inside poll)
    def revoked(self, partitions: set[TP]) -> None:
        self.events.append((time.monotonic(), "revoked", len(partitions)))
        for tp in partitions:
            self._last.pop(tp, None)
        with self._changed:
            self.assignment = set()

    def assigned(self, partitions: set[TP]) -> None:
        self.events.append((time.monotonic(), "assigned", len(partitions)))
        for tp in partitions:
            self._last.pop(tp, None)
        with self._changed:
            self.assignment = set(partitions)
            self._changed.notify_all()

    def run(self) -> None:
        try:
            client = self.target.consumer(self.group, self)
        except Exception as exc:  # noqa: BLE001 - reported, never raised in a thread
            self.errors[f"{type(exc).__name__}: {exc}"] += 1
            return
        try:
            self._consume(client)
        finally:
            self.errors.update(client.errors)
            self.events.append((time.monotonic(), "left", 0))
            client.close()
            with self._changed:
                self.assignment = set()
                self._changed.notify_all()

    def _consume(self, client: ConsumerClient) -> None:
        delay_s = self.group.processing_ms / 1000
        unpack, clock = HEADER.unpack_from, time.monotonic_ns
        reads, latencies, last = self.reads, self.latencies_ms, self._last
        failing = 0
        while not self.leave.is_set():
            count = 0
            try:
                records = client.poll(POLL_TIMEOUT_S)
                failing = 0
            except Exception as exc:  # noqa: BLE001 - counted; an application would retry
                self.errors[f"{type(exc).__name__}: {exc}"] += 1
                failing += 1
                if failing >= GIVE_UP_AFTER:
                    return
                self.leave.wait(ERROR_BACKOFF_S)
                continue
            now = clock()
            for topic, partition, offset, value in records:
                ident, sent = unpack(value)
                latencies.append((now - sent) / 1e6)
                tp = (topic, partition)
                previous = last.get(tp)
                if previous is not None and offset != previous + 1:
                    self._jumped(client, tp, previous, offset)
                last[tp] = offset
                reads.append((tp, offset, ident, len(value)))
                count += 1
            if count and delay_s:
                self.leave.wait(count * delay_s)

    def _jumped(self, client: ConsumerClient, tp: TP, previous: int, offset: int) -> None:
        if offset <= previous:
            self.order_violations += 1
        elif offset <= client.log_start(*tp):
            self.skipped_deleted += offset - previous - 1
        else:
            self.skipped_present += offset - previous - 1
