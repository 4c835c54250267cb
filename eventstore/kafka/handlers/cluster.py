"""DescribeCluster and ListPartitionReassignments: the one node as the whole cluster."""

from __future__ import annotations

from kio.static.protocol import ResponsePayload

from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.kafka.context import CLUSTER_ID, NODE_ID, UNKNOWN_AUTHORIZED_OPERATIONS


async def handle_describe_cluster(conn: Connection, request: Request) -> ResponsePayload:
    """This node, as Metadata advertises it, is the cluster's only broker and controller."""
    ctx = conn.ctx
    return make_response(
        request, error_code=0, endpoint_type=1, cluster_id=CLUSTER_ID, controller_id=NODE_ID,
        brokers=[{"broker_id": NODE_ID, "host": ctx.host, "port": ctx.port, "is_fenced": False}],
        cluster_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS)


async def handle_list_partition_reassignments(
        conn: Connection, request: Request) -> ResponsePayload:
    """A single node moves no replicas: there is never an ongoing reassignment."""
    return make_response(request, error_code=0, topics=[])
