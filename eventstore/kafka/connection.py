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

# A handler's answer: the kio response body, the whole response frame already encoded
# (Fetch, see codec/fetchresponse.py), or None when the client wants none (acks=0).
Response = ResponsePayload | bytes | None


class Connection:
    """One client connection as its handlers see it: the context every connection
    shares, the client's address, and the connection's own fetch session."""

    def __init__(self, ctx: BrokerContext, client_host: str) -> None:
        self.ctx = ctx
        self.client_host = client_host
        self.fetches = FetchSession(ctx)

    def close(self) -> None:
        self.fetches.close()


Handler = Callable[[Connection, Request], Awaitable[Response]]
