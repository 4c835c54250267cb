"""A full disk: producers get KAFKA_STORAGE_ERROR, no file is damaged, nothing acknowledged
is lost, and appends resume once space is freed.

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
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability import KAFKA_STORAGE_ERROR, file_hashes
from support import KafkaConnection, ServerProcess, create_topic, fetch, produce, wait_until

from eventstore.storage.verify import verify

SIZE = "16m"
LEFT_FREE = 1 << 20
TOPIC = "full"
PARTITIONS = 2
VALUES = [b"v" * 1000] * 10  # one batch: 10 KB
MAX_BATCHES = 5000


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


def fill(disk: Path) -> Path:
    """A filler file taking all but LEFT_FREE bytes of ``disk``."""
    stat = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.write(bytes(stat.f_bavail * stat.f_frsize - LEFT_FREE))
    return filler


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
            failures = [line for line in server.lines if "restarting from disk" in line]
            assert failures and all("disk full" in line and "exc=" not in line
                                    for line in failures), "one line each, no traceback"
            for partition, offsets in acked.items():  # reads go on while the disk is full
                assert offsets, "some batches must have fitted"
                assert fetch(conn, TOPIC, partition, offsets[-1]).error_code == 0

            filler.unlink()
            for partition in range(PARTITIONS):
                resumed = wait_until(
                    lambda p=partition: produce(conn, TOPIC, p, VALUES).error_code == 0,
                    10, f"appends to partition {partition} after space was freed")
                assert resumed
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
