"""Records as producers hand them in and as the log gives them back.

A record is what Kafka calls a record: key and value (bytes or None), headers (an ordered
sequence of (str, bytes | None) pairs, keys may repeat) and a timestamp in milliseconds.
Headers are stored in a segment as JSON text, ``[["key", "hex value" | null], ...]``, so
that SQL users can read them with ``json_extract`` and ``unhex``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

Headers = tuple[tuple[str, bytes | None], ...]

# A record as the log appends it: (timestamp or None for "now", key, value, headers JSON).
AppendRow = tuple[int | None, bytes | None, bytes | None, str | None]
# A record as the log stores and returns it: (offset, timestamp, key, value, headers JSON).
# Rows stay plain tuples on the storage paths: building an object per record would cost
# as much as reading it from SQLite.
StoredRow = tuple[int, int, bytes | None, bytes | None, str | None]

# What one record costs beyond its key, value and headers: Kafka's record framing is about
# this size (varints for lengths, offset and timestamp deltas, attributes). Used to count
# segment and batch sizes the way Kafka's `segment.bytes` and `max.message.bytes` do.
RECORD_OVERHEAD = 20


@dataclass(frozen=True, slots=True)
class Record:
    """A record to append; ``timestamp`` None means "the time of the append"."""

    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    timestamp: int | None = None

    def size(self) -> int:
        return record_size(self.key, self.value, self.headers)

    def to_row(self) -> AppendRow:
        return (self.timestamp, self.key, self.value, encode_headers(self.headers))


class LogRecord(NamedTuple):
    """A record read back from a partition log, at its offset."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()

    @classmethod
    def from_row(cls, row: StoredRow) -> LogRecord:
        offset, timestamp, key, value, headers = row
        return cls(offset, timestamp, key, value, decode_headers(headers) if headers else ())


@dataclass(frozen=True, slots=True)
class ProducerBatchInfo:
    """What an idempotent producer stamps on a batch (Kafka's producer id, epoch, sequence)."""

    producer_id: int
    producer_epoch: int
    base_sequence: int


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """Bytes one record counts for against `segment.bytes` and `max.message.bytes`.

    The same count a segment makes of a stored row (see ``segment.ROW_BYTES_SQL``).
    """
    size = RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
    if headers:
        size += len(encode_headers(headers).encode())
    return size


def encode_headers(headers: Headers) -> str | None:
    """Headers as stored in a segment's `headers` column (None when there are none)."""
    if not headers:
        return None
    return json.dumps(
        [[k, None if v is None else v.hex()] for k, v in headers], separators=(",", ":")
    )


def decode_headers(text: str | None) -> Headers:
    """The inverse of :func:`encode_headers`."""
    if not text:
        return ()
    return tuple((k, None if v is None else bytes.fromhex(v)) for k, v in json.loads(text))
