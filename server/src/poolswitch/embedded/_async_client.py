"""`AsyncPoolSwitchClient`: the embedded client, asyncio (its sync twin is `_client.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from poolswitch.embedded._base import USER_AGENT, BaseEmbeddedClient
from poolswitch.embedded._effects import (
    Close,
    Effect,
    Loop,
    Next,
    Reader,
    Send,
    Sleep,
    Verify,
    transport_error,
)
from poolswitch.embedded._loop import Result
from poolswitch.embedded._options import DEFAULT
from poolswitch.embedded._streams import close_async
from poolswitch.verify import VERIFY_TIMEOUT
from poolswitch_client import AsyncProxyStream, HealthDocument, ProxyResponse, StatusDocument
from poolswitch_client._errors import translate_errors
from poolswitch_client._response import body_value
from poolswitch_client._types import (
    USE_CLIENT_DEFAULT,
    HeaderTypes,
    QueryParamTypes,
    RequestContent,
    UseClientDefault,
)


class AsyncPoolSwitchClient(BaseEmbeddedClient):
    """The key pool inside the app, with asyncio: the twin of `PoolSwitchClient`.

    The same methods, answers and errors as `poolswitch_client.AsyncPoolSwitchClient` (the
    proxy client): `get()`, `post()`, ... return the parsed body, `send()` the whole
    `ProxyResponse` (with `x-poolswitch-key-id` and `x-poolswitch-attempts`), `stream()` the
    answer as it arrives; a relayed upstream error raises `UpstreamError` (key values
    redacted from its body), an answer the pool makes itself `ProxyError` (`no_available_keys`,
    `upstream_unreachable`, `upstream_timeout`, ...), with the response a proxy would send.
    `status()` and `health()` return the proxy's documents for this one pool.

    The options are one pool's settings as in a config file (`poolswitch.example.yaml`),
    validated by the server's schema: a bad one raises `poolswitch.errors.ConfigError` naming
    it. `keys`: strings (ids `key-1`, `key-2`, ...) or `{"id", "value", "weight"?}` mappings.
    Tests may inject `transport` or `http_client`, `clock` (Unix seconds; it then drives the
    deadlines too), `rng` and `sleep`. Use it from one event loop.
    """

    def __init__(
        self,
        *,
        upstream_base_url: str,
        keys: Sequence[str | Mapping[str, Any]],
        strategy: str = DEFAULT,
        retry_attempts: int = DEFAULT,
        cooldown_seconds: float = DEFAULT,
        request_timeout_seconds: float = DEFAULT,
        attempt_timeout_seconds: float | None = DEFAULT,
        queue_timeout_seconds: float = DEFAULT,
        connect_timeout_seconds: float = DEFAULT,
        retry_non_idempotent: bool = DEFAULT,
        auth_header_name: str = DEFAULT,
        auth_scheme: str | None = DEFAULT,
        auth_query_param: str | None = DEFAULT,
        provider: str = DEFAULT,
        on_status: Sequence[Mapping[str, Any]] = DEFAULT,
        verify_path: str | None = DEFAULT,
        headers: HeaderTypes | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        options = {
            "upstream_base_url": upstream_base_url,
            "keys": keys,
            "strategy": strategy,
            "retry_attempts": retry_attempts,
            "cooldown_seconds": cooldown_seconds,
            "request_timeout_seconds": request_timeout_seconds,
            "attempt_timeout_seconds": attempt_timeout_seconds,
            "queue_timeout_seconds": queue_timeout_seconds,
            "connect_timeout_seconds": connect_timeout_seconds,
            "retry_non_idempotent": retry_non_idempotent,
            "auth_header_name": auth_header_name,
            "auth_scheme": auth_scheme,
            "auth_query_param": auth_query_param,
            "provider": provider,
            "on_status": on_status,
            "verify_path": verify_path,
        }
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise TypeError("http_client must be an httpx.AsyncClient")
        if http_client is not None and transport is not None:
            raise TypeError("pass transport or http_client, not both")
        super().__init__(options, headers=headers, clock=clock, rng=rng, sync=False)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            transport=transport, headers={"user-agent": USER_AGENT}
        )
        self._sleep = sleep

    # -- calls -----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
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
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
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
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
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
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
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
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
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
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
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
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> ProxyResponse:
        """Send a request; return the whole 2xx answer (status, headers, key id, attempts,
        body). A non-2xx answer raises `ProxyError` or `UpstreamError`, which carry it."""
        call = self._call(
            self._http,
            method,
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )
        result: Result = await self._drive(self._lane.run(call))
        response = result.response
        try:
            with translate_errors():
                await response.aread()
        finally:
            await response.aclose()
        return ProxyResponse(response)

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
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[AsyncProxyStream]:
        """Send a request; yield the answer once its head is in (and, for an event stream,
        its first event, held back to fail over if it is an error), to read as it arrives:
        `async for` it for server-sent events, or use `aiter_bytes()`."""
        call = self._call(
            self._http,
            method,
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )
        result: Result = await self._drive(self._lane.run(call))
        try:
            yield AsyncProxyStream(result.response)
        finally:
            await result.response.aclose()

    async def status(self) -> StatusDocument:
        """The proxy's `GET /status` document for this one pool: every key's state (ids only)."""
        return self._status()

    async def health(self) -> HealthDocument:
        """The proxy's `GET /health` document for this one pool."""
        return self._health()

    async def close(self) -> None:
        """Close the connections (an `http_client` you passed in stays open: it is yours)."""
        self._unmask()
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

    # -- carrying out the loop -------------------------------------------------------------

    async def _drive(self, loop: Loop) -> Any:
        """Run `loop` to its end, carrying out each effect; every answer it opened and did not
        hand over (in a `Result`) is closed, whatever happens."""
        opened: list[Reader] = []
        result: Any = None
        try:
            value: Any = None
            error: Exception | None = None
            while True:
                try:
                    effect = loop.send(value) if error is None else loop.throw(error)
                except StopIteration as stop:
                    result = stop.value
                    return result
                value, error = None, None
                try:
                    value = await self._perform(effect, opened)
                except httpx.HTTPError as exc:
                    error = transport_error(exc)
        finally:
            loop.close()
            kept = result.upstream if isinstance(result, Result) else None
            for reader in opened:
                if reader.response is not kept:
                    await close_async(reader)

    async def _perform(self, effect: Effect, opened: list[Reader]) -> Any:
        if isinstance(effect, Next):
            return await anext(effect.reader.pieces, None)
        if isinstance(effect, Send):
            response = await self._http.send(
                effect.request, stream=True, auth=None, follow_redirects=False
            )
            reader = Reader(response, response.aiter_raw())
            opened.append(reader)
            return reader
        if isinstance(effect, Close):
            await close_async(effect.reader)
            return None
        if isinstance(effect, Sleep):
            await self._sleep(effect.seconds)
            return None
        return await self._verify(effect)

    async def _verify(self, effect: Verify) -> str:
        """The key's verification: cached, the one in flight, or run now (verify.py's
        Verifier, as the proxy runs it)."""

        async def once() -> str:
            result: str = await asyncio.wait_for(self._drive(effect.run), VERIFY_TIMEOUT)
            return result

        try:
            return await self._lane.verifier.verify(effect.key, once)
        finally:
            effect.run.close()
