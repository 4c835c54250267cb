"""The embedded consumer: positions, long polls, commits, and consumer groups.

A real store on a real data directory; group members are real consumers, each polled
from its own thread. Session timeouts and rebalance delays are small so that groups
move fast. Tests wait on conditions (each member notifies after every poll), never on
fixed sleeps.
"""

from __future__ import annotations

import gc
import pickle
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import poll_until, wait_until

from actors.consumer.client import Consumer, ConsumerRebalanceListener
from actors.consumer.config import ConsumerConfig
from actors.runtime import stop_actor
from eventstore.client import EventStore
from eventstore.errors import (
    IllegalGeneration,
    IllegalState,
    InvalidConfig,
    KafkaStorageError,
    NoOffsetForPartition,
    RebalanceInProgress,
    UnknownMemberId,
)
from eventstore.topic_partition import TopicPartition

TIMEOUT = 20.0
GROUP_CONFIG = {"group.initial.rebalance.delay.ms": 100, "group.min.session.timeout.ms": 100}
FAST_MEMBER = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 100,
               "auto_offset_reset": "earliest", "enable_auto_commit": False}


@pytest.fixture
def store(data_dir: str) -> Iterator[EventStore]:
    with EventStore.open(data_dir, config=GROUP_CONFIG) as store:
        yield store


def produce(store: EventStore, topic: str, count: int, start: int = 0) -> None:
    producer = store.producer(linger_ms=2)
    for i in range(start, start + count):
        producer.send(topic, b"%d" % i, key=b"k%d" % i)
    producer.close(TIMEOUT)


def end_offsets(store: EventStore, topic: str) -> dict[TopicPartition, int]:
    return {TopicPartition(topic, p.partition): p.log_end_offset
            for p in store.describe_topic(topic).partitions}


class Member:
    """A consumer polled by its own thread; commits after each poll unless told not to.

    ``at_risk`` holds what it read but never got committed (a refused commit, or its
    death): only those records may be read again by the group.
    """

    def __init__(self, consumer: Consumer, progress: threading.Condition, *,
                 commit: bool = True) -> None:
        self.consumer = consumer
        self.progress = progress
        self.commit = commit
        self.records: list = []
        self.at_risk: set[tuple[TopicPartition, int]] = set()
        self._pending: list[tuple[TopicPartition, int]] = []
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"member-{consumer.client_id}")
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = self.consumer.poll(timeout_ms=50)
                read = [(TopicPartition(r.topic, r.partition), r.offset) for r in batch]
                self._pending += read
                if self.commit and batch:
                    try:
                        self.consumer.commit()
                        self._pending.clear()
                    except (RebalanceInProgress, IllegalGeneration, UnknownMemberId):
                        self.at_risk.update(self._pending)
                        self._pending.clear()
                with self.progress:
                    self.records += batch
                    self.progress.notify_all()
        except BaseException as exc:  # surfaced by the test through .error
            self.error = exc
            with self.progress:
                self.progress.notify_all()

    def halt(self) -> None:
        """Stop polling (what was read and not committed is at risk)."""
        self._stop.set()
        self.thread.join(TIMEOUT)
        self.at_risk.update(self._pending)


def wait(progress: threading.Condition, members: list[Member],
         predicate: Callable[[], bool], what: str) -> None:
    """Until ``predicate()`` holds, asked each time a member has polled; the first error a
    member met is raised as soon as there is one."""
    wait_until(lambda: predicate() or any(m.error for m in members), TIMEOUT, what,
               woken_by=progress)
    for member in members:
        if member.error is not None:
            raise member.error


def read_once_each(members: list[Member], ends: dict[TopicPartition, int]) -> bool:
    seen = {(TopicPartition(r.topic, r.partition), r.offset) for m in members for r in m.records}
    return all((tp, o) in seen for tp, end in ends.items() for o in range(end))


def check_group_read(members: list[Member], ends: dict[TopicPartition, int]) -> None:
    """Every record read, in order within each member's run of a partition, and read twice
    only if it was never committed by whoever read it first."""
    first_reader: dict[tuple[TopicPartition, int], Member] = {}
    counts: Counter = Counter()
    for member in members:
        last: dict[TopicPartition, int] = {}
        for r in member.records:
            tp = TopicPartition(r.topic, r.partition)
            key = (tp, r.offset)
            counts[key] += 1
            first_reader.setdefault(key, member)
            if r.offset <= last.get(tp, -1):
                assert key in member.at_risk or counts[key] > 1 or r.offset < last[tp]
            last[tp] = r.offset
    for tp, end in ends.items():
        for offset in range(end):
            assert counts[(tp, offset)] >= 1, f"{tp} offset {offset} was skipped"
    for key, count in counts.items():
        if count > 1:
            assert any(key in m.at_risk for m in members), f"{key} read {count} times"


# -- one consumer ---------------------------------------------------------------------------


def test_assign_seek_position_and_manual_commits(store):
    store.create_topic("t", 2)
    produce(store, "t", 20)
    ends = end_offsets(store, "t")
    consumer = store.consumer(group_id="manual", auto_offset_reset="earliest",
                              enable_auto_commit=False)
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    consumer.assign([tp0, tp1])
    assert consumer.assignment() == {tp0, tp1}
    assert consumer.committed(tp0) is None
    assert consumer.position(tp0) == 0
    records = consumer.poll(timeout_ms=1000, max_records=100)
    assert len(records) == 20 and records.partitions() == {tp0, tp1}
    last = records[-1]
    assert last.offset == ends[TopicPartition(last.topic, last.partition)] - 1
    assert records[0] == next(iter(records)) != records[1]
    assert pickle.loads(pickle.dumps(last)) == last
    assert [r.partition for r in records.records(tp1)] == [1] * ends[tp1]
    for tp in (tp0, tp1):
        offsets = [r.offset for r in records if r.partition == tp.partition]
        assert offsets == list(range(ends[tp]))
        assert consumer.position(tp) == ends[tp]
    consumer.commit({tp0: 3})
    assert consumer.committed(tp0) == 3
    consumer.seek(tp0, 1)
    assert [r.offset for r in consumer.poll(timeout_ms=1000) if r.partition == 0][0] == 1
    consumer.seek_to_beginning(tp1)
    assert consumer.position(tp1) == 0
    consumer.seek_to_end()
    assert not consumer.poll(timeout_ms=0)
    consumer.commit()
    assert consumer.committed(tp1) == ends[tp1]
    consumer.close()
    with pytest.raises(IllegalState):
        consumer.poll()


def test_auto_offset_reset_policies(store):
    store.create_topic("t", 1)
    produce(store, "t", 5)
    tp = TopicPartition("t", 0)
    latest = store.consumer(group_id="a")
    latest.assign([tp])
    assert latest.position(tp) == 5 and len(latest.poll(timeout_ms=0)) == 0
    strict = store.consumer(group_id="b", auto_offset_reset="none")
    strict.assign([tp])
    with pytest.raises(NoOffsetForPartition):
        strict.poll(timeout_ms=0)
    earliest = store.consumer(group_id="c", auto_offset_reset="earliest")
    earliest.assign([tp])
    assert [r.value for r in earliest.poll(timeout_ms=1000)] == [b"%d" % i for i in range(5)]
    earliest.commit()
    again = store.consumer(group_id="c", auto_offset_reset="none")  # committed: no reset
    again.assign([tp])
    assert again.position(tp) == 5
    with pytest.raises(InvalidConfig):
        store.consumer(auto_offset_reset="sometimes")


def test_a_long_poll_wakes_as_soon_as_a_record_is_appended(store):
    store.create_topic("t", 3)
    consumer = store.consumer("t", auto_offset_reset="earliest")  # no group: all partitions
    assert len(consumer.assignment()) == 3
    got = []
    poller = threading.Thread(target=lambda: got.extend(consumer.poll(timeout_ms=15_000)))
    poller.start()
    started = time.monotonic()
    store.producer().send("t", b"wake up", partition=2).get(TIMEOUT)
    poller.join(TIMEOUT)
    assert time.monotonic() - started < 5
    assert [(r.partition, r.value) for r in got] == [(2, b"wake up")]
    with pytest.raises(IllegalState, match="group_id"):
        consumer.commit()


def test_headers_timestamps_and_deserializers(store):
    producer = store.producer()
    producer.send("h", b"v", key=b"k", headers=[("a", b"1"), ("b", None)], timestamp_ms=42)
    producer.send("h", b"plain", timestamp_ms=43)
    producer.flush(TIMEOUT)
    consumer = store.consumer("h", auto_offset_reset="earliest",
                              value_deserializer=bytes.decode, key_deserializer=bytes.decode)
    first, second = consumer.poll(timeout_ms=1000)
    assert (first.key, first.value, first.timestamp) == ("k", "v", 42)
    assert first.headers == (("a", b"1"), ("b", None))
    assert (second.key, second.headers, second.offset) == (None, (), 1)
    assert "headers=()" in repr(second)


def test_commit_async_reports_in_a_later_poll_and_auto_commit_commits_on_close(store):
    produce(store, "t", 10)
    consumer = store.consumer("t", group_id="g", auto_offset_reset="earliest",
                              enable_auto_commit=False, **GROUP_TIMEOUTS)
    assert len(consumer.poll(timeout_ms=5000, max_records=4)) == 4
    reported = []
    done = consumer.commit_async(callback=lambda offsets, error: reported.append((offsets,
                                                                                  error)))
    done.result(TIMEOUT)
    assert reported == []  # callbacks run in the polling thread, on the next poll
    consumer.poll(timeout_ms=0)
    ((offsets, error),) = reported
    assert error is None and offsets[TopicPartition("t", 0)].offset == 4
    consumer.close()
    auto = store.consumer("t", group_id="g", auto_offset_reset="none", **GROUP_TIMEOUTS)
    read = poll_until(lambda: auto.poll(timeout_ms=200), 6, TIMEOUT, "the uncommitted records")
    assert [r.offset for r in read] == list(range(4, 10))
    auto.close()  # auto-commit is on: closing commits
    assert store.describe_group("g").partitions[0].committed_offset == 10


GROUP_TIMEOUTS = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 100}


# -- groups ---------------------------------------------------------------------------------


def start_members(store: EventStore, count: int, progress: threading.Condition,
                  topic: str = "t", group: str = "g", **config) -> list[Member]:
    return [Member(store.consumer(topic, group_id=group, **{**FAST_MEMBER, **config}),
                   progress) for _ in range(count)]


def assigned(members: list[Member]) -> list[set[TopicPartition]]:
    return [m.consumer.assignment() for m in members]


def stable_over(store: EventStore, members: list[Member], partitions: int) -> bool:
    described = store.describe_group("g")
    parts = assigned(members)
    union = set().union(*parts)
    return (described.state == "Stable" and len(described.members) == len(members)
            and sum(len(p) for p in parts) == partitions and len(union) == partitions)


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "sticky"])
def test_three_members_over_six_partitions_get_a_valid_assignment(store, strategy):
    store.create_topic("t", 6)
    progress = threading.Condition()
    members = start_members(store, 3, progress, partition_assignment_strategy=strategy)
    try:
        wait(progress, members, lambda: stable_over(store, members, 6), "a stable group")
        parts = assigned(members)
        assert [len(p) for p in parts] == [2, 2, 2]
        assert set().union(*parts) == {TopicPartition("t", p) for p in range(6)}
        described = store.describe_group("g")
        assert described.protocol == strategy
        owners = {(p.topic, p.partition): p.member_id for p in described.partitions}
        assert len(set(owners.values())) == 3
    finally:
        for member in members:
            member.halt()
            member.consumer.close()


@pytest.mark.parametrize("departure", ["leaves", "goes silent"])
def test_a_departing_member_hands_its_partitions_over_from_the_committed_offsets(
        store, departure):
    store.create_topic("t", 6)
    produce(store, "t", 300)
    progress = threading.Condition()
    members = start_members(store, 3, progress)
    survivors, leaver = members[:2], members[2]
    try:
        wait(progress, members, lambda: stable_over(store, members, 6)
             and all(m.records for m in members), "a stable group, every member reading")
        leaver_partitions = leaver.consumer.assignment()
        if departure == "leaves":
            leaver.halt()
            leaver.consumer.close()  # commits nothing more (auto-commit off), leaves the group
        else:
            leaver.commit = False  # reads more that it never commits, then dies
            seen = len(leaver.records)
            produce(store, "t", 60, start=600)
            wait(progress, members, lambda: len(leaver.records) > seen,
                 "the leaver to read more")
            leaver.halt()
            stop_actor(leaver.consumer._actor)  # a crash: heartbeats stop, no LeaveGroup
        produce(store, "t", 300, start=300)
        ends = end_offsets(store, "t")
        wait(progress, members, lambda: stable_over(store, survivors, 6)
             and read_once_each(members, ends), "the survivors to read everything")
        taken = set().union(*assigned(survivors))
        assert leaver_partitions <= taken
        check_group_read(members, ends)
        if departure == "goes silent":
            assert leaver.at_risk, "the silent member should have died holding uncommitted reads"
    finally:
        for member in members:
            member.halt()
        for member in survivors:
            member.consumer.close()
        if departure == "goes silent":
            leaver.consumer.close()


def test_the_rebalance_listener_can_commit_before_partitions_are_revoked(store):
    store.create_topic("t", 2)
    produce(store, "t", 50)
    calls: list[tuple[str, set]] = []

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            calls.append(("revoked", revoked))
            first.commit()

        def on_partitions_assigned(self, assigned):
            calls.append(("assigned", assigned))

    first = store.consumer(group_id="g", **FAST_MEMBER)
    first.subscribe(["t"], listener=Listener())
    read = poll_until(lambda: first.poll(timeout_ms=200), 50, TIMEOUT, "the 50 records")
    assert len(read) == 50
    assert calls == [("assigned", {TopicPartition("t", 0), TopicPartition("t", 1)})]
    progress = threading.Condition()
    second = Member(store.consumer("t", group_id="g", **FAST_MEMBER), progress)
    try:
        def gave_one_up() -> bool:
            first.poll(timeout_ms=100)
            return len(first.assignment()) == 1

        wait_until(gave_one_up, TIMEOUT, "the first member to hand a partition over")
        assert calls[1][0] == "revoked" and calls[2][0] == "assigned"
        # the commit made inside on_partitions_revoked means the newcomer reads nothing old
        wait(progress, [second], lambda: second.consumer.assignment(), "the newcomer's share")
        assert second.records == []
        for p in store.describe_group("g").partitions:
            assert p.lag == 0
    finally:
        second.halt()
        second.consumer.close()
        first.close()


def test_a_partition_failing_mid_poll_loses_no_record_of_the_others(store, data_dir):
    """A poll that reads one partition and then meets a storage error on the next must
    still hand out what it read: its position has moved past those records."""
    store.create_topic("split", partitions=2, config={"segment.bytes": 2000})
    producer = store.producer(linger_ms=0)
    for i in range(60):  # one batch each, so partition 1 rolls into several segments
        producer.send("split", b"v%03d" % i + b"." * 100, partition=i % 2).get(TIMEOUT)
    producer.close(TIMEOUT)
    damaged = min((Path(data_dir) / "split-1").glob("*.db"))
    with open(damaged, "r+b") as fh:  # keep the header: the file opens, its pages don't read
        fh.seek(4096)
        fh.write(b"\xff" * (damaged.stat().st_size - 4096))
    consumer = store.consumer(enable_auto_commit=False, auto_offset_reset="earliest")
    consumer.assign([TopicPartition("split", 0), TopicPartition("split", 1)])
    read: list[int] = []
    errors = 0
    for _ in range(4):
        try:
            read += [r.offset for r in consumer.poll(timeout_ms=100, max_records=1000)
                     if r.partition == 0]
        except KafkaStorageError:
            errors += 1
    consumer.close()
    assert errors >= 1
    assert read == list(range(30))


# -- a group member's poll costs what a group-less one does ---------------------------------


def read_everything(consumer: Consumer, count: int) -> list[tuple]:
    """(partition, offset, key, value) of the first ``count`` records ``consumer`` polls."""
    records = poll_until(lambda: consumer.poll(timeout_ms=100), count, TIMEOUT,
                         f"{count} records")
    return [(r.partition, r.offset, r.key, r.value) for r in records]


def test_a_group_member_reads_the_same_records_as_a_consumer_without_a_group(store):
    store.create_topic("t", 3)
    produce(store, "t", 900)
    alone = store.consumer("t", auto_offset_reset="earliest")
    member = store.consumer("t", group_id="g", auto_offset_reset="earliest")
    try:
        by_alone, by_member = read_everything(alone, 900), read_everything(member, 900)
    finally:
        alone.close()
        member.close()
    assert len(by_member) == 900 and sorted(by_member) == sorted(by_alone)
    for partition in range(3):  # each in offset order, as it was appended
        assert ([r[1:] for r in by_member if r[0] == partition]
                == [r[1:] for r in by_alone if r[0] == partition])
    described = store.describe_group("g")  # it left on close, having auto-committed
    assert described.state == "Empty"
    assert {p.partition: p.lag for p in described.partitions} == {0: 0, 1: 0, 2: 0}


def calls_made(poll: Callable[[], Iterator]) -> tuple[Counter, int]:
    """The functions that ``poll()`` and iterating what it returned called, by name
    (Python ones, and the C ones Python code called), and how many records came. The
    garbage collector is kept out: what it frees (of earlier tests too) runs callbacks
    that have nothing to do with the poll."""
    calls: Counter = Counter()

    def profile(frame, event: str, arg: object) -> None:
        if event == "call":
            calls[frame.f_code.co_qualname] += 1
        elif event == "c_call":
            calls[getattr(arg, "__qualname__", repr(arg))] += 1

    gc.collect()
    gc.disable()
    sys.setprofile(profile)
    try:
        count = len(list(poll()))  # iterated in C: no call of its own per record
    finally:
        sys.setprofile(None)
        gc.enable()
    return calls, count


def test_a_group_members_poll_does_no_per_record_work_that_a_group_less_one_does_not(store):
    """Calls, not time: a poll of 1,000 records makes the same calls as a poll of 10, with
    a group or without, and a member makes at most a few more, whatever it reads.

    The auto-commit interval is long so that no commit falls inside the polls counted.
    """
    store.create_topic("t", 1)
    produce(store, "t", 2100)
    alone = store.consumer("t", auto_offset_reset="earliest")
    member = store.consumer("t", group_id="g", auto_offset_reset="earliest",
                            auto_commit_interval_ms=3_600_000)
    try:
        calls = {}
        for name, consumer in (("alone", alone), ("member", member)):
            # joined, positioned and reading before anything is counted
            poll_until(lambda c=consumer: c.poll(timeout_ms=100, max_records=1), 1, TIMEOUT,
                       "a first record")
            for count in (10, 1000):
                made, read = calls_made(
                    lambda c=consumer, n=count: c.poll(timeout_ms=1000, max_records=n))
                assert read == count
                calls[name, count] = made
    finally:
        alone.close()
        member.close()
    for name in ("alone", "member"):
        assert calls[name, 1000] == calls[name, 10], f"{name}: work that grows with records"
    extra = calls["member", 1000] - calls["alone", 1000]
    assert sum(extra.values()) <= 5, f"what only a member does in a poll: {extra}"


def test_a_members_auto_commit_and_listener_cost_per_poll_not_per_record(store):
    """With an auto-commit due at every poll and a rebalance listener set, a poll of 1,000
    records still makes the calls of a poll of 10 (the commit is one per poll, of the
    positions), and what it committed is where the member stands."""
    store.create_topic("t", 1)
    produce(store, "t", 1100)
    assigned: list[set] = []

    class Listener(ConsumerRebalanceListener):
        def on_partitions_assigned(self, partitions):
            assigned.append(partitions)

    member = store.consumer(group_id="g", auto_offset_reset="earliest",
                            auto_commit_interval_ms=0)
    member.subscribe(["t"], listener=Listener())
    tp = TopicPartition("t", 0)
    try:
        poll_until(lambda: member.poll(timeout_ms=100, max_records=1), 1, TIMEOUT,
                   "a first record")
        calls, position = {}, 1
        for count in (10, 1000):
            made, read = calls_made(lambda n=count: member.poll(timeout_ms=1000, max_records=n))
            assert read == count
            calls[count] = made
            # each poll commits, before reading, the position the one before it left
            assert member.committed(tp) == position
            position += count
            assert member.position(tp) == position
    finally:
        member.close()
    assert assigned == [{tp}]
    assert calls[1000] == calls[10], "auto-commit or the listener did work per record"
    assert calls[10]["Consumer._commit_quietly"] == 1, "an auto-commit in every counted poll"


def test_durations_kafka_takes_at_zero_are_taken_and_counts_are_not():
    config = ConsumerConfig.from_kwargs(auto_commit_interval_ms=0, retry_backoff_ms=0,
                                        metadata_max_age_ms=0)
    assert (config.auto_commit_interval_ms, config.retry_backoff_ms,
            config.metadata_max_age_ms) == (0, 0, 0)
    for name in ("max_poll_records", "session_timeout_ms", "max_poll_interval_ms"):
        with pytest.raises(InvalidConfig, match=f"{name}: must be an integer of at least 1"):
            ConsumerConfig.from_kwargs(**{name: 0})
    with pytest.raises(InvalidConfig, match="at least 0"):
        ConsumerConfig.from_kwargs(auto_commit_interval_ms=-1)
