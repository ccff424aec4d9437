"""The upstream HTTP exchange: the only module that knows aiohttp.

One shared `ClientSession` with a connection pool sized for the concurrency, no automatic
decompression (bodies pass through as the upstream encoded them), no headers of its own beyond
Host and Content-Length, and the request target sent as given (no re-quoting).
"""

from __future__ import annotations

import asyncio
import io
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Protocol

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from poolswitch import upstreamtls
from poolswitch.errors import ConnectError, ReadTimeout, TransportError

_SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
CHUNK = 64 * 1024


class Response(Protocol):
    """What the request loop needs of an upstream answer (UpstreamResponse; fakes in tests)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def raw_headers(self) -> Sequence[tuple[bytes, bytes]]: ...

    @property
    def content_length(self) -> int | None: ...

    async def read(self, limit: int) -> tuple[bytes, bool]: ...

    async def read_event(self, limit: int) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def release(self) -> None: ...


class Upstream(Protocol):
    """What the request loop needs of the upstream client (Forwarder; fakes in tests)."""

    async def send(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        read_timeout: float | None = None,
    ) -> Response: ...


class UpstreamResponse:
    """An upstream answer whose body has not been read yet. Always `release()` it."""

    __slots__ = ("_resp", "content_length", "headers", "raw_headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers
        self.raw_headers = resp.raw_headers
        self.content_length = resp.content_length

    async def read(self, limit: int) -> tuple[bytes, bool]:
        """Up to `limit` bytes of the body, and whether that was all of it."""
        try:
            data = await self._resp.content.read(limit)
            while len(data) < limit and not self._resp.content.at_eof():
                more = await self._resp.content.read(limit - len(data))
                if not more:
                    break
                data += more
            return data, self._resp.content.at_eof()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _transport_error(exc) from exc

    async def read_event(self, limit: int) -> bytes:
        """Read until the first server-sent event is complete (a blank line), the body ends or
        `limit` bytes have come; return all that was read."""
        content = self._resp.content
        data = b""
        try:
            while len(data) < limit and not content.at_eof():
                data += await content.readany()
                if b"\n\n" in data or b"\r\n\r\n" in data:
                    break
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _transport_error(exc) from exc
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The rest of the body, piece by piece as it arrives."""
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _transport_error(exc) from exc

    def release(self) -> None:
        """Return the connection to the pool (or drop it if the body was not read to the end)."""
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()


class Forwarder:
    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int = 256,
        ca_file: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ca_file = ca_file
        self.ca_fingerprint = ""
        """Of the CA file read by open() ("" without one): a reload compares it."""
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open the connection pool; with a CA file, read it (OSError or ValueError when it no
        longer loads: config validation read it before)."""
        tls: ssl.SSLContext | bool = True  # aiohttp's default: the system's CAs
        if self.ca_file is not None:
            text, self.ca_fingerprint = upstreamtls.read_bundle(self.ca_file)
            tls = upstreamtls.client_context(text)
        connector = aiohttp.TCPConnector(
            ssl=tls,
            limit=self._max_connections,
            limit_per_host=0,
            ttl_dns_cache=300,
            enable_cleanup_closed=False,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        # aiohttp re-sends an idempotent request by itself when a reused connection drops;
        # re-sending is the retry policy's decision (another key, counted as an attempt), so
        # turn that off, as aiohttp's own test client does.
        self._session._retry_connection = False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        read_timeout: float | None = None,
    ) -> UpstreamResponse:
        """Send `method base_url+target`; `target` is the raw path and query, already encoded.
        `read_timeout` overrides the session's wait for an answer (a request near its deadline)."""
        assert self._session is not None, "Forwarder.open() was not called"
        url = URL(self.base_url + target, encoded=True)
        try:
            resp = await self._session.request(
                method,
                url,
                headers=CIMultiDict(headers),
                data=_payload(body, method),
                allow_redirects=False,
                compress=None,
                timeout=self._timeout
                if read_timeout is None
                else aiohttp.ClientTimeout(
                    total=None,
                    connect=None,
                    sock_connect=self._timeout.sock_connect,
                    sock_read=read_timeout,
                ),
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _transport_error(exc) from exc
        return UpstreamResponse(resp)


def _payload(body: bytes, method: str) -> bytes | io.BytesIO | None:
    """The body as aiohttp should send it: large ones as a stream, so writes are paced."""
    if not body:
        return None if method in ("GET", "HEAD") else body
    return io.BytesIO(body) if len(body) > CHUNK * 16 else body


def _transport_error(exc: BaseException) -> TransportError:
    """Map aiohttp's errors onto ours; the message names the failure, never a header."""
    if isinstance(exc, (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError)):
        return ConnectError(f"cannot connect to upstream: {type(exc).__name__}")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return ReadTimeout("upstream did not answer in time")
    return TransportError(f"upstream connection failed: {type(exc).__name__}")
