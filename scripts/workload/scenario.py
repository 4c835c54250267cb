"""Scenarios: what a workload run does, read from a TOML file and checked before it starts.

    name = "steady"
    description = "..."
    duration_s = 20            # producers run this long ...
    records = 100000           # ... or until each has sent this many (either or both)
    drain_timeout_s = 30       # then the groups get this long to read everything

    [server]                   # store keys: EventStore.open(config=...) / serve --set
    "log.retention.check.interval.ms" = 500

    [[topics]]
    name = "orders"
    partitions = 4
    config = { "segment.bytes" = 65536 }

    [[producers]]
    topic = "orders"
    count = 2                  # producer clients, each with this load
    rate = 2000                # records/s each, or "max" (as fast as the client takes them)
    record_bytes = 200         # value size
    keys = "uniform"           # none | uniform | skewed (Zipf over key_space keys)
    key_space = 10000
    linger_ms = 5
    phases = [{ at_s = 5, rate = 20000 }, { at_s = 6, rate = 2000 }]

    [[groups]]
    name = "billing"
    topics = ["orders"]
    members = 2                # members at the start
    processing_ms = 0.5        # time spent per record, to make a group slow
    read_ahead_kb = 64         # over the wire: most KiB a member's client fetches ahead
                               # of its polls (default: librdkafka's, 64 MiB)
    changes = [{ at_s = 6, join = 1 }, { at_s = 12, leave = 1 }]

    [ci]
    duration_scale = 0.2       # what --ci applies: a short form for the test suite

Times given in a scenario (``duration_s``, ``records``, phase and change times) are
multiplied by the duration scale; rates, sizes and configs are not, so a short run is
the same workload, only shorter. Unknown keys are refused, so a typo cannot silently
turn a setting off.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

KEY_DISTRIBUTIONS = ("none", "uniform", "skewed")
HEADER_BYTES = 16  # every value starts with the producer's record id and send time


class ScenarioError(ValueError):
    """The scenario file is invalid; the message names the key."""


@dataclass(frozen=True)
class Phase:
    """From ``at_s`` on, a producer sends ``rate`` records/s (None: as fast as it can)."""

    at_s: float
    rate: float | None


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProducerSpec:
    topic: str
    count: int
    phases: tuple[Phase, ...]  # the first starts at 0
    record_bytes: int
    keys: str
    key_space: int
    linger_ms: int


@dataclass(frozen=True)
class Change:
    """At ``at_s``, ``members`` members join the group (positive) or leave it (negative)."""

    at_s: float
    members: int


@dataclass(frozen=True)
class GroupSpec:
    name: str
    topics: tuple[str, ...]
    members: int
    processing_ms: float
    max_poll_records: int
    heartbeat_interval_ms: int
    session_timeout_ms: int
    changes: tuple[Change, ...]
    read_ahead_kb: int | None = None  # None: the client's default


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration_s: float | None
    records: int | None  # per producer client
    drain_timeout_s: float
    server: Mapping[str, Any]
    topics: tuple[TopicSpec, ...]
    producers: tuple[ProducerSpec, ...]
    groups: tuple[GroupSpec, ...]
    ci_scale: float

    def scaled(self, factor: float) -> Scenario:
        """The same workload with every time (and record count) multiplied by ``factor``."""
        if factor <= 0:
            raise ScenarioError(f"duration scale must be positive, got {factor}")
        return replace(
            self,
            duration_s=None if self.duration_s is None else self.duration_s * factor,
            records=None if self.records is None else max(1, round(self.records * factor)),
            producers=tuple(
                replace(p, phases=tuple(replace(ph, at_s=ph.at_s * factor) for ph in p.phases))
                for p in self.producers),
            groups=tuple(
                replace(g, changes=tuple(replace(c, at_s=c.at_s * factor) for c in g.changes))
                for g in self.groups),
        )

    def renamed(self, suffix: str) -> Scenario:
        """Topic and group names with ``suffix`` appended (to share a running server)."""
        names = {t.name: t.name + suffix for t in self.topics}
        return replace(
            self,
            topics=tuple(replace(t, name=names[t.name]) for t in self.topics),
            producers=tuple(replace(p, topic=names[p.topic]) for p in self.producers),
            groups=tuple(replace(g, name=g.name + suffix,
                                 topics=tuple(names[t] for t in g.topics))
                         for g in self.groups),
        )


class _Table:
    """One TOML table being read: typed getters that remember which keys were used."""

    def __init__(self, where: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ScenarioError(f"{where}: expected a table")
        self.where = where
        self.data = data
        self.used: set[str] = set()

    def get(self, key: str, kinds: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise ScenarioError(f"{self.where}: {key} is required")
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ScenarioError(f"{self.where}.{key}: unexpected value {value!r}")
        return value

    def positive(self, key: str, default: Any = ..., *, zero: bool = False,
                 kinds: type | tuple[type, ...] = (int, float)) -> Any:
        """A number > 0 (>= 0 with ``zero``); ``kinds=int`` for counts and sizes."""
        value = self.get(key, kinds, default)
        if value is not None and (value < 0 or (value == 0 and not zero)):
            raise ScenarioError(f"{self.where}.{key}: must be {'>= 0' if zero else '> 0'}")
        return value

    def tables(self, key: str) -> list[_Table]:
        items = self.get(key, list, [])
        prefix = f"{self.where}.{key}" if self.where else key
        return [_Table(f"{prefix}[{i}]", item) for i, item in enumerate(items)]

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ScenarioError(f"{self.where or 'scenario'}: unknown key(s) {', '.join(unknown)}")


def _rate(table: _Table, key: str, default: Any = ...) -> float | None:
    value = table.get(key, (int, float, str), default)
    if value == "max":
        return None
    if isinstance(value, str) or value <= 0:
        raise ScenarioError(f"{table.where}.{key}: a positive rate or \"max\", got {value!r}")
    return float(value)


def _producer(table: _Table, topics: set[str]) -> ProducerSpec:
    topic = table.get("topic", str)
    if topic not in topics:
        raise ScenarioError(f"{table.where}.topic: {topic!r} is not among the topics")
    phases = [Phase(0.0, _rate(table, "rate", "max"))]
    for phase in table.tables("phases"):
        phases.append(Phase(float(phase.positive("at_s")), _rate(phase, "rate")))
        phase.done()
    if [p.at_s for p in phases] != sorted(p.at_s for p in phases):
        raise ScenarioError(f"{table.where}.phases: at_s must increase")
    spec = ProducerSpec(
        topic=topic,
        count=table.positive("count", 1, kinds=int),
        phases=tuple(phases),
        record_bytes=table.positive("record_bytes", 100, kinds=int),
        keys=table.get("keys", str, "none"),
        key_space=table.positive("key_space", 1000, kinds=int),
        linger_ms=table.positive("linger_ms", 5, zero=True, kinds=int),
    )
    if spec.keys not in KEY_DISTRIBUTIONS:
        raise ScenarioError(f"{table.where}.keys: one of {', '.join(KEY_DISTRIBUTIONS)}")
    if spec.record_bytes < HEADER_BYTES:
        raise ScenarioError(f"{table.where}.record_bytes: at least {HEADER_BYTES}")
    return spec


def _group(table: _Table, topics: set[str]) -> GroupSpec:
    names = table.get("topics", list)
    if not names or any(name not in topics for name in names):
        raise ScenarioError(f"{table.where}.topics: a list of the scenario's topics")
    changes = []
    for change in table.tables("changes"):
        join = change.positive("join", 0, zero=True, kinds=int)
        leave = change.positive("leave", 0, zero=True, kinds=int)
        if bool(join) == bool(leave):
            raise ScenarioError(f"{change.where}: give either join = N or leave = N")
        changes.append(Change(float(change.positive("at_s")), join - leave))
        change.done()
    spec = GroupSpec(
        name=table.get("name", str),
        topics=tuple(names),
        members=table.positive("members", 1, kinds=int),
        processing_ms=float(table.positive("processing_ms", 0.0, zero=True)),
        max_poll_records=table.positive("max_poll_records", 500, kinds=int),
        heartbeat_interval_ms=table.positive("heartbeat_interval_ms", 500, kinds=int),
        session_timeout_ms=table.positive("session_timeout_ms", 10000, kinds=int),
        changes=tuple(sorted(changes, key=lambda c: c.at_s)),
        read_ahead_kb=table.positive("read_ahead_kb", None, kinds=int),
    )
    members = spec.members
    for change in spec.changes:
        members += change.members
        if members < 1:
            raise ScenarioError(f"{table.where}.changes: the group would have no member left")
    return spec


def parse(data: Mapping[str, Any], default_name: str = "scenario") -> Scenario:
    """A checked Scenario from TOML data; ScenarioError names the first bad key."""
    root = _Table("", dict(data))
    topic_specs = []
    for table in root.tables("topics"):
        topic_specs.append(TopicSpec(table.get("name", str),
                                     table.positive("partitions", 1, kinds=int),
                                     dict(table.get("config", dict, {}))))
        table.done()
    if not topic_specs:
        raise ScenarioError("a scenario needs at least one [[topics]] table")
    names = {t.name for t in topic_specs}
    producers = []
    for table in root.tables("producers"):
        producers.append(_producer(table, names))
        table.done()
    groups = []
    for table in root.tables("groups"):
        groups.append(_group(table, names))
        table.done()
    if len({g.name for g in groups}) != len(groups):
        raise ScenarioError("group names must differ")
    ci = _Table("ci", root.get("ci", dict, {}))
    scenario = Scenario(
        name=root.get("name", str, default_name),
        description=root.get("description", str, ""),
        duration_s=root.positive("duration_s", None),
        records=root.positive("records", None, kinds=int),
        drain_timeout_s=float(root.positive("drain_timeout_s", 30)),
        server=dict(root.get("server", dict, {})),
        topics=tuple(topic_specs),
        producers=tuple(producers),
        groups=tuple(groups),
        ci_scale=float(ci.positive("duration_scale", 1.0)),
    )
    ci.done()
    root.done()
    if scenario.duration_s is None and scenario.records is None:
        raise ScenarioError("give duration_s, records, or both")
    if not producers:
        raise ScenarioError("a scenario needs at least one [[producers]] table")
    return scenario


def load(path: str | Path) -> Scenario:
    """Read and check a scenario file; its name defaults to the file's stem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return parse(data, path.stem)
