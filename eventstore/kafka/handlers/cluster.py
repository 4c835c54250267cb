"""DescribeCluster and ListPartitionReassignments: the one node as the whole cluster."""

from __future__ import annotations

from kio.static.protocol import ResponsePayload

from eventstore.kafka.authorization import operations_of, refusal
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.kafka.context import NODE_ID
from eventstore.security.acl import CLUSTER_NAME, Operation, ResourceType


async def handle_describe_cluster(conn: Connection, request: Request) -> ResponsePayload:
    """This node, as Metadata advertises it, is the cluster's only broker and controller,
    under the data directory's cluster id; with no authorizer, every cluster operation is
    authorized (when asked)."""
    ctx = conn.ctx
    return make_response(
        request, error_code=0, endpoint_type=1, cluster_id=ctx.cluster_id,
        controller_id=NODE_ID,
        brokers=[{"broker_id": NODE_ID, "host": conn.advertised[0], "port": conn.advertised[1],
                  "is_fenced": False}],
        cluster_authorized_operations=operations_of(
            conn, ResourceType.CLUSTER, CLUSTER_NAME,
            request.body.include_cluster_authorized_operations))


async def handle_list_partition_reassignments(
        conn: Connection, request: Request) -> ResponsePayload:
    """A single node moves no replicas: there is never an ongoing reassignment."""
    error = refusal(conn, Operation.DESCRIBE, ResourceType.CLUSTER)
    return make_response(request, error_code=error or 0, topics=[])
