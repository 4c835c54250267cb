"""The HTTP endpoint of `eventstore serve`: ``/metrics`` for Prometheus and ``/healthz``.

prometheus-client renders the exposition; wsgiref serves it on its own thread, so a slow
scrape never touches the Kafka listener's event loop. With a TLS context it is HTTPS
(``metrics.ssl.enable``): each connection's handshake runs on that connection's own
thread, bounded by :data:`CONNECTION_TIMEOUT_S`, so a client that stalls or fails its
handshake holds up nobody else. With a :class:`~eventstore.basic_auth.BasicAuthGuard`
``/metrics`` asks for a login (``metrics.basic.auth.users``); ``/healthz`` tells only
whether the server runs, and stays open to probes.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from eventstore.basic_auth import BasicAuthGuard

log = logging.getLogger("eventstore.http")

CONNECTION_TIMEOUT_S = 10.0  # a TLS handshake or a request line not done by then is dropped


class _QuietHandler(WSGIRequestHandler):
    timeout = CONNECTION_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        """Scrapes every few seconds are not worth a log line."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed TLS handshake (a plain HTTP client, an untrusted CA), a timeout or a
        reset is the client's trouble: one debug line, not a traceback on stderr."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("HTTP connection failed", extra={"fields": {
                "client": str(client_address[0]) if client_address else "",
                "error": str(error)}})
            return
        super().handle_error(request, client_address)


class HttpEndpoint:
    """Serves ``/metrics`` and ``/healthz`` until :meth:`stop`."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, healthy: Callable[[], bool],
        routes: Mapping[str, Callable[[dict, Callable], Iterable[bytes]]] | None = None,
        tls: ssl.SSLContext | None = None, guard: BasicAuthGuard | None = None,
    ) -> None:
        """``routes``: more paths and the WSGI application answering each (admin POSTs);
        ``tls``: serve HTTPS; ``guard``: ``/metrics`` needs a basic auth login."""
        metrics = make_wsgi_app(registry)
        if guard is not None:
            metrics = guard.wrap(metrics)
        more = dict(routes or {})

        def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
            route = more.get(environ.get("PATH_INFO", ""))
            if route is not None:
                return route(environ, start_response)
            if environ.get("PATH_INFO") == "/healthz":
                ok = healthy()
                start_response("200 OK" if ok else "503 Service Unavailable",
                               [("Content-Type", "text/plain")])
                return [b"ok\n" if ok else b"stopping\n"]
            return metrics(environ, start_response)

        self._server = make_server(
            host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        if tls is not None:  # handshakes on each connection's thread, not the accepting one
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self.scheme = "https" if tls is not None else "http"
        self.address: tuple[str, int] = self._server.server_address[:2]
        self._thread = threading.Thread(  # a short poll so stop() does not wait 0.5 s
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="eventstore-http", daemon=True,
        )

    def start(self) -> HttpEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
