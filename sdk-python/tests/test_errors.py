"""Which error an answer or a transport failure becomes, and what it carries."""

from __future__ import annotations

import email.utils
from typing import Any

import httpx
import pytest

from poolswitch_client import (
    PoolSwitchError,
    ProxyConnectionError,
    ProxyError,
    ProxyResponse,
    ProxyTimeoutError,
    UpstreamError,
)
from poolswitch_client._errors import error_from_response, parse_retry_after, translate

REQUEST = httpx.Request("GET", "http://user:pw@127.0.0.1:8080/v1/models")


def answer(status: int, headers: dict[str, str] | None = None, **body: Any) -> ProxyResponse:
    return ProxyResponse(httpx.Response(status, headers=headers, request=REQUEST, **body))


def envelope(code: str, message: str, retry_after: float | None) -> dict[str, Any]:
    error = {"type": "poolswitch_error", "code": code, "message": message}
    return {"error": {**error, "retry_after": retry_after}}


def test_every_error_is_a_poolswitch_error() -> None:
    for cls in (ProxyError, UpstreamError, ProxyConnectionError, ProxyTimeoutError):
        assert issubclass(cls, PoolSwitchError)
    assert issubclass(PoolSwitchError, Exception)


def test_proxy_error_from_the_envelope() -> None:
    response = answer(
        503,
        {"x-poolswitch-error": "no_available_keys", "retry-after": "42"},
        json=envelope("no_available_keys", "every key is cooling down", 41.5),
    )
    err = error_from_response(response)
    assert isinstance(err, ProxyError)
    assert (err.code, err.status, err.retry_after) == ("no_available_keys", 503, 41.5)
    assert err.message == "every key is cooling down"
    assert err.response is response
    assert str(err) == (
        "every key is cooling down (no_available_keys, HTTP 503, retry after 41.5s)"
    )


def test_proxy_error_retry_after_falls_back_to_the_header() -> None:
    body = envelope("no_available_keys", "m", None)
    del body["error"]["retry_after"]
    headers = {"x-poolswitch-error": "no_available_keys", "retry-after": "7"}
    err = error_from_response(answer(503, headers, json=body))
    assert isinstance(err, ProxyError) and err.retry_after == 7.0


def test_proxy_error_without_an_envelope_uses_the_header_code() -> None:
    err = error_from_response(answer(401, {"x-poolswitch-error": "unauthorized"}, text="nope"))
    assert isinstance(err, ProxyError)
    assert (err.code, err.status, err.message, err.retry_after) == (
        "unauthorized",
        401,
        "Unauthorized",
        None,
    )


def test_an_upstream_503_is_never_a_proxy_503() -> None:
    # an upstream answer that looks like the proxy's, but without x-poolswitch-error
    body = envelope("no_available_keys", "upstream's own text", 5)
    err = error_from_response(
        answer(503, {"x-poolswitch-key-id": "a", "x-poolswitch-attempts": "3"}, json=body)
    )
    assert isinstance(err, UpstreamError)
    assert (err.status, err.key_id, err.attempts, err.json) == (503, "a", 3, body)
    assert str(err) == "upstream answered HTTP 503 (key a, 3 attempt(s)): upstream's own text"


def test_both_errors_carry_the_request_id_from_the_header() -> None:
    proxy = error_from_response(
        answer(
            429,
            {"x-poolswitch-error": "no_available_keys", "x-poolswitch-request-id": "req-1"},
            json=envelope("no_available_keys", "m", None),
        )
    )
    upstream = error_from_response(
        answer(429, {"x-poolswitch-request-id": "req-2"}, text="slow down")
    )
    bare = error_from_response(answer(500, text="x"))
    assert isinstance(proxy, ProxyError) and proxy.request_id == "req-1"
    assert isinstance(upstream, UpstreamError) and upstream.request_id == "req-2"
    assert isinstance(bare, UpstreamError) and bare.request_id is None


def test_upstream_error_keeps_the_raw_body() -> None:
    err = error_from_response(answer(400, {"content-type": "application/json"}, content=b'{"a":1}'))
    assert isinstance(err, UpstreamError)
    assert (err.body, err.json) == ('{"a":1}', {"a": 1})
    assert str(err) == 'upstream answered HTTP 400 (no key id): {"a":1}'


def test_upstream_error_reads_anthropic_style_messages_and_cuts_long_text() -> None:
    anthropic = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    err = error_from_response(answer(529, json=anthropic))
    assert str(err).endswith(": Overloaded")
    long = error_from_response(answer(500, text="x" * 1000))
    assert isinstance(long, UpstreamError) and long.json is None
    assert len(long.body) == 1000 and len(str(long)) < 260 and str(long).endswith("…")


def test_upstream_error_with_a_non_json_type_has_no_json() -> None:
    err = error_from_response(answer(502, {"content-type": "text/html"}, content=b"[1]"))
    assert isinstance(err, UpstreamError) and err.json is None and err.body == "[1]"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), ("", None), ("12", 12.0), (" 3 ", 3.0), ("-1", None), ("soon", None)],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0


@pytest.mark.parametrize(
    ("exc", "cls", "text"),
    [
        (httpx.ConnectError("refused"), ProxyConnectionError, "cannot connect to the proxy at"),
        (httpx.ReadError("reset"), ProxyConnectionError, "the connection to the proxy at"),
        (httpx.RemoteProtocolError("cut"), ProxyConnectionError, "failed: cut"),
        (httpx.ConnectTimeout("slow"), ProxyTimeoutError, "timed out connecting to the proxy"),
        (httpx.ReadTimeout("slow"), ProxyTimeoutError, "timed out waiting for the proxy"),
        (httpx.PoolTimeout("busy"), ProxyTimeoutError, "(PoolTimeout)"),
        (httpx.DecodingError("bad gzip"), PoolSwitchError, "cannot read the proxy's answer"),
    ],
)
def test_translate_httpx_errors(exc: httpx.RequestError, cls: type[Exception], text: str) -> None:
    exc.request = REQUEST
    err = translate(exc)
    assert type(err) is cls
    assert text in str(err)
    assert "pw" not in str(err) and "127.0.0.1:8080" in str(err)


def test_translate_without_a_request() -> None:
    assert str(translate(httpx.ConnectError("refused"))) == ("cannot connect to the proxy: refused")
