"""`AsyncPoolSwitchClient`: the asyncio client (its sync twin is `_client.py`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

from poolswitch_client._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    BaseClient,
    expect_object,
)
from poolswitch_client._errors import translate
from poolswitch_client._response import ProxyResponse, body_value
from poolswitch_client._stream import AsyncProxyStream
from poolswitch_client._types import HeaderTypes, QueryParamTypes, RequestContent


class AsyncPoolSwitchClient(BaseClient):
    """Calls through a PoolSwitch proxy, with asyncio: the twin of `PoolSwitchClient`.

    `await post()` and the other verbs return the parsed JSON body (text for text bodies, bytes
    for binary ones); `await send()` returns the whole `ProxyResponse`; `async with stream()`
    yields the answer as it arrives. A non-2xx answer raises `ProxyError` (made by the proxy)
    or `UpstreamError` (relayed from the upstream).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        headers: HeaderTypes | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url, token=token, timeout=timeout, headers=headers, max_retries=max_retries
        )
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise TypeError("http_client must be an httpx.AsyncClient")
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(headers={"user-agent": USER_AGENT})

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a request; return the body: JSON parsed, text as str, binary as bytes."""
        response = await self.send(
            method,
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )
        return body_value(response)

    async def get(
        self,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | None = None,
    ) -> Any:
        return await self.request(
            "GET", path, json=json, params=params, headers=headers, content=content, timeout=timeout
        )

    async def post(
        self,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | None = None,
    ) -> Any:
        return await self.request(
            "POST",
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )

    async def put(
        self,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | None = None,
    ) -> Any:
        return await self.request(
            "PUT", path, json=json, params=params, headers=headers, content=content, timeout=timeout
        )

    async def patch(
        self,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | None = None,
    ) -> Any:
        return await self.request(
            "PATCH",
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )

    async def delete(
        self,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | None = None,
    ) -> Any:
        return await self.request(
            "DELETE",
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )

    async def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | None = None,
    ) -> ProxyResponse:
        """Send a request; return the whole answer (status, headers, key id, attempts, body)."""
        timeout = self._timeout_for(timeout)
        request = self._build_request(
            self._http,
            method,
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )
        return ProxyResponse(await self._send(request, timeout, stream=False))

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[AsyncProxyStream]:
        """Send a request; yield the answer once its headers are in, to read as it arrives.

        `async for` the stream for server-sent events, or use `aiter_bytes()`. `timeout` bounds
        the wait for the headers and for each next piece, not the whole stream.
        """
        timeout = self._timeout_for(timeout)
        request = self._build_request(
            self._http,
            method,
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )
        response = await self._send(request, timeout, stream=True)
        try:
            yield AsyncProxyStream(response)
        finally:
            await response.aclose()

    async def health(self) -> dict[str, Any]:
        """`GET /health`: `{"status": "ok" | "degraded", "keys_available", "keys_total"}`."""
        return expect_object(await self.send("GET", "/health"), "/health")

    async def status(self) -> dict[str, Any]:
        """`GET /status`: strategy, storage, upstream and every key's state (ids only)."""
        return expect_object(await self.send("GET", "/status"), "/status")

    async def metrics(self) -> str:
        """`GET /metrics`: the Prometheus text."""
        return (await self.send("GET", "/metrics")).text

    async def close(self) -> None:
        """Close the connections (an `http_client` you passed in stays open: it is yours)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncPoolSwitchClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _send(
        self, request: httpx.Request, timeout: float | None, *, stream: bool
    ) -> httpx.Response:
        """One call: the exchange, retried as `RetryPolicy` decides; a 2xx answer or an error."""
        policy = self._retry_policy(timeout)
        while True:
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.HTTPError as exc:
                await asyncio.sleep(policy.after_failure(exc))
                continue
            if response.is_success:
                return response
            try:
                await response.aread()
            except httpx.HTTPError as exc:
                raise translate(exc) from exc
            finally:
                await response.aclose()
            await asyncio.sleep(policy.after_error(ProxyResponse(response)))
