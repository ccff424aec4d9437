"""What the sync and async clients share: settings, request building, retry decisions.

The twins in `_client.py` and `_async_client.py` only do the I/O (send, read, sleep, close);
everything that decides something lives here.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from poolswitch_client._errors import (
    PoolSwitchError,
    ProxyError,
    error_from_response,
    translate,
)
from poolswitch_client._response import ProxyResponse
from poolswitch_client._types import HeaderTypes, QueryParamTypes, RequestContent
from poolswitch_client._version import __version__

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 8.0
USER_AGENT = f"poolswitch-client-python/{__version__}"
TOKEN_HEADER = "x-poolswitch-token"
TOKEN_ENV = "POOLSWITCH_TOKEN"
SHOULD_RETRY_HEADER = "x-should-retry"
# The proxy's answers worth asking again after their `retry_after` (nothing went upstream).
RETRIED_CODES = frozenset({"no_available_keys", "overloaded", "upstream_unavailable"})
# The longest the client ever waits on its own before a retry; a longer `retry_after` is raised.
MAX_RETRY_WAIT = 60.0


class _Secret:
    """A string that never shows in a repr or a traceback's locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}('**********')"


class BaseClient:
    """Settings and request building for `PoolSwitchClient` and `AsyncPoolSwitchClient`.

    `token` (default: the `POOLSWITCH_TOKEN` environment variable) goes out as
    `x-poolswitch-token` on every request; it never shows in a repr or a message.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float | None,
        headers: HeaderTypes | None,
        max_retries: int,
    ) -> None:
        self._base_url = _check_base_url(base_url)
        self._token = _caller_token(token)
        self._timeout = _check_timeout(timeout, "timeout")
        self._headers = httpx.Headers(headers)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self._max_retries = max_retries

    @property
    def base_url(self) -> str:
        """The proxy's URL, e.g. `http://127.0.0.1:8080` (credentials in it are masked)."""
        return _masked(self._base_url)

    @property
    def timeout(self) -> float | None:
        """Seconds for each call (connect, and each read); None waits forever."""
        return self._timeout

    @property
    def max_retries(self) -> int:
        return self._max_retries

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _build_request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        *,
        json: Any,
        params: QueryParamTypes | None,
        headers: HeaderTypes | None,
        content: RequestContent | None,
        timeout: float | None,
    ) -> httpx.Request:
        if json is not None and content is not None:
            raise TypeError("pass json or content, not both")
        return http.build_request(
            method.upper(),
            self._url(path),
            json=json,
            params=params,
            headers=self._merge_headers(headers),
            content=content,
            timeout=httpx.Timeout(timeout),
        )

    def _timeout_for(self, timeout: float | None) -> float | None:
        """A call's timeout: its own, else the client's."""
        return self._timeout if timeout is None else _check_timeout(timeout, "timeout")

    def _retry_policy(self, timeout: float | None) -> RetryPolicy:
        return RetryPolicy(self._max_retries, timeout)

    def _url(self, path: str) -> str:
        if "://" in path.partition("?")[0]:
            raise ValueError(f"path must be relative to the proxy, got {path!r}")
        return self._base_url + (path if path.startswith("/") else "/" + path)

    def _merge_headers(self, headers: HeaderTypes | None) -> httpx.Headers:
        merged = httpx.Headers(self._headers)
        if self._token is not None:
            merged[TOKEN_HEADER] = self._token.reveal()
        if headers:
            merged.update(headers)
        return merged


class RetryPolicy:
    """The retry decisions for one call, made after each failed exchange with the proxy.

    Retried: a connection the proxy refused (nothing was sent; backoff 0.5 s, 1 s, 2 s, ...),
    and the proxy's `no_available_keys`, `overloaded` and `upstream_unavailable` answers unless
    they say `x-should-retry: false`, when their `retry_after` is known, at most
    `MAX_RETRY_WAIT` (60 s) and fits in the call's timeout. Never an upstream error, a timeout
    or a connection that broke after the request went out. Each method returns the seconds to
    wait before the next try, or raises the call's error.
    """

    def __init__(
        self,
        max_retries: int,
        timeout: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._left = max_retries
        self._retries = 0
        self._deadline = None if timeout is None else clock() + timeout

    @property
    def retries(self) -> int:
        return self._retries

    def after_failure(self, exc: httpx.HTTPError) -> float:
        """The exchange raised `exc`: how long to wait, or raise it as our error."""
        error = translate(exc)
        if isinstance(exc, httpx.ConnectError):
            delay = min(BACKOFF_INITIAL * 2.0**self._retries, BACKOFF_MAX)
            if self._take(delay):
                return delay
        raise error from exc

    def after_error(self, response: ProxyResponse) -> float:
        """The proxy answered non-2xx (body read): how long to wait, or raise the error."""
        error = error_from_response(response)
        if (
            isinstance(error, ProxyError)
            and error.code in RETRIED_CODES
            and response.headers.get(SHOULD_RETRY_HEADER, "").strip().lower() != "false"
            and error.retry_after is not None
            and error.retry_after <= MAX_RETRY_WAIT
            and self._take(error.retry_after)
        ):
            return error.retry_after
        raise error

    def _take(self, delay: float) -> bool:
        if self._left <= 0:
            return False
        if self._deadline is not None and self._clock() + delay >= self._deadline:
            return False
        self._left -= 1
        self._retries += 1
        return True


def expect_object(response: ProxyResponse, path: str) -> dict[str, Any]:
    """The JSON object a built-in endpoint answers."""
    try:
        value = response.json()
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise PoolSwitchError(f"GET {path}: expected a JSON object from the proxy")
    return value


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {_masked(base_url)!r}")
    if url.query or url.fragment:
        raise ValueError("base_url must not have a query string or a fragment")
    return str(url).rstrip("/")


def _caller_token(token: str | None) -> _Secret | None:
    """The caller token: `token`, else `$POOLSWITCH_TOKEN` (unset or empty: none)."""
    if token is not None:
        return _Secret(_check_token(token))
    from_env = os.environ.get(TOKEN_ENV)
    if not from_env:
        return None
    try:
        return _Secret(_check_token(from_env))
    except ValueError as exc:
        raise ValueError(f"{TOKEN_ENV}: {exc}") from None


def _check_token(token: str) -> str:
    if not isinstance(token, str) or not token or token != token.strip():
        raise ValueError("token must be a non-empty string without surrounding whitespace")
    if any(c in token for c in "\r\n"):
        raise ValueError("token must not contain line breaks")
    return token


def _check_timeout(timeout: float | None, name: str) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, got {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"{name} must be > 0 seconds, got {timeout!r}")
    return float(timeout)


def _masked(url: str) -> str:
    """`url` with any user info replaced, for reprs and messages."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "[secure]@" + netloc.rpartition("@")[2]
    return scheme + sep + netloc + slash + path
