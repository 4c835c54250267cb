"""Issue 16, fault 4: a consumer's group membership changes on its polling thread only.

The consumer actor learns on its own thread that the group moved on (a heartbeat or an
asynchronous commit refused). If it changed the membership itself, an answer about a
generation the member has already left (a stale heartbeat) could wipe the member id the
polling thread has just been given. Here a real group coordinator on a real data
directory, with a manual clock for the session timeout, produces such an answer; the
Membership is driven the way the polling thread drives it, the refusal handed over from
another thread the way the actor hands it over.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support import ManualClock, wait_until

from actors.broker import Broker
from actors.consumer.config import ConsumerConfig
from actors.consumer.membership import Membership
from actors.coordinator import GroupCoordinator
from actors.runtime import Scheduler
from eventstore.client import EventStore
from eventstore.config import CoordinatorConfig, ServerConfig
from eventstore.errors import UnknownMemberId
from eventstore.topic_partition import TopicPartition

TIMEOUT = 20.0
SESSION_MS = 6000
COORDINATOR = CoordinatorConfig(group_initial_rebalance_delay_ms=0,
                                group_min_session_timeout_ms=100)


@dataclass
class Group:
    clock: ManualClock
    broker: object
    coordinator: object


@pytest.fixture
def group(data_dir: str) -> Iterator[Group]:
    """A broker with topic ``t`` (4 partitions) and a coordinator on a manual clock."""
    scheduler = Scheduler("membership-test-timers")
    clock = ManualClock()
    broker = Broker.start(data_dir, ServerConfig.from_mapping({}), scheduler)
    coordinator = GroupCoordinator.start(data_dir, COORDINATOR, scheduler=scheduler,
                                         clock=clock)
    try:
        broker.proxy().create_topic("t", 4).get(timeout=TIMEOUT)
        yield Group(clock, broker.proxy(), coordinator.proxy())
    finally:
        coordinator.stop()
        broker.stop()
        scheduler.close()


def membership(group: Group, woken: threading.Event) -> Membership:
    config = ConsumerConfig(group_id="g", session_timeout_ms=SESSION_MS,
                            max_poll_interval_ms=SESSION_MS)
    return Membership(config, "c", group.broker, group.coordinator, woken.set)


def join(member: Membership) -> set[TopicPartition]:
    """What the polling thread does when it must join: JoinGroup and SyncGroup."""
    member.rejoin_needed = True
    assigned = member.rejoin(("t",), lambda: None, lambda: True)
    assert assigned is not None
    return assigned


def heartbeat_from_another_thread(group: Group, member: Membership, generation: int,
                                  member_id: str) -> int:
    """A heartbeat sent and answered on a thread of its own, as the consumer actor sends
    it, its refusal reported to ``member`` from there; the answer's code."""
    codes: list[int] = []

    def beat() -> None:
        code = group.coordinator.heartbeat("g", generation, member_id).get(timeout=TIMEOUT)
        codes.append(code)
        if code:
            member.report(code, generation, member_id)

    thread = threading.Thread(target=beat, name="heartbeat")
    thread.start()
    thread.join(TIMEOUT)
    assert codes, "the heartbeat got no answer"
    return codes[0]


def test_a_stale_heartbeat_answer_cannot_wipe_the_member_id_just_obtained(group):
    woken = threading.Event()
    member = membership(group, woken)
    assert join(member) == {TopicPartition("t", p) for p in range(4)}
    old_id, old_generation = member.member_id, member.generation_id

    group.clock.advance(SESSION_MS + 1)  # the session expires: the coordinator drops it
    group.coordinator.list_groups().get(timeout=TIMEOUT)  # any call runs what is due
    member.member_id, member.generation_id = "", -1  # the polling thread joins anew ...
    assert join(member) == {TopicPartition("t", p) for p in range(4)}
    new_id, new_generation = member.member_id, member.generation_id
    assert (new_id, new_generation) != (old_id, old_generation)

    # ... and only then the heartbeat of the old member is answered: UNKNOWN_MEMBER_ID
    code = heartbeat_from_another_thread(group, member, old_generation, old_id)
    assert code == UnknownMemberId.code
    assert woken.is_set(), "the polling thread is woken to look at the refusal"
    member.apply_reports()  # the polling thread, before it next uses the membership
    assert (member.member_id, member.generation_id) == (new_id, new_generation)
    assert not member.rejoin_needed
    assert group.coordinator.heartbeat("g", new_generation, new_id).get(timeout=TIMEOUT) == 0


def test_a_refusal_of_the_current_generation_changes_nothing_until_the_polling_thread_applies_it(
        group):
    woken = threading.Event()
    member = membership(group, woken)
    join(member)
    member_id, generation = member.member_id, member.generation_id
    group.clock.advance(SESSION_MS + 1)
    group.coordinator.list_groups().get(timeout=TIMEOUT)

    code = heartbeat_from_another_thread(group, member, generation, member_id)
    assert code == UnknownMemberId.code
    # reported from the other thread: queued only, the membership is as it was
    assert (member.member_id, member.generation_id) == (member_id, generation)
    assert not member.rejoin_needed
    member.apply_reports()
    assert (member.member_id, member.generation_id, member.rejoin_needed) == ("", -1, True)
    assert join(member) == {TopicPartition("t", p) for p in range(4)}
    assert member.member_id not in ("", member_id)


def test_embedded_consumers_still_rebalance_when_heartbeats_say_so(data_dir):
    """A second member joins: the first learns it from a heartbeat (the actor's thread)
    and rejoins from its polling thread; the partitions end up shared out."""
    config = {"group.initial.rebalance.delay.ms": 100, "group.min.session.timeout.ms": 100}
    settings = {"group_id": "g", "session_timeout_ms": 2000, "heartbeat_interval_ms": 50,
                "auto_offset_reset": "earliest", "enable_auto_commit": False}
    everything = {TopicPartition("t", p) for p in range(4)}
    with EventStore.open(data_dir, config=config) as store:
        store.create_topic("t", 4)
        halt = threading.Event()
        seen: dict[str, tuple[frozenset, int]] = {}  # per member: assignment, generation

        def run(name: str) -> None:
            with store.consumer("t", **settings) as consumer:
                while not halt.is_set():
                    consumer.poll(20)
                    seen[name] = (frozenset(consumer.assignment()),
                                  consumer._membership.generation_id)

        first = threading.Thread(target=run, args=("first",))
        first.start()
        second = threading.Thread(target=run, args=("second",))
        try:
            wait_until(lambda: seen.get("first", (None,))[0] == everything, TIMEOUT,
                       "the first member to take every partition")
            generation = seen["first"][1]
            second.start()

            def shared() -> bool:
                (mine, at), (theirs, _) = seen.get("first"), seen.get("second", ((), 0))
                return len(mine) == len(theirs) == 2 and at > generation
            wait_until(shared, TIMEOUT, "both members to hold two partitions each")
            assert seen["first"][0] | seen["second"][0] == everything
        finally:
            halt.set()
            first.join(TIMEOUT)
            if second.is_alive():
                second.join(TIMEOUT)
