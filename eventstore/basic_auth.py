"""HTTP basic auth for ``/metrics`` (``metrics.basic.auth.users``), against SCRAM credentials.

The users named may read ``/metrics`` with their Kafka password: it is checked by
recomputing the SCRAM salted password from the stored salt and iterations and comparing
StoredKey (eventstore/security/scram.py), as SASL PLAIN does, so no password (nor anything
a password could be read back from) is kept for HTTP. A missing or wrong login is answered
``401`` with ``WWW-Authenticate: Basic``; wrong logins from one host are answered later
and later (``connection.failed.authentication.delay.ms``), as failed SASL logins are.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from eventstore.security.login import CredentialLookup, FailureDelay
from eventstore.security.scram import MECHANISMS, make_credential, verify_password

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]

REALM = 'Basic realm="eventstore metrics", charset="UTF-8"'
# checked against for a user not allowed or unknown, so such a login costs what a wrong
# password costs and the answer's timing does not tell who exists
_NOBODY = make_credential("SCRAM-SHA-256", "nobody's password")


def parse_users(value: str) -> frozenset[str]:
    """The users of ``metrics.basic.auth.users`` (comma-separated; empty: none)."""
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic ...`` header; None when there is
    none or it is malformed."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode(
            "utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep and user else None


@dataclass(frozen=True)
class BasicAuth:
    """Who may read the guarded paths: ``users``, each with its password checked against
    its stored SCRAM credential (``lookup``: (user, mechanism) -> credential or None)."""

    users: frozenset[str]
    lookup: CredentialLookup

    def check(self, header: str | None) -> bool:
        """Whether the ``Authorization`` header carries an allowed user's right password.
        Blocking: PBKDF2 over the credential's iterations."""
        login = basic_credentials(header)
        if login is None:
            return False
        user, password = login
        credential = None
        if user in self.users:
            credential = next(filter(None, (self.lookup(user, name) for name in MECHANISMS)),
                              None)
        matches = verify_password(credential or _NOBODY, password)
        return credential is not None and matches


@dataclass
class BasicAuthGuard:
    """A WSGI wrapper answering 401 unless :class:`BasicAuth` accepts the request; a
    wrong login is answered after the host's :class:`FailureDelay` (``sleep`` injected)."""

    auth: BasicAuth
    delay: FailureDelay
    sleep: Callable[[float], None] = time.sleep
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, app: WsgiApp) -> WsgiApp:
        def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
            host = str(environ.get("REMOTE_ADDR", ""))
            header = environ.get("HTTP_AUTHORIZATION")
            if self.auth.check(header):
                with self._lock:
                    self.delay.succeeded(host)
                return app(environ, start_response)
            if header is not None:  # a wrong login; none at all is the usual first ask
                with self._lock:
                    wait_ms = self.delay.failed(host)
                self.sleep(wait_ms / 1000)
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", REALM)])
            return [b"authentication required\n"]

        return guarded
