"""The config table: the settings objects are built from it, and its checks name the key."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from eventstore.config import (
    KEYS,
    SERVER_KEYS,
    TOPIC_KEYS,
    ConfigKey,
    CoordinatorConfig,
    ListenerLimits,
    ServerConfig,
    TopicConfig,
)
from eventstore.errors import InvalidConfig

SETTINGS = [TopicConfig, ServerConfig, ListenerLimits, CoordinatorConfig]
WRONG_TYPE: dict[type, Any] = {int: "soon", bool: "maybe", str: 1, float: "half"}


def refused(key: ConfigKey, what: str) -> Any:
    """pytest.raises for an InvalidConfig that names ``key`` first and then says ``what``."""
    return pytest.raises(InvalidConfig, match=rf"^InvalidConfig: {re.escape(key.name)}: {what}")


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda cls: cls.__name__)
def test_defaults_and_field_names_come_from_the_table(settings: Any) -> None:
    made = settings()
    for name, key in settings.keys.items():
        assert getattr(made, key.attribute) == key.default == KEYS[name].default
    table_fields = [f.name for f in dataclasses.fields(settings) if f.name != "topic_defaults"]
    assert table_fields == [key.attribute for key in settings.keys.values()]


def test_each_settings_object_holds_its_scope() -> None:
    assert set(TopicConfig.keys) == set(TOPIC_KEYS) == {
        name for name, key in KEYS.items() if key.scope == "topic"}
    assert set(ListenerLimits.keys) == {n for n, k in KEYS.items() if k.scope == "listener"}
    assert set(CoordinatorConfig.keys) == {n for n, k in KEYS.items() if k.scope == "group"}
    assert set(ServerConfig.keys) == set(SERVER_KEYS) == {
        name for name, key in KEYS.items() if key.scope != "topic" and key.settable}
    assert set().union(*(cls.keys for cls in SETTINGS)) == set(KEYS)


@pytest.mark.parametrize("key", KEYS.values(), ids=lambda key: key.name)
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(key: ConfigKey) -> None:
    with refused(key, "expected "):
        key.parse(WRONG_TYPE[key.kind])
    assert key.parse(key.default) == key.default
    assert key.parse(str(key.default)) == key.default


@pytest.mark.parametrize("key", [k for k in KEYS.values() if k.minimum is not None],
                         ids=lambda key: key.name)
def test_a_value_below_the_minimum_is_refused_naming_the_key(key: ConfigKey) -> None:
    assert key.parse(str(key.minimum)) == key.minimum
    with refused(key, "must be (at least|-1 or a non-negative integer)"):
        key.parse(key.minimum - 1)


@pytest.mark.parametrize("key", [k for k in KEYS.values() if k.choices],
                         ids=lambda key: key.name)
def test_a_value_not_among_the_choices_is_refused_listing_them(key: ConfigKey) -> None:
    with refused(key, re.escape(f"must be one of {', '.join(key.choices)}, got 'nonsense'")):
        key.parse("nonsense")


def test_constructors_check_their_values_too() -> None:
    with refused(KEYS["max.connections"], "must be at least 1, got 0"):
        ListenerLimits(max_connections=0)
    with refused(KEYS["segment.bytes"], "expected an integer, got '300'"):
        TopicConfig(segment_bytes="300")
    with refused(KEYS["offset.metadata.max.bytes"], "must be at least 0, got -1"):
        CoordinatorConfig(offset_metadata_max_bytes=-1)


def test_the_session_timeout_bounds_must_be_in_order() -> None:
    message = ("group.min.session.timeout.ms: must not exceed group.max.session.timeout.ms"
               " (10 > 5)")
    config = {"group.min.session.timeout.ms": "10", "group.max.session.timeout.ms": "5"}
    for make in (ServerConfig.from_mapping, CoordinatorConfig.from_mapping):
        with pytest.raises(InvalidConfig, match=re.escape(message)):
            make(config)


def test_the_server_config_hands_the_listener_and_coordinator_their_settings() -> None:
    config = ServerConfig.from_mapping({"max.connections": "5", "offsets.retention.minutes": 2,
                                        "segment.bytes": 1000})
    assert config.listener_limits() == ListenerLimits(max_connections=5)
    assert config.coordinator_config() == CoordinatorConfig(offsets_retention_minutes=2)
    assert config.topic_config().segment_bytes == 1000
    assert ServerConfig.from_mapping(config.to_mapping()) == config


def test_keys_the_server_config_does_not_accept_are_refused_there_only() -> None:
    unsettable = [key for key in KEYS.values() if not key.settable]
    assert unsettable
    for key in unsettable:
        with pytest.raises(InvalidConfig, match=f"unknown config key '{re.escape(key.name)}'"):
            ServerConfig.from_mapping({key.name: key.default})
        made = CoordinatorConfig.from_mapping({key.name: str(key.default + 1)})
        assert getattr(made, key.attribute) == key.default + 1
