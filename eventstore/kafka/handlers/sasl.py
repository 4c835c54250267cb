"""SaslHandshake and SaslAuthenticate: a client's login on a SASL listener.

The login itself is :class:`eventstore.security.login.SaslLogin`, the connection's state
machine; these handlers carry its messages. With SaslHandshake v1 (every current client)
the tokens come in SaslAuthenticate requests; after a v0 handshake they come as bare
size-prefixed frames (:func:`authenticate_unframed`), and a failure closes the connection,
as Kafka does for v0. Deriving SCRAM keys and reading credentials block, so they run on
the blocking-work pool. A failed login is logged with the client's address and answered
after a delay that grows with the host's failures in a row
(``connection.failed.authentication.delay.ms``): only that client waits, the event loop
serves everyone else meanwhile.
"""

from __future__ import annotations

import asyncio
import logging

from kio.static.protocol import ResponsePayload

from eventstore.errors import KafkaError, SaslAuthenticationFailed
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import CloseConnection, Connection

log = logging.getLogger("eventstore.kafka.sasl")


async def handle_sasl_handshake(conn: Connection, request: Request) -> ResponsePayload:
    """Choose the mechanism; the answer lists the enabled ones either way."""
    login = conn.login
    try:
        login.handshake(request.body.mechanism, framed=request.api_version >= 1)
        error_code = 0
    except KafkaError as error:
        log.warning("SASL handshake refused: %s", error, extra={"fields": {
            "client_host": conn.client_host, "mechanism": request.body.mechanism}})
        error_code = error.code
    return make_response(request, error_code=error_code, mechanisms=login.mechanisms)


async def _authenticate(conn: Connection, token: bytes) -> bytes:
    """The server's answer to one token; the principal set once the login succeeds.
    A failure is logged and delayed, then raised (SaslAuthenticationFailed, or
    IllegalSaslState out of order)."""
    login = conn.login
    try:
        answer = await conn.ctx.run(login.authenticate, token)
    except SaslAuthenticationFailed:
        delays = conn.listener.delays if conn.listener is not None else None
        delay_ms = delays.failed(conn.client_host) if delays is not None else 0
        log.warning("authentication failed", extra={"fields": {
            "client_host": conn.client_host, "mechanism": login.mechanism,
            "user": login.user or "", "reason": login.reason, "delay_ms": delay_ms}})
        await asyncio.sleep(delay_ms / 1000)
        raise
    principal = login.principal
    if principal is not None:
        conn.principal = principal
        if conn.listener is not None:
            conn.listener.delays.succeeded(conn.client_host)
        log.info("authenticated", extra={"fields": {
            "client_host": conn.client_host, "mechanism": login.mechanism,
            "principal": principal}})
    return answer


async def handle_sasl_authenticate(conn: Connection, request: Request) -> ResponsePayload:
    """One token of the login, framed in a Kafka request."""
    try:
        answer = await _authenticate(conn, bytes(request.body.auth_bytes))
    except KafkaError as error:
        return make_response(request, error_code=error.code, error_message=str(error),
                             auth_bytes=b"")
    return make_response(request, error_code=0, auth_bytes=answer)


async def authenticate_unframed(conn: Connection, token: bytes) -> bytes:
    """One bare token after a SaslHandshake v0: the answer, also bare; a failed login
    closes the connection (CloseConnection)."""
    try:
        return await _authenticate(conn, token)
    except KafkaError as error:
        raise CloseConnection(f"SASL login failed: {error}") from None
