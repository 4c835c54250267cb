"""What a request handler is given: its connection, and the shape every handler has.

Every handler in eventstore/kafka/handlers/ is a :data:`Handler`: it takes the
:class:`Connection` the request came on and the decoded request, and returns the answer.
The registry (eventstore/kafka/registry.py) maps each API key to one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kio.static.protocol import ResponsePayload

from eventstore.kafka.codec.protocol import Request
from eventstore.kafka.context import BrokerContext
from eventstore.kafka.fetch_sessions import FetchSession
from eventstore.kafka.listeners import ListenerContext
from eventstore.kafka.tls import peer_principal
from eventstore.security.login import SaslLogin, no_credentials
from eventstore.security.principal import ANONYMOUS

# A handler's answer: the kio response body, the whole response frame already encoded
# (Fetch, see codec/fetchresponse.py), or None when the client wants none (acks=0).
Response = ResponsePayload | bytes | None


class Connection:
    """One client connection as its handlers see it: the context every connection
    shares, the client's address and principal, and the connection's own fetch session.

    It also keeps the connection's share of the server's response budget
    (eventstore/kafka/response_budget.py): the bytes of its answer built and not yet
    written, and those its read-ahead may hold.
    """

    def __init__(self, ctx: BrokerContext, client_host: str,
                 listener: ListenerContext | None = None) -> None:
        self.ctx = ctx
        self.client_host = client_host
        # who the client is, as Kafka's authorizer names it: set by SASL or mutual TLS
        self.principal = ANONYMOUS
        # the listener the client came in on (None: the one PLAINTEXT listener of ctx)
        self.listener = listener
        self.login = (listener.new_login() if listener
                      else SaslLogin((), no_credentials, required=False))
        self.fetches = FetchSession(ctx)
        self._unwritten = 0  # bytes of the answer built and not yet written
        self._ahead_held = 0  # bytes held for the read-ahead started last
        self._ahead: tuple[Callable[[], None], int] | None = None  # to start once written

    @property
    def advertised(self) -> tuple[str, int]:
        """The (host, port) this client is told to reach the node at: its listener's."""
        if self.listener is None:
            return self.ctx.host, self.ctx.port
        return self.listener.advertised

    def tls_established(self, ssl_object: object) -> None:
        """The connection came over TLS: a verified client certificate names the principal
        (mutual TLS; on SASL_SSL the SASL login names it instead)."""
        if self.listener is None or self.login.required:
            return
        principal = peer_principal(ssl_object, self.listener.mapping_rules, self.client_host)
        if principal is not None:
            self.principal = principal

    def built(self, size: int) -> None:
        """An answer of ``size`` bytes was built: held until it is written."""
        self._unwritten += size
        self.ctx.responses.hold(size)

    def read_ahead_once_written(self, start: Callable[[], None], size: int) -> None:
        """Run ``start`` (a read-ahead of at most ``size`` bytes) once this answer is
        written, if the server's response budget then holds ``size`` more bytes."""
        self._ahead = (start, size)

    def read_ahead_taken(self) -> None:
        """The read-ahead started last was settled: its bytes are part of an answer now."""
        self.ctx.responses.release(self._ahead_held)
        self._ahead_held = 0

    def written(self) -> None:
        """The answer left this process's buffers: free its bytes, and read ahead if it
        was asked for and fits. A client that does not read never gets here, so its
        connection never reads ahead past what it has not read."""
        self.ctx.responses.release(self._unwritten)
        self._unwritten = 0
        ahead, self._ahead = self._ahead, None
        if ahead is not None and self.ctx.responses.try_hold(ahead[1]):
            self.read_ahead_taken()
            self._ahead_held = ahead[1]
            ahead[0]()

    def close(self) -> None:
        self.ctx.responses.release(self._unwritten + self._ahead_held)
        self._unwritten = self._ahead_held = 0
        self._ahead = None
        self.fetches.close()


class CloseConnection(Exception):
    """Raised by a handler or the session: close the connection without an answer, as
    Kafka does (a request other than ApiVersions or SASL before a SASL login); the
    message says why, for the server's log."""


Handler = Callable[[Connection, Request], Awaitable[Response]]
