"""Faults in actors that used to leave a caller waiting forever (issue 16, faults 1, 2, 8).

A real actor system on a real data directory. Each fault is injected for real: an actor
is stopped or made to fail while messages carrying a reply are on their way to it. The
race of a message landing after a stopping actor emptied its inbox is made certain by
having the sender see the actor alive (``is_alive`` answering True) when it is not. Every
wait is bounded: a future that never completes fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Iterator

import apsw
import pykka
import pytest
from kio.index import load_request_schema
from support import PRODUCE_VERSION, produce_fields, record_batch

from actors.producer.actor import Ready
from actors.producer.client import Producer
from actors.runtime import Actor, Scheduler, stop_actor, tell_with_reply
from actors.system import ActorSystem, Coordinator
from eventstore.config import TopicConfig
from eventstore.errors import CoordinatorNotAvailable, IllegalState, KafkaStorageError
from eventstore.kafka.codec.apikeys import ApiKey
from eventstore.kafka.codec.protocol import Request, build
from eventstore.kafka.context import BrokerContext
from eventstore.kafka.fetch_sessions import FetchPartition, FetchSession
from eventstore.kafka.session import Session
from eventstore.storage.log import PartitionLog
from eventstore.storage.segment import is_wal_mode, segment_name

TIMEOUT = 10.0


@pytest.fixture
def system(data_dir: str) -> Iterator[ActorSystem]:
    """Every actor of a fresh data directory, stopped after the test (its producers
    closed: so the tests faulting a producer use ``producer_of``)."""
    started = ActorSystem(data_dir).start()
    try:
        yield started
    finally:
        started.stop()


def seen_alive(monkeypatch: pytest.MonkeyPatch, ref: pykka.ActorRef) -> None:
    """Stop the actor behind ``ref`` and have senders still see it alive: their message
    lands in its inbox after its teardown emptied it, the race a sender loses when the
    actor stops between its check and its put."""
    stop_actor(ref)
    monkeypatch.setattr(ref, "is_alive", lambda: True)


def producer_of(system: ActorSystem, **config) -> Producer:
    """A producer the system does not close when the test ends: a fault that leaves it
    blocked then fails the test that injected it instead of hanging the teardown."""
    return Producer(system.broker, system.scheduler, **config)


def run_bounded(work, what: str) -> None:
    """Run ``work`` on a thread; fail (not hang) if it does not return within TIMEOUT."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive(), f"{what} still blocked after {TIMEOUT} s"
    if failure:
        raise failure[0]


# -- the helper (actors.runtime.tell_with_reply) --------------------------------------------


class Failing(Actor):
    """Fails on the message "fail", as a bug in a handler would."""

    def on_receive(self, message: object) -> None:
        if message == "fail":
            raise RuntimeError("injected")


def test_a_reply_sent_to_a_dead_actor_or_one_failing_on_it_is_failed_with_the_typed_error():
    ref = Failing.start()
    failed_on: concurrent.futures.Future = concurrent.futures.Future()
    tell_with_reply(ref, "fail", failed_on, lambda: KafkaStorageError("refused"))
    with pytest.raises(KafkaStorageError, match="refused"):
        failed_on.result(TIMEOUT)
    stop_actor(ref)
    after: concurrent.futures.Future = concurrent.futures.Future()
    tell_with_reply(ref, "late", after, lambda: KafkaStorageError("dead"))
    with pytest.raises(KafkaStorageError, match="dead"):
        after.result(0)  # at once, on the sender's thread


def test_a_reply_landing_after_the_inbox_was_emptied_is_failed(monkeypatch):
    ref = Failing.start()
    seen_alive(monkeypatch, ref)
    late: concurrent.futures.Future = concurrent.futures.Future()
    tell_with_reply(ref, "late", late, lambda: KafkaStorageError("after teardown"))
    with pytest.raises(KafkaStorageError, match="after teardown"):
        late.result(TIMEOUT)


def test_an_ask_landing_after_the_inbox_was_emptied_is_answered(monkeypatch):
    ref = Failing.start()
    seen_alive(monkeypatch, ref)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("late", timeout=TIMEOUT)


# -- fault 2: appends and commits told to a partition or consumer actor that stops ---------


def test_appends_told_to_a_stopped_partition_actor_are_answered(system, monkeypatch):
    system.broker.create_topic("t", 1).get(timeout=TIMEOUT)
    handle = system.broker.partition("t", 0).get(timeout=TIMEOUT)
    seen_alive(monkeypatch, handle.actor.actor_ref)
    futures = [handle.append([(None, None, b"x", None)]) for _ in range(3)]
    for future in futures:
        with pytest.raises(KafkaStorageError, match="restarting"):
            future.result(TIMEOUT)


def test_appends_in_flight_when_the_partition_actor_stops_all_complete(system, monkeypatch):
    """Appends queued behind one in progress, a stop, and appends after it: each future
    completes, either way: refused as retriable, or appended by the actor the broker
    starts for them (after the ones before the stop, no offset given twice)."""
    system.broker.create_topic("t", 1).get(timeout=TIMEOUT)
    handle = system.broker.partition("t", 0).get(timeout=TIMEOUT)
    gate = threading.Event()
    original = PartitionLog.append

    def held(self, *args, **kwargs):
        gate.wait(TIMEOUT)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PartitionLog, "append", held)
    ref = handle.actor.actor_ref
    futures = [handle.append([(None, None, b"before", None)]) for _ in range(5)]
    ref.stop(block=False)
    futures += [handle.append([(None, None, b"after", None)]) for _ in range(5)]
    gate.set()
    done, pending = concurrent.futures.wait(futures, TIMEOUT)
    assert not pending
    assert futures[0].result().base_offset == 0
    offsets = [f.result().base_offset for f in futures if f.exception() is None]
    assert sorted(offsets) == list(range(len(offsets))), "every append once, in one sequence"
    refused = [f.exception() for f in futures[5:] if f.exception() is not None]
    assert all(isinstance(error, KafkaStorageError) for error in refused), refused


def test_a_produce_request_to_a_stopped_partition_actor_is_answered(system, monkeypatch):
    """The wire Produce handler, over the system's broker: its append lands after the
    partition actor's inbox was emptied, and the client still gets an answer."""
    system.broker.create_topic("t", 1).get(timeout=TIMEOUT)
    handle = system.broker.partition("t", 0).get(timeout=TIMEOUT)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    session = Session(BrokerContext(system.broker, system.coordinator, "localhost", 9092,
                                    pool, system.config.to_mapping()), "127.0.0.1")
    try:
        seen_alive(monkeypatch, handle.actor.actor_ref)
        produce = wire_request(ApiKey.PRODUCE, PRODUCE_VERSION,
                               **produce_fields("t", 0, record_batch(b"x")))
        [topic] = answer(session, produce).responses
        [partition] = topic.partition_responses
        assert partition.error_code == KafkaStorageError.code
    finally:
        session.close()
        pool.shutdown()


def test_an_embedded_flush_returns_when_its_partition_actor_stopped(system, monkeypatch):
    producer = producer_of(system, retries=0)
    producer.send("t", b"first").get(TIMEOUT)
    handle = system.broker.partition("t", 0).get(timeout=TIMEOUT)
    seen_alive(monkeypatch, handle.actor.actor_ref)
    future = producer.send("t", b"lost?")
    producer.flush(TIMEOUT)  # KafkaTimeoutError if the append was never answered
    with pytest.raises(KafkaStorageError, match="restarting"):
        future.get(0)
    run_bounded(producer.close, "close()")


def test_commit_async_told_to_a_stopped_consumer_actor_is_failed(system, monkeypatch):
    system.broker.create_topic("t", 1).get(timeout=TIMEOUT)
    consumer = system.consumer(group_id="g")
    consumer.assign([("t", 0)])
    seen_alive(monkeypatch, consumer._actor)
    done = consumer.commit_async({("t", 0): 1})
    with pytest.raises(IllegalState, match="closed before this commit"):
        done.result(TIMEOUT)


# -- fault 1: a dead producer actor ---------------------------------------------------------


def kill(producer) -> None:
    """Make the producer's actor fail, as a bug in it would: a Ready for a topic it never
    loaded raises in its handler."""
    ref = producer._actor
    ref.tell(Ready("never-loaded", 0))
    stop_actor(ref)  # joins its thread: it has failed and stopped


def test_sends_after_the_producer_actor_died_raise_and_take_no_lock_for_good(system):
    producer = producer_of(system, linger_ms=0)
    producer.send("t", b"before").get(TIMEOUT)
    kill(producer)

    def sends() -> None:
        for _ in range(3):  # the first used to raise ActorDeadError holding the lock
            with pytest.raises(IllegalState, match="sender failed"):
                producer.send("t", b"after")

    run_bounded(sends, "send() after the producer actor died")
    run_bounded(lambda: producer.flush(TIMEOUT), "flush()")
    run_bounded(producer.close, "close()")


def test_batches_the_dead_producer_actor_would_have_sent_are_failed(system):
    producer = producer_of(system, linger_ms=60_000)
    producer.partitions_for("t")
    called: list[BaseException] = []
    future = producer.send("t", b"lingering").add_errback(called.append)
    kill(producer)
    run_bounded(lambda: producer.flush(TIMEOUT), "flush()")
    with pytest.raises(IllegalState, match="sender failed"):
        future.get(0)
    assert len(called) == 1 and isinstance(called[0], IllegalState)
    assert producer.buffered_bytes == 0
    run_bounded(producer.close, "close()")


def test_appends_in_flight_when_the_producer_actor_died_still_finish(system, monkeypatch):
    """A partition actor answering a batch of a producer whose actor died finishes it (and
    is not blocked), and its callbacks still run."""
    gate, entered = threading.Event(), threading.Event()
    original = PartitionLog.append

    def held(self, *args, **kwargs):
        entered.set()
        gate.wait(TIMEOUT)
        return original(self, *args, **kwargs)

    producer = producer_of(system, linger_ms=0)
    producer.partitions_for("t")
    monkeypatch.setattr(PartitionLog, "append", held)
    called = threading.Event()
    future = producer.send("t", b"in flight").add_callback(lambda metadata: called.set())
    handle = system.broker.partition("t", 0).get(timeout=TIMEOUT)
    assert entered.wait(TIMEOUT)  # the append is in flight: the partition actor has it
    kill(producer)
    gate.set()
    assert future.get(TIMEOUT).offset == 0
    assert called.wait(TIMEOUT)
    monkeypatch.setattr(PartitionLog, "append", original)
    assert handle.append([(None, None, b"next", None)]).result(TIMEOUT).base_offset == 1
    run_bounded(producer.close, "close()")


# -- fault 8: the update_config future in actors/broker.py ----------------------------------


def test_a_config_change_a_partition_did_not_take_is_logged(data_dir, caplog):
    from actors.broker import Broker
    from eventstore.config import ServerConfig

    scheduler = Scheduler()
    ref = Broker.start(data_dir, ServerConfig.from_mapping({}), scheduler)
    broker = ref.proxy()
    try:
        broker.create_topic("t", 2).get(timeout=TIMEOUT)
        stop_actor(broker.partition("t", 1).get(timeout=TIMEOUT).actor.actor_ref)
        with caplog.at_level(logging.WARNING, logger="actors.broker"):
            broker.alter_topic_config("t", {"retention.ms": 1000}).get(timeout=TIMEOUT)
        [record] = [r for r in caplog.records if "config" in r.getMessage()]
        fields = record.fields
        assert (fields["topic"], fields["partition"]) == ("t", 1)
        assert "ActorDeadError" in fields["error"] or "stopped" in fields["error"]
    finally:
        stop_actor(ref)
        scheduler.close()


# -- fault 3: a coordinator exception leaves no JoinGroup or SyncGroup unanswered ----------


class BrokenCoordinator(Coordinator):
    """The server's group coordinator, made to raise where a bug in its logic would."""

    def join_group(self, request, reply) -> None:
        raise RuntimeError("injected: join_group failed")

    def sync_group(self, request, reply) -> None:
        raise RuntimeError("injected: sync_group failed")

    def heartbeat(self, *args) -> int:
        raise RuntimeError("injected: heartbeat failed")


def wire_request(api_key: int, version: int, **fields) -> Request:
    return Request(api_key, version, 1, "fault-test",
                   build(load_request_schema(api_key, version), **fields))


@pytest.fixture
def groups_session(data_dir: str) -> Iterator[Session]:
    """A wire session whose group requests reach a BrokenCoordinator actor."""
    scheduler = Scheduler()
    ref = BrokenCoordinator.start(data_dir, scheduler=scheduler)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    session = Session(BrokerContext(None, ref.proxy(), "localhost", 9092, pool, {}),
                      "127.0.0.1")
    yield session
    session.close()
    pool.shutdown()
    stop_actor(ref)
    scheduler.close()


def answer(session: Session, request: Request):
    return asyncio.run(asyncio.wait_for(session.handle(request), TIMEOUT))


def test_join_and_sync_are_answered_unknown_server_error_when_the_coordinator_raises(
        groups_session, caplog):
    join = wire_request(ApiKey.JOIN_GROUP, 5, group_id="g", session_timeout=10_000,
                        rebalance_timeout=10_000, member_id="", group_instance_id=None,
                        protocol_type="consumer",
                        protocols=[{"name": "range", "metadata": b""}])
    with caplog.at_level(logging.ERROR, logger="eventstore.kafka.handlers.groups"):
        joined = answer(groups_session, join)
    assert joined.error_code == -1  # UNKNOWN_SERVER_ERROR
    assert "join_group failed" in caplog.text
    sync = wire_request(ApiKey.SYNC_GROUP, 3, group_id="g", generation_id=1,
                        member_id="m", group_instance_id=None, assignments=[])
    assert answer(groups_session, sync).error_code == -1


def test_other_group_requests_raise_when_the_coordinator_raises(groups_session):
    """Their answer is the call's own: its exception leaves the handler at once, and the
    listener closes the connection (eventstore/kafka/server.py), never waiting."""
    beat = wire_request(ApiKey.HEARTBEAT, 3, group_id="g", generation_id=1, member_id="m",
                        group_instance_id=None)
    with pytest.raises(RuntimeError, match="heartbeat failed"):
        answer(groups_session, beat)


@pytest.mark.parametrize("race", [False, True], ids=["stopped", "stopping"])
def test_join_is_answered_coordinator_not_available_when_the_coordinator_stopped(
        data_dir, monkeypatch, race):
    """Stopped before the JoinGroup, or (race) stopping as it is sent: its call lands
    after the coordinator's inbox was emptied."""
    scheduler = Scheduler()
    ref = Coordinator.start(data_dir, scheduler=scheduler)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    session = Session(BrokerContext(None, ref.proxy(), "localhost", 9092, pool, {}),
                      "127.0.0.1")
    if race:
        seen_alive(monkeypatch, ref)
    else:
        stop_actor(ref)
    try:
        join = wire_request(ApiKey.JOIN_GROUP, 3, group_id="g", session_timeout=10_000,
                            rebalance_timeout=10_000, member_id="",
                            protocol_type="consumer",
                            protocols=[{"name": "range", "metadata": b""}])
        assert answer(session, join).error_code == CoordinatorNotAvailable.code
    finally:
        session.close()
        pool.shutdown()
        scheduler.close()


# -- fault 8: settle() swallowing every exception; a seal failing at open -------------------


def test_a_read_ahead_failing_unexpectedly_is_logged_and_the_fetch_goes_on(caplog):
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    session = FetchSession(BrokerContext(None, None, "localhost", 9092, pool, {}))

    async def read_ahead_then_settle():
        session.read_ahead({}, [FetchPartition("t", 0, 0, 1000)], 1000)  # no state: a bug
        return await session.settle()

    try:
        with caplog.at_level(logging.ERROR, logger="eventstore.kafka.fetch_sessions"):
            assert asyncio.run(read_ahead_then_settle()) is None
    finally:
        session.close()
        pool.shutdown()
    [record] = [r for r in caplog.records if "read-ahead failed" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_a_seal_a_reader_held_back_at_open_is_finished_later(data_dir):
    directory = os.path.join(data_dir, "t-0")
    partition_log = PartitionLog.open(directory, TopicConfig(), create=True)
    partition_log.append([(None, None, b"sealed", None)])
    partition_log.roll()
    partition_log.append([(None, None, b"active", None)])
    partition_log.close()
    sealed = os.path.join(directory, segment_name(0))
    reader = apsw.Connection(sealed)  # another process's reader, holding the WAL open
    reader.execute("PRAGMA journal_mode = WAL").fetchall()
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM records").fetchall()
    try:
        reopened = PartitionLog.open(directory, TopicConfig())
        assert is_wal_mode(sealed)  # held back: the reader has it
    finally:
        reader.execute("COMMIT")
        reader.close()
    try:
        reopened.maybe_roll()  # the retention and segment.ms timers call it
        assert not is_wal_mode(sealed)
    finally:
        reopened.close()
