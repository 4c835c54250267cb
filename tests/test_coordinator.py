"""The group coordinator actor, driven the way consumers drive Kafka's.

Real actors on a real data directory, no mocks: members join through futures (from
their own threads where it matters), the leader assigns with a real assignor over the
consumer protocol bytes, and time is the real clock except where a test says otherwise.
Waits are on futures or on conditions with a timeout, never fixed sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

import pytest

from actors.coordinator import GroupCoordinator
from actors.runtime import Scheduler
from eventstore.config import CoordinatorConfig
from eventstore.errors import (
    FencedInstanceId,
    GroupIdNotFound,
    IllegalGeneration,
    InconsistentGroupProtocol,
    InvalidConfig,
    InvalidGroupId,
    InvalidSessionTimeout,
    MemberIdRequired,
    NonEmptyGroup,
    NotCoordinator,
    OffsetMetadataTooLarge,
    RebalanceInProgress,
    UnknownMemberId,
    UnknownTopicOrPartition,
)
from eventstore.groups.assignors import assign
from eventstore.groups.consumer_protocol import (
    Assignment,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from eventstore.groups.messages import (
    CoordinatorStats,
    JoinGroupRequest,
    JoinGroupResult,
    MemberIdentity,
    SyncGroupRequest,
    SyncGroupResult,
)
from eventstore.storage.catalog import Catalog

TIMEOUT = 10.0
PARTITIONS = 6
CONFIG = CoordinatorConfig(group_initial_rebalance_delay_ms=100, group_min_session_timeout_ms=50)
SUBSCRIPTION = encode_subscription(Subscription(("t",)))
PROTOCOLS = (("range", SUBSCRIPTION), ("roundrobin", SUBSCRIPTION))


def start(data_dir: str, scheduler: Scheduler, config: CoordinatorConfig = CONFIG, **kwargs):
    return GroupCoordinator.start(data_dir, config=config, scheduler=scheduler, **kwargs)


def assert_no_coordinator_thread() -> None:
    """Every thread of a stopped coordinator ends (the actor's own may still be unwinding)."""
    for thread in threading.enumerate():
        if thread.name.startswith("GroupCoordinator"):
            thread.join(timeout=TIMEOUT)
            assert not thread.is_alive(), f"{thread.name} outlived its coordinator"


def eventually(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait until ``condition()`` holds, re-checking every 10 ms, failing after ``timeout``."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        pause.wait(0.01)
    raise AssertionError("condition not met in time")


class FakeClock:
    """A clock the test moves by hand (milliseconds, like the coordinator's)."""

    def __init__(self) -> None:
        self.now_ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now_ms


def done(result: JoinGroupResult) -> Future:
    """A JoinGroup answer already in hand, as a future (to sync it like a fresh one)."""
    future: Future = Future()
    future.set_result(result)
    return future


@pytest.fixture
def data_dir(data_dir: str) -> str:
    """A data directory with topic ``t`` of 6 partitions (commits are checked against it)."""
    catalog = Catalog.open(data_dir)
    catalog.create_topic("t", PARTITIONS, {}, 0)
    catalog.close()
    return data_dir


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    """The timer service the coordinator's wake-ups run on, as the actor system's is."""
    timers = Scheduler("coordinator-test-timers")
    yield timers
    timers.close()


@pytest.fixture
def coordinator(data_dir: str, scheduler: Scheduler) -> Iterator:
    ref = start(data_dir, scheduler)
    yield ref.proxy()
    ref.stop()
    assert_no_coordinator_thread()


def join(coordinator, member_id: str = "", *, group: str = "g", session_timeout_ms: int = 5000,
         protocols=PROTOCOLS, **kwargs) -> Future:
    """Send JoinGroup; returns its reply future once the coordinator has taken the request."""
    reply: Future = Future()
    coordinator.join_group(JoinGroupRequest(
        group_id=group, member_id=member_id, client_id="client", client_host="/127.0.0.1",
        session_timeout_ms=session_timeout_ms, rebalance_timeout_ms=5000, protocols=protocols,
        **kwargs), reply).get(timeout=TIMEOUT)
    return reply


def leader_assignments(joined: JoinGroupResult) -> tuple[tuple[str, bytes], ...]:
    """What a consumer leader sends: the group's assignor run over the members' subscriptions."""
    subscriptions = {m.member_id: decode_subscription(m.metadata) for m in joined.members}
    result = assign(joined.protocol_name, subscriptions, {"t": PARTITIONS})
    return tuple((member, encode_assignment(Assignment(tuple(partitions))))
                 for member, partitions in result.items())


def sync(coordinator, joined: JoinGroupResult, *, group: str = "g") -> Future:
    reply: Future = Future()
    assignments = leader_assignments(joined) if joined.members else ()
    coordinator.sync_group(SyncGroupRequest(
        group_id=group, generation_id=joined.generation_id, member_id=joined.member_id,
        assignments=assignments), reply).get(timeout=TIMEOUT)
    return reply


def complete_rebalance(coordinator, joins: list[Future], group: str = "g"
                       ) -> list[JoinGroupResult]:
    """Wait for the JoinGroup answers, then sync everyone; every member must get its part."""
    joined = [f.result(TIMEOUT) for f in joins]
    assert [r.error_code for r in joined] == [0] * len(joined)
    synced = [sync(coordinator, r, group=group) for r in joined]
    assert [f.result(TIMEOUT).error_code for f in synced] == [0] * len(joined)
    return joined


def form_group(coordinator, *session_timeouts_ms: int, group: str = "g") -> list[JoinGroupResult]:
    return complete_rebalance(
        coordinator, [join(coordinator, group=group, session_timeout_ms=ms)
                      for ms in session_timeouts_ms], group)


def heartbeat(coordinator, joined: JoinGroupResult, group: str = "g") -> int:
    return coordinator.heartbeat(group, joined.generation_id, joined.member_id).get(timeout=TIMEOUT)


def rejoin(coordinator, joined: JoinGroupResult) -> Future:
    return join(coordinator, joined.member_id)


# -- forming a group and rebalancing -------------------------------------------------------


def test_three_members_from_their_own_threads_form_one_generation(data_dir, scheduler):
    # The initial delay gathers members joining close together into the first generation;
    # a generous one keeps a slow thread start from splitting them.
    ref = start(data_dir, scheduler, replace(CONFIG, group_initial_rebalance_delay_ms=500))
    try:
        check_three_members_form_one_generation(ref.proxy())
    finally:
        ref.stop()


def check_three_members_form_one_generation(coordinator) -> None:
    barrier = threading.Barrier(3)

    def member() -> tuple[JoinGroupResult, SyncGroupResult]:
        barrier.wait(TIMEOUT)
        joined = join(coordinator).result(TIMEOUT)
        return joined, sync(coordinator, joined).result(TIMEOUT)

    with ThreadPoolExecutor(3) as pool:
        results = [f.result(TIMEOUT) for f in [pool.submit(member) for _ in range(3)]]

    joins = [joined for joined, _ in results]
    assert {(j.error_code, j.generation_id, j.protocol_name) for j in joins} == {(0, 1, "range")}
    assert len({j.member_id for j in joins}) == 3
    assert len({j.leader_id for j in joins}) == 1
    (leader,) = [j for j in joins if j.member_id == j.leader_id]
    assert {m.member_id for m in leader.members} == {j.member_id for j in joins}
    assert all(j.members == () for j in joins if j is not leader)

    expected = dict(leader_assignments(leader))
    owned = []
    for joined, synced in results:
        assert synced.error_code == 0
        assert synced.assignment == expected[joined.member_id]
        owned.extend(decode_assignment(synced.assignment).partitions)
    assert sorted(owned) == [("t", p) for p in range(PARTITIONS)]
    assert coordinator.describe_group("g").get().state == "Stable"


def test_a_fourth_member_makes_the_others_rejoin(coordinator):
    first = form_group(coordinator, 5000, 5000, 5000)
    newcomer = join(coordinator)
    assert [heartbeat(coordinator, m) for m in first] == [RebalanceInProgress.code] * 3

    rejoined = [rejoin(coordinator, m) for m in first[:2]]
    assert not newcomer.done() and not any(f.done() for f in rejoined)
    assert heartbeat(coordinator, first[2]) == RebalanceInProgress.code
    rejoined.append(rejoin(coordinator, first[2]))

    second = [f.result(TIMEOUT) for f in [newcomer, *rejoined]]
    assert {(r.error_code, r.generation_id) for r in second} == {(0, 2)}
    assert {r.leader_id for r in second} == {first[0].leader_id}
    assert heartbeat(coordinator, second[0]) == 0  # CompletingRebalance: a normal heartbeat
    assert heartbeat(coordinator, first[0]) == IllegalGeneration.code
    complete_rebalance(coordinator, [done(r) for r in second])
    assert [heartbeat(coordinator, r) for r in second] == [0] * 4
    assert coordinator.stats().get() == CoordinatorStats(2, {"g": 4})


def test_a_join_while_completing_fails_the_parked_syncs_and_waits_for_everyone(coordinator):
    joined = complete_join_only(coordinator, 2)
    follower = next(r for r in joined if not r.members)
    parked_sync = sync(coordinator, follower)
    newcomer = join(coordinator)
    assert parked_sync.result(TIMEOUT).error_code == RebalanceInProgress.code
    assert not newcomer.done()
    second = complete_rebalance(coordinator, [newcomer, *[rejoin(coordinator, r) for r in joined]])
    assert {r.generation_id for r in second} == {2}


def complete_join_only(coordinator, members: int) -> list[JoinGroupResult]:
    """A group in CompletingRebalance: everyone has joined, nobody has synced yet."""
    joined = [f.result(TIMEOUT) for f in [join(coordinator) for _ in range(members)]]
    assert coordinator.describe_group("g").get().state == "CompletingRebalance"
    return joined


def test_a_follower_rejoining_unchanged_gets_the_current_generation(coordinator):
    leader, follower = sorted(form_group(coordinator, 5000, 5000), key=lambda r: r.members == ())
    again = rejoin(coordinator, follower).result(TIMEOUT)
    assert (again.error_code, again.generation_id, again.members) == (0, 1, ())
    assert heartbeat(coordinator, leader) == 0
    rejoin(coordinator, leader)  # the leader joining again always rebalances
    assert heartbeat(coordinator, follower) == RebalanceInProgress.code


def test_the_only_member_joining_again_completes_at_once(coordinator):
    """kafka-python's lone consumer joins again after its first metadata refresh: the
    rebalance it starts has everyone joined already and must not wait for its timeout."""
    (only,) = form_group(coordinator, 5000)
    again = rejoin(coordinator, only)
    assert again.done()
    result = again.result(0)
    assert (result.error_code, result.generation_id) == (0, 2)


def test_a_member_that_stops_heartbeating_is_evicted(coordinator):
    steady, silent = form_group(coordinator, 5000, 200)
    newcomer = join(coordinator)
    assert heartbeat(coordinator, steady) == RebalanceInProgress.code
    steady_again = rejoin(coordinator, steady)
    # Only the timer can finish this rebalance: by evicting the silent member.
    second = [newcomer.result(TIMEOUT), steady_again.result(TIMEOUT)]
    assert {(r.error_code, r.generation_id) for r in second} == {(0, 2)}
    leader = next(r for r in second if r.members)
    assert {m.member_id for m in leader.members} == {steady.member_id, second[0].member_id}
    assert heartbeat(coordinator, silent) == UnknownMemberId.code


def test_an_evicted_member_of_a_stable_group_starts_a_rebalance(coordinator):
    steady, _silent = form_group(coordinator, 5000, 200)
    eventually(lambda: heartbeat(coordinator, steady) == RebalanceInProgress.code)
    assert coordinator.stats().get().members_per_group == {"g": 1}


def test_leaving_members_rebalance_the_group_and_the_last_one_empties_it(coordinator):
    a, b, c = form_group(coordinator, 5000, 5000, 5000)
    assert coordinator.leave_group("g", [c.member_id]).get(timeout=TIMEOUT) == 0
    assert heartbeat(coordinator, a) == RebalanceInProgress.code
    second = complete_rebalance(coordinator, [rejoin(coordinator, a), rejoin(coordinator, b)])
    assert {r.generation_id for r in second} == {2}
    assert coordinator.leave_group("g", [a.member_id, "nobody"]).get() == UnknownMemberId.code
    assert coordinator.leave_group("g", [b.member_id]).get() == 0
    assert coordinator.list_groups().get() == [("g", "consumer", "Empty")]
    assert coordinator.stats().get() == CoordinatorStats(3, {"g": 0})


def test_kip_394_new_members_first_get_their_id(coordinator):
    first = join(coordinator, require_known_member_id=True).result(TIMEOUT)
    assert first.error_code == MemberIdRequired.code
    assert first.member_id.startswith("client-")
    (joined,) = complete_rebalance(
        coordinator, [join(coordinator, first.member_id, require_known_member_id=True)])
    assert joined.member_id == first.member_id == joined.leader_id


def test_protocol_choice_and_bad_joins(coordinator):
    sticky_first = (("sticky", SUBSCRIPTION), ("range", SUBSCRIPTION))
    joins = [join(coordinator, protocols=sticky_first),
             join(coordinator, protocols=(("range", SUBSCRIPTION),)),
             join(coordinator, protocols=(("roundrobin", SUBSCRIPTION), ("range", SUBSCRIPTION)))]
    assert {f.result(TIMEOUT).protocol_name for f in joins} == {"range"}

    def error(**kwargs) -> int:
        return join(coordinator, **kwargs).result(TIMEOUT).error_code

    assert error(protocols=(("sticky", SUBSCRIPTION),)) == InconsistentGroupProtocol.code
    assert error(protocol_type="connect") == InconsistentGroupProtocol.code
    assert error(session_timeout_ms=10) == InvalidSessionTimeout.code
    assert error(session_timeout_ms=CONFIG.group_max_session_timeout_ms + 1) == (
        InvalidSessionTimeout.code)
    assert error(group="") == InvalidGroupId.code
    assert error(member_id="stranger") == UnknownMemberId.code
    assert error(group="other", member_id="stranger") == UnknownMemberId.code


def test_sync_group_errors(coordinator):
    (joined,) = form_group(coordinator, 5000)

    def error(**changes) -> int:
        fields = {"group_id": "g", "generation_id": joined.generation_id,
                  "member_id": joined.member_id} | changes
        reply: Future = Future()
        coordinator.sync_group(SyncGroupRequest(**fields), reply)
        return reply.result(TIMEOUT).error_code

    assert error() == 0
    assert error(member_id="stranger") == UnknownMemberId.code
    assert error(generation_id=7) == IllegalGeneration.code
    assert error(protocol_name="roundrobin") == InconsistentGroupProtocol.code
    join(coordinator)
    assert error() == RebalanceInProgress.code


def test_describe_group(coordinator):
    assert coordinator.describe_group("nobody").get().state == "Dead"
    (joined,) = form_group(coordinator, 5000)
    described = coordinator.describe_group("g").get()
    assert (described.state, described.protocol_type, described.protocol) == (
        "Stable", "consumer", "range")
    (member,) = described.members
    assert (member.member_id, member.client_id, member.client_host) == (
        joined.member_id, "client", "/127.0.0.1")
    assert decode_subscription(member.metadata).topics == ("t",)
    assert decode_assignment(member.assignment).partitions == tuple(
        ("t", p) for p in range(PARTITIONS))
    join(coordinator)
    preparing = coordinator.describe_group("g").get()
    assert preparing.state == "PreparingRebalance" and preparing.protocol == ""
    assert {m.metadata for m in preparing.members} == {b""}


def test_the_initial_delay_waits_while_new_members_keep_coming(data_dir, scheduler):
    clock = FakeClock()
    ref = start(data_dir, scheduler, replace(CONFIG, group_initial_rebalance_delay_ms=1000),
                clock=clock)
    proxy = ref.proxy()
    try:
        first = join(proxy)
        clock.now_ms += 500
        second = join(proxy)
        clock.now_ms += 500
        proxy.list_groups().get()  # any call runs what is due: the delay extends once
        assert not first.done()
        clock.now_ms += 1000
        proxy.list_groups().get()
        assert {(f.result(0).error_code, f.result(0).generation_id) for f in (first, second)} == {
            (0, 1)}
    finally:
        ref.stop()


def test_members_that_do_not_rejoin_within_the_rebalance_timeout_are_dropped(
        data_dir, scheduler):
    clock = FakeClock()
    ref = start(data_dir, scheduler, clock=clock)
    proxy = ref.proxy()
    try:
        joins = [join(proxy, session_timeout_ms=600_000) for _ in range(2)]
        for _ in range(2):  # the second member's arrival extended the initial delay once
            clock.now_ms += CONFIG.group_initial_rebalance_delay_ms
            proxy.list_groups().get()
        rejoining, lagging = complete_rebalance(proxy, joins)
        newcomer = join(proxy, session_timeout_ms=600_000)
        again = rejoin(proxy, rejoining)
        clock.now_ms += 4999
        proxy.list_groups().get()
        assert not again.done()
        clock.now_ms += 1  # the rebalance timeout (5000 ms) has passed
        proxy.list_groups().get()
        second = [again.result(0), newcomer.result(0)]
        assert {(r.error_code, r.generation_id) for r in second} == {(0, 2)}
        assert heartbeat(proxy, lagging) == UnknownMemberId.code
    finally:
        ref.stop()


# -- offsets -------------------------------------------------------------------------------


def test_commits_are_checked_against_generation_member_and_state(coordinator):
    a, b = form_group(coordinator, 5000, 5000)
    tp = ("t", 0)

    def commit(joined, generation=None, offset=5) -> int:
        generation = joined.generation_id if generation is None else generation
        codes = coordinator.commit_offsets("g", generation, joined.member_id,
                                           {tp: (offset, "meta")}).get(timeout=TIMEOUT)
        return codes[tp]

    assert commit(a) == 0
    assert commit(a, generation=0) == IllegalGeneration.code
    assert coordinator.commit_offsets("g", 1, "stranger", {tp: (1, None)}).get() == {
        tp: UnknownMemberId.code}
    assert coordinator.commit_offsets("g", -1, "", {tp: (1, None)}).get() == {
        tp: UnknownMemberId.code}  # no standalone commits into an active group

    newcomer = join(coordinator)  # PreparingRebalance: commit before giving partitions up
    assert commit(b, offset=7) == 0
    rejoined = [rejoin(coordinator, a), rejoin(coordinator, b)]
    second = [f.result(TIMEOUT) for f in [newcomer, *rejoined]]
    assert commit(second[1]) == RebalanceInProgress.code  # CompletingRebalance
    complete_rebalance(coordinator, [done(r) for r in second])
    assert commit(a) == IllegalGeneration.code  # generation 1 is stale now
    assert coordinator.fetch_offsets("g", [tp]).get() == {tp: (7, "meta")}

    codes = coordinator.commit_offsets("g", 2, second[0].member_id, {
        ("t", 1): (3, None), ("t", PARTITIONS): (3, None), ("nope", 0): (3, None),
        ("t", 2): (3, "x" * (CONFIG.offset_metadata_max_bytes + 1))}).get()
    assert codes == {("t", 1): 0, ("t", PARTITIONS): UnknownTopicOrPartition.code,
                     ("nope", 0): UnknownTopicOrPartition.code,
                     ("t", 2): OffsetMetadataTooLarge.code}
    assert coordinator.fetch_offsets("g").get() == {("t", 0): (7, "meta"), ("t", 1): (3, "")}


def test_a_static_member_restarts_into_its_place_and_fences_the_old_one(coordinator):
    """KIP-345 through the actor: the group.instance.id reaches every check, so the
    replaced member is fenced in heartbeat, commit and leave, as with Kafka."""
    joins = [join(coordinator, group_instance_id=i) for i in ("i-a", "i-b")]
    a, b = complete_rebalance(coordinator, joins)
    back = join(coordinator, group_instance_id="i-b").result(TIMEOUT)
    assert (back.error_code, back.generation_id) == (0, b.generation_id)
    synced = sync(coordinator, back).result(TIMEOUT)
    assert decode_assignment(synced.assignment).partitions  # b's partitions, at once
    assert coordinator.heartbeat("g", b.generation_id, b.member_id, "i-b").get(
        timeout=TIMEOUT) == FencedInstanceId.code
    assert coordinator.commit_offsets("g", b.generation_id, b.member_id, {("t", 0): (1, None)},
                                      "i-b").get(timeout=TIMEOUT) == {
        ("t", 0): FencedInstanceId.code}
    assert coordinator.leave_group("g", [MemberIdentity(b.member_id, "i-b")]).get(
        timeout=TIMEOUT) == FencedInstanceId.code
    assert heartbeat(coordinator, a) == 0
    assert coordinator.leave_group("g", [MemberIdentity("", "i-b")]).get(timeout=TIMEOUT) == 0
    assert heartbeat(coordinator, a) == RebalanceInProgress.code


def test_commits_survive_a_restart(data_dir, scheduler):
    ref = start(data_dir, scheduler)
    proxy = ref.proxy()
    (member,) = form_group(proxy, 5000)
    assert proxy.commit_offsets("g", 1, member.member_id, {("t", 0): (42, "m")}).get() == {
        ("t", 0): 0}
    assert proxy.commit_offsets("standalone", -1, "", {("t", 3): (9, None)}).get() == {
        ("t", 3): 0}
    ref.stop()
    assert_no_coordinator_thread()

    ref = start(data_dir, scheduler)
    proxy = ref.proxy()
    try:
        assert proxy.fetch_offsets("g", [("t", 0), ("t", 1)]).get() == {
            ("t", 0): (42, "m"), ("t", 1): (-1, "")}
        assert proxy.fetch_offsets("standalone").get() == {("t", 3): (9, "")}
        assert proxy.list_groups().get() == [("g", "", "Empty"), ("standalone", "", "Empty")]
        assert proxy.heartbeat("g", 1, member.member_id).get() == UnknownMemberId.code
    finally:
        ref.stop()


def test_delete_group_rules(coordinator):
    a, b = form_group(coordinator, 5000, 5000)
    coordinator.commit_offsets("g", 1, a.member_id, {("t", 0): (1, None)}).get()
    assert coordinator.delete_group("g").get() == NonEmptyGroup.code
    assert coordinator.delete_group("nobody").get() == GroupIdNotFound.code
    assert coordinator.leave_group("g", [a.member_id, b.member_id]).get() == 0
    assert coordinator.delete_group("g").get() == 0
    assert coordinator.fetch_offsets("g").get() == {}
    assert coordinator.list_groups().get() == []
    assert coordinator.delete_group("g").get() == GroupIdNotFound.code


def test_offsets_of_groups_empty_past_retention_expire(data_dir, scheduler):
    clock = FakeClock()
    config = CoordinatorConfig(group_initial_rebalance_delay_ms=0, offsets_retention_minutes=1,
                               offsets_retention_check_interval_ms=1000)
    ref = start(data_dir, scheduler, config, clock=clock)
    proxy = ref.proxy()
    try:
        (member,) = form_group(proxy, 600_000, group="active")
        proxy.commit_offsets("active", 1, member.member_id, {("t", 0): (5, None)}).get()
        proxy.commit_offsets("idle", -1, "", {("t", 0): (6, None)}).get()
        clock.now_ms += 30_000
        assert [g for g, _, _ in proxy.list_groups().get()] == ["active", "idle"]
        clock.now_ms += 60_000  # the next call runs the sweep that is now due
        assert proxy.heartbeat("active", 1, member.member_id).get() == 0
        assert proxy.list_groups().get() == [("active", "consumer", "Stable")]
        assert proxy.fetch_offsets("active").get() == {("t", 0): (5, "")}
        assert proxy.fetch_offsets("idle").get() == {}
    finally:
        ref.stop()


# -- lifecycle and configuration -------------------------------------------------------------


def test_stop_answers_parked_requests_and_leaves_no_thread(data_dir, scheduler):
    ref = start(data_dir, scheduler, CoordinatorConfig(group_initial_rebalance_delay_ms=60_000,
                                            group_min_session_timeout_ms=50))
    parked = join(ref.proxy())
    ref.stop()
    assert parked.result(TIMEOUT).error_code == NotCoordinator.code
    assert_no_coordinator_thread()


def test_config_from_kafka_names():
    config = CoordinatorConfig.from_mapping(
        {"group.initial.rebalance.delay.ms": "0", "offsets.retention.minutes": 5,
         "segment.bytes": 1024})
    assert (config.group_initial_rebalance_delay_ms, config.offsets_retention_minutes) == (0, 5)
    assert config.group_min_session_timeout_ms == 6000
    with pytest.raises(InvalidConfig, match="group.min.session.timeout.ms"):
        CoordinatorConfig.from_mapping({"group.min.session.timeout.ms": "soon"})
    with pytest.raises(InvalidConfig, match="must not exceed"):
        CoordinatorConfig(group_min_session_timeout_ms=10, group_max_session_timeout_ms=5)
    with pytest.raises(InvalidConfig, match="offsets.retention.check.interval.ms"):
        CoordinatorConfig(offsets_retention_check_interval_ms=0)
