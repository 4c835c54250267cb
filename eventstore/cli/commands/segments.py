"""`eventstore segments TOPIC`: a partition's segment files, the kafka-dump-log.sh job.

Reads the data directory through the read-only SQL engine, so it works while a server
runs; segments are files, which the Kafka protocol does not show, so there is no
``--bootstrap-server`` here. A gap in the chain, missing newest segments or unreadable
metadata are said on stderr (``warning:``) and in ``problem`` (JSON). A compacted topic's
cleaned segments hold fewer records than offsets: ``GAPS`` counts the offsets a cleaning
removed (offsets are never reused, so a gap stays). ``--records
--segment BASE`` dumps one segment's records, streamed, in the SQL command's output formats.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from eventstore.cli.base import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Target,
    add_command,
)
from eventstore.cli.cluster import check_partition
from eventstore.cli.local import open_engine
from eventstore.cli.output import Column, print_rows, print_warnings
from eventstore.errors import UnknownTopicOrPartition
from eventstore.sql import SqlEngine, write_rows
from eventstore.storage.records import decode_headers

COLUMNS = (
    Column("PARTITION", "partition"),
    Column("BASE-OFFSET", "base_offset"),
    Column("LAST-OFFSET", "last_offset"),
    Column("RECORDS", "record_count"),
    Column("GAPS", "gaps"),
    Column("BYTES", "bytes"),
    Column("CREATED", "created"),
    Column("SEALED", "sealed"),
    Column("ACTIVE", "active"),
    Column("FILE", "path"),
)
RECORD_COLUMNS = ["offset", "timestamp", "key", "value", "headers"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "segments", "segment files of a topic's partitions, or one segment's records",
        "List the segment files of TOPIC (every partition, or --partition P): base and last"
        " offset, the records it holds and the gaps log compaction left among its offsets,"
        " bytes, when each was created and sealed, and which one is active. With --records"
        " --segment BASE, print that segment's records instead."
        " Works on the data directory, also while a server runs.",
        "  eventstore segments clicks\n"
        "  eventstore segments clicks --partition 0 --json\n"
        "  eventstore segments clicks --partition 0 --records --segment 0\n",
        run,
        target="dir", json=True,
    )
    parser.add_argument("topic")
    parser.add_argument("--partition", type=int, metavar="P", help="only this partition")
    parser.add_argument("--records", action="store_true",
                        help="print the records of the segment given with --segment")
    parser.add_argument("--segment", type=int, metavar="BASE",
                        help="the segment's base offset (its BASE-OFFSET)")


def _time(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _segments(engine: SqlEngine, topic: str, partition: int | None) -> list[dict]:
    sql = ("SELECT partition, base_offset, last_offset, record_count, bytes, min_timestamp,"
           " max_timestamp, created_ms, sealed_ms, active, path, problem, gaps FROM segments"
           " WHERE topic = ?")
    params: tuple = (topic,)
    if partition is not None:
        sql += " AND partition = ?"
        params += (partition,)
    columns, rows = engine.query(sql + " ORDER BY partition, base_offset", params)
    found = [dict(zip(columns, row, strict=True)) for row in rows]
    for segment in found:
        segment["active"] = bool(segment["active"])
        segment["created"] = _time(segment["created_ms"])
        segment["sealed"] = _time(segment["sealed_ms"])
    return found


def _dump(engine: SqlEngine, topic: str, segment: dict, as_json: bool) -> None:
    result = engine.stream(
        "SELECT offset, timestamp, key, value, headers FROM records WHERE topic = ? AND"
        " partition = ? AND offset BETWEEN ? AND ? ORDER BY offset",
        (topic, segment["partition"], segment["base_offset"], segment["last_offset"]))
    with result:
        rows = ((o, t, k, v, ",".join(f"{hk}={(hv or b'').decode(errors='replace')}"
                                      for hk, hv in decode_headers(h)))
                for o, t, k, v, h in result)
        write_rows(sys.stdout, "json" if as_json else "table", RECORD_COLUMNS, rows)


def run(args: argparse.Namespace) -> int:
    if args.records and args.segment is None:
        raise CliError("--records needs --segment BASE (a BASE-OFFSET from the listing)",
                       EXIT_USAGE)
    with open_engine(Target.of(args).data_dir, files_only=True) as engine:
        found = engine.query("SELECT partitions FROM topics WHERE topic = ?", (args.topic,))[1]
        if not found:
            raise UnknownTopicOrPartition(f"topic {args.topic!r} does not exist")
        if args.partition is not None:
            check_partition(args.topic, args.partition, found[0][0])
        segments = _segments(engine, args.topic, args.partition)
        if not args.records:
            print_rows(args.json, COLUMNS, segments)
            print_warnings(engine.warnings())
            return EXIT_OK
        chosen = [s for s in segments if s["base_offset"] == args.segment]
        if len(chosen) != 1:
            where = "" if args.partition is None else f" partition {args.partition} of"
            raise CliError(
                f"{where.lstrip()} topic {args.topic!r} has "
                + ("no segment" if not chosen else "several segments (add --partition)")
                + f" with base offset {args.segment}")
        _dump(engine, args.topic, chosen[0], args.json)
        print_warnings(engine.warnings())
    return EXIT_OK
