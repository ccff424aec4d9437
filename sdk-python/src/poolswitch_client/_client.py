"""`PoolSwitchClient`: the synchronous client (its async twin is `_async_client.py`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from random import Random
from types import TracebackType
from typing import Any, cast

import httpx

from poolswitch_client._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    BaseClient,
    expect_object,
)
from poolswitch_client._deadline import bound_body, stream_opened
from poolswitch_client._errors import translate_errors
from poolswitch_client._response import ProxyResponse, body_value
from poolswitch_client._status import HealthDocument, StatusDocument
from poolswitch_client._stream import ProxyStream
from poolswitch_client._types import (
    USE_CLIENT_DEFAULT,
    HeaderTypes,
    QueryParamTypes,
    RequestContent,
    UseClientDefault,
)


class PoolSwitchClient(BaseClient):
    """Calls through a PoolSwitch proxy.

    `get()`, `post()`, ... return the parsed JSON body (text for text bodies, bytes for binary
    ones); `send()` returns the whole `ProxyResponse`; `stream()` yields the answer as it
    arrives. A non-2xx answer raises `ProxyError` (made by the proxy) or `UpstreamError`
    (relayed from the upstream). `timeout` is one deadline for the whole call, retries
    included (`_retry.py` says what is retried and how long the client waits).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        pool: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        headers: HeaderTypes | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        random: Random | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            base_url,
            token=token,
            pool=pool,
            timeout=timeout,
            headers=headers,
            max_retries=max_retries,
            random=random,
        )
        if http_client is not None and not isinstance(http_client, httpx.Client):
            raise TypeError("http_client must be an httpx.Client")
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(headers={"user-agent": USER_AGENT})
        self._sleep: Callable[[float], None] = time.sleep  # tests swap it

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
        pool: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
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
            pool=pool,
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
        pool: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self.request(
            "GET",
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
            pool=pool,
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
        pool: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self.request(
            "POST",
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
            pool=pool,
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
        pool: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self.request(
            "PUT",
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
            pool=pool,
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
        pool: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self.request(
            "PATCH",
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
            pool=pool,
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
        pool: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Any:
        return self.request(
            "DELETE",
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
            pool=pool,
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
        pool: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> ProxyResponse:
        """Send a request; return the whole 2xx answer (status, headers, key id, attempts,
        body). A non-2xx answer raises `ProxyError` or `UpstreamError`, which carry it."""
        request = self._build_request(
            self._http,
            method,
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            pool=self._pool_for(pool),
        )
        return ProxyResponse(self._send(request, self._timeout_for(timeout), stream=False))

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
        pool: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Iterator[ProxyStream]:
        """Send a request; yield the answer once its headers are in, to read as it arrives.

        Iterate the stream for server-sent events, or use `iter_bytes()`. `timeout` is the
        deadline for the answer's head (retries included), then the longest silence between
        two pieces of the stream, not a bound on the whole stream.
        """
        request = self._build_request(
            self._http,
            method,
            path,
            json=json,
            params=params,
            headers=headers,
            content=content,
            pool=self._pool_for(pool),
        )
        response = self._send(request, self._timeout_for(timeout), stream=True)
        try:
            yield ProxyStream(response)
        finally:
            response.close()

    def health(self) -> HealthDocument:
        """`GET /health`: `{"status": "ok" | "degraded", "keys_available", "keys_total",
        "pools"}`."""
        return cast(HealthDocument, expect_object(self._builtin("/health"), "/health"))

    def status(self) -> StatusDocument:
        """`GET /status`: storage, every pool with its keys' state, every caller (ids only)."""
        return cast(StatusDocument, expect_object(self._builtin("/status"), "/status"))

    def metrics(self) -> str:
        """`GET /metrics`: the Prometheus text."""
        return self._builtin("/metrics").text

    def close(self) -> None:
        """Close the connections (an `http_client` you passed in stays open: it is yours)."""
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

    def _builtin(self, path: str) -> ProxyResponse:
        """A GET of one of the proxy's own endpoints: never with a pool header."""
        request = self._build_request(self._http, "GET", path, **self._NO_BODY)
        return ProxyResponse(self._send(request, self._timeout, stream=False))

    def _send(
        self, request: httpx.Request, timeout: float | None, *, stream: bool
    ) -> httpx.Response:
        """One call: the exchange, retried as `RetryPolicy` decides, all within the call's
        deadline; a 2xx answer (its body read unless `stream`) or an error."""
        deadline, policy = self._plan(timeout)
        while True:
            request.extensions["timeout"] = deadline.timeout().as_dict()
            try:
                response = self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                self._sleep(policy.after_failure(exc))
                continue
            if stream and response.is_success:
                stream_opened(response, timeout)
                return response
            try:
                bound_body(response, deadline)
                with translate_errors():
                    response.read()
            finally:
                response.close()
            if response.is_success:
                return response
            self._sleep(policy.after_error(ProxyResponse(response)))
