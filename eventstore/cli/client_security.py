"""A command's client security settings: ``--command-config FILE``, as Kafka's tools take it.

The file is Java properties (``key=value`` lines, ``#`` comments) with librdkafka's and
Kafka's client names: ``security.protocol`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
``sasl.mechanism``, ``sasl.username``, ``sasl.password``, ``ssl.ca.location`` (or
``ssl.truststore.location``), ``ssl.certificate.location``, ``ssl.key.location``,
``ssl.key.password``. They become kafka-python's settings for the command's client.
"""

from __future__ import annotations

from typing import Any

from eventstore.cli.base import EXIT_USAGE, CliError

# client property -> kafka-python setting
_SETTINGS = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "ssl.ca.location": "ssl_cafile",
    "ssl.truststore.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
}


def read_properties(path: str) -> dict[str, str]:
    """``key=value`` lines of a properties file; CliError naming the file and line."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise CliError(f"--command-config {path}: {exc.strerror}", EXIT_USAGE) from None
    properties = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith(("#", "!")):
            continue
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--command-config {path}:{number}: expected key=value", EXIT_USAGE)
        properties[key.strip()] = value.strip()
    return properties


def kafka_python_security(path: str | None) -> dict[str, Any]:
    """kafka-python's settings for the properties file at ``path`` (none when None)."""
    if path is None:
        return {}
    properties = read_properties(path)
    unknown = sorted(set(properties) - set(_SETTINGS))
    if unknown:
        raise CliError(f"--command-config {path}: unknown key {unknown[0]!r} (known: "
                       f"{', '.join(sorted(_SETTINGS))})", EXIT_USAGE)
    settings: dict[str, Any] = {_SETTINGS[key]: value for key, value in properties.items()}
    if "security_protocol" in settings:
        settings["security_protocol"] = settings["security_protocol"].upper()
    if "ssl_cafile" in settings or "ssl_certfile" in settings:
        settings["ssl_check_hostname"] = True
    return settings
