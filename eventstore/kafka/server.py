"""The Kafka protocol listener: TCP framing, connection limits, one request at a time.

Like a Kafka broker, each connection is served in order: a request is read, handled and
answered before the next is read, so responses never overtake each other. Frames over
``socket.request.max.bytes``, undecodable frames and unknown API keys close the
connection; a connection idle (or stalled mid-frame) past ``connections.max.idle.ms`` is
closed; connections beyond ``max.connections`` are refused. None of it disturbs the other
clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from eventstore.errors import InvalidRequest
from eventstore.kafka.protocol import (
    API_VERSIONS,
    Request,
    UnsupportedApiVersion,
    api_name,
    api_versions_response,
    decode_request,
    encode_response,
)

log = logging.getLogger("eventstore.kafka")

class Session(Protocol):
    """What the listener needs of a connection's session (see eventstore.kafka.session)."""

    async def handle(self, request: Request) -> object | None: ...

    def close(self) -> None: ...


SessionFactory = Callable[[str], Session]


@dataclass(frozen=True)
class ListenerLimits:
    """Kafka's socket limits, by their broker config names."""

    socket_request_max_bytes: int = 104857600
    connections_max_idle_ms: int = 600000
    max_connections: int = 1000


class KafkaListener:
    """Accepts Kafka clients and feeds each connection's decoded requests to its session.

    A session returns the response body (a kio response object), or None when the
    request needs no answer (a Produce with acks=0).
    """

    def __init__(self, sessions: SessionFactory, limits: ListenerLimits) -> None:
        self._sessions = sessions
        self._limits = limits
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._idle: set[asyncio.Task] = set()  # connections waiting for their next request
        self._stopping = False
        self.requests_total = 0

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (port 0 picks a free one); returns the bound address."""
        self._server = await asyncio.start_server(self._accept, host, port)
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting connections and reading requests, let the requests in flight be
        answered (up to ``grace_s``), then close every connection.

        Idle connections close at once: a busy client must not hold the shutdown for the
        whole grace period by sending request after request.
        """
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task in self._idle:
            task.cancel()
        if self._connections:
            await asyncio.wait(set(self._connections), timeout=grace_s)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if len(self._connections) >= self._limits.max_connections:
            log.warning("connection refused: max.connections=%d reached; peer=%s",
                        self._limits.max_connections, peer)
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        session = self._sessions(peer[0] if isinstance(peer, tuple) else str(peer))
        try:
            await self._serve(reader, writer, session, peer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            session.close()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: Session,
        peer: object,
    ) -> None:
        idle_s = self._limits.connections_max_idle_ms / 1000
        task = asyncio.current_task()
        assert task is not None
        while not self._stopping:
            self._idle.add(task)
            try:
                frame = await self._read_frame(reader, idle_s, peer)
            finally:
                self._idle.discard(task)
            if frame is None:
                return
            response = await self._respond(frame, session, peer)
            if response is None:
                continue
            if response is _CLOSE:
                return
            writer.write(response)
            await writer.drain()

    async def _read_frame(
        self, reader: asyncio.StreamReader, idle_s: float, peer: object
    ) -> bytes | None:
        try:
            header = await asyncio.wait_for(reader.readexactly(4), idle_s)
            (size,) = struct.unpack(">i", header)
            if size < 0 or size > self._limits.socket_request_max_bytes:
                log.warning(
                    "connection closed: request of %d bytes is over"
                    " socket.request.max.bytes=%d; peer=%s",
                    size, self._limits.socket_request_max_bytes, peer,
                )
                return None
            return await asyncio.wait_for(reader.readexactly(size), idle_s)
        except TimeoutError:
            log.info("connection closed: idle past connections.max.idle.ms; peer=%s", peer)
            return None
        except asyncio.IncompleteReadError:
            return None

    async def _respond(
        self, frame: bytes, session: Session, peer: object
    ) -> bytes | object | None:
        try:
            request = decode_request(frame)
        except UnsupportedApiVersion as exc:
            if exc.api_key == API_VERSIONS:
                # Kafka answers a too-new ApiVersions with v0 and its list of keys
                return encode_response(exc, api_versions_response(exc.api_version))
            log.warning("connection closed: %s; peer=%s", exc, peer)
            return _CLOSE
        except InvalidRequest as exc:
            log.warning("connection closed: %s; peer=%s", exc, peer)
            return _CLOSE
        self.requests_total += 1
        try:
            body = await session.handle(request)
        except Exception:
            log.exception("connection closed: %s v%d request failed; peer=%s",
                          api_name(request.api_key), request.api_version, peer)
            return _CLOSE
        if body is None:
            return None
        return encode_response(request, body)


_CLOSE = object()
