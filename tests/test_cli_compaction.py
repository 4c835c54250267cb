"""The CLI on a compacted topic: `topics create/describe` with cleanup.policy=compact,
`eventstore compact` on a data directory and through a running server's HTTP endpoint,
`segments` showing the gaps a cleaning left."""

from __future__ import annotations

import json
from collections.abc import Callable

from support import ServerProcess
from test_cli_support import assert_error, assert_ok, cli, table_rows

from actors.system import ActorSystem
from eventstore.compaction_admin import compaction_route
from eventstore.config import ServerConfig

SMALL = "segment.bytes=120"  # a few records per segment: the writes roll into sealed ones


def write_updates(here: list[str], rounds: int = 4) -> None:
    """``rounds`` updates of keys k0..k2 to partition 0, one run (one batch) per round."""
    for run in range(rounds):
        lines = "".join(f"k{i}:v{run}\n" for i in range(3))
        assert_ok(cli("produce", "table", "-K", ":", "--partition", "0", *here, stdin=lines))


def test_compact_on_a_data_dir_keeps_each_keys_latest_value(data_dir: str) -> None:
    here = ["--data-dir", data_dir]
    assert_ok(cli("topics", "create", "table", "--partitions", "2", "--config",
                  "cleanup.policy=compact", "--config", SMALL, *here))
    described = cli("topics", "describe", "table", *here)
    assert "cleanup.policy=compact" in assert_ok(described).stdout.splitlines()[0]
    (as_json,) = cli("topics", "describe", "table", "--json", *here).json()
    assert as_json["config"]["cleanup.policy"] == "compact"
    write_updates(here)
    before = cli("segments", "table", "--partition", "0", "--json", *here).json()
    assert len(before) > 2 and all(s["gaps"] == 0 for s in before)

    done = cli("compact", "table", "--json", *here).json()
    assert [row["partition"] for row in done] == [0, 1]
    cleaned, untouched = done
    assert cleaned["records_removed"] > 0 and cleaned["bytes_removed"] > 0
    active_base = before[-1]["base_offset"]
    assert cleaned["cleaned_through"] == active_base
    assert cleaned["segments_before"] == len(before) - 1  # the sealed ones
    assert untouched == {"partition": 1, "records_removed": 0, "bytes_removed": 0,
                         "segments_before": 0, "segments_after": 0, "cleaned_through": 0}

    after = cli("segments", "table", "--partition", "0", "--json", *here).json()
    assert sum(s["gaps"] for s in after) == cleaned["records_removed"]
    assert after[0]["base_offset"] == 0 and after[-1]["base_offset"] == active_base
    rows = table_rows(cli("segments", "table", "--partition", "0", *here))
    assert int(rows[0]["GAPS"]) > 0 and int(rows[0]["RECORDS"]) < (
        int(rows[0]["LAST-OFFSET"]) - int(rows[0]["BASE-OFFSET"]) + 1)
    latest = cli("sql", "SELECT key, value FROM records WHERE topic = 'table'"
                 f" AND offset < {active_base} ORDER BY offset", "--format", "jsonl", *here)
    # below the active segment each key kept its last record there (and only that one)
    kept = latest.json_lines()
    assert len({row["key"] for row in kept}) == len(kept)
    table = cli("compact", "table", "--partition", "0", *here)
    assert table_rows(table)[0]["RECORDS-REMOVED"] == "0"  # cleaned already: nothing left


def test_compact_refusals_are_one_line(data_dir: str) -> None:
    here = ["--data-dir", data_dir]
    assert_ok(cli("topics", "create", "plain", "--partitions", "1", *here))
    assert_error(cli("compact", "plain", *here), 1, "PolicyViolation",
                 "cleanup.policy=delete")
    assert_error(cli("compact", "nope", *here), 1, "UnknownTopicOrPartition", "'nope'")
    assert_ok(cli("topics", "create", "table", "--config", "cleanup.policy=compact", *here))
    assert_error(cli("compact", "table", "--partition", "3", *here), 1,
                 "UnknownTopicOrPartition", "no partition 3")
    assert_error(cli("compact", "table", "--data-dir", data_dir + "/missing"), 1,
                 "does not exist")


def http_address(server: ServerProcess) -> str:
    return server.metrics_url.split("//", 1)[1].split("/", 1)[0]


def test_compact_through_a_running_server(serve: Callable[..., ServerProcess],
                                          data_dir: str) -> None:
    # no cleaner of its own: what is cleaned is what the command asked for
    server = serve(data_dir, settings={"log.cleaner.enable": False})
    there = ["--bootstrap-server", server.bootstrap]
    http = ["--server-http", http_address(server)]
    assert_ok(cli("topics", "create", "table", "--partitions", "1", "--config",
                  "cleanup.policy=compact", "--config", SMALL, *there))
    described = cli("topics", "describe", "table", *there)
    assert "cleanup.policy=compact" in assert_ok(described).stdout.splitlines()[0]
    write_updates(there)
    sealed = len(cli("segments", "table", "--json", "--data-dir", data_dir).json()) - 1

    assert_error(cli("compact", "table", "--data-dir", data_dir), 3, "locked by",
                 "--server-http")
    (done,) = cli("compact", "table", "--partition", "0", "--json", *http).json()
    assert done["records_removed"] > 0 and done["segments_before"] == sealed
    # the server's files show it at once (segments reads them, also while it runs)
    after = cli("segments", "table", "--json", "--data-dir", data_dir).json()
    assert sum(s["gaps"] for s in after) == done["records_removed"]
    (again,) = cli("compact", "table", *http, "--json").json()
    assert again["records_removed"] == 0 and again["cleaned_through"] == done["cleaned_through"]

    assert_ok(cli("topics", "create", "plain", "--partitions", "1", *there))
    assert_error(cli("compact", "plain", *http), 1, "PolicyViolation", "plain")
    assert_error(cli("compact", "nope", *http), 1, "UnknownTopicOrPartition", "'nope'")
    assert_error(cli("compact", "table", "--partition", "7", *http), 1,
                 "UnknownTopicOrPartition", "no partition 7")
    server.stop()
    assert_error(cli("compact", "table", *http), 3, "cannot reach the server's HTTP endpoint")


def call(environ: dict, system: ActorSystem | None = None) -> tuple[str, dict]:
    """The admin route's answer to one request (refusals before it reaches the store)."""
    answered: list[str] = []
    route = compaction_route(system)  # type: ignore[arg-type]
    body = route(environ, lambda status, headers: answered.append(status))
    return answered[0], json.loads(b"".join(body))


def test_the_admin_route_answers_only_a_post_from_the_servers_host() -> None:
    status, body = call({"REQUEST_METHOD": "GET", "REMOTE_ADDR": "127.0.0.1",
                         "QUERY_STRING": "topic=t"})
    assert status.startswith("405") and body["error"] == "InvalidRequest"
    for remote in ("10.1.2.3", "2001:db8::1", "::ffff:192.0.2.7"):
        status, body = call({"REQUEST_METHOD": "POST", "REMOTE_ADDR": remote,
                             "QUERY_STRING": "topic=t"})
        assert status.startswith("403") and "own host" in body["message"], remote
    for query in ("", "topic=t&partition=x", "topic=t&partition=1&partition=2"):
        status, body = call({"REQUEST_METHOD": "POST", "REMOTE_ADDR": "::1",
                             "QUERY_STRING": query})
        assert status.startswith("400") and body["error_code"] == 42, query


def test_the_admin_route_says_when_the_store_is_not_running(data_dir: str) -> None:
    not_started = ActorSystem(data_dir, ServerConfig())
    status, body = call({"REQUEST_METHOD": "POST", "REMOTE_ADDR": "127.0.0.1",
                         "QUERY_STRING": "topic=t"}, not_started)
    assert status.startswith("503") and body["error"] == "KafkaStorageError"
