"""A connection's bytes as an ``asyncio.Protocol``: buffered reads and flow-controlled writes.

asyncio's streams put a StreamReader, a StreamReaderProtocol and a StreamWriter between
the socket and the listener, and a small request paid for all three on every read and
write. :class:`FrameStream` is the one object between them here: the transport hands it
bytes, it keeps them in one buffer, and the listener takes a request's bytes from that
buffer, waiting (on one future) only when they have not all arrived yet.

Like a StreamReader it holds at most :data:`READ_AHEAD` bytes its reader has not taken:
past that it stops reading from the socket until they are taken, so a client sending
faster than its requests are served is held back by TCP. Like a StreamWriter, a write
past the transport's high-water mark makes :meth:`drain` wait until the client reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

READ_AHEAD = 2 * 65536  # bytes buffered and not taken before reading pauses (StreamReader's)


class FrameStream(asyncio.Protocol):
    """One connection's transport and the bytes it has received and not yet taken.

    ``on_connected(stream)`` is called once the connection is up (after the TLS handshake
    on a TLS listener); :meth:`closed` completes when the transport is gone.
    """

    def __init__(self, on_connected: Callable[[FrameStream], None]) -> None:
        self._on_connected = on_connected
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False  # the client sent all it will, or the connection is gone
        self._lost: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None  # a read waiting for bytes
        self._drain: asyncio.Future[None] | None = None  # a write waiting for the client
        self._reading_paused = False
        self._writing_paused = False
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._on_connected(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()
        if len(self._buffer) > READ_AHEAD and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        # keep a plain half-closed connection open, so the answers in flight still go out
        # (a TLS transport cannot stay half open, and says so if asked)
        return self.transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = exc or ConnectionResetError("connection lost")
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(self._lost)
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- the listener's side ----------------------------------------------------------------

    async def read(self, size: int) -> bytes | None:
        """The next ``size`` bytes, or None when the client closed before sending them."""
        while len(self._buffer) < size:
            if self._eof:
                return None
            if self._reading_paused:  # the bytes asked for are past what is buffered
                self._reading_paused = False
                self.transport.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self._buffer[:size]) if size < len(self._buffer) else bytes(self._buffer)
        del self._buffer[:size]
        if self._reading_paused and len(self._buffer) <= READ_AHEAD:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def write_buffered(self) -> bool:
        """Whether some of what was written is still waiting for the client to read it."""
        return bool(self.transport.get_write_buffer_size())

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark; raises
        ConnectionError when the connection is lost first."""
        if self._lost is not None:
            raise self._lost
        if not self._writing_paused:
            return
        self._drain = asyncio.get_running_loop().create_future()
        try:
            await self._drain
        finally:
            self._drain = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def closed(self) -> None:
        """Wait until the connection is gone (after :meth:`close`)."""
        await asyncio.shield(self._closed)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
