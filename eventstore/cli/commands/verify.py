"""`eventstore verify`: check every file of a data directory and name each problem's file.

The server opens only metadata at start-up and takes a damaged partition offline when it
notices; this reads every page and row (see eventstore.storage.verify), read-only, so it is safe
on a directory a server is using and on one a crash left. It repairs nothing: the exit
code says whether anything was found (0 clean, 1 problems).
"""

from __future__ import annotations

import argparse

from eventstore.cli.base import EXIT_ERROR, EXIT_OK, Target, add_command
from eventstore.cli.output import print_json, print_line
from eventstore.storage.verify import verify


def register(commands: argparse._SubParsersAction) -> None:
    add_command(
        commands, "verify", "check a data directory's files and report every problem",
        "Read every file of the data directory, read-only: the catalog, each partition's"
        " segment chain (contiguous offsets from the log-start-offset to the log-end-offset),"
        " each segment's SQLite integrity and its rows against its metadata. Print each"
        " problem with the file it is in. Nothing is repaired, deleted or rewritten. Exit"
        " code 0: nothing found; 1: problems found.",
        "  eventstore verify --data-dir /var/lib/eventstore\n"
        "  eventstore verify --json | jq '.problems[].path'\n",
        run, target="dir", json=True,
    )


def run(args: argparse.Namespace) -> int:
    report = verify(Target.of(args).data_dir)
    if args.json:
        print_json(report.to_json())
    else:
        for problem in report.problems:
            print_line(str(problem))
        summary = (f"{report.topics} topics, {report.partitions} partitions,"
                   f" {report.segments} segments, {report.records} records checked")
        verdict = "no problem found" if report.ok else f"{len(report.problems)} problem(s) found"
        print_line(f"{summary}: {verdict}")
    return EXIT_OK if report.ok else EXIT_ERROR
