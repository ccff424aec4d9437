"""Every exception the SDK raises, in one tree, and the two places they are made.

    PoolSwitchError             base of every error below
     ├── ProxyError             an answer the proxy made itself (it has `x-poolswitch-error`):
     │                          `code`, `status`, `message`, `retry_after`
     ├── UpstreamError          a non-2xx answer of the upstream, relayed by the proxy:
     │                          `status`, `body`, `json`, `key_id`, `attempts`
     ├── ProxyConnectionError   the proxy could not be reached, or the connection broke
     └── ProxyTimeoutError      the call's deadline (`timeout`) passed, or a stream was silent
                                longer than `timeout`

`error_from_response()` maps an answer to `ProxyError` or `UpstreamError` by the presence of
`x-poolswitch-error` alone, so an upstream 503 is never taken for a proxy 503.
`translate_errors()` maps httpx's transport exceptions. No message contains the caller's token
or a key value: keys are named by id.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx

from poolswitch_client._response import (
    ERROR_HEADER,
    REQUEST_ID_HEADER,
    ProxyResponse,
    is_json_type,
    media_type,
)

_DETAIL_LIMIT = 200


class PoolSwitchError(Exception):
    """Base of every exception raised by poolswitch_client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProxyError(PoolSwitchError):
    """An answer the proxy made itself, e.g. `429 no_available_keys` (docs/protocol.md)."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        retry_after: float | None = None,
        response: ProxyResponse | None = None,
        request_id: str | None = None,
    ) -> None:
        hint = "" if retry_after is None else f", retry after {retry_after:.10g}s"
        super().__init__(f"{message} ({code}, HTTP {status}{hint})")
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after
        self.response = response
        self.request_id = request_id
        """The proxy's id of the request (`x-poolswitch-request-id`): find its log line by it."""


class UpstreamError(PoolSwitchError):
    """A non-2xx answer from the upstream, relayed by the proxy as it was."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: str,
        json: Any = None,
        key_id: str | None = None,
        attempts: int | None = None,
        response: ProxyResponse | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.json = json
        self.key_id = key_id
        self.attempts = attempts
        self.response = response
        self.request_id = request_id
        """The proxy's id of the request (`x-poolswitch-request-id`): find its log line by it."""


class ProxyConnectionError(PoolSwitchError):
    """The proxy could not be reached, or the connection to it broke mid-answer."""


class ProxyTimeoutError(PoolSwitchError):
    """The call's deadline passed before its answer was in (or a stream was silent longer than
    `timeout`). Never retried."""


def error_from_response(response: ProxyResponse, *, now: float | None = None) -> PoolSwitchError:
    """The error for a non-2xx answer whose body has been read."""
    parsed = _json_or_none(response)
    code = response.headers.get(ERROR_HEADER)
    if code is not None:
        envelope = _envelope(parsed)
        message = envelope.get("message")
        if not isinstance(message, str) or not message:
            message = response.reason_phrase or code
        return ProxyError(
            message,
            code=code,
            status=response.status,
            retry_after=_retry_after(envelope, response.headers, now),
            response=response,
            request_id=response.headers.get(REQUEST_ID_HEADER),
        )
    key = f"key {response.key_id}" if response.key_id is not None else "no key id"
    tries = "" if response.attempts is None else f", {response.attempts} attempt(s)"
    message = f"upstream answered HTTP {response.status} ({key}{tries})"
    detail = _detail(parsed, response.text)
    if detail:
        message = f"{message}: {detail}"
    return UpstreamError(
        message,
        status=response.status,
        body=response.text,
        json=parsed,
        key_id=response.key_id,
        attempts=response.attempts,
        response=response,
        request_id=response.headers.get(REQUEST_ID_HEADER),
    )


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Raise httpx's request errors as ours, from the original."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise translate(exc) from exc


def translate(exc: httpx.HTTPError) -> PoolSwitchError:
    where = _origin(exc)
    if isinstance(exc, httpx.TimeoutException):
        what = "connecting to" if isinstance(exc, httpx.ConnectTimeout) else "waiting for"
        return ProxyTimeoutError(f"timed out {what} the proxy{where} ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError):
        return ProxyConnectionError(f"cannot connect to the proxy{where}: {exc}")
    if isinstance(exc, httpx.TransportError):
        return ProxyConnectionError(f"the connection to the proxy{where} failed: {exc}")
    return PoolSwitchError(f"cannot read the proxy's answer{where}: {exc}")


def _origin(exc: httpx.HTTPError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:  # no request attached
        return ""
    return f" at {url.scheme}://{url.netloc.decode('ascii', 'replace').rpartition('@')[2]}"


def _json_or_none(response: ProxyResponse) -> Any:
    kind = media_type(response.headers)
    if kind and not is_json_type(kind):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _envelope(parsed: Any) -> dict[str, Any]:
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            return error
    return {}


def _retry_after(
    envelope: dict[str, Any], headers: httpx.Headers, now: float | None
) -> float | None:
    """Seconds from the envelope's `retry_after`, else the `Retry-After` header."""
    value = envelope.get("retry_after")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) and value >= 0 else None
    return parse_retry_after(headers.get("retry-after"), now)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _detail(parsed: Any, body: str) -> str:
    """A short human reason: the OpenAI/Anthropic-style `error.message`, else the body's start."""
    message = _envelope(parsed).get("message")
    if not isinstance(message, str) or not message:
        message = " ".join(body.split())
    return message if len(message) <= _DETAIL_LIMIT else message[: _DETAIL_LIMIT - 1] + "…"
