"""What the sync and async clients share: settings and request building.

The twins in `_client.py` and `_async_client.py` only do the I/O (send, read, sleep, close);
everything that decides something lives here and in `_retry.py`.
"""

from __future__ import annotations

import math
import os
import time
from random import Random
from typing import Any, ClassVar

import httpx

from poolswitch_client._deadline import Clock, Deadline
from poolswitch_client._errors import PoolSwitchError
from poolswitch_client._response import ProxyResponse
from poolswitch_client._retry import RetryPolicy
from poolswitch_client._types import (
    HeaderTypes,
    QueryParamTypes,
    RequestContent,
    UseClientDefault,
)
from poolswitch_client._version import __version__

DEFAULT_TIMEOUT = 600.0
DEFAULT_MAX_RETRIES = 2
USER_AGENT = f"poolswitch-client-python/{__version__}"
TOKEN_HEADER = "x-poolswitch-token"
TOKEN_ENV = "POOLSWITCH_TOKEN"
POOL_HEADER = "x-poolswitch-pool"


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
    `x-poolswitch-token` on every request; it never shows in a repr or a message. `pool` goes
    out as `x-poolswitch-pool` on every proxied request (not to `/health`, `/status`,
    `/metrics`). `random` draws the retry waits' jitter (a seeded one makes them repeatable).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        pool: str | None,
        timeout: float | None,
        headers: HeaderTypes | None,
        max_retries: int,
        random: Random | None,
    ) -> None:
        self._base_url = _check_base_url(base_url)
        self._token = _caller_token(token)
        self._pool = _check_pool(pool)
        self._timeout = _check_timeout(timeout, "timeout")
        self._headers = httpx.Headers(headers)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self._max_retries = max_retries
        if random is not None and not isinstance(random, Random):
            raise TypeError("random must be a random.Random")
        self._random = random
        self._clock: Clock = time.monotonic  # tests swap it (and the twins' `_sleep`)

    @property
    def base_url(self) -> str:
        """The proxy's URL, e.g. `http://127.0.0.1:8080` (credentials in it are masked)."""
        return _masked(self._base_url)

    @property
    def timeout(self) -> float | None:
        """Seconds for each whole call, retries included; None: no deadline."""
        return self._timeout

    @property
    def pool(self) -> str | None:
        """The pool named in `x-poolswitch-pool` on every proxied request, or None."""
        return self._pool

    @property
    def max_retries(self) -> int:
        return self._max_retries

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    _NO_BODY: ClassVar[dict[str, Any]] = {
        "json": None,
        "params": None,
        "headers": None,
        "content": None,
        "pool": None,
    }

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
        pool: str | None,
    ) -> httpx.Request:
        """The request of a call; each attempt gets its own timeout (`Deadline.timeout()`)."""
        if json is not None and content is not None:
            raise TypeError("pass json or content, not both")
        return http.build_request(
            method.upper(),
            self._url(path),
            json=json,
            params=params,
            headers=self._merge_headers(headers, pool),
            content=content,
        )

    def _timeout_for(self, timeout: float | UseClientDefault | None) -> float | None:
        """A call's timeout: its own (None: no deadline), else the client's."""
        if isinstance(timeout, UseClientDefault):
            return self._timeout
        return _check_timeout(timeout, "timeout")

    def _pool_for(self, pool: str | UseClientDefault | None) -> str | None:
        """A call's pool: its own (None: no pool header), else the client's."""
        return self._pool if isinstance(pool, UseClientDefault) else _check_pool(pool)

    def _plan(self, timeout: float | None) -> tuple[Deadline, RetryPolicy]:
        """The deadline and the retry policy of one call."""
        deadline = Deadline(timeout, self._clock)
        return deadline, RetryPolicy(self._max_retries, deadline, self._random)

    def _url(self, path: str) -> str:
        if "://" in path.partition("?")[0]:
            raise ValueError(f"path must be relative to the proxy, got {path!r}")
        return self._base_url + (path if path.startswith("/") else "/" + path)

    def _merge_headers(self, headers: HeaderTypes | None, pool: str | None) -> httpx.Headers:
        """The client's headers, the token, the pool, then the call's own (which win)."""
        merged = httpx.Headers(self._headers)
        if self._token is not None:
            merged[TOKEN_HEADER] = self._token.reveal()
        if pool is not None:
            merged[POOL_HEADER] = pool
        if headers:
            merged.update(headers)
        return merged


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


def _check_pool(pool: str | None) -> str | None:
    if pool is None:
        return None
    if not isinstance(pool, str):
        raise TypeError(f"pool must be a str or None, got {type(pool).__name__}")
    if not pool or pool != pool.strip() or not pool.isprintable() or not pool.isascii():
        raise ValueError(
            f"pool must be a pool name (printable ASCII, no spaces around), got {pool!r}"
        )
    return pool


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
