"""`eventstore compact TOPIC [--partition P]`: run a cleaning (log compaction) now.

Kafka has no API for this: its cleaner runs on its own schedule. Here a cleaning can be
asked for, which helps an operator (free the space now, before a backup) and a test.
On ``--data-dir`` it opens the embedded store (which takes the directory's lock); with
``--server-http`` it asks a running ``eventstore serve`` through an admin POST on its HTTP
endpoint (the ``--metrics-listen`` address), which the server answers only from its own
host (see eventstore/compaction_admin.py). Either way the log cleaner runs the cleaning it
runs on its own (the topic's ``delete.retention.ms``, ``min.compaction.lag.ms`` and
``segment.bytes``), whatever the dirty ratio, and each partition's actor swaps it in.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request

from eventstore.cli.base import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    CliError,
    add_command,
    default_data_dir,
)
from eventstore.cli.output import Column, print_rows
from eventstore.compaction_admin import ADMIN_COMPACT_PATH
from eventstore.errors import KafkaError, error_for_code

COLUMNS = (
    Column("PARTITION", "partition"),
    Column("RECORDS-REMOVED", "records_removed"),
    Column("BYTES-REMOVED", "bytes_removed"),
    Column("SEGMENTS-BEFORE", "segments_before"),
    Column("SEGMENTS-AFTER", "segments_after"),
    Column("CLEANED-THROUGH", "cleaned_through"),
)
HTTP_TIMEOUT_S = 600.0  # a cleaning of a large partition takes a while


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "compact", "run a cleaning of a compacted topic's partitions now",
        "Clean the sealed segments of TOPIC (every partition, or --partition P) now, as the"
        " log cleaner does for a topic whose cleanup.policy has compact: each key keeps its"
        " last record, at its offset; tombstones go once delete.retention.ms passed in the"
        " cleaned part; the active segment and records within min.compaction.lag.ms stay."
        " On --data-dir (no server running), or through a running server's HTTP endpoint"
        " with --server-http, from the server's host. Prints what each partition's"
        " cleaning removed and where its cleaned part ends.",
        "  eventstore compact table --data-dir data\n"
        "  eventstore compact table --partition 0 --server-http 127.0.0.1:9100 --json\n",
        _run,
        json=True,
    )
    parser.add_argument("topic")
    parser.add_argument("--partition", type=int, metavar="P", help="only this partition")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--server-http", metavar="HOST:PORT",
                       help="the HTTP endpoint (--metrics-listen) of a running server")
    where.add_argument("--data-dir", metavar="DIR", default=None,
                       help="work on this data directory instead (default ./data, or"
                       " $EVENTSTORE_DATA_DIR)")


def _run(args: argparse.Namespace) -> int:
    if args.server_http:
        results = _over_http(args.server_http, args.topic, args.partition)
    else:
        results = _on_data_dir(args.data_dir or default_data_dir(), args.topic,
                               args.partition)
    print_rows(args.json, COLUMNS, results)
    return EXIT_OK


def _on_data_dir(data_dir: str, topic: str, partition: int | None) -> list[dict]:
    """Clean through the embedded store, which holds the directory's lock meanwhile."""
    from eventstore.cli.local import open_store
    from eventstore.compaction_admin import compact_now

    if not os.path.isdir(data_dir):
        raise CliError(f"data directory {data_dir} does not exist (use --data-dir DIR, or"
                       " --server-http HOST:PORT for a running server)")
    store = open_store(data_dir, "--server-http")
    try:
        return compact_now(store.system, topic, partition)
    finally:
        store.close()


def _over_http(address: str, topic: str, partition: int | None) -> list[dict]:
    """POST the request to the server; its error answer is raised as the Kafka error."""
    query = {"topic": topic} if partition is None else {"topic": topic, "partition": partition}
    url = f"http://{address}{ADMIN_COMPACT_PATH}?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:
            return json.load(answer)["partitions"]
    except urllib.error.HTTPError as exc:
        raise _answered_error(exc) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(f"cannot reach the server's HTTP endpoint at {address}: {reason}",
                       EXIT_UNAVAILABLE) from None


def _answered_error(exc: urllib.error.HTTPError) -> KafkaError:
    """The Kafka error a refusal names (its ``error_code``), or the HTTP status itself."""
    try:
        body = json.load(exc)
        return error_for_code(int(body["error_code"]), body["message"])
    except (ValueError, KeyError, TypeError):
        return CliError(f"the server refused the compaction: HTTP {exc.code} {exc.reason}")
