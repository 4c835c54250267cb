"""`eventstore sql "SELECT ..."`: read-only SQL over every segment of a data directory.

Tables: records, topics, partitions, segments, consumer_groups (see eventstore.sql). Works
while a server writes the directory. With no query it opens the interactive shell. Ctrl-C
stops a running query; ``--timeout`` stops one that runs too long, with one line.
"""

from __future__ import annotations

import argparse
import math
import sys

from eventstore.cli.base import EXIT_OK, Target, add_command
from eventstore.cli.local import open_engine
from eventstore.cli.output import print_warnings
from eventstore.sql import FORMATS, TABLES, run_shell, write_rows


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "sql", "query the log with read-only SQL (no query: interactive shell)",
        f"Run one read-only SQL statement over the data directory. Tables: {', '.join(TABLES)}."
        " SQLite's functions work on keys and values, e.g. json_extract(value, '$.user')."
        " Without a query, open an interactive SQL shell with the tables ready.",
        "  eventstore sql \"SELECT partition, count(*) FROM records WHERE topic = 'clicks'"
        " GROUP BY 1\"\n"
        "  eventstore sql 'SELECT * FROM consumer_groups' --format json\n"
        "  eventstore sql \"SELECT key, value FROM records WHERE topic = 'clicks'"
        " AND offset BETWEEN 100 AND 199\" --format csv > page.csv\n"
        "  eventstore sql \"SELECT count(*) FROM records\" --timeout 30\n"
        "  eventstore sql                        # interactive shell\n",
        run,
        target="dir",
    )
    parser.add_argument("query", nargs="?", help="one SQL statement (omit for the shell)")
    parser.add_argument("--timeout", metavar="SECONDS", type=_seconds,
                        help="stop a statement that runs longer (default: no limit)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--format", choices=FORMATS, default="table",
                        help="output format (default table)")
    output.add_argument("--json", action="store_const", const="json", dest="format",
                        help="the same as --format json")


def _seconds(text: str) -> float:
    """``--timeout``'s value: a positive, finite number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def run(args: argparse.Namespace) -> int:
    data_dir = Target.of(args).data_dir
    if args.query is None:
        open_engine(data_dir, files_only=True).close()  # the clear error for a missing directory
        run_shell(data_dir, timeout=args.timeout)
        return EXIT_OK
    with (
        open_engine(data_dir, files_only=True) as engine,
        engine.stream(args.query, timeout=args.timeout) as result,
    ):
        write_rows(sys.stdout, args.format, result.columns, result)
        print_warnings(engine.warnings())
    return EXIT_OK
