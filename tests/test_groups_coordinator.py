"""The classic group coordinator's logic and the group state machine, on their own.

No actor, no thread, no sleeping: a fake clock the test moves by hand and a fake scheduler
that only records when the coordinator asked to be woken, so every deadline is checked to
the millisecond. Committed offsets go to a real catalog in a temporary data directory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from eventstore.config import CoordinatorConfig
from eventstore.errors import (
    FencedInstanceId,
    GroupIdNotFound,
    IllegalGeneration,
    InconsistentGroupProtocol,
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
from eventstore.groups.coordinator import ClassicGroupCoordinator
from eventstore.groups.messages import (
    CoordinatorStats,
    JoinGroupRequest,
    JoinGroupResult,
    MemberIdentity,
    SyncGroupRequest,
    SyncGroupResult,
)
from eventstore.groups.state import Group, GroupState, IllegalStateError, Member
from eventstore.storage.catalog import Catalog

START_MS = 1_700_000_000_000
DELAY_MS = 300  # group.initial.rebalance.delay.ms
REBALANCE_TIMEOUT_MS = 5000
SESSION_MS = 10_000
SWEEP_MS = 600_000  # offsets.retention.check.interval.ms
PARTITIONS = 6
CONFIG = CoordinatorConfig(group_initial_rebalance_delay_ms=DELAY_MS,
                           group_min_session_timeout_ms=50,
                           offsets_retention_check_interval_ms=SWEEP_MS)
PROTOCOLS = (("range", b"sub-r"), ("roundrobin", b"sub-rr"))


class FakeClock:
    """Milliseconds the test moves by hand."""

    def __init__(self) -> None:
        self.now_ms = START_MS

    def __call__(self) -> int:
        return self.now_ms


class FakeScheduler:
    """Records each wake-up the coordinator asks for; the latest one replaces the others."""

    def __init__(self) -> None:
        self.requests: list[int] = []

    def __call__(self, deadline_ms: int) -> None:
        self.requests.append(deadline_ms)

    @property
    def due(self) -> int:
        return self.requests[-1]


class Harness:
    """A coordinator over a real catalog, with its fake clock and scheduler."""

    def __init__(self, catalog: Catalog, config: CoordinatorConfig) -> None:
        self.clock = FakeClock()
        self.scheduler = FakeScheduler()
        self.groups = ClassicGroupCoordinator(catalog, config, self.clock, self.scheduler)
        self._client_ids = itertools.count()

    def advance(self, ms: int) -> None:
        """Let ``ms`` pass and run the timers, as the actor does when its timer fires."""
        self.clock.now_ms += ms
        self.groups.run_timers()

    def wake_up(self) -> None:
        """Move the clock to the wake-up asked for last, and run the timers then."""
        assert self.scheduler.due >= self.clock.now_ms
        self.clock.now_ms = self.scheduler.due
        self.groups.run_timers()

    def end_initial_delay(self, members: int) -> None:
        """Wake up as often as it takes ``members`` joining at once: once for the delay,
        and once more if there is more than one (the others' arrival extended it once)."""
        self.wake_up()
        if members > 1:
            self.wake_up()

    def join(self, member_id: str = "", *, group: str = "g", session_ms: int = SESSION_MS,
             rebalance_ms: int = REBALANCE_TIMEOUT_MS, protocols=PROTOCOLS,
             **kwargs) -> Future:
        reply: Future = Future()
        self.groups.join_group(JoinGroupRequest(
            group_id=group, member_id=member_id, client_id=f"c{next(self._client_ids)}",
            client_host="/10.0.0.1", session_timeout_ms=session_ms,
            rebalance_timeout_ms=rebalance_ms, protocols=protocols, **kwargs), reply)
        return reply

    def sync(self, joined: JoinGroupResult, *, group: str = "g",
             assignments: tuple[tuple[str, bytes], ...] | None = None,
             instance: str | None = None) -> Future:
        """SyncGroup; the leader assigns each member its own id's bytes unless told."""
        if assignments is None:
            assignments = tuple((m.member_id, m.member_id.encode()) for m in joined.members)
        reply: Future = Future()
        self.groups.sync_group(SyncGroupRequest(
            group_id=group, generation_id=joined.generation_id, member_id=joined.member_id,
            assignments=assignments, group_instance_id=instance), reply)
        return reply

    def heartbeat(self, joined: JoinGroupResult, group: str = "g",
                  instance: str | None = None) -> int:
        return self.groups.heartbeat(group, joined.generation_id, joined.member_id, instance)

    def state(self, group: str = "g") -> str:
        return self.groups.describe_group(group).state

    def form(self, *session_ms: int, group: str = "g",
             instances: tuple[str | None, ...] = ()) -> list[JoinGroupResult]:
        """A Stable group of one member per session timeout, joined at once, synced; the
        members with an entry in ``instances`` are static ones with that group.instance.id."""
        ids = instances or (None,) * len(session_ms)
        joins = [self.join(group=group, session_ms=ms, group_instance_id=instance)
                 for ms, instance in zip(session_ms, ids, strict=True)]
        self.end_initial_delay(len(joins))
        joined = [f.result(0) for f in joins]
        assert {r.error_code for r in joined} == {0}
        leader = next(r for r in joined if r.members)
        synced = [self.sync(r, group=group) for r in joined if r is not leader]
        synced.append(self.sync(leader, group=group))
        assert [f.result(0).error_code for f in synced] == [0] * len(joined)
        assert self.state(group) == "Stable"
        return joined


@pytest.fixture
def catalog(data_dir: str) -> Iterator[Catalog]:
    """The catalog of a data directory with topic ``t`` of 6 partitions."""
    catalog = Catalog.open(data_dir)
    catalog.create_topic("t", PARTITIONS, {}, 0)
    yield catalog
    catalog.close()


@pytest.fixture
def h(catalog: Catalog) -> Harness:
    return Harness(catalog, CONFIG)


# -- the group state machine ---------------------------------------------------------------

# Kafka's ClassicGroupState table, written out independently of the code under test.
ALLOWED = {
    (GroupState.STABLE, GroupState.PREPARING_REBALANCE),
    (GroupState.COMPLETING_REBALANCE, GroupState.PREPARING_REBALANCE),
    (GroupState.EMPTY, GroupState.PREPARING_REBALANCE),
    (GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE),
    (GroupState.COMPLETING_REBALANCE, GroupState.STABLE),
    (GroupState.PREPARING_REBALANCE, GroupState.EMPTY),
    *((state, GroupState.DEAD) for state in GroupState),
}

# A legal way into each state from a new (Empty) group.
PATHS = {
    GroupState.EMPTY: (),
    GroupState.PREPARING_REBALANCE: (GroupState.PREPARING_REBALANCE,),
    GroupState.COMPLETING_REBALANCE: (GroupState.PREPARING_REBALANCE,
                                      GroupState.COMPLETING_REBALANCE),
    GroupState.STABLE: (GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE,
                        GroupState.STABLE),
    GroupState.DEAD: (GroupState.DEAD,),
}


def group_in(state: GroupState) -> Group:
    group = Group("g", empty_since=0)
    for step in PATHS[state]:
        group.transition_to(step)
    assert group.state is state
    return group


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transitions(current, target):
    group = group_in(current)
    group.transition_to(target)
    assert group.state is target


REFUSED = sorted(set(itertools.product(GroupState, GroupState)) - ALLOWED)


@pytest.mark.parametrize(("current", "target"), REFUSED)
def test_refused_transitions_name_both_states_and_change_nothing(current, target):
    group = group_in(current)
    with pytest.raises(IllegalStateError) as raised:
        group.transition_to(target)
    assert (raised.value.current, raised.value.target) == (current, target)
    assert str(current) in str(raised.value) and str(target) in str(raised.value)
    assert group.state is current


def test_the_refused_list_is_what_kafka_refuses():
    # the obvious mistakes, so that the table cannot be silently made permissive
    assert (GroupState.EMPTY, GroupState.STABLE) in REFUSED
    assert (GroupState.STABLE, GroupState.COMPLETING_REBALANCE) in REFUSED
    assert (GroupState.DEAD, GroupState.EMPTY) in REFUSED
    assert (GroupState.PREPARING_REBALANCE, GroupState.PREPARING_REBALANCE) in REFUSED
    assert len(REFUSED) == 25 - len(ALLOWED) == 14


def test_a_leader_leaving_hands_over_to_the_longest_standing_member():
    group = Group("g", empty_since=0)
    for member_id in ("a", "b", "c"):
        group.add(Member(member_id, session_deadline=0))
    assert group.leader_id == "a"
    group.remove("b")
    assert group.leader_id == "a"
    group.remove("a")
    assert group.leader_id == "c"
    group.remove("c")
    assert group.leader_id is None


# -- joining and syncing -------------------------------------------------------------------


def test_a_first_member_waits_out_the_initial_delay_then_leads_generation_1(h):
    reply = h.join()
    assert h.scheduler.due == START_MS + DELAY_MS
    assert h.state() == "PreparingRebalance"
    h.advance(DELAY_MS - 1)
    assert not reply.done()
    h.advance(1)
    joined = reply.result(0)
    assert (joined.error_code, joined.generation_id, joined.protocol_type,
            joined.protocol_name) == (0, 1, "consumer", "range")
    assert joined.leader_id == joined.member_id and joined.member_id.startswith("c0-")
    assert [(m.member_id, m.metadata) for m in joined.members] == [(joined.member_id, b"sub-r")]
    assert h.state() == "CompletingRebalance"
    # its session runs from the end of the rebalance, and the coordinator will wake for it
    assert h.scheduler.due == h.clock.now_ms + SESSION_MS


def test_followers_syncs_wait_for_the_leaders_assignment(h):
    joins = [h.join(), h.join()]
    h.end_initial_delay(2)
    leader, follower = sorted((f.result(0) for f in joins), key=lambda r: not r.members)
    assert follower.members == () and follower.leader_id == leader.member_id
    parked = h.sync(follower)
    assert not parked.done()
    assert h.state() == "CompletingRebalance"
    led = h.sync(leader, assignments=((leader.member_id, b"A"), (follower.member_id, b"B")))
    assert led.result(0) == SyncGroupResult(0, b"A", "consumer", "range")
    assert parked.result(0) == SyncGroupResult(0, b"B", "consumer", "range")
    assert h.state() == "Stable"
    # a Stable group answers a sync at once, with the same assignment
    assert h.sync(follower).result(0).assignment == b"B"
    described = h.groups.describe_group("g")
    assert {(m.member_id, m.assignment, m.metadata) for m in described.members} == {
        (leader.member_id, b"A", b"sub-r"), (follower.member_id, b"B", b"sub-r")}


def test_bad_joins_are_answered_at_once(h):
    def error(**kwargs) -> int:
        reply = h.join(**kwargs)
        assert reply.done()
        return reply.result(0).error_code

    assert error(group="") == InvalidGroupId.code
    assert error(session_ms=49) == InvalidSessionTimeout.code
    assert error(session_ms=CONFIG.group_max_session_timeout_ms + 1) == InvalidSessionTimeout.code
    assert error(protocols=()) == InconsistentGroupProtocol.code
    assert error(member_id="stranger") == UnknownMemberId.code
    h.join()
    assert error(protocols=(("sticky", b""),)) == InconsistentGroupProtocol.code
    assert error(protocol_type="connect") == InconsistentGroupProtocol.code
    assert error(member_id="stranger") == UnknownMemberId.code


def test_the_protocol_is_the_common_one_most_members_prefer(h):
    # the leader prefers range, but two of three prefer sticky; roundrobin is not common
    joins = [h.join(protocols=(("range", b"r"), ("sticky", b"s"))),
             h.join(protocols=(("sticky", b"s"), ("range", b"r"))),
             h.join(protocols=(("sticky", b"s"), ("range", b"r"), ("roundrobin", b"rr")))]
    h.advance(DELAY_MS)  # the later arrivals extend the initial delay once
    assert not joins[0].done()
    h.advance(DELAY_MS)
    assert {f.result(0).protocol_name for f in joins} == {"sticky"}
    leader = next(f.result(0) for f in joins if f.result(0).members)
    assert [m.metadata for m in leader.members] == [b"s"] * 3


def test_kip_394_member_id_required_then_pending_until_it_returns(h):
    first = h.join(require_known_member_id=True).result(0)
    assert first.error_code == MemberIdRequired.code and first.member_id.startswith("c0-")
    assert h.scheduler.due == START_MS + SESSION_MS  # the id is held for one session
    again = h.join(first.member_id, require_known_member_id=True)
    h.wake_up()
    joined = again.result(0)
    assert (joined.error_code, joined.member_id, joined.leader_id) == (
        0, first.member_id, first.member_id)


def test_a_kip_394_id_never_used_expires_with_its_session(h):
    first = h.join(require_known_member_id=True).result(0)
    h.advance(SESSION_MS)
    assert h.join(first.member_id).result(0).error_code == UnknownMemberId.code


# -- heartbeats, leaving and rebalancing ---------------------------------------------------


def test_heartbeats(h):
    a, b = h.form(SESSION_MS, SESSION_MS)
    assert h.heartbeat(a) == 0
    assert h.groups.heartbeat("g", a.generation_id + 1, a.member_id) == IllegalGeneration.code
    assert h.groups.heartbeat("g", a.generation_id, "stranger") == UnknownMemberId.code
    assert h.groups.heartbeat("nope", 1, a.member_id) == UnknownMemberId.code
    assert h.groups.heartbeat("", 1, a.member_id) == InvalidGroupId.code
    h.join()  # a newcomer: the others must join again
    assert [h.heartbeat(a), h.heartbeat(b)] == [RebalanceInProgress.code] * 2


def test_a_heartbeat_moves_the_session_deadline(h):
    a, b = h.form(1000, 1000)
    h.advance(600)
    assert h.heartbeat(a) == 0
    h.advance(399)
    assert h.groups.stats().members_per_group == {"g": 2}
    h.advance(1)  # b's session ends now, a's only 600 ms later
    assert h.groups.stats().members_per_group == {"g": 1}
    assert h.state() == "PreparingRebalance"
    assert h.heartbeat(b) == UnknownMemberId.code
    assert h.heartbeat(a) == RebalanceInProgress.code


def test_session_expiry_removes_the_member_exactly_at_its_deadline(h):
    steady, silent = h.form(SESSION_MS, 200)
    h.advance(199)
    assert h.heartbeat(steady) == 0
    assert h.scheduler.due == h.clock.now_ms + 1  # woken for the silent member's deadline
    h.wake_up()
    assert h.heartbeat(silent) == UnknownMemberId.code
    assert h.heartbeat(steady) == RebalanceInProgress.code
    assert h.groups.stats() == CoordinatorStats(2, {"g": 1})
    # the lone member joining again completes the rebalance at once
    again = h.join(steady.member_id).result(0)
    assert (again.error_code, again.generation_id, again.leader_id) == (
        0, 2, steady.member_id)


def test_a_parked_member_does_not_expire(h):
    a, b = h.form(200, SESSION_MS)
    h.join()  # rebalance: a rejoins and waits for b
    parked = h.join(a.member_id)
    h.advance(199)
    assert h.heartbeat(b) == RebalanceInProgress.code
    h.advance(1000)  # far past a's session: parked in JoinGroup, it cannot heartbeat
    assert not parked.done()
    rejoined = h.join(b.member_id)
    assert parked.result(0).generation_id == rejoined.result(0).generation_id == 2


def test_a_new_member_makes_everyone_rejoin_and_the_last_rejoin_completes_it(h):
    a, b = h.form(SESSION_MS, SESSION_MS)
    newcomer = h.join()
    assert h.state() == "PreparingRebalance"
    assert h.scheduler.due == h.clock.now_ms + REBALANCE_TIMEOUT_MS
    again_a = h.join(a.member_id)
    assert not newcomer.done() and not again_a.done()
    again_b = h.join(b.member_id)
    second = [f.result(0) for f in (newcomer, again_a, again_b)]
    assert {(r.error_code, r.generation_id, r.leader_id) for r in second} == {
        (0, 2, a.leader_id)}
    assert h.heartbeat(a) == IllegalGeneration.code
    assert h.groups.stats().rebalances_total == 2


def test_a_follower_rejoining_unchanged_keeps_the_generation_the_leader_does_not(h):
    leader, follower = sorted(h.form(SESSION_MS, SESSION_MS), key=lambda r: not r.members)
    same = h.join(follower.member_id).result(0)
    assert (same.error_code, same.generation_id, same.members) == (0, 1, ())
    assert h.state() == "Stable"
    h.join(leader.member_id)
    assert h.state() == "PreparingRebalance"


def test_a_changed_subscription_rebalances(h):
    leader, follower = sorted(h.form(SESSION_MS, SESSION_MS), key=lambda r: not r.members)
    assert not h.join(follower.member_id, protocols=(("range", b"other"),)).done()
    assert h.state() == "PreparingRebalance"


def test_a_join_while_completing_fails_parked_syncs(h):
    joins = [h.join(), h.join()]
    h.end_initial_delay(2)
    follower = next(f.result(0) for f in joins if not f.result(0).members)
    parked = h.sync(follower)
    h.join()
    assert parked.result(0).error_code == RebalanceInProgress.code
    assert h.state() == "PreparingRebalance"


def test_a_member_that_joins_twice_gets_its_first_join_superseded(h):
    a, b = h.form(SESSION_MS, SESSION_MS)
    h.join()
    first = h.join(a.member_id)
    second = h.join(a.member_id)
    assert first.result(0).error_code == RebalanceInProgress.code
    assert not second.done()


def test_leaving(h):
    a, b, c = h.form(SESSION_MS, SESSION_MS, SESSION_MS)
    assert h.groups.leave_group("g", [c.member_id]) == 0
    assert h.state() == "PreparingRebalance"
    assert h.groups.leave_group("g", [a.member_id, "nobody"]) == UnknownMemberId.code
    assert h.groups.leave_group("", [b.member_id]) == InvalidGroupId.code
    assert h.groups.leave_group("nope", [b.member_id]) == UnknownMemberId.code
    # b, the only one left, has not joined again: the rebalance waits for it
    assert h.state() == "PreparingRebalance"
    assert h.groups.leave_group("g", [b.member_id]) == 0
    assert h.groups.list_groups() == [("g", "consumer", "Empty")]
    assert h.groups.stats() == CoordinatorStats(2, {"g": 0})
    assert h.heartbeat(b) == UnknownMemberId.code


def test_a_leaving_member_fails_its_parked_join(h):
    a, b = h.form(SESSION_MS, SESSION_MS)
    h.join()
    parked = h.join(a.member_id)
    assert h.groups.leave_group("g", [a.member_id]) == 0
    assert parked.result(0).error_code == UnknownMemberId.code


def test_members_that_do_not_rejoin_in_the_rebalance_timeout_are_dropped(h):
    a, laggard = h.form(SESSION_MS * 10, SESSION_MS * 10)
    newcomer = h.join(session_ms=SESSION_MS * 10)
    again = h.join(a.member_id, session_ms=SESSION_MS * 10)
    started = h.clock.now_ms
    assert h.scheduler.due == started + REBALANCE_TIMEOUT_MS
    h.advance(REBALANCE_TIMEOUT_MS - 1)
    assert not again.done()
    h.advance(1)
    second = [again.result(0), newcomer.result(0)]
    assert {(r.error_code, r.generation_id) for r in second} == {(0, 2)}
    leader = next(r for r in second if r.members)
    assert {m.member_id for m in leader.members} == {a.member_id, second[1].member_id}
    assert h.heartbeat(laggard) == UnknownMemberId.code


def test_a_rebalance_nobody_rejoins_leaves_the_group_empty(h):
    a, b = h.form(SESSION_MS * 10, SESSION_MS * 10)
    assert h.groups.leave_group("g", [a.member_id]) == 0
    h.advance(REBALANCE_TIMEOUT_MS - 1)
    assert h.state() == "PreparingRebalance"
    h.advance(1)  # b never joined again
    assert h.state() == "Empty"
    assert h.heartbeat(b) == UnknownMemberId.code
    assert h.groups.describe_group("g").members == ()


# -- the initial rebalance delay -----------------------------------------------------------


def test_the_initial_delay_extends_while_new_members_keep_coming(h):
    first = h.join()
    h.advance(150)
    second = h.join()
    h.advance(150)  # the delay's end: a member came, so wait one delay more
    assert not first.done() and not second.done()
    assert h.scheduler.due == START_MS + 2 * DELAY_MS
    h.wake_up()
    assert {(f.result(0).error_code, f.result(0).generation_id) for f in (first, second)} == {
        (0, 1)}


def test_the_initial_delay_is_bounded_by_the_rebalance_timeout(h):
    replies = [h.join(rebalance_ms=1000)]
    for _ in range(10):  # a new member before every deadline
        if replies[0].done():
            break
        replies.append(h.join(rebalance_ms=1000))
        h.wake_up()
    # 300 + 300 + 300 + the 100 left of the rebalance timeout
    assert h.clock.now_ms == START_MS + 1000
    assert len(replies) == 5
    assert {f.result(0).generation_id for f in replies} == {1}


def test_no_initial_delay_outside_the_first_generation(h):
    (a,) = h.form(SESSION_MS)
    newcomer = h.join()
    assert h.scheduler.due == h.clock.now_ms + REBALANCE_TIMEOUT_MS
    again = h.join(a.member_id)  # everyone joined: no waiting for more
    assert newcomer.result(0).generation_id == again.result(0).generation_id == 2


def test_an_emptied_group_waits_the_initial_delay_again(h):
    (a,) = h.form(SESSION_MS)
    h.groups.leave_group("g", [a.member_id])
    assert h.scheduler.due == h.clock.now_ms  # a rebalance with nobody to wait for ends now
    assert h.state() == "Empty"  # the next call runs it
    reply = h.join()
    assert h.scheduler.due == h.clock.now_ms + DELAY_MS
    h.wake_up()
    assert reply.result(0).generation_id == 3


# -- offsets -------------------------------------------------------------------------------


def test_commit_checks(h):
    tp = ("t", 0)
    assert h.groups.commit_offsets("standalone", -1, "", {tp: (1, None)}) == {tp: 0}
    assert h.groups.commit_offsets("unknown", 3, "m", {tp: (1, None)}) == {
        tp: IllegalGeneration.code}
    a, b = h.form(SESSION_MS, SESSION_MS)

    def commit(joined, generation=None, offset=5, metadata="meta") -> int:
        generation = joined.generation_id if generation is None else generation
        return h.groups.commit_offsets("g", generation, joined.member_id,
                                       {tp: (offset, metadata)})[tp]

    assert commit(a) == 0
    assert commit(a, generation=0) == IllegalGeneration.code
    assert h.groups.commit_offsets("g", 1, "stranger", {tp: (1, None)}) == {
        tp: UnknownMemberId.code}
    assert h.groups.commit_offsets("g", -1, "", {tp: (1, None)}) == {tp: UnknownMemberId.code}
    newcomer = h.join()
    assert commit(b, offset=7) == 0  # PreparingRebalance: commit before giving partitions up
    second = [f.result(0) for f in (newcomer, h.join(a.member_id), h.join(b.member_id))]
    assert commit(second[1]) == RebalanceInProgress.code  # CompletingRebalance
    assert h.groups.fetch_offsets("g", [tp, ("t", 1)]) == {tp: (7, "meta"), ("t", 1): (-1, "")}

    codes = h.groups.commit_offsets("g", -1, "", {("t", 1): (3, None)})
    assert codes == {("t", 1): UnknownMemberId.code}  # standalone, and the group has members
    for r in second:
        h.sync(r)
    assert h.state() == "Stable"
    codes = h.groups.commit_offsets("g", 2, second[0].member_id, {
        ("t", 1): (3, None), ("t", PARTITIONS): (3, None), ("t", -1): (3, None),
        ("nope", 0): (3, None), ("t", 2): (3, "x" * (CONFIG.offset_metadata_max_bytes + 1)),
        ("t", 3): (4, "x" * CONFIG.offset_metadata_max_bytes)})
    assert codes == {("t", 1): 0, ("t", PARTITIONS): UnknownTopicOrPartition.code,
                     ("t", -1): UnknownTopicOrPartition.code,
                     ("nope", 0): UnknownTopicOrPartition.code,
                     ("t", 2): OffsetMetadataTooLarge.code, ("t", 3): 0}
    assert h.groups.fetch_offsets("g") == {
        tp: (7, "meta"), ("t", 1): (3, ""), ("t", 3): (4, "x" * CONFIG.offset_metadata_max_bytes)}


def test_a_commit_keeps_the_members_session(h):
    a, b = h.form(1000, SESSION_MS)
    h.advance(900)
    assert h.groups.commit_offsets("g", 1, a.member_id, {("t", 0): (1, None)}) == {("t", 0): 0}
    h.advance(900)
    assert h.heartbeat(a) == 0
    assert h.state() == "Stable"


def test_commits_are_stamped_with_the_clock(h, catalog):
    h.clock.now_ms += 1234
    h.groups.commit_offsets("standalone", -1, "", {("t", 0): (1, None)})
    (stored,) = catalog.committed_offsets("standalone")
    assert (stored.offset, stored.metadata, stored.commit_ms) == (1, "", START_MS + 1234)


def test_offsets_expire_once_a_group_is_empty_past_retention(catalog):
    config = CoordinatorConfig(group_initial_rebalance_delay_ms=0, offsets_retention_minutes=1,
                               offsets_retention_check_interval_ms=1000)
    h = Harness(catalog, config)
    assert h.scheduler.due == START_MS + 1000  # the first sweep
    joined = h.join(group="active", session_ms=600_000)
    h.wake_up()
    member = joined.result(0)
    assert h.sync(member, group="active").result(0).error_code == 0
    h.groups.commit_offsets("active", 1, member.member_id, {("t", 0): (5, None)})
    h.groups.commit_offsets("idle", -1, "", {("t", 0): (6, None)})
    h.advance(59_000)
    assert [g for g, _, _ in h.groups.list_groups()] == ["active", "idle"]
    h.advance(2000)  # a minute since the commits, and the sweep that is due runs
    assert h.groups.list_groups() == [("active", "consumer", "Stable")]
    assert h.groups.fetch_offsets("active") == {("t", 0): (5, "")}
    assert h.groups.fetch_offsets("idle") == {}
    assert h.groups.describe_group("idle").state == "Dead"


def test_a_group_empty_for_less_than_retention_keeps_old_offsets(catalog):
    config = CoordinatorConfig(group_initial_rebalance_delay_ms=0, offsets_retention_minutes=1,
                               offsets_retention_check_interval_ms=1000)
    h = Harness(catalog, config)
    h.groups.commit_offsets("g", -1, "", {("t", 0): (6, None)})
    h.clock.now_ms += 50_000
    joined = h.join(session_ms=600_000)
    h.wake_up()
    h.groups.leave_group("g", [joined.result(0).member_id])
    h.wake_up()
    assert h.state() == "Empty"
    emptied_at = h.clock.now_ms
    h.advance(30_000)  # the commit is 80 s old, but the group has been empty only 30 s
    assert h.groups.fetch_offsets("g") == {("t", 0): (6, "")}
    h.clock.now_ms = emptied_at + 60_000
    h.groups.list_groups()  # runs the sweep that is due
    assert h.groups.fetch_offsets("g") == {}
    assert h.groups.list_groups() == []


def test_groups_with_committed_offsets_are_known_after_a_restart(catalog):
    Harness(catalog, CONFIG).groups.commit_offsets("old", -1, "", {("t", 1): (9, "m")})
    h = Harness(catalog, CONFIG)
    assert h.groups.list_groups() == [("old", "", "Empty")]
    assert h.groups.fetch_offsets("old") == {("t", 1): (9, "m")}


# -- administration ------------------------------------------------------------------------


def test_delete_group(h):
    a, b = h.form(SESSION_MS, SESSION_MS)
    h.groups.commit_offsets("g", 1, a.member_id, {("t", 0): (1, None)})
    assert h.groups.delete_group("g") == NonEmptyGroup.code
    assert h.groups.delete_group("nobody") == GroupIdNotFound.code
    h.groups.leave_group("g", [a.member_id, b.member_id])
    assert h.state() == "Empty"
    assert h.groups.delete_group("g") == 0
    assert h.groups.fetch_offsets("g") == {}
    assert h.groups.list_groups() == []
    assert h.state() == "Dead"


def test_describe_shows_metadata_and_assignments_only_when_stable(h):
    assert h.groups.describe_group("nobody").state == "Dead"
    (a,) = h.form(SESSION_MS)
    stable = h.groups.describe_group("g")
    assert (stable.protocol_type, stable.protocol) == ("consumer", "range")
    (member,) = stable.members
    assert (member.client_id, member.client_host, member.metadata, member.assignment) == (
        "c0", "/10.0.0.1", b"sub-r", a.member_id.encode())
    h.join()
    preparing = h.groups.describe_group("g")
    assert (preparing.state, preparing.protocol) == ("PreparingRebalance", "")
    assert {(m.metadata, m.assignment) for m in preparing.members} == {(b"", b"")}


def test_abandon_answers_parked_requests_not_coordinator(h):
    joins = [h.join(), h.join()]
    h.end_initial_delay(2)
    follower = next(f.result(0) for f in joins if not f.result(0).members)
    parked_sync = h.sync(follower)
    parked_join = h.join(group="other")
    assert not parked_sync.done() and not parked_join.done()
    h.groups.abandon()
    assert parked_sync.result(0) == SyncGroupResult(NotCoordinator.code)
    joined = parked_join.result(0)
    assert joined.error_code == NotCoordinator.code and joined.member_id.startswith("c2-")


def test_sync_errors(h):
    (a,) = h.form(SESSION_MS)

    def error(**changes) -> int:
        fields = {"group_id": "g", "generation_id": a.generation_id,
                  "member_id": a.member_id} | changes
        reply: Future = Future()
        h.groups.sync_group(SyncGroupRequest(**fields), reply)
        assert reply.done()
        return reply.result(0).error_code

    assert error() == 0
    assert error(group_id="") == InvalidGroupId.code
    assert error(member_id="stranger") == UnknownMemberId.code
    assert error(generation_id=7) == IllegalGeneration.code
    assert error(protocol_name="roundrobin") == InconsistentGroupProtocol.code
    assert error(protocol_type="connect") == InconsistentGroupProtocol.code
    assert error(protocol_type="consumer", protocol_name="range") == 0
    h.join()
    assert error() == RebalanceInProgress.code


# -- error precedence (Kafka's classic group coordinator) -----------------------------------


def completing(h: Harness, a: JoinGroupResult, b: JoinGroupResult,
               instances: tuple[str | None, str | None] = (None, None)
               ) -> tuple[JoinGroupResult, JoinGroupResult]:
    """Take a Stable group of a and b to CompletingRebalance of the next generation (a
    newcomer joins and everyone joins again); a's and b's new answers."""
    joins = [h.join(), h.join(a.member_id, group_instance_id=instances[0]),
             h.join(b.member_id, group_instance_id=instances[1])]
    assert {f.result(0).error_code for f in joins} == {0}
    assert h.state() == "CompletingRebalance"
    return joins[1].result(0), joins[2].result(0)


def test_a_stale_commit_while_completing_a_rebalance_is_an_illegal_generation(h):
    """Kafka's ``ClassicGroup.validateOffsetCommit`` (reached from
    ``OffsetMetadataManager.validateOffsetCommit``) checks the member, then the generation,
    and the CompletingRebalance state last: a commit of an old generation can never
    succeed, and REBALANCE_IN_PROGRESS would have the client (librdkafka's cooperative
    consumer) retry it forever."""
    a, b = h.form(SESSION_MS, SESSION_MS)
    completing(h, a, b)
    tp = ("t", 0)
    assert h.groups.commit_offsets("g", b.generation_id, b.member_id, {tp: (1, None)}) == {
        tp: IllegalGeneration.code}
    assert h.groups.commit_offsets("g", 2, "stranger", {tp: (1, None)}) == {
        tp: UnknownMemberId.code}
    assert h.groups.commit_offsets("g", 2, b.member_id, {tp: (1, None)}) == {
        tp: RebalanceInProgress.code}


def test_member_and_generation_come_before_the_state_in_heartbeat_and_sync(h):
    """``GroupMetadataManager.validateClassicGroupHeartbeat`` and ``validateSyncGroup``:
    ``ClassicGroup.validateMember`` (FENCED_INSTANCE_ID, UNKNOWN_MEMBER_ID), then
    ILLEGAL_GENERATION, and only then REBALANCE_IN_PROGRESS for a PreparingRebalance group."""
    a, b = h.form(SESSION_MS, SESSION_MS, instances=("i-a", "i-b"))
    h.join()  # a newcomer: PreparingRebalance
    assert h.heartbeat(a, instance="i-a") == RebalanceInProgress.code
    stale = JoinGroupResult(0, a.generation_id - 1, member_id=a.member_id)
    assert h.heartbeat(stale, instance="i-a") == IllegalGeneration.code
    assert h.heartbeat(a, instance="i-b") == FencedInstanceId.code
    assert h.heartbeat(stale, instance="i-b") == FencedInstanceId.code
    assert h.heartbeat(a, instance="i-nobody") == UnknownMemberId.code
    assert h.sync(stale, instance="i-a").result(0).error_code == IllegalGeneration.code
    assert h.sync(a, instance="i-b").result(0).error_code == FencedInstanceId.code
    assert h.sync(a, instance="i-a").result(0).error_code == RebalanceInProgress.code


# -- static membership (KIP-345) ------------------------------------------------------------


def restart(h: Harness, instance: str, **kwargs) -> Future:
    """A static member's consumer restarted: it joins again with no member id."""
    return h.join(group_instance_id=instance, require_known_member_id=True, **kwargs)


def test_a_restarted_static_member_gets_its_assignment_back_without_a_rebalance(h):
    """Kafka's ``updateStaticMemberThenRebalanceOrCompleteJoin`` in a Stable group whose
    protocol does not change: the member is replaced under a new id and answered at once
    with the current generation; the leader named is the old one, so a restarted leader
    does not assign again."""
    a, b = h.form(SESSION_MS, SESSION_MS, instances=("i-a", "i-b"))
    assert a.members  # a leads
    back = restart(h, "i-a").result(0)
    assert back.error_code == 0 and back.member_id.startswith("i-a-")
    assert back.member_id != a.member_id
    assert (back.generation_id, back.protocol_name, back.leader_id, back.members) == (
        a.generation_id, "range", a.member_id, ())
    assert h.state() == "Stable"
    synced = h.sync(back, instance="i-a").result(0)
    assert (synced.error_code, synced.assignment) == (0, a.member_id.encode())
    assert h.heartbeat(b, instance="i-b") == 0
    assert h.groups.stats().rebalances_total == 1
    # the old consumer, if it is still alive, is fenced; without its instance id, unknown
    assert h.heartbeat(a, instance="i-a") == FencedInstanceId.code
    assert h.heartbeat(a) == UnknownMemberId.code
    assert h.groups.commit_offsets("g", a.generation_id, a.member_id, {("t", 0): (1, None)},
                                   group_instance_id="i-a") == {("t", 0): FencedInstanceId.code}
    assert h.join(a.member_id, group_instance_id="i-a").result(0).error_code == (
        FencedInstanceId.code)
    described = {m.group_instance_id: m.member_id for m in h.groups.describe_group("g").members}
    assert described == {"i-a": back.member_id, "i-b": b.member_id}


def test_a_static_member_restarting_within_its_session_never_leaves(h):
    """The replacement carries on the old member's session: no expiry, no rebalance."""
    h.form(SESSION_MS, instances=("i-a",))
    h.advance(SESSION_MS - 1)
    back = restart(h, "i-a").result(0)
    h.advance(SESSION_MS - 1)
    assert h.heartbeat(back, instance="i-a") == 0
    assert h.state() == "Stable" and h.groups.stats().rebalances_total == 1


def test_a_new_static_member_joins_without_kip_394s_round_trip(h):
    """``classicGroupJoinNewStaticMember`` adds it at once: MEMBER_ID_REQUIRED is for
    dynamic members only."""
    joining = restart(h, "i-a")
    assert not joining.done()
    h.wake_up()
    joined = joining.result(0)
    assert joined.error_code == 0 and joined.member_id.startswith("i-a-")
    assert joined.members[0].group_instance_id == "i-a"


def test_a_restarted_static_member_that_changes_the_protocol_rebalances(h):
    """Stable, but the protocol the group would select changes: Kafka rebalances."""
    a, b = h.form(SESSION_MS, SESSION_MS, instances=("i-a", "i-b"))
    back = restart(h, "i-b", protocols=(("roundrobin", b"sub-rr"),))
    assert not back.done() and h.state() == "PreparingRebalance"
    rejoined = h.join(a.member_id, group_instance_id="i-a").result(0)
    assert (rejoined.generation_id, rejoined.protocol_name) == (2, "roundrobin")
    assert back.result(0).error_code == 0


def test_replacing_a_static_member_fences_its_parked_requests(h):
    """``ClassicGroup.replaceStaticMember`` answers the old member's parked JoinGroup or
    SyncGroup FENCED_INSTANCE_ID; while completing a rebalance the group rebalances again,
    since the leader may be assigning to the old id."""
    a, b = h.form(SESSION_MS, SESSION_MS, instances=("i-a", "i-b"))
    a2, b2 = completing(h, a, b, ("i-a", "i-b"))
    parked_sync = h.sync(b2, instance="i-b")
    restart(h, "i-b")
    assert parked_sync.result(0).error_code == FencedInstanceId.code
    assert h.state() == "PreparingRebalance"
    parked_join = h.join(a2.member_id, group_instance_id="i-a")
    restart(h, "i-a")
    assert parked_join.result(0).error_code == FencedInstanceId.code


def test_leaving_by_group_instance_id(h):
    """LeaveGroup v3+ (Kafka's classic LeaveGroup, member by member): an instance id with no
    member id removes whoever holds it; with a member id that no longer holds it,
    FENCED_INSTANCE_ID; an instance id nobody holds, UNKNOWN_MEMBER_ID."""
    a, b, c = h.form(SESSION_MS, SESSION_MS, SESSION_MS, instances=("i-a", "i-b", None))
    back = restart(h, "i-a").result(0)
    assert h.groups.leave_group("g", [MemberIdentity(a.member_id, "i-a")]) == (
        FencedInstanceId.code)
    assert h.groups.leave_group("g", [MemberIdentity("", "i-nobody")]) == UnknownMemberId.code
    assert h.state() == "Stable"
    assert h.groups.leave_group("g", [MemberIdentity("", "i-b")]) == 0
    assert h.state() == "PreparingRebalance"
    assert h.groups.leave_group("g", [MemberIdentity(back.member_id, "i-a"),
                                      MemberIdentity(c.member_id)]) == 0
    assert h.groups.describe_group("g").members == ()
