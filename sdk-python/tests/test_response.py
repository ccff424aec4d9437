"""ProxyResponse, and what get()/post()/... make of a body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from poolswitch_client import ProxyResponse
from poolswitch_client._response import body_value


def response(content: bytes, content_type: str | None = None, **headers: str) -> ProxyResponse:
    if content_type is not None:
        headers["content-type"] = content_type
    return ProxyResponse(httpx.Response(200, headers=headers, content=content))


def test_proxy_headers() -> None:
    answer = response(b"{}", **{"x-poolswitch-key-id": "primary", "x-poolswitch-attempts": "2"})
    assert (answer.status, answer.key_id, answer.attempts, answer.is_success) == (
        200,
        "primary",
        2,
        True,
    )
    assert repr(answer) == "<ProxyResponse [200] key_id='primary' attempts=2>"


@pytest.mark.parametrize("attempts", [None, "", "two", "-1", "1.5", "0x2"])
def test_unusable_attempts_header_is_none(attempts: str | None) -> None:
    headers = {} if attempts is None else {"x-poolswitch-attempts": attempts}
    assert response(b"", **headers).attempts is None


@pytest.mark.parametrize(
    ("content", "content_type", "value"),
    [
        (b'{"a": 1}', "application/json", {"a": 1}),
        (b"[1, 2]", "application/problem+json; charset=utf-8", [1, 2]),
        (b"not json", "application/json", "not json"),
        (b"caf\xe9", "text/plain; charset=latin-1", "café"),
        (b"<a/>", "application/atom+xml", "<a/>"),
        (b"data: x\n\n", "text/event-stream", "data: x\n\n"),
        (b"\x00\x01", "application/octet-stream", b"\x00\x01"),
        (b"PNG", "image/png", b"PNG"),
        (b'{"a": 1}', None, {"a": 1}),
        (b"plain", None, "plain"),
        (b"\xff\xfe", None, b"\xff\xfe"),
        (b"", "application/json", None),
    ],
)
def test_body_value(content: bytes, content_type: str | None, value: Any) -> None:
    assert body_value(response(content, content_type)) == value


def test_body_accessors() -> None:
    answer = response('{"é": 1}'.encode(), "application/json")
    assert answer.content == '{"é": 1}'.encode()
    assert answer.text == '{"é": 1}'
    assert answer.json() == {"é": 1}
    assert answer.headers["content-type"] == "application/json"
