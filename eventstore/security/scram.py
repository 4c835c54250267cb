"""SCRAM-SHA-256/512 (RFC 5802, RFC 7677) as Kafka uses it for SASL.

A credential keeps only the salt, the iteration count, StoredKey and ServerKey: the
password cannot be recovered from it, yet a server can check a client's proof with it.
`ScramServerExchange` is the server side of one login, as an explicit state machine.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384


class ScramError(Exception):
    """The client's SCRAM messages are malformed or its proof is wrong."""


@dataclass(frozen=True)
class ScramCredential:
    """What the catalog stores for one user and mechanism: never the password."""

    mechanism: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def _hmac(digest: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, digest).digest()


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, i) of RFC 5802: PBKDF2 with the mechanism's HMAC."""
    return hashlib.pbkdf2_hmac(MECHANISMS[mechanism], password.encode(), salt, iterations)


def credential_from_salted(
    mechanism: str, salted: bytes, salt: bytes, iterations: int
) -> ScramCredential:
    """The stored credential for a salted password (what AlterUserScramCredentials sends)."""
    digest = MECHANISMS[mechanism]
    client_key = _hmac(digest, salted, b"Client Key")
    return ScramCredential(
        mechanism=mechanism,
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.new(digest, client_key).digest(),
        server_key=_hmac(digest, salted, b"Server Key"),
    )


def make_credential(
    mechanism: str, password: str, iterations: int = MIN_ITERATIONS, salt: bytes | None = None
) -> ScramCredential:
    """A new credential for a password, with a fresh random salt unless one is given."""
    if mechanism not in MECHANISMS:
        raise ValueError(f"unsupported SCRAM mechanism {mechanism!r}")
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}")
    salt = salt if salt is not None else secrets.token_bytes(32)
    return credential_from_salted(
        mechanism, salted_password(mechanism, password, salt, iterations), salt, iterations
    )


def verify_password(credential: ScramCredential, password: str) -> bool:
    """Whether a plaintext password (SASL PLAIN) matches a stored SCRAM credential."""
    again = credential_from_salted(
        credential.mechanism,
        salted_password(credential.mechanism, password, credential.salt, credential.iterations),
        credential.salt,
        credential.iterations,
    )
    return hmac.compare_digest(again.stored_key, credential.stored_key)


def _attributes(message: str) -> dict[str, str]:
    parts = {}
    for field in message.split(","):
        if len(field) < 2 or field[1] != "=":
            raise ScramError(f"malformed SCRAM attribute {field!r}")
        parts[field[0]] = field[2:]
    return parts


def _username(raw: str) -> str:
    if "=" in raw.replace("=2C", "").replace("=3D", ""):
        raise ScramError("malformed SCRAM user name")
    return raw.replace("=2C", ",").replace("=3D", "=")


class ExchangeState(enum.Enum):
    """Where one SCRAM login stands."""

    AWAIT_CLIENT_FIRST = "await-client-first"
    AWAIT_CLIENT_FINAL = "await-client-final"
    COMPLETE = "complete"
    FAILED = "failed"


class ScramServerExchange:
    """The server side of one SCRAM login: client-first, server-first, client-final, server-final.

    `lookup` returns the stored credential of a user name, or None; an unknown user fails
    at the proof check, like a wrong password, so the answer does not reveal who exists.
    """

    def __init__(self, mechanism: str, lookup, nonce: str | None = None) -> None:
        if mechanism not in MECHANISMS:
            raise ValueError(f"unsupported SCRAM mechanism {mechanism!r}")
        self.mechanism = mechanism
        self._lookup = lookup
        self._server_nonce = nonce or secrets.token_urlsafe(24)
        self.state = ExchangeState.AWAIT_CLIENT_FIRST
        self.username: str | None = None
        self._credential: ScramCredential | None = None
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._nonces: tuple[str, ...] = ()

    def _fail(self, reason: str) -> ScramError:
        self.state = ExchangeState.FAILED
        return ScramError(reason)

    def respond(self, message: bytes) -> bytes:
        """The answer to the client's next message; raises ScramError when the login fails."""
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError as error:
            raise self._fail("SCRAM message is not UTF-8") from error
        if self.state is ExchangeState.AWAIT_CLIENT_FIRST:
            return self._client_first(text)
        if self.state is ExchangeState.AWAIT_CLIENT_FINAL:
            return self._client_final(text)
        raise self._fail(f"unexpected SCRAM message in state {self.state.value}")

    def _client_first(self, text: str) -> bytes:
        header, sep, bare = text.partition(",")
        gs2_authzid, sep2, bare = bare.partition(",")
        if not sep or not sep2 or header not in ("n", "y"):
            raise self._fail("malformed SCRAM client-first message")
        try:
            attributes = _attributes(bare)
            self.username = _username(attributes["n"])
            client_nonce = attributes["r"]
        except (KeyError, ScramError) as error:
            raise self._fail(f"malformed SCRAM client-first message: {error}") from error
        self._credential = self._lookup(self.username)
        self._client_first_bare = bare
        self._nonce = client_nonce + self._server_nonce
        # librdkafka before 1.9 echoes its own nonce before the combined one; Kafka's
        # brokers accepted that (the proof, over the message as sent, still decides)
        self._nonces = (self._nonce, client_nonce + self._nonce)
        credential = self._credential or make_credential(self.mechanism, secrets.token_hex(16))
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        self.state = ExchangeState.AWAIT_CLIENT_FINAL
        return self._server_first.encode()

    def _client_final(self, text: str) -> bytes:
        without_proof, sep, proof_field = text.rpartition(",p=")
        if not sep:
            raise self._fail("SCRAM client-final message has no proof")
        try:
            attributes = _attributes(without_proof)
            proof = base64.b64decode(proof_field, validate=True)
        except (ValueError, ScramError) as error:
            raise self._fail(f"malformed SCRAM client-final message: {error}") from error
        if attributes.get("r") not in self._nonces:
            raise self._fail("SCRAM nonce does not match")
        credential = self._credential
        if credential is None or credential.mechanism != self.mechanism:
            raise self._fail("authentication failed")
        digest = MECHANISMS[self.mechanism]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = _hmac(digest, credential.stored_key, auth_message)
        if len(proof) != len(signature):
            raise self._fail("authentication failed")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(digest, client_key).digest(), credential.stored_key):
            raise self._fail("authentication failed")
        self.state = ExchangeState.COMPLETE
        server_signature = _hmac(digest, credential.server_key, auth_message)
        return b"v=" + base64.b64encode(server_signature)
