"""`PoolSwitchClient`: the embedded client, synchronous (its async twin is `_async_client.py`)."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from poolswitch.embedded._flights import Flights
from poolswitch.embedded._loop import Result
from poolswitch.embedded._options import DEFAULT
from poolswitch.embedded._streams import close_sync
from poolswitch.verify import UNKNOWN
from poolswitch_client import HealthDocument, ProxyResponse, ProxyStream, StatusDocument
from poolswitch_client._errors import translate_errors
from poolswitch_client._response import body_value
from poolswitch_client._types import (
    USE_CLIENT_DEFAULT,
    HeaderTypes,
    QueryParamTypes,
    RequestContent,
    UseClientDefault,
)


class PoolSwitchClient(BaseEmbeddedClient):
    """The key pool inside the app: calls the upstream directly, with the proxy's rules.

    The same methods, answers and errors as `poolswitch_client.PoolSwitchClient` (the proxy
    client): `get()`, `post()`, ... return the parsed body, `send()` the whole
    `ProxyResponse` (with `x-poolswitch-key-id` and `x-poolswitch-attempts`), `stream()` the
    answer as it arrives; a relayed upstream error raises `UpstreamError` (key values
    redacted from its body), an answer the pool makes itself `ProxyError` (`no_available_keys`,
    `upstream_unreachable`, `upstream_timeout`, ...), with the response a proxy would send.
    `status()` and `health()` return the proxy's documents for this one pool.

    The options are one pool's settings as in a config file (`poolswitch.example.yaml`),
    validated by the server's schema: a bad one raises `poolswitch.errors.ConfigError` naming
    it. `keys`: strings (ids `key-1`, `key-2`, ...) or `{"id", "value", "weight"?}` mappings.
    Tests may inject `transport` or `http_client`, `clock` (Unix seconds; it then drives the
    deadlines too), `rng` and `sleep`. Safe to share between threads.
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
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
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
        if http_client is not None and not isinstance(http_client, httpx.Client):
            raise TypeError("http_client must be an httpx.Client")
        if http_client is not None and transport is not None:
            raise TypeError("pass transport or http_client, not both")
        super().__init__(options, headers=headers, clock=clock, rng=rng, sync=True)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            transport=transport, headers={"user-agent": USER_AGENT}
        )
        self._sleep = sleep
        self._flights = Flights()

    # -- calls -----------------------------------------------------------------------------

    def request(
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
        response = self.send(
            method,
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )
        return body_value(response)

    def get(
        self,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self.request(
            "GET", path, json=json, params=params, headers=headers, content=content, timeout=timeout
        )

    def post(
        self,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self.request(
            "POST",
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )

    def put(
        self,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self.request(
            "PUT", path, json=json, params=params, headers=headers, content=content, timeout=timeout
        )

    def patch(
        self,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self.request(
            "PATCH",
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )

    def delete(
        self,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self.request(
            "DELETE",
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )

    def send(
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
        result: Result = self._drive(self._lane.run(call))
        response = result.response
        try:
            with translate_errors():
                response.read()
        finally:
            response.close()
        return ProxyResponse(response)

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Iterator[ProxyStream]:
        """Send a request; yield the answer once its head is in (and, for an event stream,
        its first event, held back to fail over if it is an error), to read as it arrives:
        iterate it for server-sent events, or use `iter_bytes()`."""
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
        result: Result = self._drive(self._lane.run(call))
        try:
            yield ProxyStream(result.response)
        finally:
            result.response.close()

    def status(self) -> StatusDocument:
        """The proxy's `GET /status` document for this one pool: every key's state (ids only)."""
        return self._status()

    def health(self) -> HealthDocument:
        """The proxy's `GET /health` document for this one pool."""
        return self._health()

    def close(self) -> None:
        """Close the connections (an `http_client` you passed in stays open: it is yours)."""
        self._unmask()
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> PoolSwitchClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- carrying out the loop -------------------------------------------------------------

    def _drive(self, loop: Loop) -> Any:
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
                    value = self._perform(effect, opened)
                except httpx.HTTPError as exc:
                    error = transport_error(exc)
        finally:
            loop.close()
            kept = result.upstream if isinstance(result, Result) else None
            for reader in opened:
                if reader.response is not kept:
                    close_sync(reader)

    def _perform(self, effect: Effect, opened: list[Reader]) -> Any:
        if isinstance(effect, Next):
            return next(effect.reader.pieces, None)
        if isinstance(effect, Send):
            response = self._http.send(
                effect.request, stream=True, auth=None, follow_redirects=False
            )
            reader = Reader(response, response.iter_raw())
            opened.append(reader)
            return reader
        if isinstance(effect, Close):
            close_sync(effect.reader)
            return None
        if isinstance(effect, Sleep):
            self._sleep(effect.seconds)
            return None
        return self._verify(effect)

    def _verify(self, effect: Verify) -> str:
        """The key's verification: cached, the one another thread runs (waited for), or run
        now (verify.py's rule and memory; only the single flight is the thread's own)."""
        lane, key = self._lane, effect.key
        with lane.lock:
            found = lane.verifier.known(key)
        if found is not None:
            effect.run.close()
            return found

        def once() -> str:
            result = UNKNOWN
            try:
                result = self._drive(effect.run)
            finally:
                with lane.lock:
                    lane.verifier.remember(key, result)
            return str(result)

        return self._flights.run(key, once, effect.run.close)
