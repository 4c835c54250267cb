"""Damaged files: the server still starts, the damaged partition alone is offline (or fails
the reads that reach the damage), every other partition keeps serving, `eventstore verify`
names each damaged file, and nothing is deleted or rewritten.

The data is written through the storage core (topic ``t``: two partitions of 300 records
in several sealed segments) and then damaged the way disks and operators damage files:
bytes overwritten in a sealed segment's header or in one of its data pages, a segment cut
short, a middle segment deleted, the catalog damaged or lost. Start-up reads only each
segment's metadata, so header damage, truncation and a gap take the partition offline at
once, while a damaged data page is found by the first read that reaches it (answered with
KAFKA_STORAGE_ERROR, the server unharmed) and by `eventstore verify`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import apsw
import pytest
from reliability import (
    KAFKA_STORAGE_ERROR,
    PAGE,
    build_topic,
    file_hashes,
    metric,
    overwrite,
    records_leaf_page,
    segment_files,
    serves,
)
from support import (
    KafkaConnection,
    ServerFailed,
    ServerProcess,
    eventstore_command,
    fetch,
    metadata_errors,
    produce,
)

from eventstore.storage.catalog import CATALOG_FILE
from eventstore.storage.verify import verify

TOPIC = "t"
RECORDS = 300
DAMAGED = 1  # index of the damaged segment in partition 0's chain


def build(data_dir: str, records: int = RECORDS, segment_bytes: int = 8192) -> list[str]:
    """Topic ``t`` on disk; partition 0's segment files, oldest first."""
    build_topic(data_dir, TOPIC, 2, records, segment_bytes=segment_bytes)
    segments = segment_files(data_dir, TOPIC, 0)
    assert len(segments) > 3
    return segments


# damage -> (what to do to the chain, the file the problem is reported in)
Damage = Callable[[list[str]], str]


def damaged_header(segments: list[str]) -> str:
    overwrite(segments[DAMAGED], 0, b"\xff" * 16)  # the "SQLite format 3" magic
    return segments[DAMAGED]


def truncated(segments: list[str]) -> str:
    os.truncate(segments[DAMAGED], PAGE)
    return segments[DAMAGED]


def middle_deleted(segments: list[str]) -> str:
    os.unlink(segments[DAMAGED])
    return segments[DAMAGED + 1]  # the segment that now follows a gap


def assert_only_problem_is(data_dir: str, path: str) -> None:
    """`eventstore verify` finds exactly one problem, in ``path``, and changes no file."""
    before = file_hashes(data_dir)
    report = verify(data_dir)
    assert [p.path for p in report.problems] == [path], report.problems
    assert file_hashes(data_dir) == before, "verify must not change any file"


@pytest.mark.parametrize("damage", [damaged_header, truncated, middle_deleted])
def test_a_partition_damaged_at_open_goes_offline_alone(serve, data_dir: str,
                                                        damage: Damage) -> None:
    culprit = damage(build(data_dir))
    partition_dir = os.path.dirname(culprit)
    before = file_hashes(partition_dir)

    server = serve(data_dir)
    offline = server.wait_for_log(
        lambda f: f.get("msg") == "partition offline" and f.get("partition") == "0", 10)
    assert culprit in offline["error"], offline
    with KafkaConnection(server.address) as conn:
        assert metadata_errors(conn, TOPIC) == {0: KAFKA_STORAGE_ERROR, 1: 0}
        assert produce(conn, TOPIC, 0, [b"refused"]).error_code == KAFKA_STORAGE_ERROR
        assert fetch(conn, TOPIC, 0, 0).error_code == KAFKA_STORAGE_ERROR
        intact = fetch(conn, TOPIC, 1, 0)
        assert intact.error_code == 0 and len(intact.records) == RECORDS
    serves(server, TOPIC, 1)
    offline_metric = metric(server, "eventstore_partitions_offline", topic=TOPIC)
    assert offline_metric in (None, 1.0), "one partition is offline"  # None: not exported
    server.stop()

    assert file_hashes(partition_dir) == before, "the damaged partition must be left as it was"
    assert_only_problem_is(data_dir, culprit)


def test_a_damaged_data_page_fails_the_reads_that_reach_it(serve, data_dir: str) -> None:
    segments = build(data_dir, records=3 * RECORDS, segment_bytes=32768)
    culprit = segments[DAMAGED]
    page = records_leaf_page(culprit)
    overwrite(culprit, (page - 1) * PAGE, random.Random(page).randbytes(PAGE))
    damaged_base = int(Path(culprit).stem)
    intact_base = int(Path(segments[DAMAGED + 1]).stem)
    before = file_hashes(os.path.dirname(culprit))

    server = serve(data_dir)
    with KafkaConnection(server.address) as conn:
        # start-up read the metadata only: the partition is online ...
        assert metadata_errors(conn, TOPIC) == {0: 0, 1: 0}
        # ... a read that reaches the damaged page gets a clean storage error, logged ...
        assert fetch(conn, TOPIC, 0, damaged_base).error_code == KAFKA_STORAGE_ERROR
        logged = server.wait_for_log(
            lambda f: f.get("msg") == "segment damaged, fetches stop before it", timeout=10)
        assert os.path.basename(culprit) in logged["error"]
        # ... and reads elsewhere, appends, and the other partition go on
        after = fetch(conn, TOPIC, 0, intact_base)
        assert after.error_code == 0 and after.records[0].offset == intact_base
        assert produce(conn, TOPIC, 0, [b"appended"]).error_code == 0
    serves(server, TOPIC, 1)
    with KafkaConnection(server.address) as conn:
        assert fetch(conn, TOPIC, 0, damaged_base).error_code == KAFKA_STORAGE_ERROR, (
            "the server must stay up and keep answering the same")
    server.stop()

    assert file_hashes(os.path.dirname(culprit)).get(Path(culprit).name) == before[
        Path(culprit).name], "the damaged segment must be left as it was"
    assert_only_problem_is(data_dir, culprit)


def refused_start(data_dir: str) -> str:
    """Start a server that must refuse; its last line (the command's one-line error)."""
    server = ServerProcess(data_dir)
    with pytest.raises(ServerFailed):
        server.launch()
    assert server.returncode == 1
    return server.lines[-1]


def test_a_damaged_catalog_stops_the_server_from_starting(data_dir: str) -> None:
    """Topics are unknown without the catalog: serving would answer "no such topic" for
    data on disk, so the honest answer is to refuse, naming the file."""
    build(data_dir)
    catalog = os.path.join(data_dir, CATALOG_FILE)
    overwrite(catalog, PAGE, random.Random(1).randbytes(PAGE))  # the topics table's page
    before = file_hashes(data_dir)

    error = refused_start(data_dir)
    assert error.startswith(f"eventstore serve: CorruptLog: {catalog}: "), error
    assert file_hashes(data_dir) == before
    assert_only_problem_is(data_dir, catalog)


def test_a_lost_catalog_is_not_replaced_by_an_empty_one(data_dir: str) -> None:
    """An empty new catalog would make the topics' folders look like leftovers of deleted
    topics, which creating the topic again removes."""
    build(data_dir)
    catalog = os.path.join(data_dir, CATALOG_FILE)
    os.unlink(catalog)
    before = file_hashes(data_dir)

    error = refused_start(data_dir)
    assert error.startswith(f"eventstore serve: CorruptLog: {catalog}: missing"), error
    assert "t-0, t-1" in error
    assert file_hashes(data_dir) == before and not os.path.exists(catalog)
    assert_only_problem_is(data_dir, catalog)


def test_verify_finds_nothing_in_a_sound_directory_and_each_problem_in_a_damaged_one(
    data_dir: str,
) -> None:
    segments = build(data_dir)
    assert verify(data_dir).ok
    later = segment_files(data_dir, TOPIC, 1)
    os.truncate(segments[DAMAGED], 0)
    overwrite(later[2], 0, b"\x00" * 100)
    conn = apsw.Connection(segments[3])  # metadata that disagrees with the rows
    conn.execute("UPDATE segment SET bytes = bytes + 1")
    conn.close()

    report = verify(data_dir)
    found = {p.path: p.message for p in report.problems}
    assert set(found) == {segments[DAMAGED], later[2], segments[3]}, found
    assert "empty" in found[segments[DAMAGED]]
    assert "bytes" in found[segments[3]]
    assert report.to_json()["ok"] is False


def test_the_verify_command_names_each_damaged_file_and_says_so_in_its_exit_code(
    data_dir: str,
) -> None:
    segments = build(data_dir)

    def verify_command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*eventstore_command(), "verify", "--data-dir", data_dir, *args],
                              capture_output=True, text=True, timeout=60)

    clean = verify_command()
    assert clean.returncode == 0, clean.stderr
    assert "no problem found" in clean.stdout
    culprit = damaged_header(segments)

    found = verify_command()
    assert found.returncode == 1, found.stderr
    assert f"{culprit}: file is not a database" in found.stdout
    as_json = json.loads(verify_command("--json").stdout)
    assert as_json["ok"] is False
    assert [(p["path"], p["topic"], p["partition"]) for p in as_json["problems"]] == [
        (culprit, TOPIC, 0)]
