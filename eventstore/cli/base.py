"""What every `eventstore` subcommand shares: exit codes, one-line errors, the parser, and
the options that say where the data is (`--bootstrap-server` or `--data-dir`).

A command talks to a running server through a Kafka client library when it is given
``--bootstrap-server``; otherwise it works on the data directory ``--data-dir`` (default
``./data``, or ``$EVENTSTORE_DATA_DIR``): reading it read-only, which works while a server
runs, or taking the directory's lock to write, which fails while a server holds it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, NoReturn

from eventstore.errors import KafkaError

EXIT_OK = 0
EXIT_ERROR = 1  # the store or the server refused: unknown topic, bad config, ...
EXIT_USAGE = 2  # bad command-line arguments
EXIT_UNAVAILABLE = 3  # the server cannot be reached, or another process holds the data dir
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    the store or the server refused (unknown topic, bad config key, ...)
  2    bad command-line usage
  3    the server cannot be reached, or another process holds the data directory
  130  interrupted (Ctrl-C), except for consume, for which Ctrl-C is the normal stop (0)
"""


class CliError(KafkaError):
    """A failure the command line reports as one line, with its own exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.args[0]


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit 2), not usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def add_command(
    commands: argparse._SubParsersAction,
    name: str,
    summary: str,
    description: str,
    examples: str,
    run: Callable[[argparse.Namespace], int] | None = None,
    *,
    target: Literal["server or dir", "dir"] | None = None,
    json: bool = False,
) -> ArgumentParser:
    """A subcommand whose --help shows ``description`` and then ``examples`` as written.

    ``target`` adds the options saying where the data is (see :func:`add_target`), ``json``
    the ``--json`` switch.
    """
    parser = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"examples:\n{examples}\n{EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if run is not None:
        parser.set_defaults(run=run, prog=parser.prog)
    if target is not None:
        add_target(parser, server=target == "server or dir")
    if json:
        parser.add_argument("--json", action="store_true",
                            help="print JSON for scripts instead of a table")
    return parser


def default_data_dir() -> str:
    return os.environ.get("EVENTSTORE_DATA_DIR", "data")


def add_target(parser: argparse.ArgumentParser, *, server: bool = True) -> None:
    """``--bootstrap-server`` (when the command can use a server) or ``--data-dir``."""
    where = parser.add_mutually_exclusive_group()
    if server:
        where.add_argument("--bootstrap-server", metavar="HOST:PORT",
                           help="a running eventstore (or Kafka) server to talk to")
    where.add_argument("--data-dir", metavar="DIR", default=None,
                       help="work on this data directory instead (default ./data, or"
                       " $EVENTSTORE_DATA_DIR)")


@dataclass(frozen=True)
class Target:
    """Where a command's data is: a server's address, or a data directory."""

    bootstrap_server: str | None
    data_dir: str

    @classmethod
    def of(cls, args: argparse.Namespace) -> Target:
        return cls(getattr(args, "bootstrap_server", None), args.data_dir or default_data_dir())


def parse_key_values(items: Iterable[str], what: str) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a usage error naming the item that has no '='."""
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{what} {item!r} is not KEY=VALUE", EXIT_USAGE)
        parsed[key] = value
    return parsed
