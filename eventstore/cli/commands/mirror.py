"""`eventstore mirror`: replicate an eventstore to a Kafka cluster (issue 22).

The command line only: the topic plan, the copy loop, the checkpoints, the groups' offsets
and the retries are in eventstore.mirror. Both sides are reached with confluent-kafka, Kafka
APIs only, so the target may be any Kafka-compatible cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from eventstore.cli.base import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    add_command,
)

if TYPE_CHECKING:
    from eventstore.mirror.copier import Sides
    from eventstore.mirror.session import Options, Report


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "mirror", "replicate topics to a Kafka cluster",
        "Copy topics (partition counts, carried configs), their records (key, value,"
        " headers, CreateTime, same partition, in order) and the consumer groups' offsets"
        " from an eventstore server to any cluster speaking the Kafka protocol. Positions"
        " are checkpointed on the target; a restart resumes there, with no record lost or"
        " copied twice.",
        "  eventstore mirror --source-bootstrap-server 127.0.0.1:9092"
        " --target-bootstrap-server kafka1:9092 --until-caught-up\n"
        "  eventstore mirror --source-bootstrap-server 127.0.0.1:9092"
        " --target-bootstrap-server kafka1:9092 --topics 'orders.*' --prefix es.\n"
        "  eventstore mirror --source-bootstrap-server 127.0.0.1:9092"
        " --target-bootstrap-server kafka1:9092 --status\n",
        _run,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--source-bootstrap-server", metavar="HOST:PORT")
    source.add_argument("--source-data-dir", metavar="DIR",
                        help="read this data directory (read-only, a server may run on it)"
                        " instead of a server")
    parser.add_argument("--target-bootstrap-server", required=True, metavar="HOST:PORT")
    parser.add_argument("--source-config", action="append", default=[], metavar="KEY=VALUE",
                        help="a confluent-kafka setting for the source (SASL, TLS, ...)")
    parser.add_argument("--target-config", action="append", default=[], metavar="KEY=VALUE",
                        help="a confluent-kafka setting for the target (SASL, TLS, ...)")
    parser.add_argument("--topics", nargs="+", default=[], metavar="NAME_OR_REGEX")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="NAME_OR_REGEX")
    parser.add_argument("--prefix", default="", help="prepended to each target topic name")
    parser.add_argument("--replication-factor", type=int, default=-1,
                        help="of the topics created (default: the target's default)")
    parser.add_argument("--compression", default="lz4",
                        choices=("none", "gzip", "snappy", "lz4", "zstd"))
    parser.add_argument("--mirror-group", default="eventstore-mirror", metavar="GROUP",
                        help="the group whose offsets on the target hold the checkpoints")
    parser.add_argument("--checkpoint-interval-ms", type=int, default=1000, metavar="MS",
                        help="how often the positions the target acknowledged are stored")
    parser.add_argument("--until-caught-up", action="store_true",
                        help="exit 0 once every partition is copied up to the source's end"
                        " and the groups' offsets are on the target")
    parser.add_argument("--metrics-listen", metavar="HOST:PORT",
                        help="serve Prometheus metrics (eventstore_mirror_lag, ...) there")
    parser.add_argument("--watch", action=argparse.BooleanOptionalAction, default=None,
                        help="a live view of the lag per partition, the rate and the last"
                        " error on stderr, refreshed each second (default: when stderr is a"
                        " terminal; else a line every 5 s)")
    parser.add_argument("--status", action="store_true",
                        help="print each partition's source end, mirrored position and lag,"
                        " then exit")


def _run(args: argparse.Namespace) -> int:
    from eventstore.cli.base import parse_key_values

    try:
        from eventstore.mirror import copier, session
        from eventstore.mirror.plan import Selection
        from eventstore.mirror.topics import MirrorError
    except ImportError as error:
        raise CliError(f"eventstore mirror needs confluent-kafka ({error}): pip install"
                       " 'eventstore[mirror]'", EXIT_ERROR) from error
    source = parse_key_values(args.source_config, "--source-config")
    if args.source_bootstrap_server:
        source["bootstrap.servers"] = args.source_bootstrap_server
    sides = copier.Sides(
        source, {**parse_key_values(args.target_config, "--target-config"),
                 "bootstrap.servers": args.target_bootstrap_server},
        args.compression, args.mirror_group, args.source_data_dir)
    options = session.Options(Selection(tuple(args.topics), tuple(args.exclude)),
                              args.prefix, args.replication_factor, args.until_caught_up,
                              args.checkpoint_interval_ms / 1000)
    try:
        if args.status:
            _print_status(session.status(sides, options))
            return EXIT_OK
        watch = sys.stderr.isatty() if args.watch is None else args.watch
        if watch:
            options = dataclasses.replace(options, report_s=1.0)
        return _mirror(sides, options, args.metrics_listen, watch)
    except MirrorError as error:
        raise CliError(str(error), EXIT_ERROR) from error


def _mirror(sides: Sides, options: Options, metrics_listen: str | None, watch: bool
            ) -> int:
    from eventstore.cli.output import print_line
    from eventstore.mirror import session
    from eventstore.mirror.view import Rate, render

    metrics = None
    if metrics_listen:
        from eventstore.mirror.metrics import MirrorMetrics

        host, _, port = metrics_listen.rpartition(":")
        if not host or not port.isdigit():
            raise CliError(f"--metrics-listen {metrics_listen!r} is not HOST:PORT", EXIT_USAGE)
        try:
            metrics = MirrorMetrics(host, int(port))
        except OSError as error:
            raise CliError(f"cannot serve metrics on {metrics_listen}: {error.strerror}",
                           EXIT_UNAVAILABLE) from error
        print(f"mirror: metrics on http://{host}:{metrics.port}/metrics", file=sys.stderr,
              flush=True)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    shown, rate = [0.0, 0], Rate()
    live = None
    if watch:
        from rich.console import Console
        from rich.live import Live

        live = Live(console=Console(stderr=True), auto_refresh=False, transient=False)

    def report(state: Report) -> None:
        shown[1] = state.copied
        per_second = rate.update(state.copied, time.monotonic())
        if metrics is not None:
            metrics.report(state)
        if live is not None:
            live.update(render(state, per_second), refresh=True)
            return
        if time.monotonic() - shown[0] < options.report_s:
            return
        shown[0] = time.monotonic()
        behind = {key: lag for key, lag in state.lag.items() if lag}
        line = (f"mirror: {state.copied} records copied ({per_second:.0f}/s),"
                f" {sum(behind.values())} behind on {len(behind)} of {len(state.lag)}"
                f" partitions, {state.groups.committed} group offsets committed")
        if state.groups.active:
            line += f", left alone (active on the target): {', '.join(state.groups.active)}"
        if state.last_error:
            line += f"; last error: {state.last_error}"
        print(line, file=sys.stderr, flush=True)

    def retrying(message: str, delay: float) -> bool:
        if metrics is not None:
            metrics.retried()
        print(f"mirror: {message}; retrying in {delay:g} s", file=sys.stderr, flush=True)
        return not stopping.wait(delay)

    with live if live is not None else contextlib.nullcontext():
        done = session.run(sides, options, stopping.is_set, report, retrying, time.monotonic)
    print_line(f"Mirrored {shown[1]} records{' (caught up)' if done else ''}.")
    sys.stdout.flush()
    return EXIT_OK


def _print_status(rows: list[dict[str, object]]) -> None:
    from eventstore.cli.output import Column, print_table

    print_table([Column("TOPIC", "topic"), Column("PARTITION", "partition"),
                 Column("TARGET-TOPIC", "target"), Column("SOURCE-END", "source_end"),
                 Column("MIRRORED", "mirrored"), Column("LAG", "lag")], rows)
