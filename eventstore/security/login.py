"""One connection's SASL login as Kafka's broker runs it, as an explicit state machine.

On a SASL listener a connection starts unauthenticated: only ApiVersions and SaslHandshake
are served, then (the mechanism chosen) only SaslAuthenticate, until the login succeeds;
any other request closes the connection, as Kafka closes it. A failed login leaves the
connection failed: the client is answered SASL_AUTHENTICATION_FAILED and its next request
closes it. On a listener without SASL the connection is authenticated from the start and
SASL requests are ILLEGAL_SASL_STATE.

Mechanisms: PLAIN (RFC 4616; the password is checked against the user's stored SCRAM
credential, never a stored copy) and SCRAM-SHA-256/512 (eventstore/security/scram.py).
:class:`FailureDelay` slows down repeated failures from one host without holding anyone
else up.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from eventstore.errors import IllegalSaslState, SaslAuthenticationFailed, UnsupportedSaslMechanism
from eventstore.security.scram import (
    MECHANISMS,
    ExchangeState,
    ScramCredential,
    ScramError,
    ScramServerExchange,
    verify_password,
)

# the API keys of Kafka's SaslHandshake, ApiVersions and SaslAuthenticate
SASL_HANDSHAKE, API_VERSIONS, SASL_AUTHENTICATE = 17, 18, 36

# (user, mechanism) -> the stored credential, or None
CredentialLookup = Callable[[str, str], ScramCredential | None]

PLAIN = "PLAIN"


def no_credentials(user: str, mechanism: str) -> None:
    """The lookup of a listener without SASL: nobody has a credential."""
    return None


class LoginState(enum.Enum):
    """Where one connection's login stands."""

    AWAIT_HANDSHAKE = "await-handshake"  # SASL listener, nothing chosen yet
    AWAIT_AUTHENTICATE = "await-authenticate"  # a mechanism chosen, no token yet
    EXCHANGING = "exchanging"  # SCRAM: client-first answered, client-final awaited
    AUTHENTICATED = "authenticated"
    FAILED = "failed"


class SaslLogin:
    """The login of one connection; ``required`` is False on a listener without SASL."""

    def __init__(self, mechanisms: Iterable[str], lookup: CredentialLookup,
                 required: bool = True) -> None:
        self.mechanisms = tuple(mechanisms)
        self._lookup = lookup
        self.required = required
        self.state = LoginState.AWAIT_HANDSHAKE if required else LoginState.AUTHENTICATED
        self.mechanism: str | None = None
        self.user: str | None = None
        self.framed = True  # SaslHandshake v1: tokens in SaslAuthenticate; v0: bare frames
        self.reason = ""  # why the login failed, for the server's log (never the client)
        self._scram: ScramServerExchange | None = None

    def admits(self, api_key: int) -> bool:
        """Whether a request of ``api_key`` may be served in this state; a request not
        admitted closes the connection."""
        if self.state is LoginState.AUTHENTICATED:
            return True
        if self.state is LoginState.AWAIT_HANDSHAKE:
            return api_key in (API_VERSIONS, SASL_HANDSHAKE)
        if self.state in (LoginState.AWAIT_AUTHENTICATE, LoginState.EXCHANGING):
            return api_key == SASL_AUTHENTICATE
        return False

    @property
    def expects_raw_token(self) -> bool:
        """Whether the next frame is a bare SASL token (after a SaslHandshake v0), not a
        Kafka request."""
        return not self.framed and self.state in (LoginState.AWAIT_AUTHENTICATE,
                                                  LoginState.EXCHANGING)

    def handshake(self, mechanism: str, framed: bool = True) -> None:
        """SaslHandshake: choose ``mechanism``; ``framed`` (v1) when the tokens come in
        SaslAuthenticate requests. UnsupportedSaslMechanism (the login fails) for one not
        enabled; IllegalSaslState out of order."""
        if self.state is not LoginState.AWAIT_HANDSHAKE:
            raise IllegalSaslState("SaslHandshake is not expected now"
                                   if self.required else "this listener does not use SASL")
        if mechanism not in self.mechanisms:
            self.state = LoginState.FAILED
            raise UnsupportedSaslMechanism(
                f"mechanism {mechanism!r} is not enabled; enabled: {', '.join(self.mechanisms)}")
        self.mechanism = mechanism
        self.framed = framed
        self.state = LoginState.AWAIT_AUTHENTICATE

    def authenticate(self, token: bytes) -> bytes:
        """SaslAuthenticate: the server's answer to the client's token. Raises
        SaslAuthenticationFailed (the login fails) or IllegalSaslState (out of order).
        Blocking: SCRAM and PLAIN derive keys (PBKDF2) and read the credentials."""
        if self.state not in (LoginState.AWAIT_AUTHENTICATE, LoginState.EXCHANGING):
            raise IllegalSaslState("SaslAuthenticate is not expected now"
                                   if self.required else "this listener does not use SASL")
        try:
            if self.mechanism == PLAIN:
                return self._plain(token)
            return self._scram_step(token)
        except SaslAuthenticationFailed:
            self.state = LoginState.FAILED
            raise

    def _failed(self) -> SaslAuthenticationFailed:
        return SaslAuthenticationFailed(
            "Authentication failed during authentication due to invalid credentials with"
            f" SASL mechanism {self.mechanism}")

    def _plain(self, token: bytes) -> bytes:
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise SaslAuthenticationFailed("Authentication failed: invalid SASL/PLAIN message")
        try:
            authzid, user, password = (part.decode("utf-8") for part in parts)
        except UnicodeDecodeError:
            raise SaslAuthenticationFailed(
                "Authentication failed: invalid SASL/PLAIN message") from None
        self.user = user
        if authzid and authzid != user:
            raise SaslAuthenticationFailed(
                "Authentication failed: the authorization id differs from the user name")
        credential = next(filter(None, (self._lookup(user, name) for name in MECHANISMS)),
                          None)
        if not user or credential is None or not verify_password(credential, password):
            raise SaslAuthenticationFailed("Authentication failed: Invalid username or password")
        self.state = LoginState.AUTHENTICATED
        return b""

    def _scram_step(self, token: bytes) -> bytes:
        assert self.mechanism is not None
        if self._scram is None:
            mechanism = self.mechanism
            self._scram = ScramServerExchange(mechanism, lambda user: self._lookup(user, mechanism))
        try:
            answer = self._scram.respond(token)
        except ScramError as error:
            self.user = self._scram.username
            self.reason = str(error)
            raise self._failed() from None
        self.user = self._scram.username
        self.state = (LoginState.AUTHENTICATED if self._scram.state is ExchangeState.COMPLETE
                      else LoginState.EXCHANGING)
        return answer

    @property
    def principal(self) -> str | None:
        """``User:<name>`` once authenticated by SASL, else None."""
        if self.required and self.state is LoginState.AUTHENTICATED and self.user:
            return f"User:{self.user}"
        return None


MAX_DELAY_MS = 5000


@dataclass
class FailureDelay:
    """How long to wait before answering a failed login from a host: ``base_ms``
    (``connection.failed.authentication.delay.ms``), doubled for each further failure
    from that host in a row, at most :data:`MAX_DELAY_MS`. A success forgets the host.
    Only the failing client waits; nobody else does. Bounded: the oldest hosts are
    forgotten past ``remembered``."""

    base_ms: int
    remembered: int = 4096
    _failures: dict[str, int] = field(default_factory=dict)

    def failed(self, host: str) -> int:
        """A login from ``host`` failed: the delay in ms before it is answered."""
        count = self._failures.pop(host, 0) + 1
        self._failures[host] = count
        if len(self._failures) > self.remembered:
            del self._failures[next(iter(self._failures))]
        return min(MAX_DELAY_MS, self.base_ms * 2 ** min(count - 1, 16))

    def succeeded(self, host: str) -> None:
        self._failures.pop(host, None)
