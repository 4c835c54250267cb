"""`eventstore groups reset-offsets`: plan new committed offsets for a group, and apply them.

As kafka-consumer-groups.sh does: a plan is printed (dry run) unless ``--execute``; the
group must be inactive (Empty, or unknown) either way; every new offset is clamped into
the partition's [log-start-offset, log-end-offset]; a datetime later than every record
resets to the log-end-offset.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from eventstore.cli.base import EXIT_OK, EXIT_USAGE, CliError, Target
from eventstore.cli.cluster import Cluster, check_partition, open_cluster
from eventstore.cli.details import GroupDetail, PartitionDetail
from eventstore.cli.output import Column, print_rows, progress
from eventstore.errors import NonEmptyGroup

PLAN_COLUMNS = (
    Column("GROUP", "group"),
    Column("TOPIC", "topic"),
    Column("PARTITION", "partition"),
    Column("NEW-OFFSET", "new_offset"),
)
INACTIVE_STATES = ("Empty", "Dead")
PROGRESS_MIN_PARTITIONS = 100  # fewer are planned and committed in a blink
COMMIT_CHUNK = 500  # partitions per commit request, so a bar can move


@dataclass(frozen=True)
class Strategy:
    """Which new offset to give a partition; exactly one field is set."""

    to_earliest: bool = False
    to_latest: bool = False
    to_offset: int | None = None
    shift_by: int | None = None
    to_datetime_ms: int | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("group")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--topic", action="append", metavar="TOPIC[:P,P...]",
                       help="reset this topic, or only these of its partitions (repeatable)")
    which.add_argument("--all-topics", action="store_true",
                       help="reset every topic the group has committed offsets for")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--to-earliest", action="store_true", help="to the log-start-offset")
    how.add_argument("--to-latest", action="store_true", help="to the log-end-offset")
    how.add_argument("--to-offset", type=int, metavar="N", help="to offset N")
    how.add_argument("--shift-by", type=int, metavar="N",
                     help="move the committed offset by N (negative: back)")
    how.add_argument("--to-datetime", metavar="ISO",
                     help="to the first record at or after this time, e.g."
                     " 2024-05-01T12:00:00Z (no zone: local time)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true",
                      help="only print the plan (the default)")
    mode.add_argument("--execute", action="store_true", help="apply the plan")


def _strategy(args: argparse.Namespace) -> Strategy:
    if args.to_datetime is None:
        return Strategy(args.to_earliest, args.to_latest, args.to_offset, args.shift_by)
    try:
        moment = dt.datetime.fromisoformat(args.to_datetime)
    except ValueError:
        raise CliError(f"--to-datetime {args.to_datetime!r} is not an ISO 8601 date and time",
                       EXIT_USAGE) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return Strategy(to_datetime_ms=int(moment.timestamp() * 1000))


def _selection(args: argparse.Namespace, group: GroupDetail) -> dict[str, list[int] | None]:
    """Topic -> chosen partitions (None: all of them)."""
    if args.all_topics:
        return {topic: None for topic, _ in sorted(group.committed)}
    chosen: dict[str, list[int] | None] = {}
    for spec in args.topic:
        topic, sep, partitions = spec.partition(":")
        try:
            chosen[topic] = [int(p) for p in partitions.split(",")] if sep else None
        except ValueError:
            raise CliError(f"--topic {spec!r} is not TOPIC or TOPIC:P,P,...", EXIT_USAGE) from None
    return chosen


def _new_offset(cluster: Cluster, strategy: Strategy, partition: PartitionDetail,
                committed: int | None) -> int:
    start, end = partition.log_start_offset, partition.log_end_offset
    if end < 0:
        raise CliError(f"KafkaStorageError: partition {partition.topic}-{partition.partition}"
                       f" is {partition.problem or 'offline'}: its offsets are unknown,"
                       " so no new offset can be computed for it")
    if strategy.to_earliest:
        wanted = start
    elif strategy.to_latest:
        wanted = end
    elif strategy.to_offset is not None:
        wanted = strategy.to_offset
    elif strategy.shift_by is not None:
        # nothing committed yet: the group would start at the end (auto.offset.reset=latest)
        wanted = (end if committed is None else committed) + strategy.shift_by
    else:
        found = cluster.offset_for_time(partition.topic, partition.partition,
                                        strategy.to_datetime_ms)
        wanted = end if found is None else found
    return min(max(wanted, start), end)


def plan(cluster: Cluster, group: GroupDetail, selection: Mapping[str, list[int] | None],
         strategy: Strategy) -> list[dict]:
    """The plan's rows: group, topic, partition, current and new offset."""
    chosen: list[PartitionDetail] = []
    for topic, wanted in selection.items():
        partitions = cluster.describe_topic(topic).partitions
        if wanted is not None:
            for number in wanted:
                check_partition(topic, number, len(partitions))
        chosen += [p for p in partitions if wanted is None or p.partition in wanted]
    total = len(chosen) if len(chosen) >= PROGRESS_MIN_PARTITIONS else None
    rows = []
    with progress("planning", total, "partitions") as advance:
        for partition in chosen:
            committed = group.committed.get((partition.topic, partition.partition))
            rows.append({
                "group": group.group_id, "topic": partition.topic,
                "partition": partition.partition, "current_offset": committed,
                "new_offset": _new_offset(cluster, strategy, partition, committed),
            })
            advance(1)
    return rows


def _apply(cluster: Cluster, group_id: str, rows: list[dict]) -> None:
    total = len(rows) if len(rows) >= PROGRESS_MIN_PARTITIONS else None
    with progress("resetting", total, "partitions") as advance:
        for first in range(0, len(rows), COMMIT_CHUNK):
            chunk = rows[first:first + COMMIT_CHUNK]
            cluster.commit_offsets(
                group_id, {(r["topic"], r["partition"]): r["new_offset"] for r in chunk})
            advance(len(chunk))


def run(args: argparse.Namespace) -> int:
    strategy = _strategy(args)
    with open_cluster(Target.of(args), writing=args.execute) as cluster:
        group = cluster.describe_group(args.group)
        if group.state not in INACTIVE_STATES or group.members:
            raise NonEmptyGroup(
                f"assignments can only be reset if the group {args.group!r} is inactive, but"
                f" the current state is {group.state}")
        rows = plan(cluster, group, _selection(args, group), strategy)
        if args.execute:
            _apply(cluster, args.group, rows)
    print_rows(args.json, PLAN_COLUMNS, rows)
    return EXIT_OK
