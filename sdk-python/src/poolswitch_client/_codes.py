"""The codes of the answers the proxy makes itself (`x-poolswitch-error`, docs/protocol.md).

`ProxyError.code` is a plain `str`, so a code added by a newer proxy still arrives; compare it
with these constants: `if err.code == ErrorCode.NO_SUCH_POOL: ...`.
"""

from __future__ import annotations

from typing import Final


class ErrorCode:
    """Every proxy-made error code, as string constants (`ALL` holds them all)."""

    NO_AVAILABLE_KEYS: Final = "no_available_keys"
    """Every key of the pool is cooling down or disabled; `retry_after` says when one returns."""
    UPSTREAM_UNAVAILABLE: Final = "upstream_unavailable"
    """The upstream is in an outage (every key failing the same way); nothing was sent."""
    OVERLOADED: Final = "overloaded"
    """The proxy sheds load (too many requests in flight)."""
    UPSTREAM_UNREACHABLE: Final = "upstream_unreachable"
    """The connection to the upstream failed on every attempt."""
    UPSTREAM_TIMEOUT: Final = "upstream_timeout"
    """The upstream did not answer in time on the last attempt."""
    PAYLOAD_TOO_LARGE: Final = "payload_too_large"
    """The request body is over the proxy's limit."""
    BAD_REQUEST: Final = "bad_request"
    """A request target the proxy refuses (absolute-form URL, a path escaping the base)."""
    UNAUTHORIZED: Final = "unauthorized"
    """Caller auth is on and the caller token is missing or wrong."""
    FORBIDDEN: Final = "forbidden"
    """The caller may not use this pool, or a browser Origin is not allowed."""
    HEADERS_TOO_LARGE: Final = "headers_too_large"
    """The request's headers are over the proxy's limit."""
    NOT_FOUND: Final = "not_found"
    """A path the proxy serves itself does not exist."""
    NO_SUCH_POOL: Final = "no_such_pool"
    """No pool matches the path or the `x-poolswitch-pool` name."""
    CALLER_RATE_LIMITED: Final = "caller_rate_limited"
    """The caller is over its `rpm` or `max_concurrency`; nothing was sent upstream."""
    INTERNAL_ERROR: Final = "internal_error"
    """A bug in the proxy."""

    ALL: Final = frozenset(
        {
            NO_AVAILABLE_KEYS,
            UPSTREAM_UNAVAILABLE,
            OVERLOADED,
            UPSTREAM_UNREACHABLE,
            UPSTREAM_TIMEOUT,
            PAYLOAD_TOO_LARGE,
            BAD_REQUEST,
            UNAUTHORIZED,
            FORBIDDEN,
            HEADERS_TOO_LARGE,
            NOT_FOUND,
            NO_SUCH_POOL,
            CALLER_RATE_LIMITED,
            INTERNAL_ERROR,
        }
    )

    def __init__(self) -> None:
        raise TypeError("ErrorCode is a namespace of constants, not to be instantiated")
