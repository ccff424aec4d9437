"""Forwarding fidelity over real loopback HTTP: what the caller sends is what the upstream gets."""

from __future__ import annotations

import hashlib
import socket
import time
from typing import Any

import httpx

from poolswitch_testing.fake_upstream import FakeUpstream, blob_bytes

from conftest import KEYS, VALUES, ProxyFactory, RunningProxy, free_port, make_config


def echo(upstream: FakeUpstream, key: str = "a") -> None:
    upstream.script(key, {"kind": "echo"})


def test_path_query_method_and_body_pass_through(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    echo(upstream)
    proxy = make_proxy("a")
    body = b'{"model": "gpt-4o-mini", "messages": []}'
    with proxy.client() as client:
        resp = client.request(
            "PATCH",
            "/v1/chat%2Fcompletions/caf%C3%A9?b=%2f&a=1&a=2&x=a+b&empty=",
            content=body,
            headers={"content-type": "application/json"},
        )
    assert resp.status_code == 200
    seen = resp.json()
    assert seen["method"] == "PATCH"
    assert seen["path"] == "/v1/chat%2Fcompletions/caf%C3%A9"
    assert seen["query_string"] == "b=%2f&a=1&a=2&x=a+b&empty="
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert resp.headers["x-poolswitch-key-id"] == "a"
    assert resp.headers["x-poolswitch-attempts"] == "1"


def test_base_path_of_upstream_is_kept(upstream: FakeUpstream) -> None:
    echo(upstream)
    proxy = RunningProxy(make_config(upstream.url + "/openai", "a")).start()
    try:
        with proxy.client() as client:
            assert client.get("/v1/models").json()["path"] == "/openai/v1/models"
    finally:
        proxy.stop()


def test_headers_kept_except_hop_by_hop_and_caller_auth(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    echo(upstream)
    proxy = make_proxy("a")
    with proxy.client() as client:
        resp = client.post(
            "/v1/x",
            content=b"{}",
            headers={
                "Authorization": "Bearer caller-token",
                "X-Custom": "kept",
                "OpenAI-Organization": "org-1",
                "Connection": "keep-alive, X-Conn-Listed",
                "X-Conn-Listed": "dropped",
                "Keep-Alive": "timeout=5",
                "Proxy-Authorization": "Basic xyz",
                "TE": "trailers",
                "Accept-Encoding": "gzip",
            },
        )
    headers: dict[str, list[str]] = {}
    for name, value in resp.json()["headers"]:
        headers.setdefault(name, []).append(value)
    assert headers["authorization"] == [f"Bearer {VALUES['a']}"]
    assert headers["x-custom"] == ["kept"]
    assert headers["openai-organization"] == ["org-1"]
    assert headers["accept-encoding"] == ["gzip"]
    assert headers["host"] == [upstream.url.removeprefix("http://")]
    for dropped in ("x-conn-listed", "keep-alive", "proxy-authorization", "te", "connection"):
        assert dropped not in headers, dropped


def test_custom_auth_header_without_scheme() -> None:
    with FakeUpstream(KEYS, auth_header="x-api-key", auth_scheme=None) as upstream:
        upstream.script("a", {"kind": "echo"})
        config = make_config(upstream.url, "a", auth_header_name="x-api-key", auth_scheme=None)
        proxy = RunningProxy(config).start()
        try:
            with proxy.client() as client:
                resp = client.get("/v1/messages", headers={"x-api-key": "caller"})
        finally:
            proxy.stop()
    assert resp.status_code == 200
    names = [n for n, _ in resp.json()["headers"]]
    assert ["x-api-key", VALUES["a"]] in resp.json()["headers"]
    assert names.count("x-api-key") == 1


def test_binary_5mb_request_and_response(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    payload = bytes(range(256)) * (5 * 1024 * 1024 // 256)
    upstream.script(
        "a",
        {"kind": "echo"},
        {"kind": "blob", "size": 5_000_000},
        {"kind": "blob", "size": 5_000_000, "chunked": True},
    )
    proxy = make_proxy("a")
    with proxy.client() as client:
        seen = client.put("/upload", content=payload).json()
        fixed = client.get("/blob")
        chunked = client.get("/blob")
    assert seen["body_length"] == len(payload)
    assert seen["body_sha256"] == hashlib.sha256(payload).hexdigest()
    expected = blob_bytes(5_000_000)
    assert fixed.content == expected and fixed.headers["content-length"] == "5000000"
    assert chunked.content == expected and "content-length" not in chunked.headers


def test_compressed_body_passes_through_compressed(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    import gzip

    upstream.script("a", {"kind": "blob", "size": 100_000, "gzip": True})
    proxy = make_proxy("a")
    with proxy.client() as client, client.stream("GET", "/gz") as resp:
        raw = b"".join(resp.iter_raw())
    assert resp.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == blob_bytes(100_000)


def test_upstream_4xx_is_relayed_unchanged(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "bad_request", "headers": {"x-request-id": "req-1"}})
    proxy = make_proxy("ab")
    with proxy.client() as client:
        resp = client.post("/v1/chat/completions", json={})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.headers.get_list("x-request-id") == ["req-1"]  # the proxy's is beside it
    assert resp.headers["x-poolswitch-request-id"] != "req-1"
    assert resp.headers["x-poolswitch-attempts"] == "1"
    assert "x-poolswitch-error" not in resp.headers
    assert upstream.key_ids() == ["a"]  # a client error is never retried


def test_request_body_over_limit_gets_413(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy("a", max_request_body_bytes=1000)
    with proxy.client() as client:
        declared = client.post("/v1/x", content=b"x" * 1001)
        streamed = client.post("/v1/x", content=iter([b"x" * 600, b"x" * 600]))
        fits = client.post("/v1/x", content=b"x" * 1000)
    for resp in (declared, streamed):
        assert resp.status_code == 413
        assert resp.headers["x-poolswitch-error"] == "payload_too_large"
        assert resp.json()["error"]["code"] == "payload_too_large"
    assert fits.status_code == 200
    assert upstream.key_ids() == ["a"]


def test_path_escaping_the_base_gets_400_and_is_never_sent(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy("a")
    port = int(proxy.url.rsplit(":", 1)[1])
    answers = [
        raw_request(port, b"GET /../secret HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        raw_request(port, b"GET /v1/%2e%2e/%2E%2E/secret HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        raw_request(port, b"GET http://evil.example/v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ]
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"x-poolswitch-error: bad_request" in answer
    ok = raw_request(port, b"GET /v1/../v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200")
    assert [a.path for a in upstream.attempts] == ["/v1/../v1/models"]


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def proxy_error(resp: httpx.Response) -> dict[str, Any]:
    assert resp.headers["x-poolswitch-error"] == resp.json()["error"]["code"]
    error: dict[str, Any] = resp.json()["error"]
    assert error["type"] == "poolswitch_error" and set(error) == {
        "type",
        "code",
        "message",
        "retry_after",
        "request_id",
    }
    assert error["request_id"] == resp.headers["x-request-id"]
    return error


def test_unreachable_upstream_gives_502_after_every_attempt() -> None:
    proxy = RunningProxy(make_config(f"http://127.0.0.1:{free_port()}", "abc")).start()
    try:
        with proxy.client() as client:
            resp = client.get("/v1/models")
    finally:
        proxy.stop()
    assert resp.status_code == 502
    assert proxy_error(resp)["code"] == "upstream_unreachable"
    assert resp.headers["x-poolswitch-attempts"] == "3"


def test_slow_upstream_gives_504(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    for key in "ab":
        upstream.script(key, {"kind": "hang"})
    proxy = make_proxy("ab", request_timeout_seconds=0.3)
    with proxy.client() as client:
        started = time.monotonic()
        resp = client.get("/v1/models")
        elapsed = time.monotonic() - started
    assert resp.status_code == 504
    assert proxy_error(resp)["code"] == "upstream_timeout"
    assert elapsed < 1.0  # request_timeout_seconds bounds the whole request, retries included
    assert upstream.key_ids() == ["a"]
