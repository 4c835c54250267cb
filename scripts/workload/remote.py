"""Workers in processes of their own, for runs over the Kafka protocol.

Every client of a run in the runner's process shares one GIL: at a few thousand records a
second the runner's Python, not the server, set the pace, and the report could not say so.
Over the wire each producer and each group member therefore runs in its own process (the
same :class:`~scripts.workload.workers.ProducerWorker` or
:class:`~scripts.workload.workers.Member`, on its own client), and a stand-in here offers
the runner what the thread would: the queues it drains, the counters, the assignment, the
flag that stops it. The child sends what it queued every FORWARD_S and a last report with
its CPU time when it ends; the parent's reader thread applies them.

``time.monotonic`` is the same clock in every process of a machine (Linux's
CLOCK_MONOTONIC), so send times in record values and event times compare across them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from array import array
from collections import Counter, deque
from multiprocessing.connection import Connection
from typing import Any

from .clients import TP, WireTarget
from .scenario import GroupSpec, ProducerSpec
from .workers import Member, ProducerWorker

FORWARD_S = 0.05  # how often a child sends what its worker queued
_SPAWN = multiprocessing.get_context("spawn")  # librdkafka's threads do not survive fork


def _drained(queue: deque) -> list:
    taken = []
    with contextlib.suppress(IndexError):
        while True:
            taken.append(queue.popleft())
    return taken


def _obey(commands: Connection, flag: threading.Event) -> None:
    """Set ``flag`` when the parent says so (or goes away)."""
    with contextlib.suppress(EOFError, OSError):
        commands.recv()
    flag.set()


def _producer_main(reports: Connection, commands: Connection, number: int,
                   spec: ProducerSpec, bootstrap: str, t0: float, end_s: float | None,
                   limit: int | None) -> None:
    worker = ProducerWorker(number, spec, WireTarget(bootstrap), t0, end_s, limit)
    threading.Thread(target=_obey, args=(commands, worker.halt), daemon=True).start()
    worker.start()
    while True:
        ended = not worker.is_alive()  # looked at first: what is drained after it is all
        reports.send(("progress", _drained(worker.acks), worker.sent, dict(worker.errors),
                      time.process_time()))
        if ended:
            break
        worker.join(FORWARD_S)
    reports.send(("ended", worker.finished_at, time.process_time()))


def _member_main(reports: Connection, commands: Connection, group: GroupSpec, number: int,
                 bootstrap: str) -> None:
    member = Member(group, number, WireTarget(bootstrap), threading.Condition())
    threading.Thread(target=_obey, args=(commands, member.leave), daemon=True).start()
    member.start()
    latencies_sent = events_sent = 0
    while True:
        ended = not member.is_alive()
        latencies = member.latencies_ms[latencies_sent:]
        latencies_sent += len(latencies)
        events = member.events[events_sent:]
        events_sent += len(events)
        assignment = member.assignment
        reports.send(("progress", _drained(member.reads), latencies.tobytes(), events,
                      None if assignment is None else sorted(assignment),
                      (member.order_violations, member.skipped_present,
                       member.skipped_deleted), dict(member.errors), time.process_time()))
        if ended:
            break
        member.join(FORWARD_S)
    reports.send(("ended", time.process_time()))


class _Remote:
    """A child process running one worker, and the thread here applying its reports."""

    def __init__(self, name: str, entry: Any, args: tuple) -> None:
        self.name = name
        self.cpu_s: float | None = None  # the child's CPU seconds, as it last reported
        reports_in, reports_out = _SPAWN.Pipe(duplex=False)
        commands_in, self._commands = _SPAWN.Pipe(duplex=False)
        self._reports = reports_in
        self._process = _SPAWN.Process(target=entry, name=name, daemon=True,
                                       args=(reports_out, commands_in, *args))
        self._ended = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"{name}-reports", daemon=True)

    def start(self) -> None:
        self._process.start()
        self._reader.start()

    def is_alive(self) -> bool:
        return not self._ended.is_set()

    def join(self, timeout: float | None = None) -> None:
        self._ended.wait(timeout)

    def _tell(self) -> None:
        with contextlib.suppress(OSError):
            self._commands.send("stop")

    def _read(self) -> None:
        try:
            while True:
                message = self._reports.recv()
                self._apply(message)
                if message[0] == "ended":
                    break
        except (EOFError, OSError):  # the child died without its last report
            self._lost()
        finally:
            self._process.join(30)
            self._ended.set()

    def _apply(self, message: tuple) -> None:
        raise NotImplementedError

    def _lost(self) -> None:
        raise NotImplementedError


class _Flag:
    """The stand-in's ``halt`` or ``leave``: setting it tells the child."""

    def __init__(self, tell: Any) -> None:
        self._event = threading.Event()
        self._tell = tell

    def set(self) -> None:
        if not self._event.is_set():
            self._event.set()
            self._tell()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


class RemoteProducer(_Remote):
    """A ProducerWorker in its own process, as the runner sees one."""

    def __init__(self, number: int, spec: ProducerSpec, bootstrap: str, t0: float,
                 end_s: float | None, limit: int | None) -> None:
        super().__init__(f"producer-{number}", _producer_main,
                         (number, spec, bootstrap, t0, end_s, limit))
        self.number = number
        self.spec = spec
        self.acks: deque[tuple[str, int, int, int]] = deque()
        self.errors: Counter[str] = Counter()
        self.sent = 0
        self.finished_at: float | None = None
        self.halt = _Flag(self._tell)

    def _apply(self, message: tuple) -> None:
        if message[0] == "progress":
            _, acks, self.sent, errors, self.cpu_s = message
            self.acks.extend(acks)
            self.errors = Counter(errors)
        else:
            _, self.finished_at, self.cpu_s = message

    def _lost(self) -> None:
        self.errors["producer process died"] += 1
        self.finished_at = time.monotonic()


class RemoteMember(_Remote):
    """A group Member in its own process, as the runner sees one."""

    def __init__(self, group: GroupSpec, number: int, bootstrap: str,
                 changed: threading.Condition) -> None:
        super().__init__(f"{group.name}-member-{number}", _member_main,
                         (group, number, bootstrap))
        self.group = group
        self.reads: deque[tuple[TP, int, int, int]] = deque()
        self.latencies_ms = array("d")
        self.order_violations = self.skipped_present = self.skipped_deleted = 0
        self.errors: Counter[str] = Counter()
        self.assignment: set[TP] | None = None
        self.events: list[tuple[float, str, int]] = []
        self.started_at = time.monotonic()
        self.leave = _Flag(self._tell)
        self._changed = changed

    def _apply(self, message: tuple) -> None:
        if message[0] == "ended":
            self.cpu_s = message[1]
            self._assign(set())
            return
        _, reads, latencies, events, assignment, counters, errors, self.cpu_s = message
        self.reads.extend(reads)
        self.latencies_ms.frombytes(latencies)
        self.events += events
        self.order_violations, self.skipped_present, self.skipped_deleted = counters
        self.errors = Counter(errors)
        self._assign(None if assignment is None else {tuple(tp) for tp in assignment})

    def _assign(self, assignment: set[TP] | None) -> None:
        if assignment != self.assignment:
            with self._changed:
                self.assignment = assignment
                self._changed.notify_all()

    def _lost(self) -> None:
        self.errors["member process died"] += 1
        self._assign(set())
