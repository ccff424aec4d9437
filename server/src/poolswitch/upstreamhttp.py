"""HTTP/1.1 to one upstream origin: keep-alive connections in a pool, each request written as
given, each answer parsed by httptools (llhttp, the parser uvicorn's server side uses) and its
body handed over as it arrives (upstreamanswer.py).

Why not aiohttp's ClientSession: for a proxy that sends every request as it came and never
follows a redirect, stores a cookie, decompresses or re-quotes, the session's generality is
pure cost. Measured on one core against nginx (16 concurrent requests, the same 628-byte chat
completion): aiohttp's request and read took about 100 us of CPU per request, this about 9 us;
in the proxy that was the largest share of its CPU per request.

What it does, and nothing else:
- `Client.request()` takes a connection (an idle one, newest first; else a new one while fewer
  than `limit` are open; else waits for one), writes the request line, `Host`, the headers and
  `Content-Length` (none for a body-less GET or HEAD), then the body (large ones in pieces, as
  the socket drains), and returns the `Answer` once its headers have come;
- `read_timeout`: the longest wait for the next bytes of the answer (headers or body), not
  counted while the reader is the slow one (the answer pauses reading when too much waits);
- an answer read to its end on a connection both sides keep alive goes back to the pool when
  released; any other is closed (an answer to HEAD, or one whose body ends when the connection
  closes). An idle connection the upstream closed leaves the pool at once; one idle for
  `KEEPALIVE_SECONDS` is closed rather than reused;
- a request is never re-sent: a failure is an error for the retry policy (proxy.py) to weigh.
  A connection found closed before anything was written to it is not a failure: another one is
  taken.

Errors are poolswitch.errors' `ConnectError` (nothing was sent), `ReadTimeout` and
`TransportError`; their messages name the failure, never a header or a body.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

import httptools

from poolswitch.errors import ConnectError, ReadTimeout, TransportError
from poolswitch.upstreamanswer import Answer

CHUNK = 64 * 1024
WHOLE_WRITE = 16 * CHUNK  # bodies up to this go out in one write
KEEPALIVE_SECONDS = 15.0
NO_BODY_STATUS = frozenset({204, 304})
CLOSE_SECONDS = 1.0


class Origin:
    """Where requests go: scheme, host, port and the `Host` header of a base URL."""

    __slots__ = ("host", "host_header", "port", "tls")

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the upstream must be an http or https URL")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        default = 443 if self.tls else 80
        self.port = parts.port or default
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = name if self.port == default else f"{name}:{self.port}"


def request_head(
    method: str, target: str, host: str, headers: Iterable[tuple[str, str]], body: bytes
) -> bytes:
    """The request line and headers, as sent. A header that would split the head (a CR or LF
    in it) is refused: ConnectError, nothing sent."""
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    for name, value in headers:
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise ConnectError("cannot send upstream: a header holds a line break")
        lines.append(f"{name}: {value}\r\n")
    if body or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


class _Connection(asyncio.Protocol):
    """One connection to the upstream, serving one request at a time."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self.keep_alive = True
        self._answer: Answer | None = None
        self._head: asyncio.Future[Answer] | None = None
        self._raw: list[tuple[bytes, bytes]] = []
        self._informational = False
        self._head_only = False  # an answer to HEAD: its body is never read
        self._complete = False  # the current answer's message ended
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self._timeout = 0.0
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._broken(TransportError("upstream connection failed: not a valid HTTP answer"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.keep_alive = False
        self._cancel_timer()
        answer = self._answer
        if self._head is not None and not self._head.done():
            self._head.set_exception(
                TransportError("upstream connection failed: closed before an answer")
            )
        elif answer is not None and not self._complete:
            if answer.content_length is None and not self._chunked():
                answer.feed_eof()  # a body that ends when the connection does
            else:
                answer.fail(TransportError("upstream connection failed: the body was cut short"))
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self.client.forget(self)

    def pause_writing(self) -> None:
        self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._raw = []
        self._complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # 100 Continue, 103 Early Hints: not the answer
            self._informational = True
            return
        answer = Answer(self, status, self._raw)
        self._answer = answer
        if self._head_only or status in NO_BODY_STATUS or status == 101:
            answer.feed_eof()
            if self._head_only or status == 101:
                self.keep_alive = False  # a HEAD answer's length is not followed by a body
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_result(answer)

    def on_body(self, body: bytes) -> None:
        if self._answer is not None:
            self._answer.feed(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self._complete = True
        self._cancel_timer()
        if not self.parser.should_keep_alive():
            self.keep_alive = False
        if self._answer is not None:
            self._answer.feed_eof()

    # flow control, asked by the answer

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self._last_read = self.loop.time()  # the wait starts now, not when it paused
            self.transport.resume_reading()

    # one exchange

    def usable(self, now: float) -> bool:
        transport = self.transport
        fresh = now - self.idle_since < KEEPALIVE_SECONDS
        return transport is not None and not transport.is_closing() and self.keep_alive and fresh

    async def exchange(self, head: bytes, body: bytes, read_timeout: float) -> Answer:
        transport = self.transport
        assert transport is not None
        self._answer, self._head_only, self._complete = None, head.startswith(b"HEAD "), False
        self._head = self.loop.create_future()
        self._arm(read_timeout)
        if len(body) <= WHOLE_WRITE:
            transport.write(head + body)
        else:
            transport.write(head)
            for start in range(0, len(body), CHUNK):
                if self._drained is not None:
                    await self._drained
                if self.transport is None:
                    break  # the failure reaches the waiter below
                transport.write(body[start : start + CHUNK])
        return await self._head

    def finished(self, reusable: bool) -> None:
        """The proxy is done with the answer: back to the pool, or closed."""
        self._answer = None
        self._cancel_timer()
        if reusable and self._complete and self.keep_alive and self.transport is not None:
            self.client.put_back(self)
        else:
            self.close()

    def close(self, abort: bool = False) -> None:
        """Close the connection (`abort`: at once, without a TLS goodbye)."""
        self.keep_alive = False
        self._cancel_timer()
        if self.transport is None:
            self.client.forget(self)
        elif abort:
            self.transport.abort()
        else:
            self.transport.close()

    # the read timeout: one timer per exchange, moved on lazily

    def _arm(self, timeout: float) -> None:
        self._timeout = timeout
        self._last_read = self.loop.time()
        self._timer = self.loop.call_at(self._last_read + timeout, self._check_timeout)

    def _check_timeout(self) -> None:
        self._timer = None
        if self._complete:
            return
        now = self.loop.time()
        if self._paused:  # the reader is the slow one: no bytes are asked for
            self._timer = self.loop.call_at(now + self._timeout, self._check_timeout)
            return
        due = self._last_read + self._timeout
        if now < due:
            self._timer = self.loop.call_at(due, self._check_timeout)
            return
        self._broken(ReadTimeout("upstream did not answer in time"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _broken(self, error: TransportError) -> None:
        """The exchange cannot go on: fail whoever waits, drop the connection."""
        self.keep_alive = False
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        elif self._answer is not None and not self._complete:
            self._answer.fail(error)
        if self.transport is not None:
            self.transport.abort()

    def _chunked(self) -> bool:
        answer = self._answer
        coding = answer.headers.get("transfer-encoding", "") if answer is not None else ""
        return "chunked" in coding.lower()


class Client:
    """The connections to one origin (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        limit: int,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.origin = Origin(base_url)
        self.connect_timeout = connect_timeout
        self.limit = limit
        self.tls = (tls or ssl.create_default_context()) if self.origin.tls else None
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        read_timeout: float,
    ) -> Answer:
        head = request_head(method, target, self.origin.host_header, headers, body)
        conn = await self._take()
        try:
            return await conn.exchange(head, body, read_timeout)
        except BaseException:
            conn.close()
            raise

    async def _take(self) -> _Connection:
        conn = self._reuse()
        while conn is None and len(self._open) >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            conn = self._reuse()
        return conn if conn is not None else await self._connect()

    def _reuse(self) -> _Connection | None:
        """The newest idle connection still usable; the stale ones on the way are closed."""
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now):
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        if self._closed:
            raise ConnectError("cannot connect to upstream: the client is closed")
        loop = asyncio.get_running_loop()
        origin = self.origin
        conn = _Connection(self)
        self._open.add(conn)
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: conn,
                    origin.host,
                    origin.port,
                    ssl=self.tls,
                    server_hostname=origin.host if self.tls is not None else None,
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            self.forget(conn)
            raise ConnectError("cannot connect to upstream: timed out") from None
        except (OSError, ssl.SSLError) as exc:
            self.forget(conn)
            raise ConnectError(f"cannot connect to upstream: {type(exc).__name__}") from exc
        except BaseException:
            self.forget(conn)
            raise
        return conn

    def put_back(self, conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._wake_one()

    def forget(self, conn: _Connection) -> None:
        """A connection that closed: it no longer counts, and a waiter may open another."""
        if conn in self._open:
            self._open.discard(conn)
            if conn in self._idle:
                self._idle.remove(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Drop every connection (no TLS goodbye: the process is stopping or the pool was
        replaced), and wait, briefly, until the loop has closed their sockets."""
        self._closed = True
        for conn in list(self._open):
            conn.close(abort=True)
        self._idle.clear()
        deadline = time.monotonic() + CLOSE_SECONDS
        while self._open and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
