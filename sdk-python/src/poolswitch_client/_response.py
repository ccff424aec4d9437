"""What the proxy answered: `ProxyResponse`, and the head every answer shares.

Every proxied answer carries `x-poolswitch-key-id` (the key that produced it) and
`x-poolswitch-attempts` (attempts made, 1 = no failover); answers the proxy makes itself carry
`x-poolswitch-error` instead of a key id.
"""

from __future__ import annotations

from typing import Any

import httpx

KEY_ID_HEADER = "x-poolswitch-key-id"
ATTEMPTS_HEADER = "x-poolswitch-attempts"
ERROR_HEADER = "x-poolswitch-error"
REQUEST_ID_HEADER = "x-poolswitch-request-id"

_TEXT_TYPES = frozenset(
    {
        "application/javascript",
        "application/x-ndjson",
        "application/x-www-form-urlencoded",
        "application/xml",
        "application/yaml",
    }
)


class ResponseHead:
    """Status and headers of an answer, and the proxy's facts about it."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def reason_phrase(self) -> str:
        return self._response.reason_phrase

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    @property
    def key_id(self) -> str | None:
        """The id of the pool key that produced this answer (never its value)."""
        key_id: str | None = self._response.headers.get(KEY_ID_HEADER)
        return key_id

    @property
    def attempts(self) -> int | None:
        """Upstream attempts the proxy made for this request (1 = no failover)."""
        value: str = self._response.headers.get(ATTEMPTS_HEADER, "")
        return int(value) if value.isascii() and value.isdigit() else None

    @property
    def is_success(self) -> bool:
        return self._response.is_success

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} [{self.status}] key_id={self.key_id!r}"
            f" attempts={self.attempts!r}>"
        )


class ProxyResponse(ResponseHead):
    """A whole answer, body included; `send()` returns it and errors carry it."""

    @property
    def content(self) -> bytes:
        """The body (decompressed when the upstream sent it compressed)."""
        return self._response.content

    @property
    def text(self) -> str:
        """The body decoded with the charset of its Content-Type, else UTF-8."""
        return self._response.text

    def json(self) -> Any:
        """The body parsed as JSON (raises `json.JSONDecodeError` when it is not JSON)."""
        return self._response.json()


def media_type(headers: httpx.Headers) -> str:
    value: str = headers.get("content-type", "")
    return value.partition(";")[0].strip().lower()


def is_json_type(kind: str) -> bool:
    return kind == "application/json" or kind.endswith("+json")


def body_value(response: ProxyResponse) -> Any:
    """What `get()`/`post()`/... return: parsed JSON for a JSON body, `str` for text, `bytes`
    for anything else, `None` for an empty body. A body without a Content-Type is JSON if it
    parses, else text if it is UTF-8, else bytes."""
    content = response.content
    if not content:
        return None
    kind = media_type(response.headers)
    if is_json_type(kind):
        try:
            return response.json()
        except ValueError:
            return response.text
    if kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith("+xml"):
        return response.text
    if kind:
        return content
    try:
        return response.json()
    except ValueError:
        pass
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content
