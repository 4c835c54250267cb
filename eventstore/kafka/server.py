"""The Kafka protocol listener: TCP framing, connection limits, one request at a time.

Like a Kafka broker, each connection is served in order: a request is read, handled and
answered before the next is read, so responses never overtake each other. Frames over
``socket.request.max.bytes``, undecodable frames and unknown API keys close the
connection; a connection idle (or stalled mid-frame) past ``connections.max.idle.ms`` is
closed; connections beyond ``max.connections`` are refused. None of it disturbs the other
clients.

Memory is bounded by ``queued.max.request.bytes``, Kafka's name for the bytes of requests a
broker holds at once (see :class:`RequestBudget`): a request's body is read chunk by
chunk, each chunk taken from the budget first, and all of it given back once the response
is written. While the budget is spent no more is read, so producers faster than the disk
are held back by TCP (their own buffers fill) instead of piling up requests here. One
request at a time per connection bounds each connection; this bounds them all together,
which ``max.connections`` times ``socket.request.max.bytes`` does not in practice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from collections import deque
from collections.abc import Callable
from typing import Protocol

from eventstore.config import ListenerLimits
from eventstore.errors import InvalidRequest
from eventstore.kafka.codec.apikeys import ApiKey
from eventstore.kafka.codec.framecheck import frame_size_problem
from eventstore.kafka.codec.protocol import (
    Request,
    UnsupportedApiVersion,
    api_name,
    api_versions_response,
    decode_request,
    encode_response,
)
from eventstore.kafka.connection import CloseConnection, Response
from eventstore.kafka.framing import FrameStream
from eventstore.kafka.idle_watch import IdleWatch
from eventstore.kafka.registry import SUPPORTED_VERSIONS

log = logging.getLogger("eventstore.kafka")


class Session(Protocol):
    """What the listener needs of a connection's session (see eventstore.kafka.session)."""

    async def handle(self, request: Request) -> Response: ...

    def written(self) -> None:
        """The last answer was handed to the socket (see eventstore/kafka/response_budget.py)."""

    def close(self) -> None: ...

    def tls_established(self, ssl_object: ssl.SSLObject) -> None:
        """The connection is TLS (the listener has an ssl context): its certificate."""

    @property
    def expects_raw_token(self) -> bool:
        """The next frame is a bare SASL token, not a request (after SaslHandshake v0)."""

    async def raw_token(self, token: bytes) -> bytes:
        """The bare answer to a bare SASL token; raises CloseConnection on a failed login."""


SessionFactory = Callable[[str], Session]


class RequestBudget:
    """The bytes of requests held in memory at once, from their reading to their answer.

    A connection takes each chunk of a request's body from the budget before reading it
    and gives the whole request back once it is answered; while the budget is spent,
    connections wait in line. Requests only partly read could then wait on each other for
    good, so while no request is being handled (none will give bytes back) the oldest
    request being read may go over. Memory held is at most the budget plus one request,
    and a client that stalls mid-request holds only the bytes it actually sent.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.handling = 0  # requests read whole and not yet answered
        self._reading: dict[object, None] = {}  # requests being read, oldest first
        self._waiting: deque[tuple[object, int, asyncio.Future[None]]] = deque()

    def start_reading(self, request: object) -> None:
        self._reading[request] = None

    def stop_reading(self, request: object, handled: bool) -> None:
        """The request is read whole (``handled``: it is now being handled) or dropped."""
        del self._reading[request]
        self.handling += handled
        self._grant()

    def answered(self, size: int) -> None:
        """A request of ``size`` bytes was answered: its bytes are free again."""
        self.handling -= 1
        self.give_back(size)

    def give_back(self, size: int) -> None:
        self.used -= size
        self._grant()

    async def take(self, request: object, size: int) -> None:
        """Wait until ``size`` more bytes of ``request`` may be read."""
        if not self._waiting and self._fits(request, size):
            self.used += size
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (request, size, granted)
        self._waiting.append(entry)
        self._grant()
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.give_back(size)  # granted just as the connection was closed
            else:
                self._waiting.remove(entry)
                self._grant()
            raise

    def _fits(self, request: object, size: int) -> bool:
        if self.used + size <= self.limit:
            return True
        return self.handling == 0 and next(iter(self._reading), None) is request

    def _grant(self) -> None:
        granted = True
        while granted and self._waiting:
            granted = False
            for entry in self._waiting:  # the head first; past it only the oldest request
                request, size, future = entry
                if self._fits(request, size):
                    self._waiting.remove(entry)
                    self.used += size
                    future.set_result(None)
                    granted = True
                    break
                if self.used + size > self.limit and self.handling:
                    break  # nobody may pass the head while answers will free bytes


class KafkaListener:
    """Accepts Kafka clients and feeds each connection's decoded requests to its session.

    A session returns the response body (a kio response object), the response frame
    already encoded (bytes), or None when the request needs no answer (a Produce with
    acks=0). Requests of an API or version the registry does not list are refused here.

    Each connection's bytes come through a :class:`FrameStream` (an asyncio.Protocol,
    eventstore/kafka/framing.py) and its requests are served by one task of its own.
    """

    def __init__(self, sessions: SessionFactory, limits: ListenerLimits) -> None:
        self._sessions = sessions
        self._limits = limits
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._idle: set[asyncio.Task] = set()  # connections waiting for their next request
        self.budget = RequestBudget(limits.queued_max_request_bytes)
        self._stopping = False
        self.requests_total = 0

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None
                    ) -> tuple[str, int]:
        """Listen on host:port (port 0 picks a free one), over TLS when ``tls`` is given
        (the handshake happens before a connection is served); returns the bound address."""
        self._server = await asyncio.get_running_loop().create_server(
            lambda: FrameStream(self._connected), host, port, ssl=tls)
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

    def _connected(self, stream: FrameStream) -> None:
        """A client connected: serve it on a task of its own, or refuse it."""
        peer = stream.transport.get_extra_info("peername")
        if len(self._connections) >= self._limits.max_connections:
            log.warning("connection refused: max.connections=%d reached; peer=%s",
                        self._limits.max_connections, peer)
            stream.close()
            return
        task = asyncio.get_running_loop().create_task(self._accept(stream, peer))
        self._connections.add(task)

    async def _accept(self, stream: FrameStream, peer: object) -> None:
        task = asyncio.current_task()
        assert task is not None
        session = self._sessions(peer[0] if isinstance(peer, tuple) else str(peer))
        ssl_object = stream.transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            session.tls_established(ssl_object)
        try:
            await self._serve(stream, session, peer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            session.close()
            stream.close()
            # A connection counts until it is closed, so stop() waits for it; cancelled
            # here (stop() past its grace), it still ends normally: asyncio reports a
            # cancelled connection task with a traceback.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await stream.closed()
            self._connections.discard(task)

    async def _serve(self, stream: FrameStream, session: Session, peer: object) -> None:
        task = asyncio.current_task()
        assert task is not None
        watch = IdleWatch(task, self._limits.connections_max_idle_ms / 1000, peer)
        try:
            while not self._stopping:
                self._idle.add(task)  # until a whole request is read: stop() may cancel it
                try:
                    frame = await self._read_frame(stream, watch, peer)
                finally:
                    self._idle.discard(task)
                if frame is None:
                    return
                try:
                    response = await self._respond(frame, session, peer)
                    if response is _CLOSE:
                        return
                    if response is not None:
                        stream.write(response)
                        await self._drained(stream, watch)
                    session.written()
                finally:
                    self.budget.answered(len(frame))
        finally:
            watch.close()

    @staticmethod
    async def _drained(stream: FrameStream, watch: IdleWatch) -> None:
        """Wait until the answer is handed to the socket (the watch closes the connection
        of a client that reads none of it for connections.max.idle.ms)."""
        if not stream.write_buffered():
            return  # all of it went to the socket at once, as small answers do
        watch.waiting("the client read no answer")
        await stream.drain()
        watch.served()

    async def _read_frame(
        self, stream: FrameStream, watch: IdleWatch, peer: object
    ) -> bytes | None:
        """The next request frame, its bytes taken from the budget (the caller gives them
        back with ``answered``); None when the connection must close."""
        watch.waiting("idle")
        header = await stream.read(4)
        watch.served()
        if header is None:
            return None
        (size,) = struct.unpack(">i", header)
        problem = frame_size_problem(size, self._limits.socket_request_max_bytes)
        if problem is not None:
            log.warning("connection closed: %s; peer=%s", problem, peer)
            return None
        request, taken, chunks, whole = object(), 0, [], True
        self.budget.start_reading(request)
        try:
            while whole and taken < size:
                step = min(_CHUNK, size - taken)
                await self.budget.take(request, step)
                taken += step
                watch.waiting("stalled mid-request")
                chunk = await stream.read(step)
                watch.served()
                whole = chunk is not None
                chunks.append(chunk)
        except BaseException:
            whole = False
            raise
        finally:
            self.budget.stop_reading(request, handled=whole)
            if not whole:
                self.budget.give_back(taken)
        return b"".join(chunks) if whole else None

    async def _respond(
        self, frame: bytes, session: Session, peer: object
    ) -> bytes | object | None:
        if session.expects_raw_token:  # SASL after a SaslHandshake v0: no Kafka header
            try:
                answer = await session.raw_token(frame)
            except CloseConnection as exc:
                log.warning("connection closed: %s; peer=%s", exc, peer)
                return _CLOSE
            return struct.pack(">i", len(answer)) + answer
        try:
            request = decode_request(frame, SUPPORTED_VERSIONS)
        except UnsupportedApiVersion as exc:
            if exc.api_key == ApiKey.API_VERSIONS:
                # Kafka answers a too-new ApiVersions with v0 and its list of keys
                return encode_response(
                    exc, api_versions_response(SUPPORTED_VERSIONS, exc.api_version))
            log.warning("connection closed: %s; peer=%s", exc, peer)
            return _CLOSE
        except InvalidRequest as exc:
            log.warning("connection closed: %s; peer=%s", exc, peer)
            return _CLOSE
        self.requests_total += 1
        try:
            body = await session.handle(request)
        except CloseConnection as exc:
            log.warning("connection closed: %s; peer=%s", exc, peer)
            return _CLOSE
        except Exception:
            log.exception("connection closed: %s v%d request failed; peer=%s",
                          api_name(request.api_key), request.api_version, peer)
            return _CLOSE
        if body is None or isinstance(body, bytes):  # no answer, or one encoded already
            return body
        return encode_response(request, body)


_CLOSE = object()
_CHUNK = 65536  # bytes of a request body taken from the budget, and read, at a time
