"""A full disk: producers get KAFKA_STORAGE_ERROR, no file is damaged, nothing acknowledged
is lost, and appends resume by themselves once space is freed, with no partition restarted
and one log line when the disk fills and one when it recovers. Writes to the catalog on a
full disk (a topic, a producer id) fail at once with one clear line and leave nothing.

The server runs on a real small filesystem made by the test: a 16 MiB tmpfs, or, where
mounting tmpfs is not permitted, a 16 MiB ext4 image mounted through a loop device. A
filler file takes all but about 1 MiB, then producers write until SQLite reports the disk
full. Where neither mount is possible (not root, no mount permission in a container) the
test is skipped with the reason: limits on the process instead (RLIMIT_FSIZE kills with
SIGXFSZ, SQLite's max_page_count is not a disk) would not show what a full disk does.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer as KafkaProducer
from reliability import KAFKA_STORAGE_ERROR, file_hashes
from support import (
    KafkaConnection,
    ServerProcess,
    create_topic,
    eventstore_command,
    fetch,
    parse_logfmt,
    produce,
    wait_until,
)

from eventstore.config import TopicConfig
from eventstore.errors import DiskFull
from eventstore.storage.log import PartitionLog
from eventstore.storage.verify import verify

SIZE = "16m"
LEFT_FREE = 1 << 20
TOPIC = "full"
PARTITIONS = 2
VALUES = [b"v" * 1000] * 10  # one batch: 10 KB
MAX_BATCHES = 5000
UNKNOWN_SERVER_ERROR = -1


def _mount(mountpoint: Path, image: Path) -> None:
    """Mount a small filesystem on ``mountpoint``, or skip the test saying why not."""
    attempts = {
        "tmpfs": [["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mountpoint)]],
        "ext4 on a loop device": [
            ["truncate", "-s", SIZE.upper(), str(image)],
            ["mkfs.ext4", "-q", "-F", str(image)],
            ["mount", "-o", "loop", str(image), str(mountpoint)],
        ],
    }
    errors = []
    for kind, commands in attempts.items():
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                errors.append(f"{kind}: {done.stderr.strip() or done.returncode}")
                break
        else:
            return
    pytest.skip("cannot mount a small filesystem: " + "; ".join(errors))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A freshly mounted 16 MiB filesystem, unmounted at the end."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    _mount(mountpoint, tmp_path / "disk.img")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(disk: Path, left: int = LEFT_FREE) -> Path:
    """A filler file taking all but ``left`` bytes of ``disk``."""
    stat = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.write(bytes(stat.f_bavail * stat.f_frsize - left))
    return filler


def logged(server: ServerProcess, message: str) -> list[str]:
    """The server's log lines whose message starts with ``message``."""
    return [line for line in server.lines
            if parse_logfmt(line).get("msg", "").startswith(message)]


def test_a_full_disk_refuses_appends_loses_nothing_and_recovers(small_disk: Path) -> None:
    data_dir = str(small_disk / "data")
    server = ServerProcess.start(data_dir, settings={"segment.bytes": 65536})
    acked: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    try:
        with KafkaConnection(server.address) as conn:
            create_topic(conn, TOPIC, PARTITIONS)
            filler = fill(small_disk)
            refused = {p: 0 for p in range(PARTITIONS)}
            for attempt in range(MAX_BATCHES):
                partition = attempt % PARTITIONS
                result = produce(conn, TOPIC, partition, VALUES)
                assert result.error_code in (0, KAFKA_STORAGE_ERROR), result
                if result.error_code:
                    refused[partition] += 1
                    if min(refused.values()) >= 3:
                        break
                else:
                    acked[partition].append(result.base_offset)
            assert min(refused.values()) >= 3, f"the disk never filled up: {refused}"
            assert server.running
            assert not logged(server, "partition failed"), "a full disk restarts nothing"
            full = logged(server, "disk full")
            assert len(full) == 1 and "exc=" not in full[0], "one line, no traceback"
            for partition, offsets in acked.items():  # reads go on while the disk is full
                assert offsets, "some batches must have fitted"
                assert fetch(conn, TOPIC, partition, offsets[-1]).error_code == 0

            filler.unlink()
            for partition in range(PARTITIONS):
                resumed = wait_until(
                    lambda p=partition: produce(conn, TOPIC, p, VALUES).error_code == 0,
                    10, f"appends to partition {partition} after space was freed")
                assert resumed
            assert len(logged(server, "disk has space again")) == 1
            assert len(logged(server, "disk full")) == 1
        server.stop()
    finally:
        server.kill()

    before = file_hashes(data_dir)
    report = verify(data_dir)
    assert report.ok, report.problems
    assert file_hashes(data_dir) == before
    restarted = ServerProcess.start(data_dir)
    try:
        with KafkaConnection(restarted.address) as conn:
            for partition, offsets in acked.items():
                stored = fetch(conn, TOPIC, partition, 0, max_bytes=64 << 20).records
                positions = {r.offset: r.value for r in stored}
                assert all(positions.get(o + i) == v for o in offsets
                           for i, v in enumerate(VALUES)), "an acknowledged record is missing"
                assert [r.offset for r in stored] == list(range(len(stored)))
    finally:
        restarted.stop()


def test_an_acks_all_producer_loses_nothing_and_resumes_once_space_is_freed(
        small_disk: Path) -> None:
    """confluent-kafka (idempotent, acks=all) produces while the disk fills: it retries the
    refused batches, and once space is freed every record is delivered, once, in order."""
    data_dir = str(small_disk / "data")
    server = ServerProcess.start(data_dir, settings={"segment.bytes": 65536})
    delivered: dict[int, tuple[int, int]] = {}  # record number -> (partition, offset)
    failed: list[str] = []

    def report(error: object, message: Any) -> None:
        if error is not None:
            failed.append(str(error))
        else:
            delivered[int(message.key())] = (message.partition(), message.offset())

    try:
        with KafkaConnection(server.address) as conn:
            create_topic(conn, TOPIC, PARTITIONS)
        producer = KafkaProducer({"bootstrap.servers": server.bootstrap, "acks": "all",
                                  "enable.idempotence": True, "linger.ms": 5,
                                  "message.timeout.ms": 60000})
        sent = 0

        def send(count: int) -> None:
            nonlocal sent
            for _ in range(count):
                producer.produce(TOPIC, VALUES[0], key=str(sent).encode(),
                                 partition=sent % PARTITIONS, on_delivery=report)
                sent += 1
            producer.poll(0)

        send(10)
        assert producer.flush(30) == 0 and not failed
        filler = fill(small_disk)
        wait_until(lambda: send(20) or logged(server, "disk full"), 60,
                   "the disk to fill under the producer")
        send(100)  # refused for now, retried by the producer
        filler.unlink()
        assert producer.flush(60) == 0, "records still undelivered after space was freed"
        assert not failed, failed[:3]
        assert len(delivered) == sent
        wait_until(lambda: logged(server, "disk has space again"), 10, "the recovery line")
        assert len(logged(server, "disk full")) == 1
        assert not logged(server, "partition failed")
        with KafkaConnection(server.address) as conn:
            for partition in range(PARTITIONS):
                stored = fetch(conn, TOPIC, partition, 0, max_bytes=64 << 20).records
                assert [r.offset for r in stored] == list(range(len(stored)))
                expected = sorted(offset for p, offset in delivered.values() if p == partition)
                assert expected == [r.offset for r in stored], "a record lost or duplicated"
        server.stop()
    finally:
        server.kill()


def test_catalog_writes_on_a_full_disk_fail_at_once_and_leave_nothing(
        small_disk: Path) -> None:
    """A topic created and a producer id asked for on a full disk: one clear line each, at
    once, no folder left behind; both work once space is freed."""
    data_dir = str(small_disk / "data")
    server = ServerProcess.start(data_dir)
    cli = [*eventstore_command()]
    bootstrap = ["--bootstrap-server", server.bootstrap]

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args, *bootstrap], input=stdin, capture_output=True,
                              text=True, timeout=60)

    try:
        with KafkaConnection(server.address) as conn:
            create_topic(conn, TOPIC, 1)
        filler = fill(small_disk, left=0)

        created = run("topics", "create", "fresh", "--partitions", "3")
        assert created.returncode == 1, created
        lines = created.stderr.splitlines()
        assert len(lines) == 1 and "KafkaStorageError" in lines[0] and "disk full" in lines[0]
        assert "rollback" not in created.stderr
        assert not [name for name in os.listdir(data_dir) if name.startswith("fresh")]

        with KafkaConnection(server.address) as conn:
            answer = conn.request(22, 1, transactional_id=None, transaction_timeout=60000)
            assert int(answer.error_code) == UNKNOWN_SERVER_ERROR, answer
        started = time.monotonic()
        produced = run("produce", TOPIC, stdin="x\n")
        assert produced.returncode == 1 and time.monotonic() - started < 30, produced
        assert len(produced.stderr.splitlines()) == 1, produced.stderr
        assert "could not hand out a producer id" in produced.stderr, produced.stderr
        assert not logged(server, "partition failed") and server.running

        filler.unlink()
        assert run("topics", "create", "fresh", "--partitions", "3").returncode == 0
        produced = run("produce", TOPIC, stdin="x\n")
        assert produced.returncode == 0, produced
        server.stop()
    finally:
        server.kill()
    assert verify(data_dir).ok


def test_the_log_goes_on_after_a_full_disk_refuses_appends_and_rolls(small_disk: Path) -> None:
    """The storage core alone: appends and rolls the disk has no room for change nothing
    (the same PartitionLog appends again once space is freed, at the next offset), and a
    roll cut short between sealing a segment and starting the next is finished later."""
    directory = str(small_disk / "data" / f"{TOPIC}-0")
    log = PartitionLog.open(directory, TopicConfig(segment_bytes=16384), create=True)
    rows = [(None, None, value, None) for value in VALUES]
    filler = fill(small_disk)
    acked, refused = [], 0
    while refused < 20:
        try:
            acked.append(log.append(rows).base_offset)
        except DiskFull:
            refused += 1
    filler.unlink()
    acked += [log.append(rows).base_offset for _ in range(20)]
    assert acked == [i * len(rows) for i in range(len(acked))], "an offset skipped or reused"
    stored = log.read(0, 1 << 20)
    assert [row[0] for row in stored] == list(range(len(acked) * len(rows)))
    log.close()
    reopened = PartitionLog.open(directory, TopicConfig(segment_bytes=16384))
    assert reopened.log_end_offset == len(acked) * len(rows)
    reopened.close()
