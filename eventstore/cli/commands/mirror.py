"""`eventstore mirror`: replicate an eventstore to a Kafka cluster (issue 22).

The command line only: the topic plan, its application on the target and the copy loop
are in eventstore.mirror. Both sides are reached with confluent-kafka, Kafka APIs only.
"""

from __future__ import annotations

import argparse
import signal
import sys

from eventstore.cli.base import EXIT_ERROR, EXIT_OK, add_command


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "mirror", "replicate topics to a Kafka cluster",
        "Copy topics (partition counts, carried configs) and their records (key, value,"
        " headers, CreateTime, same partition, in order) from an eventstore server to any"
        " cluster speaking the Kafka protocol, with an idempotent producer.",
        "  eventstore mirror --source-bootstrap-server 127.0.0.1:9092"
        " --target-bootstrap-server kafka1:9092 --until-caught-up\n"
        "  eventstore mirror --source-bootstrap-server 127.0.0.1:9092"
        " --target-bootstrap-server kafka1:9092 --topics 'orders.*' --prefix es.\n",
        _run,
    )
    parser.add_argument("--source-bootstrap-server", required=True, metavar="HOST:PORT")
    parser.add_argument("--target-bootstrap-server", required=True, metavar="HOST:PORT")
    parser.add_argument("--target-config", action="append", default=[], metavar="KEY=VALUE",
                        help="a confluent-kafka setting for the target (SASL, TLS, ...)")
    parser.add_argument("--topics", nargs="+", default=[], metavar="NAME_OR_REGEX")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="NAME_OR_REGEX")
    parser.add_argument("--prefix", default="", help="prepended to each target topic name")
    parser.add_argument("--replication-factor", type=int, default=-1,
                        help="of the topics created (default: the target's default)")
    parser.add_argument("--compression", default="lz4",
                        choices=("none", "gzip", "snappy", "lz4", "zstd"))
    parser.add_argument("--until-caught-up", action="store_true",
                        help="exit 0 once every partition is copied up to the source's end")


def _run(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AdminClient

    from eventstore.cli.base import CliError, parse_key_values
    from eventstore.cli.output import print_line
    from eventstore.mirror import copier
    from eventstore.mirror.plan import Selection
    from eventstore.mirror.topics import MirrorError, apply, source_plan

    source = {"bootstrap.servers": args.source_bootstrap_server}
    target = {**parse_key_values(args.target_config, "--target-config"),
              "bootstrap.servers": args.target_bootstrap_server}
    selection = Selection(tuple(args.topics), tuple(args.exclude))
    source_admin, target_admin = AdminClient(source), AdminClient(target)

    def refresh() -> tuple:
        plans = source_plan(source_admin, selection, args.prefix)
        apply(target_admin, plans, args.replication_factor)
        return plans

    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    sides = copier.Sides(source, target, args.compression)
    consumer = copier.open_consumer(sides)
    try:
        plans = refresh()
        probe = copier.open_consumer(copier.Sides(target, target))
        try:
            starts = copier.target_ends(probe, plans)
        finally:
            probe.close()
        job = copier.Copier(sides, consumer, copier.open_producer(sides))
        job.assign(plans, starts)
        copier.run(job, refresh, args.until_caught_up, lambda: bool(stopping))
    except MirrorError as error:
        raise CliError(str(error), EXIT_ERROR) from error
    finally:
        consumer.close()
    print_line(f"Mirrored {job.progress.copied} records of {len(plans)} topics.")
    sys.stdout.flush()
    return EXIT_OK
