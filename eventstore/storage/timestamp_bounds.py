"""KIP-937's bounds on producer timestamps: ``message.timestamp.before.max.ms`` and
``message.timestamp.after.max.ms``.

A CreateTime topic keeps the timestamp a producer chose, and retention deletes by it: a
record stamped a year ago lands in a segment retention deletes at its next check. Kafka
(3.6 and later) therefore refuses, on append, a batch holding a record stamped more than
``before`` ms before the broker's clock or more than ``after`` ms after it, with
INVALID_TIMESTAMP and the message below; nothing of the batch is written. Both bounds
default to Long.MAX (no bound). A LogAppendTime topic stamps records itself, so nothing is
checked there, and a record without a timestamp (-1) is not checked either.

Kafka's older ``message.timestamp.difference.max.ms`` (one bound both ways, deprecated by
KIP-937 and removed in Kafka 4.0) is not a key here: the two keys say the same, each way.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventstore.config import LONG_MAX, TopicConfig
from eventstore.errors import InvalidTimestamp
from eventstore.storage.records import AppendRow

NO_TIMESTAMP = -1


def check_timestamps(rows: Sequence[AppendRow], now_ms: int, config: TopicConfig) -> None:
    """Raise InvalidTimestamp, in Kafka's words, at the first row of ``rows`` whose
    timestamp lies outside [now - before.max.ms, now + after.max.ms] on a CreateTime topic;
    ``now_ms`` is the server's clock at the append."""
    before = config.message_timestamp_before_max_ms
    after = config.message_timestamp_after_max_ms
    if config.message_timestamp_type != "CreateTime" or before == after == LONG_MAX:
        return  # no bound: no record is looked at, so the default costs an append nothing
    earliest = now_ms - before
    latest = now_ms + after
    for index, row in enumerate(rows):
        timestamp = row[0]
        if timestamp is None or timestamp == NO_TIMESTAMP:
            continue
        if not earliest <= timestamp <= latest:
            raise InvalidTimestamp(
                f"Timestamp {timestamp} of message with offset {index} is out of range."
                f" The timestamp should be within [{earliest}, {latest}]")
