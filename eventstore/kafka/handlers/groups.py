"""Consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups — all answered by the
group coordinator actor, the same one embedded consumers use.

JoinGroup and SyncGroup complete only once the rebalance does; the coordinator resolves
a concurrent future then, which the event loop awaits without blocking. The call that
hands the coordinator that future is awaited first: if it raised (a bug in the group
logic) or the coordinator had stopped, nothing would ever complete the future, so the
client is answered UNKNOWN_SERVER_ERROR (COORDINATOR_NOT_AVAILABLE for a stopped
coordinator, which clients retry), as Kafka answers an unexpected exception. Every other
group API takes its answer from the call itself; if that raises, the connection closes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
from typing import TypeVar

import pykka
from kio.static.protocol import ResponsePayload

from eventstore.errors import (
    CoordinatorNotAvailable,
    InconsistentGroupProtocol,
    InvalidGroupId,
    InvalidRequest,
    KafkaError,
)
from eventstore.groups.messages import (
    JoinGroupRequest,
    JoinGroupResult,
    MemberIdentity,
    SyncGroupRequest,
    SyncGroupResult,
)
from eventstore.kafka.authorization import (
    allowed,
    cluster_allowed,
    operations_of,
    refusal,
    topic_refusals,
)
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.kafka.context import NODE_ID
from eventstore.security.acl import Operation, ResourceType

GROUP_KEY = 0
TRANSACTION_KEY = 1  # a transactional id: this node is its transaction coordinator too
UNKNOWN_SERVER_ERROR = -1

log = logging.getLogger(__name__)

Result = TypeVar("Result", JoinGroupResult, SyncGroupResult)


async def _parked_answer(conn: Connection, request: Request, call: pykka.Future[None],
                         reply: concurrent.futures.Future[Result]) -> Result | int:
    """The result the coordinator completes ``reply`` with, once ``call`` (which handed
    it ``reply``) returned; the error code to answer instead if the call failed."""
    try:
        await conn.ctx.resolve(call)
    except pykka.ActorDeadError:
        return CoordinatorNotAvailable.code
    except Exception:
        log.exception("group coordinator failed: %s answered UNKNOWN_SERVER_ERROR;"
                      " client_id=%s peer=%s", type(request.body).__name__,
                      request.client_id, conn.client_host)
        return UNKNOWN_SERVER_ERROR
    return await asyncio.wrap_future(reply)


def _note_inconsistent(conn: Connection, request: Request, code: int,
                       fields: dict[str, object]) -> None:
    """Log an INCONSISTENT_GROUP_PROTOCOL answer once per client and group: the client
    retries its join, and nothing else would tell why it never gets in."""
    if code == InconsistentGroupProtocol.code:
        api = type(request.body).__name__.removesuffix("Request")
        group = request.body.group_id
        conn.ctx.refusals.note(
            request.client_id, conn.client_host,
            f"{api}: InconsistentGroupProtocol (group {group!r} shares no protocol with it)",
            {"group": group, **fields})


def _group_refused(conn: Connection, request: Request, operation: Operation = Operation.READ,
                   **values: object) -> ResponsePayload | None:
    """GROUP_AUTHORIZATION_FAILED for the whole request, when the authorizer refuses
    ``operation`` on its group (None: allowed)."""
    error = refusal(conn, operation, ResourceType.GROUP, request.body.group_id)
    return None if error is None else make_response(request, error_code=error, **values)


def _millis(value: datetime.timedelta) -> int:
    return int(value.total_seconds() * 1000)


async def handle_find_coordinator(conn: Connection, request: Request) -> ResponsePayload:
    body = request.body
    key_type = getattr(body, "key_type", GROUP_KEY)
    if key_type not in (GROUP_KEY, TRANSACTION_KEY):
        error = InvalidRequest(f"FindCoordinator key type {key_type}: 0 (group) or 1"
                               " (transaction)")
        return make_response(request, error_code=error.code, error_message=str(error),
                             node_id=-1, host="", port=-1)
    resource_type = ResourceType.GROUP if key_type == GROUP_KEY else ResourceType.TRANSACTIONAL_ID
    if error := refusal(conn, Operation.DESCRIBE, resource_type, body.key):
        return make_response(request, error_code=error.code, error_message=str(error),
                             node_id=-1, host="", port=-1)
    host, port = conn.advertised  # the listener the client came in on
    return make_response(request, error_code=0, node_id=NODE_ID, host=host, port=port)


async def handle_join_group(conn: Connection, request: Request) -> ResponsePayload:
    if refused := _group_refused(conn, request, generation_id=-1, member_id=""):
        return refused
    ctx = conn.ctx
    body = request.body
    session_ms = _millis(body.session_timeout)
    rebalance_timeout = getattr(body, "rebalance_timeout", None)
    join = JoinGroupRequest(
        group_id=body.group_id,
        member_id=body.member_id,
        group_instance_id=getattr(body, "group_instance_id", None),
        client_id=request.client_id or "",
        client_host=conn.client_host,
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=_millis(rebalance_timeout) if rebalance_timeout else session_ms,
        protocol_type=body.protocol_type,
        protocols=tuple((p.name, p.metadata) for p in body.protocols),
        require_known_member_id=request.api_version >= 4,
    )
    reply: concurrent.futures.Future[JoinGroupResult] = concurrent.futures.Future()
    result = await _parked_answer(conn, request, ctx.coordinator.join_group(join, reply), reply)
    if isinstance(result, int):
        result = JoinGroupResult(result, member_id=body.member_id)
    _note_inconsistent(conn, request, result.error_code,
                       {"protocol_type": body.protocol_type,
                        "protocols": ",".join(p.name for p in body.protocols)})
    return make_response(
        request,
        error_code=result.error_code,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name or "",
        leader=result.leader_id,
        member_id=result.member_id,
        skip_assignment=False,
        members=[
            {"member_id": m, "group_instance_id": instance, "metadata": metadata}
            for m, instance, metadata in result.members
        ],
    )


async def handle_sync_group(conn: Connection, request: Request) -> ResponsePayload:
    if refused := _group_refused(conn, request):
        return refused
    ctx = conn.ctx
    body = request.body
    sync = SyncGroupRequest(
        group_id=body.group_id,
        generation_id=body.generation_id,
        member_id=body.member_id,
        assignments=tuple((a.member_id, a.assignment) for a in body.assignments),
        group_instance_id=getattr(body, "group_instance_id", None),  # SyncGroup v3+
        protocol_type=getattr(body, "protocol_type", None),  # SyncGroup v5+, checked if given
        protocol_name=getattr(body, "protocol_name", None),
    )
    reply: concurrent.futures.Future[SyncGroupResult] = concurrent.futures.Future()
    result = await _parked_answer(conn, request, ctx.coordinator.sync_group(sync, reply), reply)
    if isinstance(result, int):
        result = SyncGroupResult(result)
    _note_inconsistent(conn, request, result.error_code, {
        "protocol_type": getattr(body, "protocol_type", None),  # SyncGroup v5+
        "protocol_name": getattr(body, "protocol_name", None)})
    return make_response(
        request,
        error_code=result.error_code,
        protocol_type=getattr(result, "protocol_type", None),
        protocol_name=getattr(result, "protocol_name", None),
        assignment=result.assignment or b"",
    )


async def handle_heartbeat(conn: Connection, request: Request) -> ResponsePayload:
    if refused := _group_refused(conn, request):
        return refused
    ctx = conn.ctx
    body = request.body
    code = await ctx.resolve(ctx.coordinator.heartbeat(
        body.group_id, body.generation_id, body.member_id,
        getattr(body, "group_instance_id", None),  # Heartbeat v3+
    ))
    return make_response(request, error_code=code)


async def handle_leave_group(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    if not body.group_id:  # the whole request's error, as Kafka's GroupCoordinatorService
        return make_response(request, error_code=InvalidGroupId.code, members=[])
    if refused := _group_refused(conn, request):
        return refused
    members = getattr(body, "members", None)
    if members is None:  # LeaveGroup v0-2: one member
        code = await ctx.resolve(ctx.coordinator.leave_group(body.group_id, [body.member_id]))
        return make_response(request, error_code=code)
    results = []
    for member in members:
        identity = MemberIdentity(member.member_id, member.group_instance_id)
        code = await ctx.resolve(ctx.coordinator.leave_group(body.group_id, [identity]))
        results.append({"member_id": member.member_id,
                        "group_instance_id": member.group_instance_id, "error_code": code})
    return make_response(request, error_code=0, members=results)


async def handle_offset_commit(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    body = request.body
    refused: dict[str, KafkaError] = topic_refusals(conn, Operation.READ,
                                                    (t.name for t in body.topics))
    if error := refusal(conn, Operation.READ, ResourceType.GROUP, body.group_id):
        refused = dict.fromkeys((t.name for t in body.topics), error)
    offsets = {
        (t.name, p.partition_index): (p.committed_offset, p.committed_metadata,
                                      getattr(p, "committed_leader_epoch", -1))  # v6+
        for t in body.topics if t.name not in refused
        for p in t.partitions
    }
    codes = await ctx.resolve(ctx.coordinator.commit_offsets(
        body.group_id, body.generation_id_or_member_epoch, body.member_id, offsets,
        getattr(body, "group_instance_id", None),  # OffsetCommit v7+
        request.api_version,
    )) if offsets else {}
    codes.update({(t.name, p.partition_index): refused[t.name].code for t in body.topics
                  if t.name in refused for p in t.partitions})
    topics: dict[str, list[dict]] = {}
    for (topic, partition), code in codes.items():
        topics.setdefault(topic, []).append({"partition_index": partition, "error_code": code})
    return make_response(
        request, topics=[{"name": t, "partitions": parts} for t, parts in topics.items()]
    )


async def handle_offset_fetch(conn: Connection, request: Request) -> ResponsePayload:
    body = request.body
    if request.api_version < 8:  # one group, its errors the whole response's
        error, topics = await _fetch_group(conn, body.group_id, body.topics, None, -1)
        return make_response(request, error_code=error, topics=topics if not error else [])
    groups = []
    for group in body.groups:  # v8 batches groups, v9 adds the member (KIP-848)
        error, topics = await _fetch_group(conn, group.group_id, group.topics,
                                           getattr(group, "member_id", None),
                                           getattr(group, "member_epoch", -1))
        groups.append({"group_id": group.group_id, "error_code": error,
                       "topics": topics if not error else []})
    return make_response(request, groups=groups)


async def _fetch_group(conn: Connection, group_id: str, asked: tuple | None,
                       member_id: str | None, member_epoch: int) -> tuple[int, list[dict]]:
    """One group's OffsetFetch: its error code (GROUP_AUTHORIZATION_FAILED, or the
    consumer group's member check) and its topics' committed offsets."""
    if error := refusal(conn, Operation.DESCRIBE, ResourceType.GROUP, group_id):
        return error.code, []
    ctx = conn.ctx
    member_given = member_id is not None or member_epoch >= 0
    if member_given and (code := await ctx.resolve(
            ctx.coordinator.check_fetch(group_id, member_id, member_epoch))):
        return code, []
    wanted = None
    if asked is not None:
        wanted = [(t.name, p) for t in asked for p in t.partition_indexes]
    offsets = await ctx.resolve(ctx.coordinator.fetch_offsets(group_id, wanted))
    epochs = await ctx.resolve(ctx.coordinator.leader_epochs(group_id))
    hidden = topic_refusals(conn, Operation.DESCRIBE, {topic for topic, _ in offsets})
    topics: dict[str, list[dict]] = {}
    for (topic, partition), (offset, metadata) in offsets.items():
        if topic in hidden:  # Kafka answers TOPIC_AUTHORIZATION_FAILED, or leaves it out
            if wanted is not None:
                topics.setdefault(topic, []).append({
                    "partition_index": partition, "committed_offset": -1,
                    "error_code": hidden[topic]})
            continue
        topics.setdefault(topic, []).append({
            "partition_index": partition,
            "committed_offset": offset,
            "committed_leader_epoch": epochs.get((topic, partition), -1),
            "metadata": metadata if metadata is not None else "",
            "error_code": 0,
        })
    return 0, [{"name": t, "partitions": parts} for t, parts in topics.items()]


async def handle_list_groups(conn: Connection, request: Request) -> ResponsePayload:
    """ListGroups; v4's states filter and v5's types filter are case-insensitive, as in
    Kafka's GroupMetadataManager.listGroups (an unknown type matches no group)."""
    ctx = conn.ctx
    states = {s.strip().lower() for s in getattr(request.body, "states_filter", ())}
    types = {t.lower() for t in getattr(request.body, "types_filter", ())}
    groups = await ctx.resolve(ctx.coordinator.listed_groups())
    return make_response(
        request,
        error_code=0,
        groups=[
            {"group_id": g, "protocol_type": ptype, "group_state": state, "group_type": gtype}
            for g, ptype, state, gtype in groups
            if (not states or state.lower() in states) and (not types or gtype in types) and (
                cluster_allowed(conn, Operation.DESCRIBE)
                or allowed(conn, Operation.DESCRIBE, ResourceType.GROUP, g))
        ],
    )


async def handle_describe_groups(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    described = []
    include = getattr(request.body, "include_authorized_operations", False)  # v3+
    for group_id in request.body.groups:
        if error := refusal(conn, Operation.DESCRIBE, ResourceType.GROUP, group_id):
            described.append({"error_code": error, "group_id": group_id})
            continue
        d = await ctx.resolve(ctx.coordinator.describe_group(group_id))
        described.append({
            "error_code": 0,
            "group_id": d.group_id,
            "group_state": d.state,
            "protocol_type": d.protocol_type or "",
            "protocol_data": d.protocol or "",
            "members": [
                {
                    "member_id": m.member_id,
                    "group_instance_id": m.group_instance_id,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "member_metadata": m.metadata,
                    "member_assignment": m.assignment or b"",
                }
                for m in d.members
            ],
            "authorized_operations": operations_of(conn, ResourceType.GROUP, group_id, include),
        })
    return make_response(request, groups=described)


async def handle_delete_groups(conn: Connection, request: Request) -> ResponsePayload:
    ctx = conn.ctx
    results = []
    for group_id in request.body.groups_names:
        if error := refusal(conn, Operation.DELETE, ResourceType.GROUP, group_id):
            results.append({"group_id": group_id, "error_code": error})
            continue
        code = await ctx.resolve(ctx.coordinator.delete_group(group_id))
        results.append({"group_id": group_id, "error_code": code})
    return make_response(request, results=results)
