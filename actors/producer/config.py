"""The producer's settings, checked once when a producer is made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventstore.errors import InvalidConfig


@dataclass(frozen=True)
class ProducerConfig:
    """The producer settings eventstore implements, under kafka-python's names, with
    Kafka's defaults: ``linger_ms`` is 5, as ``linger.ms`` is since Kafka 4.0 (KIP-1030;
    kafka-python's is 0), so that records sent one after another share a batch."""

    client_id: str | None = None
    key_serializer: Callable[[Any], bytes] | None = None
    value_serializer: Callable[[Any], bytes] | None = None
    batch_size: int = 16384
    linger_ms: int = 5
    buffer_memory: int = 33554432
    max_block_ms: int = 60000
    max_request_size: int = 1048576
    retries: float = float("inf")
    retry_backoff_ms: int = 100
    delivery_timeout_ms: int = 120000
    metadata_max_age_ms: int = 300000

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ProducerConfig:
        """Checked settings; an unknown name or a negative size raises InvalidConfig."""
        known = cls.__dataclass_fields__
        for name, value in kwargs.items():
            if name not in known:
                raise InvalidConfig(
                    f"unknown producer setting {name!r} (known: {', '.join(sorted(known))})")
            if name.endswith(("_size", "_ms", "_memory", "retries")) and (
                    not isinstance(value, int | float) or value < 0):
                raise InvalidConfig(f"{name}: must be a non-negative number, got {value!r}")
        if kwargs.get("batch_size", 1) < 1:
            raise InvalidConfig("batch_size: must be at least 1")
        return cls(**kwargs)
