"""The HTTP endpoint of `eventstore serve`: ``/metrics`` for Prometheus and ``/healthz``.

prometheus-client renders the exposition; wsgiref serves it on its own thread, so a slow
scrape never touches the Kafka listener's event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        """Scrapes every few seconds are not worth a log line."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class HttpEndpoint:
    """Serves ``/metrics`` and ``/healthz`` until :meth:`stop`."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, healthy: Callable[[], bool],
        routes: Mapping[str, Callable[[dict, Callable], Iterable[bytes]]] | None = None,
    ) -> None:
        """``routes``: more paths and the WSGI application answering each (admin POSTs)."""
        metrics = make_wsgi_app(registry)
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
