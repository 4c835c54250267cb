"""Queries against a log that changes under them: a live writer in another process, retention
deleting segments mid-query, and a corrupt partition."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_sql_data import append_batches, create_topic

from eventstore.config import TopicConfig
from eventstore.errors import CorruptLog
from eventstore.sql import SqlEngine
from eventstore.storage.catalog import partition_dir
from eventstore.storage.log import PartitionLog

BATCH = 7

# Appends batches of BATCH records whose value is their offset, until its stdin closes.
WRITER = """
import select, sys
from eventstore.config import TopicConfig
from eventstore.storage.log import PartitionLog

log = PartitionLog.open(sys.argv[1], TopicConfig(segment_bytes=3000), create=True)
batch, written = int(sys.argv[2]), 0
while True:
    log.append([(None, None, str(written + i).encode(), None) for i in range(batch)])
    written += batch
    if written == batch:
        print("ready", flush=True)
    if select.select([sys.stdin], [], [], 0)[0]:
        break
log.close()
print(written, flush=True)
"""


def _check_prefix(rows: list[tuple]) -> None:
    """Contiguous offsets from 0, whole batches only, each value its offset."""
    assert [offset for offset, _ in rows] == list(range(len(rows)))
    assert len(rows) % BATCH == 0
    assert all(value == str(offset).encode() for offset, value in rows)


def test_a_query_sees_a_consistent_prefix_while_another_process_appends(data_dir: str) -> None:
    create_topic(data_dir, "live", 1)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, partition_dir(data_dir, "live", 0), str(BATCH)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        seen: set[int] = set()
        with SqlEngine(data_dir) as engine:
            for _ in range(500):
                _, rows = engine.query(
                    "SELECT offset, value FROM records WHERE topic = 'live' AND partition = 0"
                )
                _check_prefix(rows)
                _, [(end,)] = engine.query("SELECT log_end_offset FROM partitions")
                assert end % BATCH == 0 and end >= len(rows)
                # one statement sees one high watermark, in every table it reads
                _, [(count, listed_end, last)] = engine.query(
                    "SELECT (SELECT count(*) FROM records), (SELECT log_end_offset FROM"
                    " partitions), (SELECT max(offset) FROM records AS r JOIN partitions AS p"
                    " USING (topic, partition) WHERE r.offset < p.log_end_offset)"
                )
                assert count == listed_end == last + 1
                seen.add(len(rows))
                if len(seen) >= 5:
                    break
            assert len(seen) >= 2  # the writer made progress while we were reading
            writer.stdin.close()
            written = int(writer.stdout.readline())
            assert writer.wait(timeout=60) == 0
            _, rows = engine.query("SELECT offset, value FROM records")
            _check_prefix(rows)
            assert len(rows) == written
            _, [(segments,)] = engine.query("SELECT count(*) FROM segments")
            assert segments > 1
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


def test_segments_deleted_by_retention_mid_query_are_skipped(data_dir: str) -> None:
    config = create_topic(data_dir, "r", 1, {"segment.bytes": 300})
    batches = [[(i, None, b"x" * 50, None)] * 4 for i in range(20)]  # one segment per batch
    append_batches(data_dir, "r", 0, batches, config)
    with SqlEngine(data_dir) as engine, engine.stream("SELECT offset FROM records") as result:
        rows = iter(result)
        head = [next(rows)[0] for _ in range(2)]
        log = PartitionLog.open(
            partition_dir(data_dir, "r", 0), TopicConfig(segment_bytes=300, retention_bytes=600)
        )
        deleted = log.apply_retention()
        log.close()
        assert len(deleted) > 10
        offsets = head + [offset for (offset,) in rows]
    assert offsets == sorted(set(offsets))
    assert offsets[:4] == [0, 1, 2, 3]  # the segment being read is read to its end
    kept_from = deleted[-1].next_offset
    assert offsets[-(80 - kept_from):] == list(range(kept_from, 80))


@pytest.fixture
def corrupt_store(data_dir: str) -> tuple[str, str]:
    """Topic c (partition 1 has a sealed segment overwritten with garbage) and topic ok."""
    config = create_topic(data_dir, "c", 2, {"segment.bytes": 300})
    for partition in range(2):
        append_batches(data_dir, "c", partition, [[(1, None, b"x" * 50, None)] * 4] * 5, config)
    ok = create_topic(data_dir, "ok", 1)
    append_batches(data_dir, "ok", 0, [[(1, None, b"fine", None)]], ok)
    directory = partition_dir(data_dir, "c", 1)
    victim = os.path.join(directory, sorted(os.listdir(directory))[2])
    with open(victim, "r+b") as fh:
        fh.write(b"this is no longer a SQLite database" * 50)
    return data_dir, victim


def test_a_corrupt_partition_is_a_clear_error_naming_the_file(
    corrupt_store: tuple[str, str],
) -> None:
    data_dir, victim = corrupt_store
    with SqlEngine(data_dir) as engine:
        for sql in (
            "SELECT * FROM records WHERE topic = 'c' AND partition = 1",
            "SELECT count(*) FROM records",
        ):
            with pytest.raises(CorruptLog, match=victim):
                engine.query(sql)
        # the info tables name it in their problem column (and as a warning) instead
        _, damaged = engine.query("SELECT path, problem FROM segments WHERE problem NOT NULL")
        assert [path for path, _ in damaged] == [victim] and "not a database" in damaged[0][1]
        _, [(problem,)] = engine.query(
            "SELECT problem FROM partitions WHERE topic = 'c' AND partition = 1")
        assert problem == damaged[0][1]
        assert any(victim in warning for warning in engine.warnings())
        # what does not touch the broken file still works
        assert engine.query("SELECT count(*) FROM records WHERE topic = 'c' AND partition = 0")[
            1
        ] == [(20,)]
        assert engine.query("SELECT value FROM records WHERE topic = 'ok'")[1] == [(b"fine",)]
        assert engine.query(
            "SELECT count(*) FROM records WHERE topic = 'c' AND partition = 1 AND offset < 8"
        )[1] == [(8,)]
