"""No key value in a relayed answer, over loopback: compressed, large, streamed and encoded
error bodies, and response headers; 2xx bodies pass byte for byte."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from poolswitch.config import parse_config
from poolswitch.redact import UNDECODABLE_BODY
from poolswitch_testing.fake_upstream import FakeUpstream, blob_bytes

from conftest import VALUES, ProxyFactory, RunningProxy

KEY = VALUES["a"]
MIB = 1024 * 1024


def _raw(proxy: RunningProxy, method: str = "POST", path: str = "/v1/x") -> httpx.Response:
    """The answer with its body as sent (not decoded by httpx)."""
    with proxy.client() as client, client.stream(method, path, json={"q": 1}) as resp:
        resp._content = b"".join(resp.iter_raw())
    return resp


def _assert_no_key(resp: httpx.Response) -> None:
    assert KEY.encode() not in resp.content
    assert all(KEY not in f"{k}: {v}" for k, v in resp.headers.multi_items())


def test_gzip_error_body_echoing_the_key_is_decoded_and_redacted(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}.", "code": "invalid_api_key"}}
    upstream.script("a", {"kind": "invalid_key", "json": body, "gzip": True})
    resp = _raw(make_proxy("a", retry_attempts=1))
    assert resp.status_code == 401
    assert "content-encoding" not in resp.headers
    assert resp.headers["content-length"] == str(len(resp.content))
    expected = json.dumps(body).replace(KEY, "a").encode()  # the same bytes, key -> id
    assert resp.content == expected


@pytest.mark.parametrize("status", [200, 401])
def test_response_header_echoing_the_key_is_redacted(
    upstream: FakeUpstream, make_proxy: ProxyFactory, status: int
) -> None:
    echo = {"x-echo-auth": f"Bearer {KEY}", "x-other": "kept"}
    upstream.script("a", {"kind": "mirror", "status": status, "headers": echo})
    resp = _raw(make_proxy("a", retry_attempts=1))
    assert resp.status_code == status
    assert resp.headers["x-echo-auth"] == "Bearer a"
    assert resp.headers["x-other"] == "kept"
    assert resp.content == b'{"q":1}'  # the body byte for byte
    _assert_no_key(resp)


@pytest.mark.parametrize("chunked", [False, True])
def test_error_body_over_1_mib_with_the_key_across_a_piece_boundary(
    upstream: FakeUpstream, make_proxy: ProxyFactory, chunked: bool
) -> None:
    size = 2 * MIB - 10  # the fake writes 64 KiB pieces: the key straddles one boundary
    upstream.script(
        "a",
        {"kind": "blob", "status": 500, "size": size, "tail": KEY, "chunked": chunked,
         "interval": 0.005},
    )  # fmt: skip
    resp = _raw(make_proxy("a", retry_attempts=1))
    assert resp.status_code == 500
    assert resp.content == blob_bytes(size) + b"a"
    assert "content-length" not in resp.headers  # relayed as it came, chunked
    _assert_no_key(resp)


def test_gzip_error_body_that_decodes_past_the_hold_limit_is_streamed(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    size = 3 * MIB  # about 12 KiB compressed
    upstream.script("a", {"kind": "blob", "status": 500, "size": size, "tail": KEY, "gzip": True})
    resp = _raw(make_proxy("a", retry_attempts=1))
    assert resp.status_code == 500
    assert "content-encoding" not in resp.headers
    assert resp.content == blob_bytes(size) + b"a"


def test_streamed_error_echoing_the_key_past_its_first_chunk(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    first = {"event": "error", "data": '{"error": {"message": "denied"}}'}
    events = [first, "x" * 5000, f"your key was {KEY}"]
    upstream.script("a", {"kind": "sse", "events": events, "done": False, "interval": 0.05})
    resp = _raw(make_proxy("a", retry_attempts=1), path="/v1/chat/completions")
    assert resp.status_code == 200
    assert resp.content.endswith(b"data: your key was a\n\n")
    assert resp.content.startswith(b"event: error\n")
    _assert_no_key(resp)


def test_undecodable_error_body_is_not_relayed(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script(
        "a",
        {"kind": "text", "status": 500, "body": f"not gzip {KEY}",
         "headers": {"Content-Encoding": "gzip"}},
        {"kind": "text", "status": 500, "body": KEY, "headers": {"Content-Encoding": "zstd"}},
    )  # fmt: skip
    proxy = make_proxy("a", retry_attempts=1)
    for _ in range(2):
        resp = _raw(proxy)
        assert resp.status_code == 500
        assert resp.content == UNDECODABLE_BODY
        assert resp.headers["content-type"] == "application/json"
        assert "content-encoding" not in resp.headers


def test_successful_bodies_pass_byte_for_byte_still_compressed(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "blob", "size": 300_000, "gzip": True})
    resp = _raw(make_proxy("a"), "GET")
    assert resp.status_code == 200
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.content == gzip.compress(blob_bytes(300_000), mtime=0)


def test_accept_encoding_reaches_the_upstream_narrowed(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    with make_proxy("a").client() as client:
        client.get("/v1/models", headers={"Accept-Encoding": "zstd, gzip;q=0.5, compress"})
    seen = dict(upstream.attempts[-1].headers)
    assert seen["accept-encoding"] == "gzip;q=0.5"


# ---- a key that needs percent-encoding, sent in the query string ----

ODD = "sk-odd+key/with=sign"


@pytest.fixture
def odd_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream({ODD: "odd"}, auth_query_param="key") as fake:
        yield fake


@pytest.fixture
def odd_proxy(odd_upstream: FakeUpstream) -> Iterator[RunningProxy]:
    doc: dict[str, Any] = {
        "upstream_base_url": odd_upstream.url,
        "auth_query_param": "key",
        "retry_attempts": 1,
        "keys": [{"id": "odd", "value": ODD}],
    }
    proxy = RunningProxy(parse_config(doc, env={})).start()
    yield proxy
    proxy.stop()


def test_url_echoed_back_with_the_encoded_key_is_redacted(
    odd_upstream: FakeUpstream, odd_proxy: RunningProxy
) -> None:
    encoded = quote(ODD, safe="")
    location = f"{odd_upstream.url}/v1/models?key={encoded}&page=2"
    odd_upstream.script(
        "odd",
        {"kind": "echo", "status": 400, "headers": {"x-request-url": location}},
        {"kind": "ok", "headers": {"location": location}},
    )
    with odd_proxy.client() as client:
        error = client.get("/v1/models?page=2")
        ok = client.get("/v1/models?page=2")
    assert error.status_code == 400
    assert error.json()["query_string"] == "page=2&key=odd"
    assert error.headers["x-request-url"].endswith("/v1/models?key=odd&page=2")
    assert ok.headers["location"].endswith("?key=odd&page=2")
    for resp in (error, ok):
        text = resp.text + json.dumps(list(resp.headers.multi_items()))
        assert ODD not in text and encoded not in text
