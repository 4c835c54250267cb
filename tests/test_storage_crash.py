"""Crash safety: a writer killed with SIGKILL at random moments loses no acknowledged batch.

A child process appends batches in a loop and prints ``batch-id base last`` once each
append has returned. The test kills it after a random number of acknowledgements
(never after a random time), reopens the partition, and checks that every acknowledged
batch is there with its records, that no batch is partly visible, and that offsets run
on without a gap; then the next child carries on appending where the log ends. Small
segments make the kills land in rolls as well as in appends.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from support import read_output

from eventstore.config import TopicConfig
from eventstore.storage.log import PartitionLog

KILLS = 8
SEGMENT_BYTES = 1024
TIMEOUT_S = 30.0

CHILD = """
import sys
from eventstore.config import TopicConfig
from eventstore.storage.log import PartitionLog

directory, batch_id = sys.argv[1], int(sys.argv[2])
config = TopicConfig.from_mapping({"segment.bytes": int(sys.argv[3])})
log = PartitionLog.open(directory, config, create=True)
while True:
    size = 1 + batch_id % 7
    values = [f"{batch_id}:{index}:{size}:".encode().ljust(60, b".") for index in range(size)]
    result = log.append([(None, str(batch_id).encode(), value, None) for value in values])
    print(batch_id, result.base_offset, result.last_offset, flush=True)
    batch_id += 1
"""

Ack = tuple[int, int, int]  # (batch id, base offset, last offset)


def run_child_and_kill(directory: str, first_batch: int, acks_wanted: int) -> list[Ack]:
    """Start a writer, SIGKILL it once it has acknowledged ``acks_wanted`` batches.

    Returns every batch it acknowledged, including lines it printed after the ones
    waited for but before the kill landed.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, directory, str(first_batch), str(SEGMENT_BYTES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        output = read_output(child, acks_wanted, TIMEOUT_S)
    finally:
        child.send_signal(signal.SIGKILL)
    output += child.stdout.read()  # lines printed before the kill landed
    child.wait(TIMEOUT_S)
    child.stdout.close()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    complete = output[: output.rfind(b"\n") + 1]
    return [tuple(map(int, line.split())) for line in complete.decode().splitlines()]


def parse_value(value: bytes) -> tuple[int, int, int]:
    """(batch id, index in batch, batch size) that the writer encoded in a value."""
    batch_id, index, size, _ = value.split(b":")
    return int(batch_id), int(index), int(size)


def recovered_batches(directory: str) -> tuple[dict[int, tuple[int, int]], int]:
    """Reopen the log; map each batch id in it to (base, last); also the log-end-offset.

    Asserts that offsets are contiguous and that every batch is whole.
    """
    log = PartitionLog.open(directory, TopicConfig.from_mapping({"segment.bytes": SEGMENT_BYTES}))
    try:
        rows = log.read(0, max_records=log.log_end_offset + 1)
        leo = log.log_end_offset
    finally:
        log.close()
    assert [row[0] for row in rows] == list(range(leo)), "offsets must be contiguous"
    batches: dict[int, tuple[int, int]] = {}
    position = 0
    while position < len(rows):
        batch_id, _, size = parse_value(rows[position][3])
        members = rows[position:position + size]
        assert [parse_value(row[3]) for row in members] == [
            (batch_id, index, size) for index in range(size)
        ], f"batch {batch_id} is only partly visible at offset {position}"
        assert all(row[2] == str(batch_id).encode() for row in members)
        batches[batch_id] = (position, position + size - 1)
        position += size
    assert list(batches) == list(range(len(batches))), "batch ids must run without a gap"
    return batches, leo


def test_killed_writer_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    directory = os.path.join(str(tmp_path), "topic-0")
    acknowledged: dict[int, tuple[int, int]] = {}
    next_batch, leo = 0, 0
    for kill in range(KILLS):
        acks = run_child_and_kill(directory, next_batch, rng.randint(5, 60))
        context = f"seed {seed}, kill {kill}"
        assert acks[0][1] == leo, f"{context}: the writer must continue at the log end"
        acknowledged.update((batch_id, (base, last)) for batch_id, base, last in acks)
        batches, leo = recovered_batches(directory)
        for batch_id, where in acknowledged.items():
            assert batches.get(batch_id) == where, f"{context}: lost batch {batch_id}"
        next_batch = len(batches)
    segments = sorted(name for name in os.listdir(directory) if name.endswith(".db"))
    assert len(segments) > KILLS, "the writers should have rolled many segments"
