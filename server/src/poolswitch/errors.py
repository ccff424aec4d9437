"""Every exception PoolSwitch raises, in one tree.

    PoolSwitchError
     ├── ConfigError             the configuration is invalid; one message per problem
     ├── StorageError            the key-state store failed
     ├── DecodeError             a body is corrupt in its Content-Encoding, or names one we lack
     ├── ClientGone              the caller went away before its answer was complete
     ├── TransportError          the upstream exchange failed before a response arrived
     │    ├── ConnectError        no connection (the request was never sent)
     │    └── ReadTimeout         connected, but no answer in time
     └── ProxyError              an answer the proxy makes itself (wire contract, docs/protocol.md)
          ├── BadRequest          400 bad_request
          ├── Unauthorized        401 unauthorized
          ├── Forbidden           403 forbidden
          ├── NotFound            404 not_found
          ├── NoSuchPool          404 no_such_pool (no pool's route matches, or no such name)
          ├── PayloadTooLarge     413 payload_too_large
          ├── ConfigRefused       422 config_refused (a reload's new config has problems)
          ├── HeadersTooLarge     431 headers_too_large
          ├── UpstreamUnreachable 502 upstream_unreachable
          ├── NoAvailableKeys     429 no_available_keys (every key cooling down or disabled)
          ├── CallerRateLimited   429 caller_rate_limited (the caller is over its rpm or
          │                           max_concurrency)
          ├── UpstreamUnavailable 503 upstream_unavailable (the outage guard holds requests)
          ├── Overloaded          503 overloaded (the proxy sheds load)
          └── UpstreamTimeout     504 upstream_timeout

No message built here ever contains a key's value: keys are named by id.
"""

from __future__ import annotations

from collections.abc import Sequence


class PoolSwitchError(Exception):
    """Base of every PoolSwitch exception."""


class ConfigError(PoolSwitchError):
    """The configuration is invalid; `problems` holds one line per problem, naming its field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class StorageError(PoolSwitchError):
    """The key-state store could not be read or written."""


class DecodeError(PoolSwitchError):
    """A body is not valid in the Content-Encoding its headers name, or names one we lack."""


class ClientGone(PoolSwitchError):
    """The caller disconnected before its answer was complete."""


class TransportError(PoolSwitchError):
    """The upstream exchange failed before a response status arrived."""


class ConnectError(TransportError):
    """The connection to the upstream could not be made; nothing was sent."""


class ReadTimeout(TransportError):
    """The upstream accepted the request but did not answer in time."""


class ProxyError(PoolSwitchError):
    """A response the proxy makes itself: `x-poolswitch-error: <code>` and a JSON envelope."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.message = message
        self.retry_after = retry_after
        super().__init__(message)


class BadRequest(ProxyError):
    code = "bad_request"
    status = 400


class PayloadTooLarge(ProxyError):
    code = "payload_too_large"
    status = 413


class ConfigRefused(ProxyError):
    code = "config_refused"
    status = 422


class UpstreamUnreachable(ProxyError):
    code = "upstream_unreachable"
    status = 502


class NoAvailableKeys(ProxyError):
    code = "no_available_keys"
    status = 429  # the pool's rate limit: official SDKs raise their rate-limit error


class UpstreamUnavailable(ProxyError):
    code = "upstream_unavailable"
    status = 503


class Unauthorized(ProxyError):
    code = "unauthorized"
    status = 401


class Forbidden(ProxyError):
    code = "forbidden"
    status = 403


class HeadersTooLarge(ProxyError):
    code = "headers_too_large"
    status = 431


class Overloaded(ProxyError):
    code = "overloaded"
    status = 503


class NotFound(ProxyError):
    code = "not_found"
    status = 404


class NoSuchPool(ProxyError):
    code = "no_such_pool"
    status = 404


class CallerRateLimited(ProxyError):
    code = "caller_rate_limited"
    status = 429


class UpstreamTimeout(ProxyError):
    code = "upstream_timeout"
    status = 504
