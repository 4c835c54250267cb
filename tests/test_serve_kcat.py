"""kcat (librdkafka's command-line client) against a real ``eventstore serve``."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from support import ServerProcess

from eventstore.storage.partitioner import partition_for_key

KCAT = shutil.which("kcat") or shutil.which("kafkacat")  # the older name
pytestmark = pytest.mark.skipif(
    KCAT is None, reason="kcat is not installed (Debian package kcat; .ci/run installs it)")

LINES = [f"user-{i}:event {i} of user-{i}" for i in range(12)]


def kcat(server: ServerProcess, *args: str, stdin: str | None = None) -> str:
    """Run kcat against ``server``; its stdout, after checking it exited 0."""
    assert KCAT is not None
    done = subprocess.run(
        [KCAT, "-b", server.bootstrap, *args], input=stdin, capture_output=True, text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_keyed_lines_come_back_with_keys_partitions_and_offsets(serve):
    server = serve(settings={"num.partitions": 3})
    # librdkafka's default partitioner is CRC32-based; murmur2_random is the Java client's
    kcat(server, "-P", "-t", "clicks", "-K:", "-X", "partitioner=murmur2_random",
         stdin="\n".join(LINES) + "\n")

    out = kcat(server, "-C", "-t", "clicks", "-K:", "-o", "beginning", "-e", "-q",
               "-f", "%k|%s|%p|%o\\n")

    expected = []
    next_offset = [0, 0, 0]
    for line in LINES:  # kcat sends in order; each partition numbers its records from 0
        key, value = line.split(":", 1)
        partition = partition_for_key(key.encode(), 3)
        expected.append(f"{key}|{value}|{partition}|{next_offset[partition]}")
        next_offset[partition] += 1
    got = out.splitlines()
    # partitions are consumed concurrently: compare each partition's lines, in order
    for partition in range(3):
        assert [g for g in got if g.split("|")[2] == str(partition)] == [
            e for e in expected if e.split("|")[2] == str(partition)]
    assert len(got) == len(expected)
    assert all(next_offset), "the keys should cover every partition"


def test_metadata_lists_the_topic_and_its_partitions(server):
    kcat(server, "-P", "-t", "orders", "-K:", stdin="a:1\n")  # auto-created, 1 partition
    kcat(server, "-P", "-t", "audit", "-p", "0", stdin="x\n")

    out = kcat(server, "-L")

    host, port = server.bootstrap.rsplit(":", 1)
    assert f"broker 0 at {host}:{port} (controller)" in out
    assert ' 2 topics:' in out
    assert '  topic "orders" with 1 partitions:' in out
    assert '  topic "audit" with 1 partitions:' in out
    assert "    partition 0, leader 0, replicas: 0, isrs: 0" in out

    only = kcat(server, "-L", "-t", "orders")
    assert '  topic "orders" with 1 partitions:' in only
    assert "audit" not in only
