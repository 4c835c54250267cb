"""Damage stays local, inside a partition too: a middle segment deleted or damaged under a
running server costs the offsets it held and nothing else.

Records before the damaged segment are served (a fetch from offset 0 stops before it),
a fetch that reaches it gets KAFKA_STORAGE_ERROR (never OFFSET_OUT_OF_RANGE for offsets
the log should hold, which would make a client reset and skip them), the records after it
are served, appends go on, the partition counts as offline in the metrics, and the server
logs the damage once however often consumers retry. Clients see that too: confluent-kafka
reads up to the damage and stops there, `eventstore consume` prints what precedes it and
then one line, exiting 1. The offline tools (`sql`, `segments`, `topics describe` and
`consume` on the data directory) say what is missing instead of reading across the gap,
and `eventstore verify` names the file.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from reliability import (
    KAFKA_STORAGE_ERROR,
    PAGE,
    build_topic,
    metric,
    overwrite,
    records_leaf_page,
    segment_files,
    serves,
    value_of,
)
from support import KafkaConnection, ServerProcess, fetch, poll_until, produce, wait_until
from test_cli_support import assert_error, assert_ok, cli

from eventstore.sql import run_shell
from eventstore.storage.verify import verify

TOPIC = "t"
RECORDS = 900
SEGMENT_BYTES = 32768  # about 148 records of 200 bytes: six segments, several leaf pages each
DAMAGED = 2  # index of the damaged segment in partition 0's chain: a middle one
DAMAGE_LOGGED = "segment damaged, fetches stop before it"


class Chain:
    """Partition 0 built on disk, and where its damaged segment is."""

    def __init__(self, data_dir: str) -> None:
        build_topic(data_dir, TOPIC, 2, RECORDS, segment_bytes=SEGMENT_BYTES)
        self.segments = segment_files(data_dir, TOPIC, 0)
        assert len(self.segments) > DAMAGED + 2
        self.culprit = self.segments[DAMAGED]
        self.base = int(Path(self.culprit).stem)  # the first offset it held
        self.after = int(Path(self.segments[DAMAGED + 1]).stem)  # the first one after it


def deleted(chain: Chain) -> str:
    os.unlink(chain.culprit)
    return "missing"


def damaged_pages(chain: Chain) -> str:
    page = records_leaf_page(chain.culprit)
    overwrite(chain.culprit, (page - 1) * PAGE, random.Random(page).randbytes(PAGE))
    return "malformed"


Damage = Callable[[Chain], str]  # damages the chain, returns a word of SQLite's complaint


def offsets(answer: object) -> list[int]:
    return [record.offset for record in answer.records]  # type: ignore[attr-defined]


def damage_lines(server: ServerProcess) -> list[str]:
    return [line for line in server.lines if DAMAGE_LOGGED in line]


def assert_served_around(server: ServerProcess, chain: Chain) -> dict[str, str]:
    """Before the damage: served up to it (the read that found it); at it, once the server
    logged it: KAFKA_STORAGE_ERROR; after it: served. The fields of the damage line."""
    with KafkaConnection(server.address) as conn:
        before = fetch(conn, TOPIC, 0, 0)
        assert before.error_code == 0 and offsets(before) == list(range(chain.base))
        logged = server.wait_for_log(lambda f: f.get("msg") == DAMAGE_LOGGED, 10)
        for offset in (chain.base, chain.base + 1, chain.after - 1):
            assert fetch(conn, TOPIC, 0, offset).error_code == KAFKA_STORAGE_ERROR, offset
        after = fetch(conn, TOPIC, 0, chain.after)
        assert after.error_code == 0 and offsets(after) == list(range(chain.after, RECORDS))
    return logged


def confluent(server: ServerProcess, offset: int) -> Consumer:
    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "readers",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(TOPIC, 0, offset)])
    return consumer


def polled(consumer: Consumer) -> list[int]:
    message = consumer.poll(0.2)
    return [] if message is None or message.error() else [message.offset()]


@pytest.mark.parametrize("damage", [deleted, damaged_pages])
def test_a_middle_segment_damaged_under_a_running_server(serve, data_dir: str,
                                                         damage: Damage) -> None:
    chain = Chain(data_dir)
    server = serve(data_dir, settings={"partition.idle.close.ms": 3_600_000})
    with KafkaConnection(server.address) as conn:  # in use (open) when the damage comes
        assert fetch(conn, TOPIC, 0, 0, max_bytes=1).error_code == 0
    complaint = damage(chain)

    logged = assert_served_around(server, chain)
    assert chain.culprit in logged["error"] and complaint in logged["error"], logged
    assert logged["offsets"] == f"{chain.base}..{chain.after - 1}", logged
    assert metric(server, "eventstore_partitions_offline", topic=TOPIC) == 1.0

    failed = metric(server, "eventstore_failed_reads_total", topic=TOPIC)
    with KafkaConnection(server.address) as conn:
        for _ in range(30):  # a consumer retrying: counted, not logged again
            assert fetch(conn, TOPIC, 0, chain.base).error_code == KAFKA_STORAGE_ERROR
        appended = produce(conn, TOPIC, 0, [b"appends go on"])
        assert appended.error_code == 0 and appended.base_offset == RECORDS
        assert offsets(fetch(conn, TOPIC, 0, RECORDS)) == [RECORDS]
    assert metric(server, "eventstore_failed_reads_total", topic=TOPIC) == failed + 30
    assert len(damage_lines(server)) == 1
    serves(server, TOPIC, 1)

    # confluent-kafka: everything before the damage, then it waits there (it is not told
    # OFFSET_OUT_OF_RANGE, so it does not reset past the damage); a consumer placed after
    # the damage reads on
    stuck = confluent(server, 0)
    after = confluent(server, chain.after)
    try:
        got = poll_until(lambda: polled(stuck), chain.base, 30, "the records before the damage")
        assert got == list(range(chain.base))
        failed = metric(server, "eventstore_failed_reads_total", topic=TOPIC)
        wait_until(lambda: polled(stuck) or metric(
            server, "eventstore_failed_reads_total", topic=TOPIC) > failed, 30,
            "the consumer's fetch at the damage")
        assert stuck.position([TopicPartition(TOPIC, 0)])[0].offset == chain.base
        rest = poll_until(lambda: polled(after), RECORDS + 1 - chain.after, 30, "the rest")
        assert rest == list(range(chain.after, RECORDS + 1))
        assert polled(stuck) == [], "still nothing past the damage"
    finally:
        stuck.close()
        after.close()

    # the command line: what comes before, then one line, exit 1 (neither a hang nor 0)
    wire = ["--bootstrap-server", server.bootstrap, "--partition", "0", "--exit-at-end"]
    stopped = cli("consume", TOPIC, "--offset", "0", *wire)
    assert stopped.stdout.splitlines() == [value_of(0, o).decode() for o in range(chain.base)]
    assert_error(stopped, 1, "KafkaStorageError", f"offset {chain.base} cannot be read")
    rest = assert_ok(cli("consume", TOPIC, "--offset", str(chain.after), *wire))
    assert len(rest.stdout.splitlines()) == RECORDS + 1 - chain.after
    assert len(damage_lines(server)) == 1, "however many reads reached the damage"
    server.stop()

    report = verify(data_dir)
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].path in (chain.culprit, chain.segments[DAMAGED + 1])


def sql(data_dir: str, query: str) -> tuple[list[dict], str]:
    """The rows of ``eventstore sql QUERY`` and what it said on stderr."""
    done = assert_ok(cli("sql", query, "--format", "jsonl", "--data-dir", data_dir))
    return done.json_lines(), done.stderr


def test_offline_tools_report_a_gap_instead_of_reading_across_it(data_dir: str) -> None:
    chain = Chain(data_dir)
    deleted(chain)
    follower = chain.segments[DAMAGED + 1]  # the segment after the gap, where it is named
    gap = f"offsets {chain.base}..{chain.after - 1} are missing"

    count = f"SELECT count(*) AS n FROM records WHERE topic = '{TOPIC}'"
    counted, warned = sql(data_dir, count)
    assert counted == [{"n": 2 * RECORDS - (chain.after - chain.base)}]
    assert warned == f"warning: partition {TOPIC}-0: {gap} (no segment file holds them):" \
        " results leave them out\n"
    shown, said = io.StringIO(), io.StringIO()
    run_shell(data_dir, stdin=io.StringIO(f"{count};\n"), stdout=shown, stderr=said)
    assert shown.getvalue().split() == [str(counted[0]["n"])] and said.getvalue() == warned
    rows, warned = sql(data_dir, f"SELECT partition, problem FROM partitions"
                       f" WHERE topic = '{TOPIC}' ORDER BY partition")
    assert rows[0]["problem"].startswith(f"{follower}: starts at offset {chain.after}"), rows
    assert rows[1] == {"partition": 1, "problem": None}
    assert warned == f"warning: partition {TOPIC}-0: {rows[0]['problem']}\n"

    segments = cli("segments", TOPIC, "--partition", "0", "--json", "--data-dir", data_dir)
    listed = {s["path"]: s["problem"] for s in segments.json()}
    assert chain.culprit not in listed and "the chain has a gap" in listed[follower]
    assert [p for path, p in listed.items() if path != follower] == [None] * (len(listed) - 1)
    assert "the chain has a gap" in segments.stderr

    described = cli("topics", "describe", TOPIC, "--data-dir", data_dir)
    assert_ok(described)
    (warning,) = described.stderr.splitlines()
    assert warning.startswith(f"warning: partition {TOPIC}-0: {follower}"), warning
    (as_json,) = cli("topics", "describe", TOPIC, "--json", "--data-dir", data_dir).json()
    assert [p["problem"] is None for p in as_json["partitions"]] == [False, True]

    here = ["--partition", "0", "--data-dir", data_dir]
    stopped = cli("consume", TOPIC, "--offset", "0", *here)
    assert stopped.stdout.splitlines() == [value_of(0, o).decode() for o in range(chain.base)]
    assert_error(stopped, 1, "KafkaStorageError", f"offset {chain.base} cannot be read", gap)
    rest = assert_ok(cli("consume", TOPIC, "--offset", str(chain.after), *here))
    assert rest.stdout.splitlines() == [value_of(0, o).decode()
                                        for o in range(chain.after, RECORDS)]


def test_offline_tools_report_newest_segments_that_are_gone(data_dir: str) -> None:
    chain = Chain(data_dir)
    newest = chain.segments[-1]
    end = int(Path(newest).stem)
    os.unlink(newest)

    (bounds,), warned = sql(data_dir, f"SELECT log_end_offset, problem FROM partitions"
                            f" WHERE topic = '{TOPIC}' AND partition = 0")
    assert bounds["log_end_offset"] == RECORDS, "the log-end-offset the anchor says"
    assert bounds["problem"].startswith(f"{newest}: missing"), bounds
    assert warned == f"warning: partition {TOPIC}-0: {bounds['problem']}\n"

    stopped = cli("consume", TOPIC, "--offset", "0", "--partition", "0", "--data-dir", data_dir)
    assert stopped.stdout.splitlines() == [value_of(0, o).decode() for o in range(end)]
    assert_error(stopped, 1, "KafkaStorageError", f"offset {end} cannot be read", newest)
