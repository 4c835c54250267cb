"""KIP-848's plain code: the server-side assignors, member reconciliation and the group's
epochs and sessions, driven by a manual clock (no threads, no server)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.groups.consumer_group import ConsumerGroup
from eventstore.groups.reconciliation import MemberAssignment, MemberState, reconcile
from eventstore.groups.server_assignors import ASSIGNORS, MemberSpec, range_, uniform
from tests.support import ManualClock

T = frozenset({"t"})


def test_uniform_balances_and_is_sticky_when_a_member_joins() -> None:
    first = uniform({"a": MemberSpec(T), "b": MemberSpec(T)}, {"t": 12})
    assert sorted(len(v) for v in first.values()) == [6, 6]
    second = uniform(
        {"a": MemberSpec(T, first["a"]), "b": MemberSpec(T, first["b"]), "c": MemberSpec(T)},
        {"t": 12},
    )
    assert sorted(len(v) for v in second.values()) == [4, 4, 4]
    assert second["a"] <= first["a"] and second["b"] <= first["b"]


def test_range_balances_each_topic_lowest_member_takes_the_extra() -> None:
    both = frozenset({"x", "y"})
    out = range_({"a": MemberSpec(both), "b": MemberSpec(both)}, {"x": 3, "y": 3})
    assert len(out["a"]) == 4 and len(out["b"]) == 2
    assert {p for t, p in out["a"] if t == "x"} | {p for t, p in out["b"] if t == "x"} == {0, 1, 2}


def test_revoked_partition_goes_to_new_owner_only_after_acknowledged() -> None:
    clock = ManualClock()
    group = ConsumerGroup("g", clock)
    group.set_topics({"t": 2})
    a = group.heartbeat("a", T)
    assert a.assigned == {("t", 0), ("t", 1)} and a.state is MemberState.STABLE
    b = group.heartbeat("b", T)
    assert b.state is MemberState.UNRELEASED_PARTITIONS and not b.assigned
    a = group.heartbeat("a")
    assert a.state is MemberState.UNREVOKED_PARTITIONS and len(a.pending_revocation) == 1
    assert group.heartbeat("b").assigned == frozenset()
    a = group.heartbeat("a", owned=a.assigned)
    assert a.state is MemberState.STABLE and a.epoch == group.target_epoch
    b = group.heartbeat("b")
    assert b.state is MemberState.STABLE and b.assigned | a.assigned == {("t", 0), ("t", 1)}
    assert not b.assigned & a.assigned


def test_session_timeout_removes_member_leave_is_immediate() -> None:
    clock = ManualClock()
    group = ConsumerGroup("g", clock, session_timeout_ms=45_000)
    group.set_topics({"t": 4})
    group.heartbeat("a", T)
    group.heartbeat("b", T)
    clock.advance(44_999)
    group.heartbeat("b")
    assert group.expire_members() == []
    clock.advance(1)
    assert group.expire_members() == ["a"]
    assert len(group.heartbeat("b").assigned) == 4
    group.leave("b")
    assert group.members == {}


def test_unrevoked_member_without_report_keeps_waiting() -> None:
    current = MemberAssignment(
        1, MemberState.UNREVOKED_PARTITIONS, frozenset(), frozenset({("t", 0)})
    )
    assert reconcile(current, 2, frozenset(), lambda tp: False, None) == current
    still = reconcile(current, 2, frozenset(), lambda tp: False, frozenset({("t", 0)}))
    assert still == current
    done = reconcile(current, 2, frozenset(), lambda tp: False, frozenset())
    assert done == MemberAssignment(2, MemberState.STABLE)


topic_names = st.sampled_from(["a", "b", "c"])
subscriptions = st.frozensets(topic_names, min_size=1)
member_ids = st.sampled_from([f"m{i}" for i in range(6)])
events = st.lists(
    st.one_of(
        st.tuples(st.just("join"), member_ids, subscriptions),
        st.tuples(st.just("leave"), member_ids, st.none()),
        st.tuples(st.just("topics"), st.dictionaries(topic_names, st.integers(1, 8)), st.none()),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(events, st.sampled_from(sorted(ASSIGNORS)))
def test_target_assignment_is_complete_disjoint_and_balanced(steps, name) -> None:
    members: dict[str, MemberSpec] = {}
    topics: dict[str, int] = {"a": 4}
    target: dict = {}
    for kind, arg, subs in steps:
        if kind == "join":
            members[arg] = MemberSpec(subs)
        elif kind == "leave":
            members.pop(arg, None)
        else:
            topics = arg
        specs = {m: MemberSpec(s.topics, target.get(m, frozenset())) for m, s in members.items()}
        target = ASSIGNORS[name](specs, topics)
        owned = [tp for tps in target.values() for tp in tps]
        assert len(owned) == len(set(owned))
        wanted = {
            (t, p)
            for s in members.values()
            for t in s.topics
            if t in topics
            for p in range(topics[t])
        }
        assert set(owned) == wanted
        for m, tps in target.items():
            assert all(t in members[m].topics for t, _ in tps)
        scope = [{t} for t in topics] if name == "range" else [set(topics)]
        for ts in scope:
            for tps in target.values():
                mine = [tp for tp in tps if tp[0] in ts]
                for tp in mine:
                    for taker in members:
                        if tp[0] in members[taker].topics:
                            theirs = [x for x in target[taker] if x[0] in ts]
                            assert len(theirs) >= len(mine) - 1
