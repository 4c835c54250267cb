"""TLS for the SSL and SASL_SSL listeners (and the metrics endpoint), from PEM files.

Kafka's keys, in PEM form: ``ssl.keystore.location`` is one PEM file holding the server's
certificate chain and its private key (encrypted with ``ssl.key.password``, if at all),
or ``ssl.certificate.location`` and ``ssl.key.location`` name the two apart.
``ssl.truststore.location`` holds the CA certificates client certificates must chain to,
and ``ssl.client.auth`` (none, requested, required) says whether one is asked for. A
client certificate's subject becomes the connection's principal through
``ssl.principal.mapping.rules`` (eventstore/security/principal.py).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from typing import Any

from eventstore.errors import InvalidConfig
from eventstore.security.principal import MappingRule, map_subject, subject_name

log = logging.getLogger("eventstore.kafka.tls")

_CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL,
                "required": ssl.CERT_REQUIRED}


def server_context(config: Mapping[str, Any]) -> ssl.SSLContext:
    """The server side TLS context the ``ssl.*`` keys describe; InvalidConfig naming the
    key and file when one is missing or unreadable (at start-up, not at the first client)."""
    keystore = config.get("ssl.keystore.location") or ""
    certificate = config.get("ssl.certificate.location") or ""
    key = config.get("ssl.key.location") or ""
    if keystore and (certificate or key):
        raise InvalidConfig("ssl.keystore.location: give it, or ssl.certificate.location"
                            " with ssl.key.location, not both")
    if not keystore and not (certificate and key):
        raise InvalidConfig("a TLS listener needs ssl.keystore.location (a PEM file with the"
                            " certificate and key) or ssl.certificate.location and"
                            " ssl.key.location")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    password = config.get("ssl.key.password") or None
    where = ("ssl.keystore.location", keystore) if keystore else (
        "ssl.certificate.location", certificate)
    try:
        context.load_cert_chain(keystore or certificate, keystore or key, password=password)
    except FileNotFoundError as exc:
        raise InvalidConfig(f"{where[0]}: cannot read {exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise InvalidConfig(f"{where[0]}: {where[1]} is not a PEM certificate and key"
                            f" (or ssl.key.password is wrong): {exc}") from None
    client_auth = config.get("ssl.client.auth") or "none"
    context.verify_mode = _CLIENT_AUTH[client_auth]
    truststore = config.get("ssl.truststore.location") or ""
    if client_auth != "none":
        if not truststore:
            raise InvalidConfig(f"ssl.client.auth={client_auth} needs"
                                " ssl.truststore.location (the CAs of client certificates)")
        try:
            context.load_verify_locations(cafile=truststore)
        except (ssl.SSLError, OSError) as exc:
            raise InvalidConfig(f"ssl.truststore.location: cannot read {truststore}: {exc}"
                                ) from None
    return context


def peer_principal(ssl_object: Any, rules: tuple[MappingRule, ...], client_host: str
                   ) -> str | None:
    """The principal a verified client certificate names (``User:`` + its mapped subject),
    logged with the client's address; None when the client sent none."""
    certificate = ssl_object.getpeercert() if ssl_object is not None else None
    if not certificate:
        return None
    subject = subject_name(certificate.get("subject", ()))
    principal = map_subject(rules, subject)
    log.info("TLS client certificate", extra={"fields": {
        "client_host": client_host, "subject": subject, "principal": principal}})
    return principal
