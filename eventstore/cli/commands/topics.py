"""`eventstore topics create|list|describe|alter|delete`: the kafka-topics.sh job.

``describe`` shows per partition the log-start-offset, log-end-offset, segment count and
bytes. Over the wire bytes come from Kafka's DescribeLogDirs; the Kafka protocol has no
way to ask for a segment count, so it shows as ``-`` there; a data directory shows it,
also while a server runs, and says on stderr (``warning:``, and ``problem`` in JSON) which
partitions have offsets no segment file holds.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from eventstore.cli.base import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Target,
    add_command,
    parse_key_values,
)
from eventstore.cli.cluster import open_cluster
from eventstore.cli.details import PartitionDetail, TopicDetail
from eventstore.cli.output import Column, print_json, print_line, print_rows, print_warnings
from eventstore.errors import InvalidReplicationFactor

PARTITION_COLUMNS = (
    Column("TOPIC", "topic"),
    Column("PARTITION", "partition"),
    Column("LOG-START-OFFSET", "log_start_offset"),
    Column("LOG-END-OFFSET", "log_end_offset"),
    Column("SEGMENTS", "segments"),
    Column("BYTES", "bytes"),
)


def register(commands: argparse._SubParsersAction) -> None:
    topics = add_command(
        commands, "topics", "create, list, describe, alter and delete topics",
        "Manage topics, as kafka-topics.sh does.",
        "  eventstore topics create clicks --partitions 3 --config retention.ms=86400000\n"
        "  eventstore topics list --bootstrap-server 127.0.0.1:9092\n"
        "  eventstore topics describe clicks --json\n",
    )
    actions = topics.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = add_command(
        actions, "create", "create a topic",
        "Create a topic with a number of partitions and per-topic config overrides.",
        "  eventstore topics create clicks --partitions 3\n"
        "  eventstore topics create audit --config retention.ms=-1 --config segment.bytes=104857600"
        "\n  eventstore topics create clicks --bootstrap-server 127.0.0.1:9092\n",
        _create,
        target="server or dir", json=True,
    )
    create.add_argument("topic")
    create.add_argument("--partitions", type=int, metavar="N",
                        help="number of partitions (default: the server's num.partitions)")
    create.add_argument("--replication-factor", type=int, metavar="N",
                        help="1, the only factor one broker can keep (as kafka-topics.sh takes it)")
    _add_config(create)

    add_command(
        actions, "list", "list topics with their partition counts",
        "List every topic and its partition count.",
        "  eventstore topics list\n  eventstore topics list --bootstrap-server 127.0.0.1:9092"
        " --json\n",
        _list,
        target="server or dir", json=True,
    )

    describe = add_command(
        actions, "describe", "partitions (offsets, segments, bytes) and config of topics",
        "Show each partition's log-start-offset, log-end-offset, segment count and bytes, and"
        " the topic's config overrides. Over --bootstrap-server the segment count shows as -:"
        " the Kafka protocol does not carry it; a partition the server reports offline shows"
        " - for its offsets and size, with a warning naming it.",
        "  eventstore topics describe clicks\n"
        "  eventstore topics describe            # every topic\n"
        "  eventstore topics describe clicks --bootstrap-server 127.0.0.1:9092 --json\n",
        _describe,
        target="server or dir", json=True,
    )
    describe.add_argument("topics", nargs="*", metavar="TOPIC", help="default: every topic")

    alter = add_command(
        actions, "alter", "add partitions or change config overrides",
        "Increase a topic's partition count (it never shrinks) and set or delete config"
        " overrides.",
        "  eventstore topics alter clicks --partitions 6\n"
        "  eventstore topics alter clicks --config retention.ms=3600000"
        " --delete-config segment.bytes\n",
        _alter,
        target="server or dir", json=True,
    )
    alter.add_argument("topic")
    alter.add_argument("--partitions", type=int, metavar="N", help="new, larger partition count")
    _add_config(alter)
    alter.add_argument("--delete-config", action="append", default=[], metavar="KEY",
                       help="remove an override, back to the default (repeatable)")

    delete = add_command(
        actions, "delete", "delete a topic and its data",
        "Delete a topic, its segment files and its groups' committed offsets.",
        "  eventstore topics delete clicks\n"
        "  eventstore topics delete clicks --bootstrap-server 127.0.0.1:9092\n",
        _delete,
        target="server or dir", json=True,
    )
    delete.add_argument("topic")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="a topic config override, e.g. segment.bytes=1048576 (repeatable)")


def _done(args: argparse.Namespace, message: str) -> int:
    if args.json:
        print_json({"topic": args.topic, "action": args.action, "ok": True})
    else:
        print_line(message)
    return EXIT_OK


def _create(args: argparse.Namespace) -> int:
    _check_replication_factor(args.replication_factor)
    config = parse_key_values(args.config, "--config")
    with open_cluster(Target.of(args), writing=True) as cluster:
        cluster.create_topic(args.topic, args.partitions, config)
    return _done(args, f"Created topic {args.topic}.")


def _check_replication_factor(factor: int | None) -> None:
    """InvalidReplicationFactor for any factor but 1, in the words Kafka's controller uses."""
    if factor is None or factor == 1:
        return
    if factor < 1:
        raise InvalidReplicationFactor("replication factor must be larger than 0")
    raise InvalidReplicationFactor(
        f"replication factor: {factor} larger than available brokers: 1")


def _list(args: argparse.Namespace) -> int:
    with open_cluster(Target.of(args)) as cluster:
        topics = cluster.list_topics()
    print_rows(args.json, (Column("TOPIC", "topic"), Column("PARTITIONS", "partitions")),
               [{"topic": name, "partitions": count} for name, count in topics])
    return EXIT_OK


def _describe(args: argparse.Namespace) -> int:
    with open_cluster(Target.of(args)) as cluster:
        described = cluster.describe_topics(args.topics or None)
    if args.json:
        print_json([_topic_json(topic) for topic in described])
        return EXIT_OK
    for topic in described:
        overrides = ",".join(f"{k}={v}" for k, v in sorted(topic.overrides.items()))
        print_line(f"Topic: {topic.name}\tPartitionCount: {len(topic.partitions)}"
                   f"\tConfigs: {overrides}")
    print_rows(False, PARTITION_COLUMNS,
               [_row(p) for topic in described for p in topic.partitions])
    print_warnings(f"partition {p.topic}-{p.partition}: {p.problem}"
                   for topic in described for p in topic.partitions if p.problem)
    return EXIT_OK


def _row(partition: PartitionDetail) -> dict:
    """A partition's table row: offsets a server could not tell (-1, an offline partition)
    show as ``-``, as unknown values do."""
    row = asdict(partition)
    for offset in ("log_start_offset", "log_end_offset"):
        if row[offset] < 0:
            row[offset] = None
    return row


def _topic_json(topic: TopicDetail) -> dict:
    return {"topic": topic.name, "partition_count": len(topic.partitions),
            "config": dict(topic.config), "overrides": dict(topic.overrides),
            "partitions": [asdict(p) for p in topic.partitions]}


def _alter(args: argparse.Namespace) -> int:
    changes: dict[str, str | None] = dict(parse_key_values(args.config, "--config"))
    changes.update(dict.fromkeys(args.delete_config))
    if args.partitions is None and not changes:
        raise CliError("say what to change: --partitions, --config or"
                       " --delete-config", EXIT_USAGE)
    with open_cluster(Target.of(args), writing=True) as cluster:
        cluster.alter_topic(args.topic, args.partitions, changes)
    return _done(args, f"Altered topic {args.topic}.")


def _delete(args: argparse.Namespace) -> int:
    with open_cluster(Target.of(args), writing=True) as cluster:
        cluster.delete_topic(args.topic)
    return _done(args, f"Deleted topic {args.topic}.")
