"""`eventstore groups list|describe|reset-offsets|delete`: the kafka-consumer-groups.sh job.

``describe`` prints exactly kafka-consumer-groups.sh's ``--describe`` columns, GROUP TOPIC
PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID, one row per
partition the group has committed or a member holds, with ``-`` where nothing is
committed (and so no lag is known) or no member holds the partition. ``describe --members``
prints ``--describe --members``' columns instead, GROUP CONSUMER-ID GROUP-INSTANCE-ID HOST
CLIENT-ID #PARTITIONS, one row per member, so static members (KIP-345) show their
group.instance.id. ``describe --state`` prints one row per group, GROUP
ASSIGNMENT-STRATEGY STATE GROUP-EPOCH TARGET-ASSIGNMENT-EPOCH #MEMBERS, as
``--describe --state --verbose`` does; the epochs are a ``consumer`` (KIP-848) group's:
from a data directory (read beside a running server) as the server keeps them in the
catalog, through a server from its ConsumerGroupDescribe (classic groups show ``-``). On a
data directory no member is ever shown: members exist only in a running server.
"""

from __future__ import annotations

import argparse

from eventstore.cli.base import (
    EXIT_OK,
    Target,
    add_command,
)
from eventstore.cli.cluster import Cluster, open_cluster
from eventstore.cli.commands import reset
from eventstore.cli.output import Column, print_json, print_line, print_rows
from eventstore.errors import UnknownTopicOrPartition

DESCRIBE_COLUMNS = tuple(Column(header, header.lower().replace("-", "_")) for header in (
    "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
    "HOST", "CLIENT-ID"))
MEMBER_COLUMNS = (*(Column(header, header.lower().replace("-", "_")) for header in (
    "GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID")),
    Column("#PARTITIONS", "partitions"))
STATE_COLUMNS = (*(Column(header, header.lower().replace("-", "_")) for header in (
    "GROUP", "ASSIGNMENT-STRATEGY", "STATE", "GROUP-EPOCH", "TARGET-ASSIGNMENT-EPOCH")),
    Column("#MEMBERS", "members"))


def register(commands: argparse._SubParsersAction) -> None:
    groups = add_command(
        commands, "groups", "list, describe (lag), reset offsets of and delete consumer groups",
        "Manage consumer groups, as kafka-consumer-groups.sh does.",
        "  eventstore groups list\n"
        "  eventstore groups describe analytics --bootstrap-server 127.0.0.1:9092\n"
        "  eventstore groups reset-offsets analytics --topic clicks --to-earliest --execute\n",
    )
    actions = groups.add_subparsers(dest="action", metavar="ACTION", required=True)

    add_command(
        actions, "list", "list consumer groups and their states",
        "List every consumer group with its state (Empty, Stable, PreparingRebalance, ...).",
        "  eventstore groups list\n  eventstore groups list --bootstrap-server 127.0.0.1:9092"
        " --json\n",
        _list,
        target="server or dir", json=True,
    )

    describe = add_command(
        actions, "describe", "committed offsets, lag and members of groups",
        "Per partition: the committed offset, the log-end-offset, the lag and the member"
        " holding it, in kafka-consumer-groups.sh --describe's columns: GROUP TOPIC PARTITION"
        " CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID, with - where nothing"
        " is committed or no member holds the partition.",
        "  eventstore groups describe analytics\n"
        "  eventstore groups describe                 # every group\n"
        "  eventstore groups describe analytics --bootstrap-server 127.0.0.1:9092 --json\n",
        _describe,
        target="server or dir", json=True,
    )
    describe.add_argument("groups", nargs="*", metavar="GROUP", help="default: every group")
    describe.add_argument("--members", action="store_true",
                          help="one row per member: GROUP CONSUMER-ID GROUP-INSTANCE-ID HOST"
                               " CLIENT-ID #PARTITIONS")
    describe.add_argument("--state", action="store_true",
                          help="one row per group: GROUP ASSIGNMENT-STRATEGY STATE GROUP-EPOCH"
                               " TARGET-ASSIGNMENT-EPOCH #MEMBERS (epochs of consumer groups)")

    resetting = add_command(
        actions, "reset-offsets", "move a group's committed offsets (dry run unless --execute)",
        "Plan new committed offsets for an inactive group and print the plan (GROUP TOPIC"
        " PARTITION NEW-OFFSET); --execute applies it. Refused while the group has active"
        " members. New offsets are clamped to each partition's log.",
        "  eventstore groups reset-offsets analytics --topic clicks --to-earliest\n"
        "  eventstore groups reset-offsets analytics --topic clicks:0,1 --shift-by -10 --execute\n"
        "  eventstore groups reset-offsets analytics --all-topics"
        " --to-datetime 2024-05-01T00:00:00Z --execute\n",
        reset.run,
        target="server or dir", json=True,
    )
    reset.add_arguments(resetting)

    delete = add_command(
        actions, "delete", "delete an inactive group and its committed offsets",
        "Delete a consumer group that has no active members, with its committed offsets.",
        "  eventstore groups delete analytics\n",
        _delete,
        target="server or dir", json=True,
    )
    delete.add_argument("group")


def _list(args: argparse.Namespace) -> int:
    with open_cluster(Target.of(args)) as cluster:
        groups = cluster.list_groups()
    print_rows(args.json, (Column("GROUP", "group"), Column("STATE", "state")),
               [{"group": group, "state": state} for group, state in groups])
    return EXIT_OK


def _row(**values: object) -> dict:
    """A describe row with every column's key, None (printed ``-``) where not given."""
    return dict.fromkeys(c.key for c in DESCRIBE_COLUMNS) | values


def describe_rows(cluster: Cluster, group_id: str) -> list[dict]:
    """kafka-consumer-groups --describe's rows of one group (GroupIdNotFound if unknown)."""
    group = cluster.describe_group(group_id).require()
    owners = {tp: member for member in group.members for tp in member.assignment}
    ends: dict[str, list[int | None]] = {}

    def log_end(topic: str, partition: int) -> int | None:
        if topic not in ends:
            try:  # an offline partition's end is unknown (-1): no lag is shown for it
                ends[topic] = [p.log_end_offset if p.log_end_offset >= 0 else None
                               for p in cluster.describe_topic(topic).partitions]
            except UnknownTopicOrPartition:  # deleted since the group committed
                ends[topic] = []
        return ends[topic][partition] if partition < len(ends[topic]) else None

    rows = []
    for topic, partition in sorted(set(group.committed) | set(owners)):
        committed = group.committed.get((topic, partition))
        end = log_end(topic, partition)
        owner = owners.get((topic, partition))
        rows.append(_row(
            group=group_id, topic=topic, partition=partition,
            current_offset=committed, log_end_offset=end,
            lag=None if committed is None or end is None else end - committed,
            consumer_id=owner and owner.member_id, host=owner and owner.host,
            client_id=owner and owner.client_id,
        ))
    for member in group.members:
        if not member.assignment:  # a member with nothing assigned still gets a row
            rows.append(_row(group=group_id, consumer_id=member.member_id, host=member.host,
                             client_id=member.client_id))
    return rows


def member_rows(cluster: Cluster, group_id: str) -> list[dict]:
    """kafka-consumer-groups --describe --members' rows of one group (GroupIdNotFound if
    unknown); ``-`` for a dynamic member's instance id."""
    group = cluster.describe_group(group_id).require()
    return [{"group": group_id, "consumer_id": m.member_id,
             "group_instance_id": m.group_instance_id, "host": m.host,
             "client_id": m.client_id, "partitions": len(m.assignment)}
            for m in group.members]


def state_rows(cluster: Cluster, group_id: str) -> list[dict]:
    """kafka-consumer-groups --describe --state --verbose's row of one group
    (GroupIdNotFound if unknown), ``-`` for the epochs of a classic group."""
    group = cluster.describe_group(group_id).require()
    return [{"group": group_id, "assignment_strategy": group.assignor or None,
             "state": group.state, "group_epoch": group.group_epoch,
             "target_assignment_epoch": group.assignment_epoch, "members": len(group.members)}]


def _describe(args: argparse.Namespace) -> int:
    rows_of, columns = (member_rows, MEMBER_COLUMNS) if args.members else (
        state_rows, STATE_COLUMNS) if args.state else (describe_rows, DESCRIBE_COLUMNS)
    with open_cluster(Target.of(args)) as cluster:
        names = args.groups or [group for group, _ in cluster.list_groups()]
        rows = [row for name in names for row in rows_of(cluster, name)]
    print_rows(args.json, columns, rows)
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    with open_cluster(Target.of(args), writing=True) as cluster:
        cluster.delete_group(args.group)
    if args.json:
        print_json({"group": args.group, "action": "delete", "ok": True})
    else:
        print_line(f"Deleted consumer group {args.group!r}.")
    return EXIT_OK
