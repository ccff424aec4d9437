"""The upstream HTTP exchange of a pool: its client (upstreamhttp.py) and how it is opened.

One client per pool with a connection pool sized for the concurrency, no decompression (bodies
pass through as the upstream encoded them), no headers of its own beyond Host and
Content-Length, and the request target sent as given (no re-quoting). The request loop
(proxy.py) sees it through the `Upstream` and `Response` protocols below, which its tests fake.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Protocol
from urllib.parse import urlsplit

from poolswitch import upstreamtls
from poolswitch.upstreamanswer import Answer
from poolswitch.upstreamhttp import Client


class Response(Protocol):
    """What the request loop needs of an upstream answer (upstreamhttp.Answer; fakes in tests)."""

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


class Forwarder:
    """A pool's upstream client: `open()` before the first `send()`, `close()` at the end."""

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
        self._prefix = urlsplit(self.base_url).path  # sent before every target
        self.ca_file = ca_file
        self.ca_fingerprint = ""
        """Of the CA file read by open() ("" without one): a reload compares it."""
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._client: Client | None = None

    async def open(self) -> None:
        """Open the connection pool; with a CA file, read it (OSError or ValueError when it no
        longer loads: config validation read it before)."""
        tls: ssl.SSLContext | None = None  # the system's CAs
        if self.ca_file is not None:
            text, self.ca_fingerprint = upstreamtls.read_bundle(self.ca_file)
            tls = upstreamtls.client_context(text)
        self._client = Client(
            self.base_url,
            connect_timeout=self._connect_timeout,
            limit=self._max_connections,
            tls=tls,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def send(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        read_timeout: float | None = None,
    ) -> Answer:
        """Send `method base_url+target`; `target` is the raw path and query, already encoded
        (a base URL's own path comes first). `read_timeout` overrides the wait for the answer's
        next bytes (a request near its deadline)."""
        assert self._client is not None, "Forwarder.open() was not called"
        return await self._client.request(
            method,
            self._prefix + target,
            headers,
            body,
            self._read_timeout if read_timeout is None else read_timeout,
        )
