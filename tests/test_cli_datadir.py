"""The `eventstore` commands on a data directory with no server: reads through the SQL
engine, writes through the embedded store under the directory's lock."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli_support import assert_error, assert_ok, cli, table_rows

from eventstore.cli.main import build_parser


def test_topics_produce_segments_and_sql(data_dir: str, tmp_path: Path) -> None:
    here = ["--data-dir", data_dir]
    assert_ok(cli("topics", "create", "events", "--partitions", "2", "--config",
                  "segment.bytes=200", *here))
    # three runs, each one batch per partition, so the small segments roll between them
    for run in range(3):
        lines = "".join(f"k{i}\tvalue {run}-{i}\n" for i in range(8))
        assert_ok(cli("produce", "events", "--key-separator", "\t", "--header", f"run={run}",
                      *here, stdin=lines))

    (described,) = cli("topics", "describe", "events", "--json", *here).json()
    assert described["overrides"] == {"segment.bytes": "200"}
    partitions = described["partitions"]
    assert sum(p["log_end_offset"] for p in partitions) == 24
    assert all(p["log_start_offset"] == 0 and p["bytes"] > 0 for p in partitions)

    segments = cli("segments", "events", "--json", *here).json()
    for partition in partitions:
        chain = [s for s in segments if s["partition"] == partition["partition"]]
        assert len(chain) == partition["segments"] > 1
        assert chain[0]["base_offset"] == 0
        for older, newer in zip(chain, chain[1:], strict=False):
            assert newer["base_offset"] == older["last_offset"] + 1
            assert older["sealed_ms"] is not None and not older["active"]
        assert chain[-1]["active"] and chain[-1]["sealed_ms"] is None
        assert sum(s["record_count"] for s in chain) == partition["log_end_offset"]
        assert sum(s["bytes"] for s in chain) == partition["bytes"]

    table = table_rows(cli("segments", "events", "--partition", "0", *here))
    assert list(table[0]) == ["PARTITION", "BASE-OFFSET", "LAST-OFFSET", "RECORDS", "GAPS",
                              "BYTES", "CREATED", "SEALED", "ACTIVE", "FILE"]
    assert {row["GAPS"] for row in table} == {"0"}  # no compaction: no gaps
    assert [row["ACTIVE"] for row in table] == ["no"] * (len(table) - 1) + ["yes"]
    assert all(Path(row["FILE"]).is_file() for row in table)

    second = next(s for s in segments if s["partition"] == 0 and s["base_offset"] > 0)
    dumped = cli("segments", "events", "--partition", "0", "--records", "--segment",
                 str(second["base_offset"]), "--json", *here).json()
    assert [r["offset"] for r in dumped] == list(range(second["base_offset"],
                                                       second["last_offset"] + 1))
    assert all(r["value"].startswith("value ") and r["headers"].startswith("run=")
               for r in dumped)

    counted = cli("sql", "SELECT count(*) AS n, count(DISTINCT key) AS keys FROM records",
                  "--format", "csv", *here)
    assert assert_ok(counted).stdout == "n,keys\n24,8\n"
    listed = cli("sql", "SELECT topic, partitions FROM topics", "--format", "jsonl", *here)
    assert listed.json_lines() == [{"topic": "events", "partitions": 2}]
    shell = assert_ok(cli("sql", *here, stdin="SELECT count(*) FROM records;\n.tables\n"))
    assert "24" in shell.stdout and "consumer_groups" in shell.stdout
    assert_error(cli("sql", "DELETE FROM records", *here), 1, "read-only")
    assert_error(cli("sql", "SELECT nonsense FROM", *here), 1, "SQL error")


def test_consume_standalone_and_in_a_group(data_dir: str, tmp_path: Path) -> None:
    here = ["--data-dir", data_dir]
    assert_ok(cli("topics", "create", "feed", "--partitions", "2", *here))
    source = tmp_path / "input.txt"
    source.write_text("".join(f"user-{i % 4}:{{\"n\": {i}}}\n" for i in range(40)))
    produced = assert_ok(cli("produce", "feed", "-K", ":", "--verbose", "--print-offsets",
                             *here, stdin_file=str(source)))
    assert produced.stderr == "Produced 40 records to feed.\n"
    landed = [line.rpartition("-")[2].split("@") for line in produced.stdout.splitlines()]
    ends = {p: sum(1 for q, _ in landed if int(q) == p) for p in (0, 1)}

    everything = cli("consume", "feed", "--from-beginning", "--json", *here).json_lines()
    assert sorted(r["value"] for r in everything) == sorted(
        f'{{"n": {i}}}' for i in range(40))
    # the same key always lands in the same partition
    assert len({(r["key"], r["partition"]) for r in everything}) == 4

    tail = cli("consume", "feed", "--partition", "1", "--offset", str(ends[1] - 2),
               "--format", "%p:%o:%k:%S\\n", *here)
    assert assert_ok(tail).stdout.splitlines() == [
        f"1:{o}:{r['key']}:{len(r['value'])}" for o, r in
        ((r["offset"], r) for r in everything if r["partition"] == 1 and
         r["offset"] >= ends[1] - 2)]
    assert cli("consume", "feed", *here).stdout == ""  # from the end, as Kafka

    assert len(cli("consume", "feed", "--group", "readers", "--from-beginning",
                   "--max-messages", "5", *here).stdout.splitlines()) == 5
    rows = cli("groups", "describe", "readers", "--json", *here).json()
    assert sum(r["current_offset"] or 0 for r in rows) == 5
    assert all(r["lag"] == r["log_end_offset"] - r["current_offset"] for r in rows)
    rest = cli("consume", "feed", "--group", "readers", *here).stdout.splitlines()
    assert len(rest) == 35  # the group goes on where it committed
    described = table_rows(cli("groups", "describe", "readers", *here))
    assert [(r["PARTITION"], r["CURRENT-OFFSET"], r["LOG-END-OFFSET"], r["LAG"],
             r["CONSUMER-ID"]) for r in described] == [
        (str(p), str(ends[p]), str(ends[p]), "0", "-") for p in (0, 1)]

    dry = table_rows(cli("groups", "reset-offsets", "readers", "--topic", "feed:0",
                         "--shift-by", "-3", *here))
    assert dry == [{"GROUP": "readers", "TOPIC": "feed", "PARTITION": "0",
                    "NEW-OFFSET": str(ends[0] - 3)}]
    assert_ok(cli("groups", "reset-offsets", "readers", "--topic", "feed:0", "--shift-by",
                  "-3", "--execute", *here))
    assert len(cli("consume", "feed", "--group", "readers", *here).stdout.splitlines()) == 3

    assert cli("groups", "list", "--json", *here).json() == [
        {"group": "readers", "state": "Empty"}]
    assert_ok(cli("groups", "delete", "readers", *here))
    assert cli("groups", "list", "--json", *here).json() == []
    assert_error(cli("groups", "describe", "readers", *here), 1, "GroupIdNotFound")


def test_alter_and_delete_topics(data_dir: str) -> None:
    here = ["--data-dir", data_dir]
    assert_ok(cli("topics", "create", "tuned", "--config", "retention.ms=1000", *here))
    assert_ok(cli("topics", "alter", "tuned", "--partitions", "3", "--config",
                  "segment.ms=60000", "--delete-config", "retention.ms", *here))
    (described,) = cli("topics", "describe", "tuned", "--json", *here).json()
    assert described["overrides"] == {"segment.ms": "60000"}
    assert described["config"]["retention.ms"] == "604800000"  # Kafka's default again
    assert len(described["partitions"]) == 3
    listing = cli("topics", "list", *here)
    assert table_rows(listing) == [{"TOPIC": "tuned", "PARTITIONS": "3"}]
    assert_ok(cli("topics", "delete", "tuned", "--json", *here))
    assert cli("topics", "list", "--json", *here).json() == []


def test_errors_are_one_line(data_dir: str, tmp_path: Path) -> None:
    here = ["--data-dir", data_dir]
    assert_ok(cli("topics", "create", "t", *here))
    missing = str(tmp_path / "nowhere")
    for result, code, fragments in [
        (cli("topics", "create", "t", *here), 1, ["TopicAlreadyExists"]),
        (cli("topics", "create", "x", "--config", "segment.bytes=-5", *here), 1,
         ["InvalidConfig", "segment.bytes"]),
        (cli("topics", "create", "x", "--config", "nokey", *here), 2, ["KEY=VALUE"]),
        (cli("topics", "alter", "t", *here), 2, ["--partitions"]),
        (cli("topics", "alter", "nope", "--partitions", "2", *here), 1,
         ["UnknownTopicOrPartition"]),
        (cli("topics", "list", "--data-dir", missing), 1, ["does not exist", "nowhere"]),
        (cli("produce", "nope", *here, stdin="x\n"), 1, ["UnknownTopicOrPartition"]),
        (cli("produce", "t", "-K", ":", *here, stdin="a:1\nno separator\n"), 1,
         ["line 2", "key separator", "after 1 of 1"]),
        (cli("consume", "nope", *here), 1, ["UnknownTopicOrPartition"]),
        (cli("consume", "t", "--partition", "3", *here), 1, ["has no partition 3"]),
        (cli("consume", "t", "--group", "g", "--offset", "1", *here), 2, ["--group"]),
        (cli("consume", "t", "--format", "%q", *here), 2, ["%q"]),
        (cli("segments", "nope", *here), 1, ["UnknownTopicOrPartition"]),
        (cli("segments", "t", "--records", *here), 2, ["--segment"]),
        (cli("segments", "t", "--records", "--segment", "99", *here), 1, ["no segment"]),
        (cli("groups", "reset-offsets", "g", "--topic", "t", *here), 2, ["--to-"]),
        (cli("groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "soon",
             *here), 2, ["ISO 8601"]),
        (cli("groups", "delete", "nobody", *here), 1, ["GroupIdNotFound"]),
        (cli("topics", "frobnicate", *here), 2, ["invalid choice"]),
    ]:
        assert_error(result, code, *fragments)
    # what the failing produce sent before its bad line is kept, nothing else was written
    kept = cli("consume", "t", "--from-beginning", "--format", "%k=%s\\n", *here)
    assert kept.stdout == "a=1\n"


@pytest.mark.parametrize("path", [
    [], ["topics"], ["topics", "create"], ["topics", "list"], ["topics", "describe"],
    ["topics", "alter"], ["topics", "delete"], ["produce"], ["consume"], ["groups"],
    ["groups", "list"], ["groups", "describe"], ["groups", "reset-offsets"],
    ["groups", "delete"], ["segments"], ["sql"], ["serve"],
])
def test_every_command_has_help_with_examples(path: list[str]) -> None:
    parser = build_parser()
    for name in path:
        choices = next(a.choices for a in parser._actions if getattr(a, "choices", None)
                       and isinstance(a.choices, dict))
        parser = choices[name]
    text = parser.format_help()
    examples = text.split("examples:\n", 1)[1]
    assert examples.startswith("  ") and "eventstore" in examples.split("\n", 1)[0]
    assert "exit codes:" in text


def test_help_runs() -> None:
    result = assert_ok(cli("groups", "describe", "--help"))
    assert "CURRENT-OFFSET" in result.stdout and "examples:" in result.stdout
