"""Topic configuration under Kafka's names, with Kafka's defaults and checks.

Server-wide defaults come from the store (or the service's config file); a topic may
override any of them. A key Kafka does not know, or one eventstore does not implement,
and a value out of range are refused with InvalidConfig naming the key and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from eventstore.errors import InvalidConfig

LONG_MAX = 9223372036854775807


@dataclass(frozen=True)
class ConfigKey:
    """One configuration key: its Kafka name, type, default and allowed values."""

    name: str
    kind: type
    default: Any
    doc: str
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    accepts: Callable[[Any], bool] | None = None


def _retention(value: int) -> bool:
    return value == -1 or value >= 0


TOPIC_KEYS: dict[str, ConfigKey] = {
    key.name: key
    for key in (
        ConfigKey("segment.bytes", int, 1073741824,
                  "roll the active segment when the next batch would pass this size",
                  minimum=14),
        ConfigKey("segment.ms", int, 604800000,
                  "roll the active segment once its first record is this old", minimum=1),
        ConfigKey("retention.ms", int, 604800000,
                  "delete sealed segments whose newest record is older (-1: keep forever)",
                  accepts=_retention),
        ConfigKey("retention.bytes", int, -1,
                  "delete oldest sealed segments while the partition is larger (-1: no limit)",
                  accepts=_retention),
        ConfigKey("max.message.bytes", int, 1048588,
                  "largest record batch accepted, in bytes", minimum=0),
        ConfigKey("message.timestamp.type", str, "CreateTime",
                  "CreateTime keeps the producer's timestamp, LogAppendTime stamps the append",
                  choices=("CreateTime", "LogAppendTime")),
        ConfigKey("cleanup.policy", str, "delete",
                  "what retention does with old segments (only delete is implemented)",
                  choices=("delete",)),
        ConfigKey("flush.messages", int, LONG_MAX,
                  "fsync the log after this many records (1: every append is fsynced "
                  "before it is acknowledged; default: commit only, fsync left to the OS)",
                  minimum=1),
        ConfigKey("file.delete.delay.ms", int, 60000,
                  "accepted for compatibility; segments are deleted at once", minimum=0),
    )
}


@dataclass(frozen=True)
class TopicConfig:
    """Effective configuration of one topic (defaults, then server, then topic overrides)."""

    segment_bytes: int = 1073741824
    segment_ms: int = 604800000
    retention_ms: int = 604800000
    retention_bytes: int = -1
    max_message_bytes: int = 1048588
    message_timestamp_type: str = "CreateTime"
    cleanup_policy: str = "delete"
    flush_messages: int = LONG_MAX
    file_delete_delay_ms: int = 60000

    @classmethod
    def from_mapping(cls, *layers: Mapping[str, Any]) -> TopicConfig:
        """Effective config from layers of overrides, later layers winning; all checked."""
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(validate_topic_config(layer))
        return cls(**{name.replace(".", "_"): value for name, value in merged.items()})

    def to_mapping(self) -> dict[str, Any]:
        """Every key with its Kafka name and effective value."""
        return {f.name.replace("_", "."): getattr(self, f.name) for f in fields(self)}


def parse_value(key: ConfigKey, raw: Any) -> Any:
    """A raw value (from Python, TOML or a ``key=value`` string) checked against ``key``."""
    value = raw
    if key.kind is int:
        if isinstance(raw, bool):
            raise InvalidConfig(f"{key.name}: expected an integer, got {raw!r}")
        if isinstance(raw, str):
            try:
                value = int(raw.strip())
            except ValueError:
                raise InvalidConfig(f"{key.name}: expected an integer, got {raw!r}") from None
        elif not isinstance(raw, int):
            raise InvalidConfig(f"{key.name}: expected an integer, got {raw!r}")
        if key.minimum is not None and value < key.minimum:
            raise InvalidConfig(f"{key.name}: must be at least {key.minimum}, got {value}")
        if key.accepts is not None and not key.accepts(value):
            raise InvalidConfig(f"{key.name}: must be -1 or a non-negative integer, got {value}")
    elif key.kind is bool:
        value = _parse_bool(key, raw)
    else:
        if not isinstance(raw, str):
            raise InvalidConfig(f"{key.name}: expected a string, got {raw!r}")
        if key.choices and value not in key.choices:
            allowed = ", ".join(key.choices)
            raise InvalidConfig(f"{key.name}: must be one of {allowed}, got {value!r}")
    return value


def _parse_bool(key: ConfigKey, raw: Any) -> bool:
    """A boolean from Python, TOML or a ``key=value`` string (``true`` / ``false``)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise InvalidConfig(f"{key.name}: expected true or false, got {raw!r}")


def validate_topic_config(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides checked key by key; unknown keys and bad values raise InvalidConfig."""
    checked = {}
    for name, raw in overrides.items():
        key = TOPIC_KEYS.get(name)
        if key is None:
            known = ", ".join(sorted(TOPIC_KEYS))
            raise InvalidConfig(f"unknown topic config key {name!r} (known keys: {known})")
        checked[name] = parse_value(key, raw)
    return checked


SERVER_KEYS: dict[str, ConfigKey] = {
    key.name: key
    for key in (
        ConfigKey("auto.create.topics.enable", bool, True,
                  "create a topic when a producer or consumer first names it"),
        ConfigKey("num.partitions", int, 1,
                  "partitions of a topic created automatically", minimum=1),
        ConfigKey("log.retention.check.interval.ms", int, 300000,
                  "how often each partition looks for segments retention may delete",
                  minimum=1),
        ConfigKey("group.initial.rebalance.delay.ms", int, 3000,
                  "how long a new group waits for more members before its first rebalance",
                  minimum=0),
        ConfigKey("group.min.session.timeout.ms", int, 6000,
                  "smallest session.timeout.ms a group member may ask for", minimum=0),
        ConfigKey("group.max.session.timeout.ms", int, 1800000,
                  "largest session.timeout.ms a group member may ask for", minimum=0),
        ConfigKey("offsets.retention.minutes", int, 10080,
                  "committed offsets of an empty group are deleted after this long",
                  minimum=1),
        ConfigKey("socket.request.max.bytes", int, 104857600,
                  "largest request frame the Kafka listener reads; larger closes the"
                  " connection", minimum=1),
        ConfigKey("connections.max.idle.ms", int, 600000,
                  "close a connection idle (or stalled mid-request) this long", minimum=1),
        ConfigKey("max.connections", int, 1000,
                  "connections the Kafka listener accepts at once; more are refused",
                  minimum=1),
        ConfigKey("queued.max.request.bytes", int, 104857600,
                  "bytes of requests the Kafka listener holds at once; past it, it reads no"
                  " more until answers free some (back-pressure through TCP)", minimum=1),
        ConfigKey("producer.id.expiration.ms", int, 86400000,
                  "a partition forgets an idempotent producer this long after its last"
                  " append; a retry after that may be written twice", minimum=1),
    )
}


@dataclass(frozen=True)
class ServerConfig:
    """Broker-wide configuration: Kafka's broker keys, plus topic keys as topic defaults.

    A topic key given at server level (``segment.bytes`` ...) is the default of every topic
    that does not override it, as a Kafka broker's ``log.segment.bytes`` is.
    """

    auto_create_topics_enable: bool = True
    num_partitions: int = 1
    log_retention_check_interval_ms: int = 300000
    group_initial_rebalance_delay_ms: int = 3000
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1800000
    offsets_retention_minutes: int = 10080
    socket_request_max_bytes: int = 104857600
    connections_max_idle_ms: int = 600000
    max_connections: int = 1000
    queued_max_request_bytes: int = 104857600
    producer_id_expiration_ms: int = 86400000
    topic_defaults: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None = None) -> ServerConfig:
        """Checked server config; a key that is neither a server nor a topic key is refused."""
        server: dict[str, Any] = {}
        topic: dict[str, Any] = {}
        for name, raw in (config or {}).items():
            key = SERVER_KEYS.get(name)
            if key is not None:
                server[name.replace(".", "_")] = parse_value(key, raw)
            elif name in TOPIC_KEYS:
                topic[name] = parse_value(TOPIC_KEYS[name], raw)
            else:
                known = ", ".join(sorted({*SERVER_KEYS, *TOPIC_KEYS}))
                raise InvalidConfig(f"unknown config key {name!r} (known keys: {known})")
        checked = cls(**server, topic_defaults=topic)
        if checked.group_min_session_timeout_ms > checked.group_max_session_timeout_ms:
            raise InvalidConfig(
                "group.min.session.timeout.ms: must not exceed group.max.session.timeout.ms"
                f" ({checked.group_min_session_timeout_ms} >"
                f" {checked.group_max_session_timeout_ms})"
            )
        return checked

    def topic_config(self, overrides: Mapping[str, Any] = ()) -> TopicConfig:
        """A topic's effective config: Kafka's defaults, these defaults, its overrides."""
        return TopicConfig.from_mapping(self.topic_defaults, dict(overrides))

    def to_mapping(self) -> dict[str, Any]:
        """Every server key with its Kafka name and value, then the topic defaults given."""
        server = {name: getattr(self, name.replace(".", "_")) for name in SERVER_KEYS}
        return {**server, **self.topic_defaults}


def _kafka_name(field_name: str) -> str:
    return field_name.replace("_", ".")


@dataclass(frozen=True)
class CoordinatorConfig:
    """Broker settings of the coordinator, under Kafka's names (dots become underscores)."""

    group_initial_rebalance_delay_ms: int = 3000
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1800000
    offsets_retention_minutes: int = 10080
    offsets_retention_check_interval_ms: int = 600000
    offset_metadata_max_bytes: int = 4096

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidConfig(f"{_kafka_name(f.name)}: expected a non-negative integer,"
                                    f" got {value!r}")
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms:
            raise InvalidConfig("group.min.session.timeout.ms must not exceed"
                                " group.max.session.timeout.ms")
        if self.offsets_retention_check_interval_ms < 1:
            raise InvalidConfig("offsets.retention.check.interval.ms must be at least 1")

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> CoordinatorConfig:
        """The settings among ``config`` (Kafka's dotted keys, e.g. from ``--set``), checked.

        Values may be integers or their decimal strings. Keys that are not coordinator
        settings are ignored: the same mapping carries the rest of the server's settings.
        """
        values = {}
        for f in fields(cls):
            raw = config.get(_kafka_name(f.name))
            if raw is None:
                continue
            try:
                values[f.name] = int(raw.strip()) if isinstance(raw, str) else raw
            except ValueError:
                raise InvalidConfig(f"{_kafka_name(f.name)}: expected a non-negative integer,"
                                    f" got {raw!r}") from None
        return cls(**values)
