"""The `eventstore` command: one entry point, a subcommand per job.

Errors a user can cause are one line on stderr naming the problem in Kafka's vocabulary
and a non-zero exit code, never a traceback.

Exit codes: 0 success, 1 a Kafka error (unknown topic, bad config, locked data
directory, ...), 2 bad command-line usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eventstore.errors import KafkaError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

SERVE_EXAMPLES = """\
examples:
  eventstore serve                                  # ./data, Kafka on 127.0.0.1:9092
  eventstore serve --data-dir /var/lib/eventstore --listen 127.0.0.1:0
  eventstore serve --config eventstore.toml --set num.partitions=3 --set segment.bytes=104857600
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventstore",
        description="A single-node, Kafka-style event store on SQLite segment files.",
        epilog=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the store as a service speaking the Kafka protocol",
        description="Run the actor system as a long-lived service: the Kafka protocol on"
        " --listen, Prometheus metrics and /healthz on --metrics-listen. SIGTERM or"
        " SIGINT stops it cleanly.",
        epilog=SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--data-dir", metavar="DIR",
                       help="data directory (default ./data, or EVENTSTORE_DATA_DIR)")
    serve.add_argument("--config", metavar="FILE", help="TOML config file")
    serve.add_argument("--listen", metavar="HOST:PORT",
                       help="Kafka protocol listener (default 127.0.0.1:9092; port 0 = any)")
    serve.add_argument("--metrics-listen", metavar="HOST:PORT",
                       help="HTTP /metrics and /healthz (default 127.0.0.1:9308)")
    serve.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                       dest="assignments",
                       help="any server key or topic default, e.g. num.partitions=3")
    serve.set_defaults(run=_serve)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from eventstore.service import serve
    from eventstore.settings import load_settings

    settings = load_settings(
        config_file=args.config,
        data_dir=args.data_dir,
        listen=args.listen,
        metrics_listen=args.metrics_listen,
        assignments=args.assignments,
    )
    return serve(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KafkaError as error:
        print(f"eventstore {args.command}: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
