"""The `eventstore` command: one entry point, a subcommand per job.

Errors a user can cause are one line on stderr naming the problem in Kafka's vocabulary
and a non-zero exit code, never a traceback.

Each subcommand lives in ``eventstore.cli.commands``; this module only routes to them and
turns their errors into exit codes (listed in ``EXIT_CODES_HELP``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from eventstore.cli.base import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    ArgumentParser,
    CliError,
    add_command,
)
from eventstore.cli.commands import COMMANDS, verify
from eventstore.errors import DataDirLocked, KafkaError
from eventstore.open_files import is_too_many_open_files, too_many_open_files

EXAMPLES = """\
  eventstore serve --data-dir data &
  eventstore topics create clicks --partitions 3 --bootstrap-server 127.0.0.1:9092
  seq 100 | eventstore produce clicks --bootstrap-server 127.0.0.1:9092
  eventstore consume clicks --group analytics --from-beginning --bootstrap-server 127.0.0.1:9092
  eventstore groups describe analytics --bootstrap-server 127.0.0.1:9092
  eventstore sql "SELECT partition, count(*) FROM records GROUP BY 1" --data-dir data
  eventstore COMMAND --help                         # each command's options and examples
"""

SERVE_EXAMPLES = """\
  eventstore serve                                  # ./data, Kafka on 127.0.0.1:9092
  eventstore serve --data-dir /var/lib/eventstore --listen 127.0.0.1:0
  eventstore serve --config eventstore.toml --set num.partitions=3 --set segment.bytes=104857600
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="eventstore",
        description="A single-node, Kafka-style event store on SQLite segment files.",
        epilog=f"examples:\n{EXAMPLES}\n{EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {metadata.version('eventstore')}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = add_command(
        commands, "serve", "run the store as a service speaking the Kafka protocol",
        "Run the actor system as a long-lived service: the Kafka protocol on --listen,"
        " Prometheus metrics and /healthz on --metrics-listen. SIGTERM or SIGINT stops it"
        " cleanly.",
        SERVE_EXAMPLES, _serve,
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
    serve.add_argument("--allow-plaintext", action="store_true",
                       help="serve a PLAINTEXT listener (no TLS, no authentication) on an"
                       " address other than loopback; refused without it")
    for command in (*COMMANDS, verify):
        command.register(commands)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from eventstore.service import StartupError, serve
    from eventstore.settings import load_settings

    settings = load_settings(
        config_file=args.config,
        data_dir=args.data_dir,
        listen=args.listen,
        metrics_listen=args.metrics_listen,
        assignments=args.assignments,
        allow_plaintext=args.allow_plaintext,
    )
    try:
        return serve(settings)
    except StartupError as error:
        raise CliError(str(error)) from None


def _quiet_logs() -> None:
    """The tools report outcomes themselves: library log lines would break one-line errors."""
    root = logging.getLogger()
    root.handlers[:] = [logging.NullHandler()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        _quiet_logs()
    try:
        return args.run(args)
    except CliError as error:
        print(f"{args.prog}: {error}", file=sys.stderr)
        return error.exit_code
    except KafkaError as error:
        print(f"{args.prog}: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE if isinstance(error, DataDirLocked) else EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `eventstore consume ... | head`: the reader chose to stop
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        if is_too_many_open_files(error):  # the limit named, as for every EMFILE
            print(f"{args.prog}: {too_many_open_files(args.command)}", file=sys.stderr)
            return EXIT_ERROR
        if os.environ.get("EVENTSTORE_DEBUG"):
            raise
        print(f"{args.prog}: internal error: {type(error).__name__}: {error}"
              " (set EVENTSTORE_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_ERROR

