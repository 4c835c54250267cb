"""Every configuration key in one table, under Kafka's names, with Kafka's defaults and checks.

:data:`KEYS` has one row per key: its type, default, allowed values, meaning (the README's
words, kept equal by tests/test_readme.py) and scope, the part of eventstore it configures.
The settings objects are built from its rows, so a new key is one new row: TopicConfig
holds the topic keys, ServerConfig every key the server config accepts, ListenerLimits the
listener's and CoordinatorConfig the group coordinator's. Each has a field per key (its
name with dots as underscores, ``segment.bytes`` → ``segment_bytes``) defaulting to the
table's value, and checks every value when it is made.

Server-wide defaults come from the store (or the service's config file); a topic may
override any of them. A key Kafka does not know, or one eventstore does not implement,
and a value out of range are refused with InvalidConfig naming the key and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from eventstore.errors import InvalidConfig

LONG_MAX = 9223372036854775807


@dataclass(frozen=True)
class ConfigKey:
    """One row of the table: a key's Kafka name, type, default, allowed values and meaning.

    ``scope`` is what the key configures: ``topic`` (one topic; given to the server, the
    default of every topic), ``server`` (the broker), ``listener`` (the Kafka listener's
    connections), ``group`` (the group coordinator) or ``producer-id`` (idempotent
    producers). ``settable`` is False for a key the server config does not accept: it keeps
    its default except where code (a test) sets it, and the README leaves it out.
    ``list_valued`` marks a key whose value is a comma-separated list, as Kafka's list keys
    are: each item must be one of ``choices``, and IncrementalAlterConfigs may APPEND and
    SUBTRACT items.
    """

    name: str
    kind: type
    default: Any
    scope: str
    doc: str
    minimum: int | None = None  # -1 allows -1 (Kafka's "no limit") and any value from 0
    maximum: float | None = None  # for a float key (a ratio): the largest value allowed
    choices: tuple[str, ...] = ()
    settable: bool = True
    list_valued: bool = False
    sensitive: bool = False  # a secret: never logged, DescribeConfigs gives no value

    @property
    def attribute(self) -> str:
        """The key's field name in the settings objects: dots become underscores."""
        return self.name.replace(".", "_")

    def parse(self, raw: Any) -> Any:
        """``raw`` (from Python, TOML or a ``key=value`` string) as a checked value."""
        value = raw
        if isinstance(raw, str) and self.kind is int:
            try:
                value = int(raw.strip())
            except ValueError:
                raise InvalidConfig(f"{self.name}: expected an integer, got {raw!r}") from None
        elif isinstance(raw, str) and self.kind is float:
            try:
                value = float(raw.strip())
            except ValueError:
                raise InvalidConfig(f"{self.name}: expected a number, got {raw!r}") from None
        elif isinstance(raw, str) and self.kind is bool and raw.strip().lower() in (
            "true", "false"
        ):
            value = raw.strip().lower() == "true"
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        """Refuse, naming the key and what is allowed, a value not of its type or range."""
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidConfig(f"{self.name}: expected an integer, got {value!r}")
            if self.minimum == -1 and value < -1:
                raise InvalidConfig(
                    f"{self.name}: must be -1 or a non-negative integer, got {value}"
                )
            elif self.minimum is not None and value < self.minimum:
                raise InvalidConfig(f"{self.name}: must be at least {self.minimum}, got {value}")
        elif self.kind is float:
            self._check_number(value)
        elif self.kind is bool:
            if not isinstance(value, bool):
                raise InvalidConfig(f"{self.name}: expected true or false, got {value!r}")
        else:
            if not isinstance(value, str):
                raise InvalidConfig(f"{self.name}: expected a string, got {value!r}")
            if self.list_valued:
                self._check_items(value)
            elif self.choices and value not in self.choices:
                allowed = ", ".join(self.choices)
                raise InvalidConfig(f"{self.name}: must be one of {allowed}, got {value!r}")

    def _check_number(self, value: Any) -> None:
        """Refuse a float key's value that is not a number within its bounds."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidConfig(f"{self.name}: expected a number, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise InvalidConfig(f"{self.name}: must be at least {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidConfig(f"{self.name}: must be at most {self.maximum}, got {value}")

    def items(self, value: str) -> list[str]:
        """The items of a list-valued key's ``value`` (comma-separated), in order."""
        return [item.strip() for item in value.split(",") if item.strip()]

    def _check_items(self, value: str) -> None:
        """Refuse a list with no item, or with one that is not among ``choices``."""
        allowed = ", ".join(self.choices)
        items = self.items(value)
        if not items:
            raise InvalidConfig(f"{self.name}: must list at least one of {allowed}")
        for item in items:
            if self.choices and item not in self.choices:
                raise InvalidConfig(f"{self.name}: must be one of {allowed}, got {item!r}")


KEYS: dict[str, ConfigKey] = {
    key.name: key
    for key in (
        ConfigKey("auto.create.topics.enable", bool, True, "server",
                  "create a topic when a client first names it in a Metadata request"),
        ConfigKey("num.partitions", int, 1, "server",
                  "partitions of a topic created automatically", minimum=1),
        ConfigKey("max.partitions", int, -1, "server",
                  "most partitions the server holds; more are refused with POLICY_VIOLATION"
                  " (-1: no limit; a partition holds files open only while in use)",
                  minimum=-1),
        ConfigKey("partition.idle.close.ms", int, 60000, "server",
                  "a partition unused this long closes its files and stops its actor,"
                  " opened again by its next use (not a Kafka key)", minimum=1),
        ConfigKey("partition.open.max", int, -1, "server",
                  "most partitions open at once; opening one more closes the least recently"
                  " used (-1: what the open-file limit holds, (`ulimit -n` - 256) / 5;"
                  " not a Kafka key)", minimum=-1),
        ConfigKey("max.partitions.per.request", int, 1000, "server",
                  "most partitions one CreateTopics or CreatePartitions request may add;"
                  " more are refused with INVALID_PARTITIONS", minimum=1),
        ConfigKey("fetch.max.bytes", int, 57671680, "server",
                  "most record bytes one fetch response returns, whatever the request asks"
                  " (its first batch may pass it, so a larger record is still consumed)",
                  minimum=1024),
        ConfigKey("max.request.partition.size.limit", int, 2000, "server",
                  "most partitions one DescribeTopicPartitions response describes; the"
                  " client pages through the rest with its cursor", minimum=1),
        ConfigKey("log.retention.check.interval.ms", int, 300000, "server",
                  "how often each open partition looks for segments retention may delete (a"
                  " closed one is opened when its segments say retention is due)",
                  minimum=1),
        ConfigKey("log.cleaner.enable", bool, True, "server",
                  "run the log cleaner, which compacts topics whose `cleanup.policy` has"
                  " `compact`"),
        ConfigKey("log.cleaner.threads", int, 1, "server",
                  "threads cleaning partitions, each one partition at a time (0: none)",
                  minimum=0),
        ConfigKey("log.cleaner.backoff.ms", int, 15000, "server",
                  "how long the cleaner waits when no partition is due for cleaning",
                  minimum=0),
        ConfigKey("log.cleaner.io.max.bytes.per.second", float, 1.7976931348623157e308,
                  "server", "bytes the cleaner reads and writes per second, all threads"
                  " together (default: no limit)", minimum=0),
        ConfigKey("group.initial.rebalance.delay.ms", int, 3000, "group",
                  "how long a new group waits for more members before its first rebalance",
                  minimum=0),
        ConfigKey("group.min.session.timeout.ms", int, 6000, "group",
                  "smallest `session.timeout.ms` a group member may ask for", minimum=0),
        ConfigKey("group.max.session.timeout.ms", int, 1800000, "group",
                  "largest `session.timeout.ms` a group member may ask for", minimum=0),
        ConfigKey("group.consumer.heartbeat.interval.ms", int, 5000, "group",
                  "how often members of `consumer` groups (KIP-848) heartbeat", minimum=1),
        ConfigKey("group.consumer.min.heartbeat.interval.ms", int, 5000, "group",
                  "smallest `group.consumer.heartbeat.interval.ms`", minimum=1),
        ConfigKey("group.consumer.max.heartbeat.interval.ms", int, 15000, "group",
                  "largest `group.consumer.heartbeat.interval.ms`", minimum=1),
        ConfigKey("group.consumer.session.timeout.ms", int, 45000, "group",
                  "a `consumer` group member silent this long is removed", minimum=1),
        ConfigKey("group.consumer.min.session.timeout.ms", int, 45000, "group",
                  "smallest `group.consumer.session.timeout.ms`", minimum=1),
        ConfigKey("group.consumer.max.session.timeout.ms", int, 60000, "group",
                  "largest `group.consumer.session.timeout.ms`", minimum=1),
        ConfigKey("group.consumer.max.size", int, 2147483647, "group",
                  "most members of one `consumer` group; more are GROUP_MAX_SIZE_REACHED",
                  minimum=1),
        ConfigKey("group.consumer.assignors", str, "uniform,range", "group",
                  "server-side assignors of `consumer` groups, the first the default (a"
                  " client picks another with `group.remote.assignor`)",
                  choices=("uniform", "range"), list_valued=True),
        ConfigKey("offsets.retention.minutes", int, 10080, "group",
                  "committed offsets of an empty group are deleted after this long",
                  minimum=1),
        ConfigKey("offsets.retention.check.interval.ms", int, 600000, "group",
                  "how often the coordinator looks for committed offsets past their retention",
                  minimum=1, settable=False),
        ConfigKey("offset.metadata.max.bytes", int, 4096, "group",
                  "longest metadata string an offset commit may carry", minimum=0,
                  settable=False),
        ConfigKey("socket.request.max.bytes", int, 104857600, "listener",
                  "largest request frame read; a larger one closes the connection", minimum=1),
        ConfigKey("connections.max.idle.ms", int, 600000, "listener",
                  "close a connection idle (or stalled mid-request) this long", minimum=1),
        ConfigKey("max.connections", int, 1000, "listener",
                  "connections accepted at once; more are refused", minimum=1),
        ConfigKey("queued.max.request.bytes", int, 104857600, "listener",
                  "bytes of requests held at once; past it no more is read until answers"
                  " free some, so producers faster than the disk are held back (their buffers"
                  " fill); also the bytes of answers built and not yet written, past which"
                  " no fetch is read ahead",
                  minimum=1),
        ConfigKey("producer.id.expiration.ms", int, 86400000, "producer-id",
                  "a partition forgets an idempotent producer (its epoch and last five"
                  " batches) this long after its last append", minimum=1),
        ConfigKey("transaction.max.timeout.ms", int, 900000, "transaction",
                  "largest transaction.timeout.ms a transactional producer may ask for;"
                  " more is INVALID_TRANSACTION_TIMEOUT", minimum=1),
        ConfigKey("transactional.id.expiration.ms", int, 604800000, "transaction",
                  "the coordinator forgets a transactional id with no transaction open this"
                  " long after its last transaction ended", minimum=1),
        ConfigKey("transaction.abort.timed.out.transaction.cleanup.interval.ms", int, 10000,
                  "transaction",
                  "how often the coordinator looks for transactions past their timeout"
                  " and aborts them", minimum=1),
        ConfigKey("segment.bytes", int, 1073741824, "topic",
                  "roll the active segment when the next batch would pass this size",
                  minimum=14),
        ConfigKey("segment.ms", int, 604800000, "topic",
                  "roll the active segment once its first record is this old (fires with no"
                  " traffic)", minimum=1),
        ConfigKey("retention.ms", int, 604800000, "topic",
                  "delete sealed segments whose newest record is older (-1: keep forever)",
                  minimum=-1),
        ConfigKey("retention.bytes", int, -1, "topic",
                  "delete oldest sealed segments while the partition is larger (-1: no limit)",
                  minimum=-1),
        ConfigKey("max.message.bytes", int, 1048588, "topic",
                  "largest record batch accepted, in bytes", minimum=0),
        ConfigKey("message.timestamp.type", str, "CreateTime", "topic",
                  "`CreateTime` keeps the producer's timestamp, `LogAppendTime` stamps the"
                  " append", choices=("CreateTime", "LogAppendTime")),
        ConfigKey("message.timestamp.before.max.ms", int, LONG_MAX, "topic",
                  "CreateTime topics refuse, with INVALID_TIMESTAMP, a batch holding a record"
                  " timestamped more than this long before the server's clock", minimum=0),
        ConfigKey("message.timestamp.after.max.ms", int, LONG_MAX, "topic",
                  "CreateTime topics refuse, with INVALID_TIMESTAMP, a batch holding a record"
                  " timestamped more than this long after the server's clock", minimum=0),
        ConfigKey("cleanup.policy", str, "delete", "topic",
                  "a list: `delete` (retention by time and size), `compact` (the latest"
                  " record per key kept), or `compact,delete` (both)",
                  choices=("delete", "compact"), list_valued=True),
        ConfigKey("delete.retention.ms", int, 86400000, "topic",
                  "a compacted topic's tombstone (a null value) is removed this long after"
                  " the cleaner first reached it", minimum=0),
        ConfigKey("min.compaction.lag.ms", int, 0, "topic",
                  "a record stays uncompacted at least this long after its timestamp",
                  minimum=0),
        ConfigKey("max.compaction.lag.ms", int, LONG_MAX, "topic",
                  "a partition whose oldest uncleaned record is older is cleaned whatever"
                  " its dirty ratio", minimum=1),
        ConfigKey("min.cleanable.dirty.ratio", float, 0.5, "topic",
                  "clean a compacted partition once this share of its sealed bytes is not"
                  " cleaned yet", minimum=0, maximum=1),
        ConfigKey("compression.type", str, "producer", "topic",
                  "`producer` keeps each batch as its producer compressed it; `uncompressed`,"
                  " `gzip`, `snappy`, `lz4` or `zstd`: batches the server encodes for fetches"
                  " use that codec", choices=("producer", "uncompressed", "gzip", "snappy",
                                               "lz4", "zstd")),
        ConfigKey("flush.messages", int, LONG_MAX, "topic",
                  "1: every append is fsynced before it is acknowledged; N: fsync every N"
                  " records; default: commit only, fsync left to the OS", minimum=1),
        ConfigKey("file.delete.delay.ms", int, 60000, "topic",
                  "accepted for compatibility; segments are deleted at once", minimum=0),
        ConfigKey("listeners", str, "", "security",
                  "comma-separated `NAME://HOST:PORT` listeners, e.g."
                  " `SASL_SSL://0.0.0.0:9093,PLAINTEXT://127.0.0.1:9092` (port 0: any);"
                  " empty: the one PLAINTEXT listener of `--listen`"),
        ConfigKey("advertised.listeners", str, "", "security",
                  "`NAME://HOST:PORT` per listener name told to clients that came in on it"
                  " (Metadata, FindCoordinator); empty: the bound address"),
        ConfigKey("listener.security.protocol.map", str,
                  "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
                  "security", "`NAME:PROTOCOL` pairs: the security protocol of each listener"
                  " name (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"),
        ConfigKey("ssl.keystore.location", str, "", "security",
                  "PEM file holding the server's certificate (chain) and private key"),
        ConfigKey("ssl.key.password", str, "", "security",
                  "password of the encrypted private key, if it is encrypted",
                  sensitive=True),
        ConfigKey("ssl.certificate.location", str, "", "security",
                  "PEM certificate (chain) of the server, with `ssl.key.location`, instead"
                  " of `ssl.keystore.location`"),
        ConfigKey("ssl.key.location", str, "", "security",
                  "PEM private key of `ssl.certificate.location`"),
        ConfigKey("ssl.truststore.location", str, "", "security",
                  "PEM file of the CA certificates client certificates are checked against"
                  " (mutual TLS)"),
        ConfigKey("ssl.client.auth", str, "none", "security",
                  "`required`: TLS clients must present a certificate the truststore"
                  " trusts; `requested`: they may; `none`: none is asked for",
                  choices=("none", "requested", "required")),
        ConfigKey("ssl.principal.mapping.rules", str, "DEFAULT", "security",
                  "`RULE:pattern/replacement/[L|U]` and `DEFAULT` rules, first match wins,"
                  " turning a client certificate's subject into its principal `User:...`"),
        ConfigKey("sasl.enabled.mechanisms", str, "SCRAM-SHA-256,SCRAM-SHA-512", "security",
                  "SASL mechanisms SASL listeners accept; PLAIN sends the password itself"
                  " (checked against the SCRAM credentials), so it is off unless listed",
                  choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), list_valued=True),
        ConfigKey("authorizer.class.name", str, "", "security",
                  "empty: no authorization; `acl` or Kafka's class names"
                  " (`org.apache.kafka.metadata.authorizer.StandardAuthorizer`,"
                  " `kafka.security.authorizer.AclAuthorizer`): every request is checked"
                  " against the ACLs of the catalog",
                  choices=("", "acl", "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                           "kafka.security.authorizer.AclAuthorizer")),
        ConfigKey("super.users", str, "", "security",
                  "semicolon-separated principals (`User:admin;User:ops`) the authorizer"
                  " lets do everything"),
        ConfigKey("allow.everyone.if.no.acl.found", bool, False, "security",
                  "with an authorizer: a resource no ACL matches is open to everyone"
                  " (false: denied, as in Kafka)"),
        ConfigKey("connection.failed.authentication.delay.ms", int, 100, "security",
                  "a failed login is answered after this delay, doubled for each further"
                  " failure from the same host in a row (up to 5 s)", minimum=0),
        ConfigKey("metrics.ssl.enable", bool, False, "security",
                  "serve `/metrics` and `/healthz` over HTTPS with the listeners' certificate"
                  " (`ssl.keystore.location` or `ssl.certificate.location`)"),
        ConfigKey("metrics.basic.auth.users", str, "", "security",
                  "comma-separated SCRAM users who may read `/metrics` with HTTP basic auth"
                  " (their passwords checked against the catalog's credentials); empty:"
                  " no auth"),
    )
}

# pairs of keys whose first value must not exceed the second's (a group member's session
# timeout must lie between the two bounds: crossed bounds would refuse every member)
ORDERED: tuple[tuple[str, str], ...] = (
    ("group.min.session.timeout.ms", "group.max.session.timeout.ms"),
    ("min.compaction.lag.ms", "max.compaction.lag.ms"),
    ("group.consumer.min.heartbeat.interval.ms", "group.consumer.heartbeat.interval.ms"),
    ("group.consumer.heartbeat.interval.ms", "group.consumer.max.heartbeat.interval.ms"),
    ("group.consumer.min.session.timeout.ms", "group.consumer.session.timeout.ms"),
    ("group.consumer.session.timeout.ms", "group.consumer.max.session.timeout.ms"),
)


def keys_where(accepts: Callable[[ConfigKey], bool]) -> dict[str, ConfigKey]:
    """The rows of the table ``accepts``, in the table's order."""
    return {name: key for name, key in KEYS.items() if accepts(key)}


TOPIC_KEYS = keys_where(lambda key: key.scope == "topic")
SERVER_KEYS = keys_where(lambda key: key.scope != "topic" and key.settable)


class _Settings:
    """What the settings objects built from the table share (see :func:`_holding`)."""

    keys: ClassVar[Mapping[str, ConfigKey]]

    def __post_init__(self) -> None:
        """Every value checked against its row, and each ORDERED pair held here in order."""
        for key in self.keys.values():
            key.check(getattr(self, key.attribute))
        for low, high in ORDERED:
            if low in self.keys and high in self.keys:
                low_value = getattr(self, self.keys[low].attribute)
                high_value = getattr(self, self.keys[high].attribute)
                if low_value > high_value:
                    raise InvalidConfig(
                        f"{low}: must not exceed {high} ({low_value} > {high_value})"
                    )

    def to_mapping(self) -> dict[str, Any]:
        """Every key held here with its Kafka name and value."""
        return {name: getattr(self, key.attribute) for name, key in self.keys.items()}


SettingsClass = TypeVar("SettingsClass", bound=type[_Settings])


def _holding(keys: Mapping[str, ConfigKey]) -> Callable[[SettingsClass], SettingsClass]:
    """Make the class a frozen dataclass with a field per key: its name, type and default.

    The class body lists no key, so the table is the one place a key is written. Fields the
    class declares itself (ServerConfig's ``topic_defaults``) come after the keys' fields.
    """

    def build(cls: SettingsClass) -> SettingsClass:
        declared = cls.__dict__.get("__annotations__", {})
        cls.__annotations__ = {**{key.attribute: key.kind for key in keys.values()}, **declared}
        for key in keys.values():
            setattr(cls, key.attribute, key.default)
        cls.keys = keys
        return dataclass(frozen=True)(cls)

    return build


def validate_topic_config(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides checked key by key; unknown keys and bad values raise InvalidConfig."""
    checked = {}
    for name, raw in overrides.items():
        key = TOPIC_KEYS.get(name)
        if key is None:
            known = ", ".join(sorted(TOPIC_KEYS))
            raise InvalidConfig(f"unknown topic config key {name!r} (known keys: {known})")
        checked[name] = key.parse(raw)
    return checked


@_holding(TOPIC_KEYS)
class TopicConfig(_Settings):
    """Effective configuration of one topic (defaults, then server, then topic overrides)."""

    @classmethod
    def from_mapping(cls, *layers: Mapping[str, Any]) -> TopicConfig:
        """Effective config from layers of overrides, later layers winning; all checked."""
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(validate_topic_config(layer))
        return cls(**{TOPIC_KEYS[name].attribute: value for name, value in merged.items()})


@_holding(keys_where(lambda key: key.scope == "listener"))
class ListenerLimits(_Settings):
    """Kafka's socket limits, by their broker config names: what the Kafka listener reads."""


@_holding(keys_where(lambda key: key.scope == "group"))
class CoordinatorConfig(_Settings):
    """Broker settings of the group coordinator."""

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> CoordinatorConfig:
        """The settings among ``config`` (Kafka's dotted keys, e.g. from ``--set``), checked.

        Values may be integers or their decimal strings. Keys that are not coordinator
        settings are ignored: the same mapping carries the rest of the server's settings.
        """
        return cls(**{key.attribute: key.parse(config[name]) for name, key in cls.keys.items()
                      if config.get(name) is not None})


Part = TypeVar("Part", ListenerLimits, CoordinatorConfig)


@_holding(SERVER_KEYS)
class ServerConfig(_Settings):
    """Broker-wide configuration: Kafka's broker keys, plus topic keys as topic defaults.

    A topic key given at server level (``segment.bytes`` ...) is the default of every topic
    that does not override it, as a Kafka broker's ``log.segment.bytes`` is.
    """

    topic_defaults: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None = None) -> ServerConfig:
        """Checked server config; a key that is neither a server nor a topic key is refused."""
        server: dict[str, Any] = {}
        topic: dict[str, Any] = {}
        for name, raw in (config or {}).items():
            if name in SERVER_KEYS:
                server[SERVER_KEYS[name].attribute] = SERVER_KEYS[name].parse(raw)
            elif name in TOPIC_KEYS:
                topic[name] = TOPIC_KEYS[name].parse(raw)
            else:
                known = ", ".join(sorted({*SERVER_KEYS, *TOPIC_KEYS}))
                raise InvalidConfig(f"unknown config key {name!r} (known keys: {known})")
        return cls(**server, topic_defaults=topic)

    def topic_config(self, overrides: Mapping[str, Any] = ()) -> TopicConfig:
        """A topic's effective config: Kafka's defaults, these defaults, its overrides."""
        return TopicConfig.from_mapping(self.topic_defaults, dict(overrides))

    def listener_limits(self) -> ListenerLimits:
        """The Kafka listener's limits as configured here."""
        return self._part(ListenerLimits)

    def coordinator_config(self) -> CoordinatorConfig:
        """The group coordinator's settings as configured here (defaults for the others)."""
        return self._part(CoordinatorConfig)

    def _part(self, kind: type[Part]) -> Part:
        return kind(**{key.attribute: getattr(self, key.attribute)
                       for name, key in kind.keys.items() if name in self.keys})

    def to_mapping(self) -> dict[str, Any]:
        """Every server key with its Kafka name and value, then the topic defaults given."""
        return {**super().to_mapping(), **self.topic_defaults}

