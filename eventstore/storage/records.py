"""Records as producers hand them in and as the log gives them back.

A record is what Kafka calls a record: key and value (bytes or None), headers (an ordered
sequence of (str, bytes | None) pairs, keys may repeat) and a timestamp in milliseconds.
Headers are stored in a segment as JSON text, ``[["key", "hex value" | null], ...]``, so
that SQL users can read them with ``json_extract`` and ``unhex``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

Headers = tuple[tuple[str, bytes | None], ...]

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


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A record read back from a partition log, at its offset."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()

    def size(self) -> int:
        return record_size(self.key, self.value, self.headers)


@dataclass(frozen=True, slots=True)
class ProducerBatchInfo:
    """What an idempotent producer stamps on a batch (Kafka's producer id, epoch, sequence)."""

    producer_id: int
    producer_epoch: int
    base_sequence: int


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """Bytes one record counts for against `segment.bytes` and `max.message.bytes`."""
    size = RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
    for hkey, hvalue in headers:
        size += len(hkey) + (len(hvalue) if hvalue else 0) + 2
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
