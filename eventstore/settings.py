"""`eventstore serve` settings: the TOML config file, the environment, and flags.

Precedence, lowest first: built-in defaults, the config file (``--config``), the
environment (``EVENTSTORE_DATA_DIR``), then flags (``--data-dir``, ``--listen``,
``--metrics-listen``, ``--set key=value``). The ``[config]`` table and ``--set`` take any
server key (Kafka broker names) or topic key (a default for every topic).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventstore.errors import InvalidConfig

DEFAULT_LISTEN = "127.0.0.1:9092"
DEFAULT_METRICS_LISTEN = "127.0.0.1:9308"
DEFAULT_DATA_DIR = "./data"

_FILE_KEYS = {"data-dir", "listen", "metrics-listen", "advertised-host", "log-level", "config",
              "allow-plaintext"}


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServeSettings:
    """Everything `eventstore serve` needs to start."""

    data_dir: str = DEFAULT_DATA_DIR
    listen: Address = Address("127.0.0.1", 9092)
    metrics_listen: Address = Address("127.0.0.1", 9308)
    advertised_host: str | None = None
    log_level: str = "info"
    config: Mapping[str, Any] = field(default_factory=dict)
    # serve a PLAINTEXT listener on an address other machines reach (see listeners.py)
    allow_plaintext: bool = False


# The levels `log-level` takes, most verbose first.
LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_address(text: str, what: str) -> Address:
    """``HOST:PORT`` (``[v6]:PORT`` too); InvalidConfig naming ``what`` otherwise."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidConfig(f"{what}: expected HOST:PORT, got {text!r}")
    return Address(host.strip("[]"), int(port))


def parse_assignment(text: str) -> tuple[str, str]:
    """``key=value`` from ``--set``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise InvalidConfig(f"--set: expected key=value, got {text!r}")
    return key.strip(), value.strip()


def load_settings(
    *,
    config_file: str | None = None,
    data_dir: str | None = None,
    listen: str | None = None,
    metrics_listen: str | None = None,
    assignments: Sequence[str] = (),
    environ: Mapping[str, str] = os.environ,
    allow_plaintext: bool = False,
) -> ServeSettings:
    """Merge defaults, the TOML file, the environment and flags into ServeSettings."""
    file: dict[str, Any] = {}
    if config_file is not None:
        try:
            with open(config_file, "rb") as fh:
                file = tomllib.load(fh)
        except OSError as exc:
            raise InvalidConfig(f"--config {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidConfig(f"--config {config_file}: not valid TOML ({exc})") from None
        unknown = set(file) - _FILE_KEYS
        if unknown:
            raise InvalidConfig(
                f"--config {config_file}: unknown key(s) {', '.join(sorted(unknown))}"
                f" (known: {', '.join(sorted(_FILE_KEYS))})"
            )
    config = dict(file.get("config", {}))
    if not isinstance(file.get("config", {}), dict):
        raise InvalidConfig("[config] must be a table of key = value")
    config.update(parse_assignment(a) for a in assignments)
    for key in ("data-dir", "listen", "metrics-listen", "advertised-host", "log-level"):
        if key in file and not isinstance(file[key], str):
            raise InvalidConfig(f"--config {config_file}: {key} must be a string,"
                                f" got {file[key]!r}")
    if not isinstance(file.get("allow-plaintext", False), bool):
        raise InvalidConfig(f"--config {config_file}: allow-plaintext must be true or false")
    log_level = file.get("log-level", "info")
    if log_level.lower() not in LOG_LEVELS:
        raise InvalidConfig(f"log-level must be one of {', '.join(LOG_LEVELS)},"
                            f" got {log_level!r}")
    return ServeSettings(
        data_dir=data_dir or environ.get("EVENTSTORE_DATA_DIR") or file.get("data-dir")
        or DEFAULT_DATA_DIR,
        listen=parse_address(listen or file.get("listen") or DEFAULT_LISTEN, "listen"),
        metrics_listen=parse_address(
            metrics_listen or file.get("metrics-listen") or DEFAULT_METRICS_LISTEN,
            "metrics-listen",
        ),
        advertised_host=file.get("advertised-host"),
        log_level=log_level.lower(),
        config=config,
        allow_plaintext=allow_plaintext or file.get("allow-plaintext", False),
    )
