"""Partition actors and the state they publish, driven through a real broker.

Real actors on a real data directory. Waits have timeouts and are on the partition state
(``wait_for``, listeners setting events, support.wait_until), never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Iterator

import pytest
from support import wait_until

from actors.broker import Broker
from actors.partition import APPEND_TURN, Append, PartitionHandle, PartitionState
from actors.replies import LoopReply
from actors.runtime import Scheduler, stop_actor
from eventstore.config import ServerConfig
from eventstore.errors import InvalidRecord, KafkaStorageError, RecordTooLarge
from eventstore.storage.log import PartitionLog
from eventstore.storage.log_reader import LogReader
from eventstore.storage.segment import WAL_CHECKPOINT_PAGES

TIMEOUT = 10.0


@pytest.fixture
def broker(data_dir: str) -> Iterator:
    scheduler = Scheduler()
    ref = Broker.start(data_dir, ServerConfig.from_mapping(
        {"log.retention.check.interval.ms": 50}), scheduler)
    yield ref.proxy()
    stop_actor(ref)
    scheduler.close()


def rows(*values: bytes) -> list[tuple]:
    return [(None, None, value, None) for value in values]


def partition(broker, topic: str = "t", index: int = 0) -> PartitionHandle:
    return broker.partition(topic, index).get(timeout=TIMEOUT)


def read_all(state: PartitionState) -> list[bytes]:
    reader = LogReader()
    try:
        view = state.view
        return [row[3] for row in reader.read(view, view.log_start_offset, 1_000_000)]
    finally:
        reader.close()


def test_an_append_is_visible_to_readers_once_acknowledged(broker):
    broker.create_topic("t", 1).get()
    handle = partition(broker)
    assert handle.state.view.high_watermark == 0
    result = handle.append(rows(b"a", b"b")).result(TIMEOUT)
    assert (result.base_offset, result.last_offset) == (0, 1)
    assert handle.state.high_watermark == 2
    assert read_all(handle.state) == [b"a", b"b"]
    # the proxy method answers the same way, through a pykka future
    assert handle.actor.append(rows(b"c")).get(timeout=TIMEOUT).base_offset == 2
    stats = handle.state.stats
    assert (stats.appends, stats.records_appended) == (2, 3)
    assert stats.append_latency.count == 2


def test_an_append_awaited_on_a_loop_is_answered_there_and_a_cancelled_one_is_not_written(
        broker):
    """An append sent with a LoopReply: the actor completes an asyncio future of the
    caller's loop (no concurrent Future); typed errors arrive the same way; an append whose
    waiter was cancelled before the actor took it is skipped, as a cancelled Future's is."""
    broker.create_topic("t", 1).get()
    handle = partition(broker)

    def append_on_loop(values: list[tuple], sent_bytes: int | None = None) -> asyncio.Future:
        reply: LoopReply = LoopReply()
        handle.send(Append(values, None, reply, sent_bytes))
        return reply.future

    async def main() -> tuple[int, str, int, int]:
        first = await append_on_loop(rows(b"a", b"b"))
        with pytest.raises(RecordTooLarge) as refused:
            await append_on_loop(rows(b"x"), sent_bytes=1 << 30)
        with APPEND_TURN:  # the actor takes the next append and waits for the turn
            taken = append_on_loop(rows(b"c"))
            cancelled = append_on_loop(rows(b"never"))
            cancelled.cancel()
        last = await taken
        after = await append_on_loop(rows(b"d"))
        return first.base_offset, type(refused.value).__name__, last.base_offset, after.base_offset

    assert asyncio.run(main()) == (0, "RecordTooLarge", 2, 3)
    assert read_all(handle.state) == [b"a", b"b", b"c", b"d"]


def test_an_appends_written_callback_runs_before_readers_see_it_and_may_fail_harmlessly(
        broker):
    broker.create_topic("t", 1).get()
    handle = partition(broker)
    seen: list[tuple[int, int]] = []

    def written(result) -> None:
        seen.append((result.base_offset, handle.state.high_watermark))
        raise RuntimeError("a front end's bug")

    reply: concurrent.futures.Future = concurrent.futures.Future()
    handle.send(Append(rows(b"a", b"b"), None, reply, written=written))
    assert reply.result(TIMEOUT).base_offset == 0
    assert seen == [(0, 0)]  # called before the high watermark moved to 2
    assert handle.state.high_watermark == 2 and handle.state.error is None
    assert handle.append(rows(b"c")).result(TIMEOUT).base_offset == 2  # still online


def test_wait_for_blocks_a_reader_until_the_high_watermark_passes(broker):
    broker.create_topic("t", 1).get()
    handle = partition(broker)
    assert handle.state.wait_for(0, timeout=0.05) is False  # nothing there: times out
    woke = threading.Event()

    def reader() -> None:
        if handle.state.wait_for(0, timeout=TIMEOUT):
            woke.set()

    thread = threading.Thread(target=reader)
    thread.start()
    handle.append(rows(b"x")).result(TIMEOUT)
    thread.join(TIMEOUT)
    assert woke.is_set()
    assert handle.state.wait_for(0, timeout=0) is True


def test_listeners_run_after_each_append_and_can_be_removed(broker):
    broker.create_topic("t", 1).get()
    handle = partition(broker)
    seen: list[int] = []
    moved = threading.Event()

    def listener() -> None:
        seen.append(handle.state.high_watermark)
        moved.set()

    handle.state.add_listener(listener)
    handle.append(rows(b"x")).result(TIMEOUT)
    assert moved.wait(TIMEOUT)
    assert seen == [1]  # the listener runs after the new view is published
    handle.state.remove_listener(listener)
    handle.append(rows(b"y")).result(TIMEOUT)
    assert seen == [1]


def test_typed_errors_are_replied_and_the_actor_keeps_serving(broker):
    broker.create_topic("t", 1, {"max.message.bytes": 100}).get()
    handle = partition(broker)
    with pytest.raises(RecordTooLarge):
        handle.append(rows(b"x" * 200)).result(TIMEOUT)
    with pytest.raises(InvalidRecord):
        handle.append([]).result(TIMEOUT)
    assert handle.append(rows(b"ok")).result(TIMEOUT).base_offset == 0
    assert partition(broker).actor is handle.actor  # no restart for a typed error
    assert handle.state.stats.restarts == 0


def test_a_partition_actor_that_raises_is_restarted_and_loses_no_acknowledged_record(
        broker, monkeypatch):
    broker.create_topic("t", 1).get()
    handle = partition(broker)
    acknowledged = [handle.append(rows(b"%d" % i)).result(TIMEOUT) for i in range(5)]
    assert [r.base_offset for r in acknowledged] == [0, 1, 2, 3, 4]
    original = PartitionLog.append

    def broken(self, batch, producer=None, sent_bytes=None, **kwargs):
        raise RuntimeError("disk controller on fire")

    monkeypatch.setattr(PartitionLog, "append", broken)
    with pytest.raises(KafkaStorageError, match="disk controller on fire"):
        handle.append(rows(b"lost")).result(TIMEOUT)
    monkeypatch.setattr(PartitionLog, "append", original)
    wait_until(lambda: handle.state.error is None, TIMEOUT, "the partition to restart")
    fresh = partition(broker)
    # one handle for the partition's life (readers and listeners stay attached): appends
    # through it reach the new actor
    assert fresh is handle and fresh.actor is not None
    assert handle.state.stats.restarts == 1
    assert handle.append(rows(b"5")).result(TIMEOUT).base_offset == 5
    assert read_all(fresh.state) == [b"0", b"1", b"2", b"3", b"4", b"5"]


def test_an_idle_segment_rolls_on_segment_ms_with_no_traffic(broker):
    broker.create_topic("t", 1, {"segment.ms": 200}).get()
    handle = partition(broker)
    handle.append(rows(b"before the roll")).result(TIMEOUT)
    wait_until(lambda: len(handle.state.view.segments) > 1, TIMEOUT, "a roll on segment.ms")
    assert handle.state.stats.rolls["age"] == 1
    assert handle.state.view.segments[0].is_sealed
    assert read_all(handle.state) == [b"before the roll"]


def test_retention_runs_on_its_timer_and_a_config_change_applies_live(broker):
    broker.create_topic("t", 1, {"segment.bytes": 200}).get()
    handle = partition(broker)
    for i in range(10):
        handle.append(rows(b"%03d" % i + b"x" * 60)).result(TIMEOUT)
    assert len(handle.state.view.segments) > 3
    broker.alter_topic_config("t", {"retention.bytes": 200}).get()
    # readers see the new log-start-offset before the files go; the count follows them
    wait_until(lambda: handle.state.view.log_start_offset > 0
               and handle.state.stats.segments_deleted >= 1, TIMEOUT, "retention to run")
    view = handle.state.view
    assert view.high_watermark == 10  # retention never moves the high watermark
    assert read_all(handle.state)[-1].startswith(b"009")


def test_deleting_a_topic_stops_its_actors_and_wakes_its_readers(broker):
    broker.create_topic("t", 1, {"segment.ms": 60_000}).get()
    handle = partition(broker)
    handle.append(rows(b"x")).result(TIMEOUT)
    ref = handle.actor.actor_ref
    broker.delete_topic("t").get()
    assert not ref.is_alive()
    assert handle.state.error is not None
    assert handle.state.wait_for(5, timeout=TIMEOUT) is False  # offline: returns at once


def test_appends_queued_behind_a_stop_are_answered_not_dropped(broker, monkeypatch):
    broker.create_topic("t", 1).get()
    handle = partition(broker)
    gate = threading.Event()
    original = PartitionLog.append

    def slow(self, batch, producer=None, sent_bytes=None, **kwargs):
        gate.wait(TIMEOUT)
        return original(self, batch, producer, sent_bytes, **kwargs)

    monkeypatch.setattr(PartitionLog, "append", slow)
    first = handle.append(rows(b"in progress"))
    handle.actor.actor_ref.stop(block=False)  # queued behind the append in progress
    late = [handle.append(rows(b"late")) for _ in range(3)]  # queued behind the stop
    gate.set()
    assert first.result(TIMEOUT).base_offset == 0
    # refused by the stopped actor, handed by the broker to the next one
    assert sorted(future.result(TIMEOUT).base_offset for future in late) == [1, 2, 3]


def test_the_actor_checkpoints_its_wal_after_answering_appends(broker):
    """The actor turns SQLite's in-commit checkpoint into one after each acknowledged
    append: the WAL still stays near 4 MiB however much is appended."""
    broker.create_topic("t", 1).get()
    handle = partition(broker)
    value = b"x" * 1000
    for _ in range(40):  # about 4 MB each round of 10
        handle.append(rows(*[value] * 1000)).result(TIMEOUT)
    wal = handle.state.view.segments[-1].path + "-wal"
    assert os.path.getsize(wal) < 2 * 4096 * WAL_CHECKPOINT_PAGES
    assert len(read_all(handle.state)) == 40_000
