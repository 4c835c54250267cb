"""KIP-848's coordinator as plain code with a manual clock: ConsumerGroupHeartbeat's checks
(UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH, UNRELEASED_INSTANCE_ID, UNSUPPORTED_ASSIGNOR,
GROUP_MAX_SIZE_REACHED), regex subscriptions picking up new topics, static members coming
back under a new member id, sessions, rebalance timeouts (a member slow to revoke is
fenced), and OffsetCommit's member-epoch check."""

from __future__ import annotations

from eventstore.config import CoordinatorConfig
from eventstore.groups.consumer_coordinator import (
    FENCED_MEMBER_EPOCH,
    GROUP_ID_NOT_FOUND,
    GROUP_MAX_SIZE_REACHED,
    INVALID_REQUEST,
    NON_EMPTY_GROUP,
    STALE_MEMBER_EPOCH,
    STATIC_LEAVE_EPOCH,
    UNKNOWN_MEMBER_ID,
    UNRELEASED_INSTANCE_ID,
    UNSUPPORTED_ASSIGNOR,
    ConsumerGroupCoordinator,
    HeartbeatCall,
)
from tests.support import ManualClock

CONFIG = CoordinatorConfig(group_consumer_session_timeout_ms=45_000)
TOPICS = {"t": 4}


def coordinator(**config) -> tuple[ConsumerGroupCoordinator, ManualClock]:
    clock = ManualClock()
    return ConsumerGroupCoordinator(CoordinatorConfig(**config) if config else CONFIG,
                                    clock), clock


def beat(coord, member, epoch, topics=TOPICS, **fields):
    return coord.heartbeat(HeartbeatCall("g", member, epoch, **fields), topics)


def test_a_member_joins_at_the_group_epoch_with_every_partition() -> None:
    coord, _ = coordinator()
    answer = beat(coord, "a", 0, topic_names=("t",))
    assert answer.error_code == 0 and answer.member_epoch == coord.describe("g").group_epoch
    assert answer.assignment == {("t", p) for p in range(4)}
    assert answer.heartbeat_interval_ms == 5000
    again = beat(coord, "a", 1)
    assert again.member_epoch == 1 and again.assignment is None  # unchanged: not sent
    d = coord.describe("g")
    assert (d.state, d.assignment_epoch, d.assignor) == ("Stable", d.group_epoch, "uniform")


def test_epochs_are_checked_as_kafka_checks_them() -> None:
    coord, _ = coordinator()
    assert beat(coord, "a", 3).error_code == UNKNOWN_MEMBER_ID
    assert beat(coord, "a", 0).error_code == INVALID_REQUEST  # no subscription
    assert beat(coord, "a", 0, topic_names=("t",), assignor="sticky").error_code \
        == UNSUPPORTED_ASSIGNOR
    beat(coord, "a", 0, topic_names=("t",))
    assert beat(coord, "a", 7).error_code == FENCED_MEMBER_EPOCH
    epoch = coord.describe("g").members[0].member_epoch
    assert coord.check_commit("g", "a", epoch) == 0
    assert coord.check_commit("g", "a", epoch - 1) == STALE_MEMBER_EPOCH
    assert coord.check_commit("g", "nobody", 1) == UNKNOWN_MEMBER_ID
    assert coord.check_commit("other", "", -1) is None  # not a consumer group


def test_a_partition_moves_only_after_its_revocation_is_acknowledged() -> None:
    coord, _ = coordinator()
    a = beat(coord, "a", 0, topic_names=("t",))
    b = beat(coord, "b", 0, topic_names=("t",))
    assert b.assignment == frozenset()  # a still owns them all
    first = a.member_epoch
    a = beat(coord, "a", first)
    assert a.member_epoch == first and len(a.assignment) == 2  # asked to give up two
    assert beat(coord, "b", b.member_epoch).assignment is None
    a = beat(coord, "a", first, owned=a.assignment)
    assert a.member_epoch == coord.describe("g").assignment_epoch
    b = beat(coord, "b", b.member_epoch)
    mine = coord.describe("g").members[0].assigned
    assert len(b.assignment) == 2 and not b.assignment & mine
    assert coord.describe("g").state == "Stable"


def test_a_regex_subscription_picks_up_a_topic_created_later() -> None:
    coord, _ = coordinator()
    first = beat(coord, "a", 0, topic_regex="ev-.*", topics={"ev-1": 1, "other": 1})
    assert first.assignment == {("ev-1", 0)}
    later = beat(coord, "a", first.member_epoch, topics={"ev-1": 1, "ev-2": 2, "other": 1})
    assert later.assignment == {("ev-1", 0), ("ev-2", 0), ("ev-2", 1)}
    assert later.member_epoch > first.member_epoch


def test_a_static_member_gets_its_partitions_back_under_a_new_member_id() -> None:
    coord, clock = coordinator()
    a = beat(coord, "a1", 0, topic_names=("t",), instance_id="i-a")
    beat(coord, "b", 0, topic_names=("t",))
    a = beat(coord, "a1", a.member_epoch)
    beat(coord, "a1", a.member_epoch, owned=a.assignment)
    kept = coord.describe("g").members[0].assigned
    assert len(kept) == 2
    assert beat(coord, "x", 0, topic_names=("t",), instance_id="i-a").error_code \
        == UNRELEASED_INSTANCE_ID
    beat(coord, "a1", STATIC_LEAVE_EPOCH)
    clock.advance(1000)
    back = beat(coord, "a2", 0, topic_names=("t",), instance_id="i-a")
    assert back.error_code == 0 and back.assignment == kept
    assert [m.member_id for m in coord.describe("g").members] == ["a2", "b"]


def test_a_silent_member_is_removed_after_the_session_timeout() -> None:
    coord, clock = coordinator()
    beat(coord, "a", 0, topic_names=("t",))
    b = beat(coord, "b", 0, topic_names=("t",))
    clock.advance(44_999)
    beat(coord, "b", b.member_epoch)
    assert coord.run_timers() == clock() + 1  # a's deadline comes first
    clock.advance(1)
    coord.run_timers()
    assert [m.member_id for m in coord.describe("g").members] == ["b"]
    assert len(beat(coord, "b", b.member_epoch).assignment) == 4


def test_a_full_group_refuses_another_member() -> None:
    coord, _ = coordinator(group_consumer_max_size=1)
    beat(coord, "a", 0, topic_names=("t",))
    assert beat(coord, "b", 0, topic_names=("t",)).error_code == GROUP_MAX_SIZE_REACHED


def test_leaving_frees_the_partitions_at_once() -> None:
    coord, _ = coordinator()
    beat(coord, "a", 0, topic_names=("t",))
    b = beat(coord, "b", 0, topic_names=("t",))
    beat(coord, "a", -1)
    b = beat(coord, "b", b.member_epoch)
    assert b.assignment == {("t", p) for p in range(4)}
    assert coord.describe("g").state == "Stable"


def test_a_member_that_does_not_revoke_within_its_rebalance_timeout_is_fenced() -> None:
    """Kafka's rebalance timer: a member asked to give partitions up that keeps
    heartbeating with them past its rebalance timeout is removed (its next heartbeat is
    UNKNOWN_MEMBER_ID) and the member waiting for them gets them; one that revokes in
    time stays."""
    coord, clock = coordinator(group_consumer_session_timeout_ms=45_000)
    a = beat(coord, "a", 0, topic_names=("t",), rebalance_timeout_ms=10_000)
    everything = a.assignment
    b = beat(coord, "b", 0, topic_names=("t",))
    asked = beat(coord, "a", a.member_epoch, owned=everything)
    assert len(asked.assignment) == 2  # a is asked to revoke two
    assert coord.run_timers() == clock() + 10_000  # its revocation deadline, before its session
    clock.advance(9_000)
    assert beat(coord, "a", a.member_epoch, owned=everything).error_code == 0  # still waiting
    assert beat(coord, "b", b.member_epoch).assignment is None
    clock.advance(1_000)
    coord.run_timers()
    assert [m.member_id for m in coord.describe("g").members] == ["b"]
    assert beat(coord, "a", a.member_epoch, owned=everything).error_code == UNKNOWN_MEMBER_ID
    b = beat(coord, "b", b.member_epoch)
    assert b.assignment == everything

    # the same step acknowledged within the timeout: nobody is fenced
    coord, clock = coordinator()
    a = beat(coord, "a", 0, topic_names=("t",), rebalance_timeout_ms=10_000)
    beat(coord, "b", 0, topic_names=("t",))
    asked = beat(coord, "a", a.member_epoch, owned=a.assignment)
    clock.advance(9_000)
    beat(coord, "a", a.member_epoch, owned=asked.assignment)
    clock.advance(5_000)
    coord.run_timers()
    assert sorted(m.member_id for m in coord.describe("g").members) == ["a", "b"]


def test_a_group_taken_and_restored_goes_on_where_it_was() -> None:
    """take_changes gives each changed group's document (only when it changed); a new
    coordinator restoring them takes the members' heartbeats at their epochs, without
    sending their assignments again, mid-revocation included, and its sessions start
    again from the restore."""
    coord, clock = coordinator()
    a = beat(coord, "a", 0, topic_names=("t",), rebalance_timeout_ms=10_000)
    b = beat(coord, "b", 0, topic_names=("t",), instance_id="static-b")
    asked = beat(coord, "a", a.member_epoch, owned=a.assignment)  # a must give two up
    taken = coord.take_changes()
    assert list(taken) == ["g"] and taken["g"]["group_epoch"] == coord.describe("g").group_epoch
    assert beat(coord, "b", b.member_epoch).error_code == 0
    assert coord.take_changes() == {}  # a heartbeat that changed nothing writes nothing

    clock.advance(40_000)
    restored = ConsumerGroupCoordinator(CONFIG, clock)
    restored.restore("g", taken["g"])
    assert restored.describe("g") == coord.describe("g")
    assert restored.take_changes() == {}
    assert restored.run_timers() == clock() + 10_000  # a's revocation, from now
    again = restored.heartbeat(HeartbeatCall("g", "a", a.member_epoch, owned=asked.assignment),
                               TOPICS)
    assert (again.error_code, again.member_epoch) == (0, restored.describe("g").assignment_epoch)
    b = restored.heartbeat(HeartbeatCall("g", "b", b.member_epoch), TOPICS)
    assert b.error_code == 0 and len(b.assignment) == 2
    assert restored.heartbeat(HeartbeatCall("g", "c", 0, instance_id="static-b",
                                            topic_names=("t",)), TOPICS).error_code \
        == UNRELEASED_INSTANCE_ID  # the static member's instance id is still held
    assert list(restored.take_changes()) == ["g"]


def test_delete_refuses_a_group_with_members_and_forgets_an_empty_one() -> None:
    coord, _ = coordinator()
    first_epoch = beat(coord, "a", 0, topic_names=("t",)).member_epoch
    assert coord.delete("g") == NON_EMPTY_GROUP
    assert coord.delete("other") == GROUP_ID_NOT_FOUND
    beat(coord, "a", -1)  # leaves: the group is Empty
    coord.take_changes()
    assert coord.describe("g").state == "Empty"
    assert coord.delete("g") == 0
    assert coord.describe("g") is None and coord.group_ids() == []
    assert coord.take_changes() == {}
    # the id is free again: a new member starts a new group, at the first epoch again
    assert beat(coord, "b", 0, topic_names=("t",)).member_epoch == first_epoch
