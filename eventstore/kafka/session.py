"""One client connection's session: routes each decoded request to its handler.

A session is its connection's :class:`~eventstore.kafka.connection.Connection` (the
read-only LogReader its fetches use and the partition states they watch) and routes by
the registry (eventstore/kafka/registry.py). Any typed error a handler lets through is
answered in the API's own error field by the handler; what reaches here is a bug, and the
listener closes the connection.
"""

from __future__ import annotations

from eventstore.kafka.codec.protocol import Request
from eventstore.kafka.connection import Connection, Response
from eventstore.kafka.registry import APIS


class Session(Connection):
    """Handles the requests of one connection, in order."""

    async def handle(self, request: Request) -> Response:
        """The response body for ``request`` (None when the client wants no answer), or
        the whole response frame already encoded (bytes: Fetch, see fetchresponse.py).

        The listener decoded only APIs of the registry, so the lookup cannot miss. An
        answer encoded here is held in the response budget until :meth:`written`."""
        response = await APIS[request.api_key].handler(self, request)
        if isinstance(response, bytes):
            self.built(len(response))
        return response
