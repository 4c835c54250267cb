"""The consumer's settings, checked once when a consumer is made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventstore.errors import InvalidConfig
from eventstore.groups import assignors

# Durations Kafka's ConsumerConfig takes at 0 (atLeast(0)): an auto-commit in every poll,
# no backoff, metadata checked in every poll; every other duration and count is at least 1.
MAY_BE_ZERO = frozenset({"auto_commit_interval_ms", "retry_backoff_ms", "metadata_max_age_ms"})


@dataclass(frozen=True)
class ConsumerConfig:
    """The consumer settings eventstore implements, under kafka-python's names."""

    group_id: str | None = None
    client_id: str | None = None
    group_instance_id: str | None = None
    key_deserializer: Callable[[bytes], Any] | None = None
    value_deserializer: Callable[[bytes], Any] | None = None
    auto_offset_reset: str = "latest"
    isolation_level: str = "read_uncommitted"  # read_committed: stop at the LSO, no aborted
    enable_auto_commit: bool = True
    auto_commit_interval_ms: int = 5000
    max_poll_records: int = 500
    max_poll_interval_ms: int = 300000
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 3000
    retry_backoff_ms: int = 100
    metadata_max_age_ms: int = 300000
    allow_auto_create_topics: bool = True
    partition_assignment_strategy: tuple[str, ...] = ("range", "roundrobin")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ConsumerConfig:
        """Checked settings; unknown names and out-of-range values raise InvalidConfig."""
        known = cls.__dataclass_fields__
        for name, value in kwargs.items():
            if name not in known:
                raise InvalidConfig(
                    f"unknown consumer setting {name!r} (known: {', '.join(sorted(known))})")
            least = 0 if name in MAY_BE_ZERO else 1
            if name.endswith(("_ms", "_records")) and (
                    not isinstance(value, int) or isinstance(value, bool) or value < least):
                raise InvalidConfig(f"{name}: must be an integer of at least {least},"
                                    f" got {value!r}")
        strategy = kwargs.get("partition_assignment_strategy", ("range", "roundrobin"))
        if isinstance(strategy, str):
            strategy = (strategy,)
        kwargs["partition_assignment_strategy"] = tuple(strategy)
        config = cls(**kwargs)
        if config.auto_offset_reset not in ("earliest", "latest", "none"):
            raise InvalidConfig(f"auto_offset_reset: must be earliest, latest or none, got"
                                f" {config.auto_offset_reset!r}")
        if config.isolation_level not in ("read_uncommitted", "read_committed"):
            raise InvalidConfig(f"isolation_level: must be read_uncommitted or read_committed,"
                                f" got {config.isolation_level!r}")
        for name in config.partition_assignment_strategy:
            if name not in assignors.ASSIGNORS:
                raise InvalidConfig(f"partition_assignment_strategy: unknown assignor {name!r}"
                                    f" (known: {', '.join(assignors.ASSIGNORS)})")
        if not config.partition_assignment_strategy:
            raise InvalidConfig("partition_assignment_strategy: name at least one assignor")
        if config.heartbeat_interval_ms >= config.session_timeout_ms:
            raise InvalidConfig("heartbeat_interval_ms: must be lower than session_timeout_ms")
        return config
