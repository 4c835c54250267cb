"""Kafka's listeners: ``listeners``, ``advertised.listeners`` and
``listener.security.protocol.map``.

A listener is a name, an address and the security protocol its name maps to (PLAINTEXT,
SSL, SASL_PLAINTEXT, SASL_SSL). ``--listen HOST:PORT`` is the shorthand for one PLAINTEXT
listener; ``listeners`` replaces it. A client is told (Metadata, FindCoordinator) the
advertised address of the listener it came in on, so a TLS client keeps talking TLS.

Safe by default: a PLAINTEXT listener on an address other than loopback lets anyone who
can reach it read and write everything, so :func:`check_exposure` refuses it unless the
operator says so (``--allow-plaintext``).
"""

from __future__ import annotations

import enum
import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eventstore.errors import InvalidConfig
from eventstore.kafka.tls import server_context
from eventstore.security.login import CredentialLookup, FailureDelay, SaslLogin, no_credentials
from eventstore.security.principal import MappingRule, parse_rules


class SecurityProtocol(enum.Enum):
    """Kafka's security protocols: whether a listener speaks TLS and requires SASL."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


@dataclass(frozen=True)
class Listener:
    """One configured listener: its name, security protocol and address to bind."""

    name: str
    protocol: SecurityProtocol
    host: str
    port: int

    def requires_authentication(self, client_auth: str) -> bool:
        """Whether a client must prove who it is here: SASL, or a certificate that
        ``ssl.client.auth=required`` asks of every TLS client."""
        return self.protocol.sasl or (self.protocol.tls and client_auth == "required")


def parse_protocol_map(text: str) -> dict[str, SecurityProtocol]:
    """``listener.security.protocol.map``: listener name to security protocol."""
    mapping: dict[str, SecurityProtocol] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, protocol = item.partition(":")
        if not sep or not name.strip():
            raise InvalidConfig(f"listener.security.protocol.map: expected NAME:PROTOCOL,"
                                f" got {item!r}")
        mapping[name.strip().upper()] = _protocol(protocol.strip(),
                                                  "listener.security.protocol.map")
    return mapping


def _protocol(text: str, key: str) -> SecurityProtocol:
    try:
        return SecurityProtocol(text.upper())
    except ValueError:
        known = ", ".join(p.value for p in SecurityProtocol)
        raise InvalidConfig(f"{key}: unknown security protocol {text!r} (known: {known})"
                            ) from None


def _endpoints(text: str, key: str) -> list[tuple[str, str, int]]:
    """``NAME://HOST:PORT,...`` as (NAME, host, port); an empty host is every address."""
    endpoints = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, address = item.partition("://")
        host, colon, port = address.rpartition(":")
        if not sep or not name or not colon or not port.isdigit() or int(port) > 65535:
            raise InvalidConfig(f"{key}: expected NAME://HOST:PORT, got {item!r}")
        endpoints.append((name.upper(), host.strip("[]") or "0.0.0.0", int(port)))
    names = [name for name, _, _ in endpoints]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidConfig(f"{key}: listener name {duplicates[0]} is given twice")
    return endpoints


def parse_listeners(text: str, protocol_map: Mapping[str, SecurityProtocol]
                    ) -> tuple[Listener, ...]:
    """``listeners``: each name must be in the protocol map (the names PLAINTEXT, SSL,
    SASL_PLAINTEXT and SASL_SSL map to themselves by Kafka's default map)."""
    listeners = []
    for name, host, port in _endpoints(text, "listeners"):
        if name not in protocol_map:
            raise InvalidConfig(f"listeners: listener {name} has no security protocol in"
                                " listener.security.protocol.map")
        listeners.append(Listener(name, protocol_map[name], host, port))
    if not listeners:
        raise InvalidConfig("listeners: no listener given")
    return tuple(listeners)


def parse_advertised(text: str, listeners: tuple[Listener, ...]) -> dict[str, tuple[str, int]]:
    """``advertised.listeners``: the address told to clients, by listener name."""
    names = {listener.name for listener in listeners}
    advertised = {}
    for name, host, port in _endpoints(text, "advertised.listeners"):
        if name not in names:
            raise InvalidConfig(f"advertised.listeners: {name} is not a name of listeners")
        advertised[name] = (host, port)
    return advertised


def configured_listeners(config: Mapping[str, object], listen_host: str, listen_port: int
                         ) -> tuple[Listener, ...]:
    """The listeners of a server config (Kafka's keys), else one PLAINTEXT listener on
    ``--listen``'s address."""
    if not config.get("listeners"):
        return (Listener("PLAINTEXT", SecurityProtocol.PLAINTEXT, listen_host, listen_port),)
    protocol_map = parse_protocol_map(str(config["listener.security.protocol.map"]))
    return parse_listeners(str(config["listeners"]), protocol_map)


def is_loopback(host: str) -> bool:
    """Whether ``host`` reaches only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(listeners: tuple[Listener, ...], allow_plaintext: bool) -> None:
    """InvalidConfig, saying how to go on, for a PLAINTEXT listener reachable from other
    machines unless ``allow_plaintext``: anyone who reaches it may read and write all."""
    for listener in listeners:
        if (listener.protocol is SecurityProtocol.PLAINTEXT and not is_loopback(listener.host)
                and not allow_plaintext):
            raise InvalidConfig(
                f"refusing to start: listener {listener.name} on {listener.host}:"
                f"{listener.port} is PLAINTEXT (no TLS, no authentication) and not loopback;"
                " use an SSL/SASL_SSL listener, bind it to 127.0.0.1, or pass"
                " --allow-plaintext to expose it anyway")


@dataclass
class ListenerContext:
    """What the connections of one listener share: the listener, the address its clients
    are told, its SASL mechanisms and where credentials are looked up, the delays of
    failed logins from each host, and the rules naming TLS client certificates."""

    listener: Listener
    advertised: tuple[str, int]  # set once the listener is bound (port 0 picks one)
    mechanisms: tuple[str, ...] = ()
    credentials: CredentialLookup = no_credentials
    delays: FailureDelay = field(default_factory=lambda: FailureDelay(100))
    mapping_rules: tuple[MappingRule, ...] = (MappingRule(),)

    def new_login(self) -> SaslLogin:
        """A new connection's login: required on SASL listeners."""
        return SaslLogin(self.mechanisms, self.credentials, required=self.listener.protocol.sasl)


def listener_contexts(config: Mapping[str, Any], listen_host: str, listen_port: int,
                      credentials: CredentialLookup
                      ) -> list[tuple[ListenerContext, ssl.SSLContext | None]]:
    """Every listener of the server config with what its connections share and its TLS
    context (None: plain TCP). Every file and rule is checked here, at start-up:
    InvalidConfig names the key."""
    listeners = configured_listeners(config, listen_host, listen_port)
    advertised = parse_advertised(str(config.get("advertised.listeners") or ""), listeners)
    try:
        rules = parse_rules(str(config.get("ssl.principal.mapping.rules") or "DEFAULT"))
    except ValueError as error:
        raise InvalidConfig(str(error)) from None
    mechanisms = tuple(item.strip() for item in str(
        config.get("sasl.enabled.mechanisms") or "").split(",") if item.strip())
    delay_ms = int(config.get("connection.failed.authentication.delay.ms", 100))
    tls = None
    built = []
    for listener in listeners:
        if listener.protocol.tls and tls is None:
            tls = server_context(config)
        built.append((ListenerContext(
            listener, advertised.get(listener.name, (listener.host, listener.port)),
            mechanisms, credentials, FailureDelay(delay_ms), rules,
        ), tls if listener.protocol.tls else None))
    return built
