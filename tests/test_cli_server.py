"""The `eventstore` commands against a real `eventstore serve` over the Kafka protocol.

One server serves the whole module (starting one costs more than most tests); each test
uses its own topics and groups. The values every command prints are checked against what
the test produced and committed.
"""

from __future__ import annotations

import datetime as dt
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from support import ServerProcess, eventstore_command, read_output
from test_cli_support import assert_error, assert_ok, cli, table_rows

DESCRIBE_HEADER = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                   "CONSUMER-ID", "HOST", "CLIENT-ID"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.start(str(tmp_path_factory.mktemp("cli-server"))) as running:
        yield running


def on(server: ServerProcess, *args: str, stdin: str | None = None):
    """Run a command against the server."""
    return cli(*args, "--bootstrap-server", server.bootstrap, stdin=stdin)


def produce_keyed(server: ServerProcess, topic: str, count: int) -> list[dict]:
    """Produce ``count`` records key-i:value-i with a header; return their offsets."""
    lines = "".join(f"key-{i}:value-{i}\n" for i in range(count))
    result = assert_ok(on(server, "produce", topic, "-K", ":", "--header", "source=test",
                          "--print-offsets", "--json", stdin=lines))
    return result.json_lines()


def test_topic_lifecycle(server: ServerProcess) -> None:
    created = assert_ok(on(server, "topics", "create", "lifecycle", "--partitions", "2",
                           "--config", "segment.bytes=1000000", "--config", "retention.ms=-1"))
    assert created.stdout == "Created topic lifecycle.\n"
    listed = {t["topic"]: t["partitions"] for t in on(server, "topics", "list", "--json").json()}
    assert listed["lifecycle"] == 2

    (described,) = on(server, "topics", "describe", "lifecycle", "--json").json()
    assert described["overrides"] == {"segment.bytes": "1000000", "retention.ms": "-1"}
    assert described["config"]["cleanup.policy"] == "delete"
    assert [(p["partition"], p["log_start_offset"], p["log_end_offset"])
            for p in described["partitions"]] == [(0, 0, 0), (1, 0, 0)]
    # the Kafka protocol carries no segment counts; sizes come from DescribeLogDirs
    assert {p["segments"] for p in described["partitions"]} == {None}
    assert {p["bytes"] for p in described["partitions"]} == {0}

    assert_ok(on(server, "topics", "alter", "lifecycle", "--config", "retention.ms=60000"))
    (described,) = on(server, "topics", "describe", "lifecycle", "--json").json()
    assert described["overrides"]["retention.ms"] == "60000"

    assert_ok(on(server, "topics", "alter", "lifecycle", "--partitions", "4"))
    (described,) = on(server, "topics", "describe", "lifecycle", "--json").json()
    assert len(described["partitions"]) == 4

    assert_ok(on(server, "topics", "delete", "lifecycle"))
    assert "lifecycle" not in {t["topic"] for t in on(server, "topics", "list", "--json").json()}
    assert_error(on(server, "topics", "delete", "lifecycle"), 1, "UnknownTopicOrPartition",
                 "lifecycle")


def test_produce_then_describe_and_consume(server: ServerProcess) -> None:
    assert_ok(on(server, "topics", "create", "orders", "--partitions", "3"))
    offsets = produce_keyed(server, "orders", 30)
    assert len(offsets) == 30
    per_partition = Counter(o["partition"] for o in offsets)
    # offsets are dense from 0 in each partition, printed in input order
    for partition, count in per_partition.items():
        assert sorted(o["offset"] for o in offsets if o["partition"] == partition) == list(
            range(count))

    described = table_rows(on(server, "topics", "describe", "orders"))
    assert [(int(r["PARTITION"]), int(r["LOG-END-OFFSET"])) for r in described] == [
        (p, per_partition[p]) for p in range(3)]
    assert {r["SEGMENTS"] for r in described} == {"-"}

    records = on(server, "consume", "orders", "--from-beginning", "--exit-at-end",
                 "--json").json_lines()
    assert sorted((r["key"], r["value"]) for r in records) == sorted(
        (f"key-{i}", f"value-{i}") for i in range(30))
    assert {tuple(map(tuple, r["headers"])) for r in records} == {(("source", "test"),)}
    landed = {(o["partition"], o["offset"]) for o in offsets}
    assert {(r["partition"], r["offset"]) for r in records} == landed

    # one partition from an offset, with a kcat-style format
    partition = offsets[0]["partition"]
    printed = assert_ok(on(server, "consume", "orders", "--partition", str(partition),
                           "--offset", "1", "--exit-at-end", "--format", "%p|%o|%k|%s|%h\\n"))
    expected = [f"{partition}|{o}|" for o in range(1, per_partition[partition])]
    lines = printed.stdout.splitlines()
    assert [line[:len(prefix)] for line, prefix in zip(lines, expected, strict=True)] == expected
    assert all(line.endswith("|source=test") for line in lines)


def test_group_consume_lag_and_reset(server: ServerProcess) -> None:
    assert_ok(on(server, "topics", "create", "payments", "--partitions", "2"))
    produce_keyed(server, "payments", 20)
    ends = {p["partition"]: p["log_end_offset"] for p in on(
        server, "topics", "describe", "payments", "--json").json()[0]["partitions"]}

    consumed = assert_ok(on(server, "consume", "payments", "--group", "billing",
                            "--from-beginning", "--max-messages", "7"))
    assert len(consumed.stdout.splitlines()) == 7

    described = on(server, "groups", "describe", "billing")
    assert described.stdout.split("\n", 1)[0].split() == DESCRIBE_HEADER
    rows = table_rows(described)
    assert [r["PARTITION"] for r in rows] == ["0", "1"]
    for row in rows:
        end = ends[int(row["PARTITION"])]
        assert int(row["LOG-END-OFFSET"]) == end
        current = row["CURRENT-OFFSET"]
        if current == "-":  # nothing read there yet, so nothing committed
            assert row["LAG"] == "-"
        else:
            assert int(row["LAG"]) == end - int(current)
        assert (row["CONSUMER-ID"], row["HOST"], row["CLIENT-ID"]) == ("-", "-", "-")
    committed = [r["current_offset"] for r in
                 on(server, "groups", "describe", "billing", "--json").json()]
    assert sum(c or 0 for c in committed) == 7
    assert ("billing", "Empty") in {(g["group"], g["state"])
                                    for g in on(server, "groups", "list", "--json").json()}

    # dry run by default: the plan, and nothing changes
    plan = on(server, "groups", "reset-offsets", "billing", "--topic", "payments",
              "--to-earliest")
    assert plan.stdout.split("\n", 1)[0].split() == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
    assert [r["NEW-OFFSET"] for r in table_rows(plan)] == ["0", "0"]
    assert [r["current_offset"] for r in
            on(server, "groups", "describe", "billing", "--json").json()] == committed

    def reset(*how: str) -> list[tuple[int | None, int]]:
        """(offset committed before, offset committed now) per partition."""
        plan = on(server, "groups", "reset-offsets", "billing", *how, "--execute", "--json")
        return [(row["current_offset"], row["new_offset"]) for row in plan.json()]

    assert reset("--topic", "payments", "--to-latest") == [(committed[0], ends[0]),
                                                             (committed[1], ends[1])]
    assert reset("--topic", "payments:1", "--to-offset", "2") == [(ends[1], 2)]
    assert reset("--all-topics", "--shift-by", "-3") == [(ends[0], ends[0] - 3), (2, 0)]
    assert reset("--topic", "payments", "--to-datetime", "2000-01-01T00:00:00Z") == [
        (ends[0] - 3, 0), (0, 0)]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    assert reset("--topic", "payments", "--to-datetime", future) == [(0, ends[0]),
                                                                    (0, ends[1])]
    rows = on(server, "groups", "describe", "billing", "--json").json()
    assert [(r["current_offset"], r["lag"]) for r in rows] == [(ends[0], 0), (ends[1], 0)]

    assert_ok(on(server, "groups", "delete", "billing"))
    listed = on(server, "groups", "list", "--json").json()
    assert "billing" not in [g["group"] for g in listed]


def test_active_member_shown_reset_refused_and_ctrl_c_commits(server: ServerProcess) -> None:
    assert_ok(on(server, "topics", "create", "live", "--partitions", "2"))
    produce_keyed(server, "live", 10)
    member = subprocess.Popen(
        [*eventstore_command(), "consume", "live", "--group", "watchers", "--from-beginning",
         "--bootstrap-server", server.bootstrap],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert read_output(member, 10, 30).count(b"\n") == 10
        rows = on(server, "groups", "describe", "watchers", "--json").json()
        assert {r["partition"] for r in rows} == {0, 1}
        for row in rows:
            assert row["consumer_id"].startswith("eventstore-cli")
            assert row["client_id"] == "eventstore-cli"
            assert row["host"] == "127.0.0.1"
        assert_error(on(server, "groups", "reset-offsets", "watchers", "--all-topics",
                        "--to-earliest", "--execute"), 1, "NonEmptyGroup", "inactive",
                     "Stable")
        member.send_signal(signal.SIGINT)
        assert member.wait(30) == 0, member.stderr.read()
    finally:
        member.kill()
        member.wait()
    rows = on(server, "groups", "describe", "watchers", "--json").json()
    assert [(r["lag"], r["consumer_id"]) for r in rows] == [(0, None), (0, None)]
    assert sum(r["current_offset"] for r in rows) == 10


def test_data_dir_of_a_running_server(server: ServerProcess) -> None:
    """Reads work beside the server; writes are refused, naming the server."""
    assert_ok(on(server, "topics", "create", "shared", "--partitions", "2"))
    offsets = produce_keyed(server, "shared", 12)
    per_partition = Counter(o["partition"] for o in offsets)
    data = ["--data-dir", server.data_dir]

    counted = cli("sql", "SELECT partition, count(*) AS n FROM records WHERE topic = 'shared'"
                  " GROUP BY partition ORDER BY partition", "--format", "json", *data).json()
    assert {row["partition"]: row["n"] for row in counted} == per_partition

    segments = cli("segments", "shared", "--json", *data).json()
    assert {s["partition"]: s["record_count"] for s in segments} == per_partition
    assert all(s["active"] and s["sealed_ms"] is None for s in segments)

    (described,) = cli("topics", "describe", "shared", "--json", *data).json()
    assert [p["log_end_offset"] for p in described["partitions"]] == [
        per_partition[0], per_partition[1]]
    assert all(p["segments"] == 1 and p["bytes"] > 0 for p in described["partitions"])

    records = cli("consume", "shared", "--from-beginning", "--json", *data).json_lines()
    assert len(records) == 12

    for refused in (cli("topics", "create", "other", *data),
                    cli("produce", "shared", *data, stdin="x\n"),
                    cli("groups", "reset-offsets", "g", "--all-topics", "--to-earliest",
                        "--execute", *data)):
        assert_error(refused, 3, "is locked by", f"pid {server.pid}", "eventstore serve",
                     "--bootstrap-server")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_errors_over_the_wire(server: ServerProcess) -> None:
    assert_ok(on(server, "topics", "create", "errs", "--partitions", "2"))
    assert_error(on(server, "topics", "create", "errs"), 1, "TopicAlreadyExists", "errs")
    assert_error(on(server, "topics", "create", "bad", "--config", "no.such.key=1"), 1,
                 "InvalidConfig", "no.such.key")
    assert_error(on(server, "topics", "alter", "errs", "--partitions", "1"), 1,
                 "InvalidPartitions")
    assert_error(on(server, "topics", "describe", "missing"), 1, "UnknownTopicOrPartition")
    assert_error(on(server, "produce", "missing", stdin="x\n"), 1, "UnknownTopicOrPartition")
    assert_error(on(server, "produce", "errs", "--partition", "5", stdin="x\n"), 1,
                 "has no partition 5")
    assert_error(on(server, "consume", "missing", "--exit-at-end"), 1,
                 "UnknownTopicOrPartition")
    assert_error(on(server, "groups", "describe", "nobody"), 1, "GroupIdNotFound")
    port = _closed_port()
    started = time.monotonic()
    assert_error(cli("topics", "list", "--bootstrap-server", f"127.0.0.1:{port}"), 3,
                 "cannot reach the server", str(port))
    assert time.monotonic() - started < 10
    assert_error(cli("topics", "list", "--bootstrap-server", "no-port"), 2, "HOST:PORT")


def test_produce_reports_offsets_in_order_and_counts(server: ServerProcess) -> None:
    assert_ok(on(server, "topics", "create", "single"))
    result = assert_ok(on(server, "produce", "single", "--print-offsets", "--verbose",
                          stdin="a\nb\n\nc\n"))
    assert result.stdout.splitlines() == [f"single-0@{i}" for i in range(4)]
    assert result.stderr == "Produced 4 records to single.\n"
    silent = assert_ok(on(server, "produce", "single", stdin="d\n"))
    assert silent.stdout == silent.stderr == ""
    values = on(server, "consume", "single", "--group", "once", "--from-beginning",
                "--exit-at-end").stdout
    assert values == "a\nb\n\nc\nd\n"
    # the group committed everything it printed: a second run has nothing left
    assert on(server, "consume", "single", "--group", "once", "--exit-at-end").stdout == ""
