"""The log end is durable and checked: a partition whose newest segments are gone goes
offline, never starts over at the end of what is left, and so never hands out an offset
twice.

Each partition folder holds an anchor (``anchor.json``): the newest segment created and a
log-end-offset the log reached, written at each roll, at open and at a clean stop. The
newest segment file deleted while the server is stopped (after a clean stop or a crash) is
found at start-up; one deleted or replaced while it runs is found by the next file check
(a second after appends), before more appends are acknowledged into it. Either way the
partition goes offline with a line naming the missing file, every other partition keeps
serving, no file is changed, and `eventstore verify` names the file too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from confluent_kafka import Producer
from reliability import KAFKA_STORAGE_ERROR, build_topic, file_hashes, metric, segment_files, serves
from support import (
    KafkaConnection,
    ServerProcess,
    eventstore_command,
    metadata_errors,
    produce,
    wait_until,
)

from eventstore.config import TopicConfig
from eventstore.errors import CorruptLog
from eventstore.storage.anchor import ANCHOR_FILE, Anchor, read_anchor, write_anchor
from eventstore.storage.catalog import Catalog, CommittedOffset, partition_dir
from eventstore.storage.log import PartitionLog
from eventstore.storage.verify import verify

TOPIC = "t"
RECORDS = 300
SEGMENT_BYTES = 8192  # about 37 records of 200 bytes: eight segments a partition


def build(data_dir: str) -> list[str]:
    """Topic ``t`` on disk (two partitions); partition 0's segment files, oldest first."""
    build_topic(data_dir, TOPIC, 2, RECORDS, segment_bytes=SEGMENT_BYTES)
    segments = segment_files(data_dir, TOPIC, 0)
    assert len(segments) > 3
    return segments


def verify_names(data_dir: str, path: str) -> str:
    """`eventstore verify` (the command) reports exactly one problem, in ``path``; its line."""
    found = subprocess.run([*eventstore_command(), "verify", "--data-dir", data_dir],
                           capture_output=True, text=True, timeout=60)
    assert found.returncode == 1, (found.stdout, found.stderr)
    report = verify(data_dir)
    assert [p.path for p in report.problems] == [path], report.problems
    (line,) = [line for line in found.stdout.splitlines() if line.startswith(path)]
    return line


def offline_line(server: ServerProcess, since: int = 0) -> dict[str, str]:
    """The one "partition offline" line the server logs for partition 0."""
    line = server.wait_for_log(
        lambda f: f.get("msg") == "partition offline" and f.get("partition") == "0", 10,
        since=since)
    assert sum('msg="partition offline"' in text for text in server.lines[since:]) == 1
    return line


def assert_offline_alone(server: ServerProcess) -> None:
    """Partition 0 refuses produce and fetch with KAFKA_STORAGE_ERROR; partition 1 serves."""
    with KafkaConnection(server.address) as conn:
        assert metadata_errors(conn, TOPIC) == {0: KAFKA_STORAGE_ERROR, 1: 0}
        assert produce(conn, TOPIC, 0, [b"refused"]).error_code == KAFKA_STORAGE_ERROR
    serves(server, TOPIC, 1)
    assert metric(server, "eventstore_partitions_offline", topic=TOPIC) == 1.0


def produce_confluent(server: ServerProcess, partition: int, count: int) -> list[int]:
    """Produce ``count`` records to ``partition`` with acks=all; their offsets."""
    offsets: list[int] = []
    producer = Producer({"bootstrap.servers": server.bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})

    def delivered(error: object, message: object) -> None:
        assert error is None, error
        offsets.append(message.offset())  # type: ignore[attr-defined]

    for index in range(count):
        producer.produce(TOPIC, f"later-{index}".encode().ljust(200, b"."),
                         partition=partition, on_delivery=delivered)
    assert producer.flush(30) == 0
    return sorted(offsets)


# -- the storage core ------------------------------------------------------------------------


@pytest.mark.parametrize("removed", [1, 2], ids=["newest", "two-newest"])
def test_a_chain_that_ends_before_its_anchor_does_not_open(data_dir: str, removed: int
                                                          ) -> None:
    segments = build(data_dir)
    directory = os.path.dirname(segments[0])
    anchor = read_anchor(directory)
    assert anchor == Anchor(int(os.path.basename(segments[-1])[:20]), RECORDS)
    for path in segments[-removed:]:
        os.unlink(path)
    before = file_hashes(directory)

    with pytest.raises(CorruptLog) as caught:
        PartitionLog.open(directory, TopicConfig.from_mapping({"segment.bytes": SEGMENT_BYTES}))
    first_missing = segments[-removed]
    assert str(caught.value).startswith(f"CorruptLog: {first_missing}: missing"), caught.value
    assert f"log-end-offset reached {RECORDS}" in str(caught.value)
    assert file_hashes(directory) == before, "nothing is truncated, renamed or created"
    assert "missing" in verify_names(data_dir, first_missing)


def test_an_anchor_behind_the_chain_moves_forward_at_open(data_dir: str) -> None:
    """A crash between a roll and its anchor, or a partition of an older release (no
    anchor at all): the chain reaches further than the anchor, which is fine."""
    segments = build(data_dir)
    directory = os.path.dirname(segments[0])
    newest = int(os.path.basename(segments[-1])[:20])
    for behind in (Anchor(int(os.path.basename(segments[-2])[:20]), 0), None):
        if behind is None:
            os.unlink(os.path.join(directory, ANCHOR_FILE))
        else:
            write_anchor(directory, behind)
        log = PartitionLog.open(directory)
        assert log.log_end_offset == RECORDS
        assert read_anchor(directory) == Anchor(newest, newest), "advanced at open"
        log.close()
        assert read_anchor(directory) == Anchor(newest, RECORDS), "and at a clean close"


def test_a_damaged_anchor_takes_its_partition_offline(data_dir: str) -> None:
    segments = build(data_dir)
    path = os.path.join(os.path.dirname(segments[0]), ANCHOR_FILE)
    with open(path, "w") as fh:
        fh.write("{not json")
    with pytest.raises(CorruptLog, match=f"{path}: not a partition anchor"):
        PartitionLog.open(os.path.dirname(path))
    assert "not a partition anchor" in verify_names(data_dir, path)


def test_verify_reports_a_commit_past_the_log_end(data_dir: str) -> None:
    """A group read further than the log now reaches: records it read are gone."""
    build(data_dir)
    catalog = Catalog.open(data_dir)
    try:
        catalog.commit_offsets("g", [CommittedOffset("g", TOPIC, 1, RECORDS + 5, None, 0)])
    finally:
        catalog.close()
    line = verify_names(data_dir, partition_dir(data_dir, TOPIC, 1))
    assert f"group 'g' committed offset {RECORDS + 5}" in line
    assert f"log-end-offset {RECORDS}" in line


# -- a server ---------------------------------------------------------------------------------


@pytest.mark.parametrize("removed", [1, 2], ids=["newest", "two-newest"])
@pytest.mark.parametrize("stop", ["clean", "killed"])
def test_newest_segments_deleted_while_stopped_take_the_partition_offline(
    serve, data_dir: str, stop: str, removed: int,
) -> None:
    build(data_dir)
    server = serve(data_dir)
    offsets = produce_confluent(server, 0, 100)  # rolls at least twice: anchored
    assert offsets == list(range(RECORDS, RECORDS + 100))
    if stop == "clean":
        server.stop()
    else:
        server.kill()
    segments = segment_files(data_dir, TOPIC, 0)
    for path in segments[-removed:]:
        os.unlink(path)
    directory = os.path.dirname(segments[0])
    before = file_hashes(directory)

    server.relaunch()
    line = offline_line(server)
    first_missing = segments[-removed]
    assert line["error"].startswith(f"CorruptLog: {first_missing}: missing"), line
    assert_offline_alone(server)
    mark = len(server.lines)
    server.restart()  # still offline: nothing was truncated or started over
    assert offline_line(server, since=mark)["error"] == line["error"]
    assert_offline_alone(server)
    server.stop()
    assert file_hashes(directory) == before, "the partition must be left as it was"
    assert "missing" in verify_names(data_dir, first_missing)


def appended_until_refused(server: ServerProcess) -> int:
    """Produce one record after another to partition 0 until it is refused with
    KAFKA_STORAGE_ERROR (within seconds); how many were still acknowledged."""
    acknowledged = 0
    with KafkaConnection(server.address) as conn:
        def refused() -> bool:
            nonlocal acknowledged
            code = produce(conn, TOPIC, 0, [b"after"]).error_code
            acknowledged += code == 0
            assert code in (0, KAFKA_STORAGE_ERROR), code
            return code == KAFKA_STORAGE_ERROR
        wait_until(refused, 5, "appends to a deleted segment to be refused")
        for _ in range(5):
            assert produce(conn, TOPIC, 0, [b"after"]).error_code == KAFKA_STORAGE_ERROR
    return acknowledged


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_an_active_segment_deleted_or_replaced_under_a_running_server(
    serve, data_dir: str, how: str,
) -> None:
    segments = build(data_dir)
    active = segments[-1]
    server = serve(data_dir)
    with KafkaConnection(server.address) as conn:
        assert produce(conn, TOPIC, 0, [b"before"] * 3).error_code == 0
    if how == "deleted":
        os.unlink(active)
    else:  # an older copy of the file put in its place, as a careless restore does
        copy = active + ".copy"
        shutil.copyfile(active, copy)
        os.replace(copy, active)

    acknowledged = appended_until_refused(server)
    failed = server.wait_for_log(lambda f: f.get("msg") == "partition failed, restarting"
                                 " from disk" and f.get("partition") == "0", 10)
    assert f"{active}: the active segment's file was {how} while open" in failed["error"]
    line = offline_line(server)  # reopened from disk at once: the anchor says what is gone
    lost = "missing" if how == "deleted" else "records were lost"
    assert line["error"].startswith(f"CorruptLog: {active}: ") and lost in line["error"], line
    assert_offline_alone(server)
    server.stop()
    directory = os.path.dirname(active)
    before = file_hashes(directory)

    mark = len(server.lines)
    server.relaunch()  # found again at start-up: no offset is handed out a second time
    assert offline_line(server, since=mark)["error"] == line["error"]
    assert_offline_alone(server)
    server.stop()
    assert file_hashes(directory) == before
    with open(os.path.join(directory, ANCHOR_FILE)) as fh:
        anchored = json.load(fh)["log_end_offset"]
    assert anchored == RECORDS + 3 + acknowledged, "every acknowledged offset is anchored"
    assert lost in verify_names(data_dir, active)
