"""Bad input and damaged files end in typed errors that name the problem, and change nothing.

Opening a damaged partition must raise CorruptLog (or UnsupportedSchemaVersion) naming the
file, and must leave every file exactly as it found it: no repair, no deletion.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from typing import Any

import pytest

from eventstore.config import TopicConfig
from eventstore.errors import (
    CorruptLog,
    InvalidConfig,
    InvalidTopic,
    KafkaError,
    OffsetOutOfRange,
    RecordTooLarge,
    UnsupportedSchemaVersion,
)
from eventstore.storage.catalog import CATALOG_FILE, Catalog, validate_topic_name
from eventstore.storage.log import PartitionLog

SMALL_SEGMENTS = TopicConfig.from_mapping({"segment.bytes": 300})


def build_partition(data_dir: str) -> tuple[str, list[str]]:
    """A closed partition of three sealed segments and an active one; (dir, segment paths)."""
    directory = os.path.join(data_dir, "topic-0")
    log = PartitionLog.open(directory, SMALL_SEGMENTS, create=True)
    for tag in range(4):
        log.append([(None, None, bytes([tag]) * 100, None)] * 2)  # 240 bytes: one a segment
    paths = [s.path for s in log.segments()]
    log.close()
    assert len(paths) == 4
    return directory, paths


def snapshot(directory: str) -> dict[str, str]:
    """Every file under ``directory`` with the SHA-256 of its bytes."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                files[os.path.relpath(path, directory)] = hashlib.sha256(fh.read()).hexdigest()
    return files


def set_user_version(path: str, version: int) -> None:
    """Stamp a SQLite file with another schema version, as a newer release would."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
    finally:
        conn.close()


def assert_open_fails(directory: str, error: type[KafkaError], names: str) -> KafkaError:
    """Opening ``directory`` raises ``error`` naming ``names`` and changes no file."""
    before = snapshot(directory)
    with pytest.raises(error) as caught:
        PartitionLog.open(directory, SMALL_SEGMENTS)
    assert names in str(caught.value)
    assert snapshot(directory) == before, "a failed open must not change anything on disk"
    return caught.value


# -- damaged partitions --------------------------------------------------------------------


def test_a_sealed_segment_with_a_damaged_header_is_corrupt(data_dir: str) -> None:
    directory, paths = build_partition(data_dir)
    with open(paths[1], "r+b") as fh:
        fh.write(b"\xff" * 16)  # the "SQLite format 3" magic
    assert_open_fails(directory, CorruptLog, paths[1])


@pytest.mark.parametrize("keep", [4096, 100, 0], ids=["one-page", "part-header", "empty"])
def test_a_truncated_sealed_segment_is_corrupt(data_dir: str, keep: int) -> None:
    directory, paths = build_partition(data_dir)
    assert os.path.getsize(paths[1]) > keep
    os.truncate(paths[1], keep)
    assert_open_fails(directory, CorruptLog, paths[1])


def test_an_active_segment_with_a_damaged_header_is_corrupt(data_dir: str) -> None:
    directory, paths = build_partition(data_dir)
    with open(paths[-1], "r+b") as fh:
        fh.write(b"\x00" * 16)
    assert_open_fails(directory, CorruptLog, paths[-1])


def test_a_missing_middle_segment_breaks_the_chain(data_dir: str) -> None:
    directory, paths = build_partition(data_dir)
    os.unlink(paths[1])
    error = assert_open_fails(directory, CorruptLog, paths[2])
    assert "gap" in str(error)


def test_a_missing_first_segment_breaks_the_chain(data_dir: str) -> None:
    directory, paths = build_partition(data_dir)
    os.unlink(paths[0])
    error = assert_open_fails(directory, CorruptLog, paths[1])
    assert "missing" in str(error)


@pytest.mark.parametrize("which", [1, -1], ids=["sealed", "active"])
def test_a_segment_of_a_future_schema_version_is_refused(data_dir: str, which: int) -> None:
    directory, paths = build_partition(data_dir)
    set_user_version(paths[which], 99)
    error = assert_open_fails(directory, UnsupportedSchemaVersion, paths[which])
    assert "version 99" in str(error)
    assert isinstance(error, CorruptLog), "the partition goes offline like any damage"


def test_a_catalog_of_a_future_schema_version_is_refused(data_dir: str) -> None:
    Catalog.open(data_dir).close()
    path = os.path.join(data_dir, CATALOG_FILE)
    set_user_version(path, 99)
    before = snapshot(data_dir)
    with pytest.raises(UnsupportedSchemaVersion, match="version 99"):
        Catalog.open(data_dir)
    assert snapshot(data_dir) == before


def test_a_missing_partition_directory_is_not_created_silently(data_dir: str) -> None:
    directory = os.path.join(data_dir, "topic-0")
    with pytest.raises(CorruptLog, match="topic-0"):
        PartitionLog.open(directory)
    assert not os.path.exists(directory)


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a" * 250, "a b", "a/b", "a:b", "t\u00f3pico", "tab\t", "x\n", "a*"],
)
def test_invalid_topic_names_are_refused(data_dir: str, name: str) -> None:
    with pytest.raises(InvalidTopic):
        validate_topic_name(name)
    catalog = Catalog.open(data_dir)
    with pytest.raises(InvalidTopic):
        catalog.create_topic(name, 1, {}, now_ms=0)
    assert catalog.topics() == []
    catalog.close()


@pytest.mark.parametrize("name", ["a" * 249, "a.b_c-D9", "...", "_", "-"])
def test_legal_topic_names_are_accepted(name: str) -> None:
    validate_topic_name(name)


def test_an_unknown_config_key_is_named_with_the_known_ones() -> None:
    with pytest.raises(InvalidConfig) as caught:
        TopicConfig.from_mapping({"segment.byte": 1000})
    message = str(caught.value)
    assert "'segment.byte'" in message and "segment.bytes" in message


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("segment.bytes", "abc", "expected an integer"),
        ("segment.bytes", 13, "at least 14"),
        ("segment.bytes", True, "expected an integer"),
        ("segment.ms", 1.5, "expected an integer"),
        ("segment.ms", 0, "at least 1"),
        ("retention.ms", -2, "-1 or a non-negative"),
        ("retention.bytes", "-5", "-1 or a non-negative"),
        ("max.message.bytes", -1, "at least 0"),
        ("flush.messages", 0, "at least 1"),
        ("message.timestamp.type", "Whenever", "CreateTime, LogAppendTime"),
        ("message.timestamp.type", 1, "expected a string"),
        ("cleanup.policy", "compacted", "delete, compact"),
        ("min.cleanable.dirty.ratio", 1.5, "at most 1"),
    ],
)
def test_a_bad_config_value_names_the_key_and_what_is_allowed(
    key: str, value: Any, allowed: str
) -> None:
    with pytest.raises(InvalidConfig) as caught:
        TopicConfig.from_mapping({key: value})
    assert str(caught.value).startswith(f"InvalidConfig: {key}: ")
    assert allowed in str(caught.value)


def test_an_oversize_record_is_refused_and_nothing_is_written(data_dir: str) -> None:
    log = PartitionLog.open(os.path.join(data_dir, "topic-0"), create=True)
    log.append([(None, None, b"before", None)])
    too_big = b"x" * TopicConfig().max_message_bytes
    with pytest.raises(RecordTooLarge, match="max.message.bytes 1048588"):
        log.append([(None, None, too_big, None)])
    assert log.log_end_offset == 1
    assert log.segments()[-1].bytes == 26
    assert log.append([(None, None, b"after", None)]).base_offset == 1
    assert [row[3] for row in log.read(0, 10)] == [b"before", b"after"]
    log.close()


@pytest.mark.parametrize("offset", [-1, 0, 3, 9, 10**12])
def test_reads_outside_the_log_name_its_bounds(data_dir: str, offset: int) -> None:
    directory, _ = build_partition(data_dir)
    config = TopicConfig.from_mapping({"segment.bytes": 300, "retention.bytes": 480})
    log = PartitionLog.open(directory, config)
    log.apply_retention()
    assert (log.log_start_offset, log.log_end_offset) == (4, 8)
    with pytest.raises(OffsetOutOfRange) as caught:
        log.read(offset, 10)
    assert "log-start-offset 4, log-end-offset 8" in str(caught.value)
    log.close()
