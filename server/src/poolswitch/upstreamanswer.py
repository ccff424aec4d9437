"""An upstream answer as the proxy reads it (upstreamhttp.py fills it): status and headers at
once, the body as it arrives, with backpressure on the connection.

The body waits in a queue of the pieces the parser handed over. More than `HIGH_WATER` bytes
waiting pause reading from the socket (the reader is slow: a caller reading a stream slowly),
fewer than `LOW_WATER` resume it; so an answer never holds much more than `HIGH_WATER` in
memory, whatever its size.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from poolswitch.errors import TransportError

HIGH_WATER = 256 * 1024  # unread answer bytes that pause reading from the socket...
LOW_WATER = 64 * 1024  # ...until fewer than these wait


class Source(Protocol):
    """The connection an answer comes on."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def finished(self, reusable: bool) -> None: ...


class Answer:
    """An upstream answer whose headers have come; its body is read with `read`, `read_event`
    or `chunks`. Always `release()` it: that returns the connection or closes it."""

    __slots__ = (
        "_buffer",
        "_conn",
        "_eof",
        "_error",
        "_size",
        "_waiter",
        "content_length",
        "headers",
        "raw_headers",
        "status",
    )

    def __init__(self, conn: Source, status: int, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self._conn: Source | None = conn
        self.status = status
        self.raw_headers = raw_headers
        self.headers = CIMultiDictProxy(
            CIMultiDict(
                (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
                for name, value in raw_headers
            )
        )
        length = self.headers.get("content-length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        self._buffer: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._error: TransportError | None = None
        self._waiter: asyncio.Future[None] | None = None

    # fed by the connection

    def feed(self, data: bytes) -> None:
        self._buffer.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def fail(self, error: TransportError) -> None:
        if not self._eof:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # read by the proxy

    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    async def _more(self) -> bool:
        """Wait until bytes are buffered or the body ended; False at its end."""
        while not self._buffer:
            if self._error is not None:
                raise self._error
            if self._eof:
                return False
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return True

    def _take(self, limit: int) -> bytes:
        first = self._buffer.popleft()
        if len(first) > limit:
            self._buffer.appendleft(first[limit:])
            first = first[:limit]
        self._size -= len(first)
        if self._size < LOW_WATER and self._conn is not None:
            self._conn.resume()
        return first

    async def read(self, limit: int) -> tuple[bytes, bool]:
        """Up to `limit` bytes of the body, and whether that was all of it."""
        parts: list[bytes] = []
        got = 0
        while got < limit and await self._more():
            part = self._take(limit - got)
            parts.append(part)
            got += len(part)
        return b"".join(parts), self.at_eof()

    async def read_event(self, limit: int) -> bytes:
        """Until the first server-sent event is complete (a blank line), the body ends or
        `limit` bytes have come; all that was read."""
        data = b""
        while len(data) < limit and await self._more():
            data += self._take(limit - len(data))
            if b"\n\n" in data or b"\r\n\r\n" in data:
                break
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The rest of the body, piece by piece as it arrives."""
        while await self._more():
            yield self._take(len(self._buffer[0]))

    def release(self) -> None:
        """Return the connection to the pool when the body was read to its end, else close it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finished(reusable=self.at_eof() and self._error is None)
