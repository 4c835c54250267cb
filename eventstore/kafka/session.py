"""One client connection's session: routes each decoded request to its handler.

A session is its connection's :class:`~eventstore.kafka.connection.Connection` (the
read-only LogReader its fetches use and the partition states they watch) and routes by
the registry (eventstore/kafka/registry.py). Any typed error a handler lets through is
answered in the API's own error field by the handler; what reaches here is a bug, and the
listener closes the connection.
"""

from __future__ import annotations

from eventstore.kafka.codec.protocol import Request, api_name
from eventstore.kafka.connection import CloseConnection, Connection, Response
from eventstore.kafka.handlers.sasl import authenticate_unframed
from eventstore.kafka.registry import APIS


class Session(Connection):
    """Handles the requests of one connection, in order."""

    async def handle(self, request: Request) -> Response:
        """The response body for ``request`` (None when the client wants no answer), or
        the whole response frame already encoded (bytes: Fetch, see fetchresponse.py).

        The listener decoded only APIs of the registry, so the lookup cannot miss. An
        answer encoded here is held in the response budget until :meth:`written`.

        Before a SASL login only what the login admits is served (ApiVersions, then SASL);
        anything else closes the connection, as Kafka closes it."""
        if not self.login.admits(request.api_key):
            raise CloseConnection(f"{api_name(request.api_key)} request before SASL"
                                  f" authentication ({self.login.state.value})")
        response = await APIS[request.api_key].handler(self, request)
        if isinstance(response, bytes):
            self.built(len(response))
        return response

    @property
    def expects_raw_token(self) -> bool:
        """The next frame is a bare SASL token (after a SaslHandshake v0)."""
        return self.login.expects_raw_token

    async def raw_token(self, token: bytes) -> bytes:
        """The bare answer to a bare SASL token; CloseConnection when the login fails."""
        return await authenticate_unframed(self, token)
