"""KIP-848's group APIs: ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69),
answered by the group coordinator actor's ``consumer`` groups.

Assignments travel by topic id: each call reads the topics (name, partition count, id)
from the broker once, hands the coordinator names and counts, and turns the partitions it
answers with back into ids. Passing the topics with every heartbeat is what lets a regex
subscription pick up a topic created later.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from kio.static.protocol import ResponsePayload

from eventstore.groups.consumer_coordinator import HeartbeatCall
from eventstore.groups.server_assignors import TopicPartition
from eventstore.kafka.authorization import allowed, operations_of, refusal, topic_refusals
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.security.acl import Operation, ResourceType

GROUP_ID_NOT_FOUND = 69


def _by_topic(partitions: Iterable[TopicPartition]) -> dict[str, list[int]]:
    topics: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        topics.setdefault(topic, []).append(partition)
    return topics


def _millis_or_none(value: datetime.timedelta) -> int | None:
    """A heartbeat's duration in ms; None for -1 ("unchanged since the last")."""
    millis = int(value / datetime.timedelta(milliseconds=1))
    return None if millis < 0 else millis


async def handle_consumer_group_heartbeat(conn: Connection, request: Request
                                          ) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    refused = refusal(conn, Operation.READ, ResourceType.GROUP, body.group_id)
    if refused is None:
        topics = topic_refusals(conn, Operation.DESCRIBE, body.subscribed_topic_names or ())
        refused = next(iter(topics.values()), None)
    if refused is not None:  # GROUP_ (or TOPIC_) AUTHORIZATION_FAILED, as Kafka answers
        return make_response(request, error_code=refused, error_message=str(refused),
                             member_id=body.member_id, member_epoch=body.member_epoch)
    # a regex subscription matches only the topics the principal may describe
    infos = [info for info in await ctx.resolve(ctx.broker.list_topics())
             if allowed(conn, Operation.DESCRIBE, ResourceType.TOPIC, info.name)]
    names = {info.topic_id: info.name for info in infos}
    ids = {info.name: info.topic_id for info in infos}
    owned = None
    if body.topic_partitions is not None:
        owned = frozenset((names[t.topic_id], p) for t in body.topic_partitions
                          if t.topic_id in names for p in t.partitions)
    call = HeartbeatCall(
        group_id=body.group_id,
        member_id=body.member_id,
        member_epoch=body.member_epoch,
        instance_id=body.instance_id,
        rack_id=body.rack_id,
        topic_names=body.subscribed_topic_names,
        topic_regex=getattr(body, "subscribed_topic_regex", None),  # v1+
        assignor=body.server_assignor,
        owned=owned,
        rebalance_timeout_ms=_millis_or_none(body.rebalance_timeout),
        client_id=request.client_id or "",
        client_host=conn.client_host,
    )
    answer = await ctx.resolve(ctx.coordinator.consumer_heartbeat(
        call, {info.name: info.partitions for info in infos}))
    assignment = None
    if answer.assignment is not None:
        assignment = {"topic_partitions": [
            {"topic_id": ids[topic], "partitions": partitions}
            for topic, partitions in _by_topic(answer.assignment).items() if topic in ids]}
    return make_response(
        request,
        error_code=answer.error_code,
        error_message=answer.error_message,
        member_id=answer.member_id,
        member_epoch=answer.member_epoch,
        heartbeat_interval=answer.heartbeat_interval_ms,
        assignment=assignment,
    )


async def handle_consumer_group_describe(conn: Connection, request: Request
                                         ) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    ids = {info.name: info.topic_id for info in await ctx.resolve(ctx.broker.list_topics())}

    def assignment(partitions: Iterable[TopicPartition]) -> dict:
        return {"topic_partitions": [
            {"topic_id": ids[topic], "topic_name": topic, "partitions": parts}
            for topic, parts in _by_topic(partitions).items() if topic in ids]}

    groups = []
    for group_id in body.group_ids:
        operations = operations_of(conn, ResourceType.GROUP, group_id,
                                   body.include_authorized_operations)
        if error := refusal(conn, Operation.DESCRIBE, ResourceType.GROUP, group_id):
            groups.append({"error_code": error, "group_id": group_id,
                           "error_message": str(error), "group_state": "Dead",
                           "members": [], "authorized_operations": operations})
            continue
        d = await ctx.resolve(ctx.coordinator.consumer_describe(group_id))
        if d is None:
            groups.append({"error_code": GROUP_ID_NOT_FOUND, "group_id": group_id,
                           "error_message": f"Group {group_id} not found.",
                           "group_state": "Dead", "members": [],
                           "authorized_operations": operations})
            continue
        groups.append({
            "error_code": 0, "group_id": group_id, "group_state": d.state,
            "group_epoch": d.group_epoch, "assignment_epoch": d.assignment_epoch,
            "assignor_name": d.assignor, "authorized_operations": operations,
            "members": [{
                "member_id": m.member_id, "instance_id": m.instance_id, "rack_id": m.rack_id,
                "member_epoch": m.member_epoch, "client_id": m.client_id,
                "client_host": m.client_host, "subscribed_topic_names": m.topic_names,
                "subscribed_topic_regex": m.topic_regex,
                "assignment": assignment(m.assigned),
                "target_assignment": assignment(m.target),
                "member_type": 0,  # v1: a consumer-protocol member
            } for m in d.members],
        })
    return make_response(request, groups=groups)
