"""Caller authentication, Host and Origin checks, over real loopback HTTP.

The caller's token (and any credential of its own) must never reach the upstream, a log line,
`/status`, `/metrics` or an error body; its id goes to the access log and the request counter.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poolswitch import cli
from poolswitch_testing.fake_upstream import Attempt, FakeUpstream

from conftest import KEYS, ProxyFactory, RunningProxy, make_config

SEARCH = "tok-search-0123456789abcdef"
BILLING = "tok-billing-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
METRICS = "metrics-token-0123456789abcd"
CALLERS = [{"id": "search", "token": SEARCH}, {"id": "billing", "token": BILLING}]
TOKENS = (SEARCH, BILLING, ADMIN, METRICS)


@contextlib.contextmanager
def pool(
    auth_header: str = "authorization",
    auth_scheme: str | None = "Bearer",
    query_param: str | None = None,
    **settings: Any,
) -> Iterator[tuple[FakeUpstream, RunningProxy]]:
    """A fake upstream expecting the key where the pool puts it, and a proxy in front of it."""
    with FakeUpstream(
        KEYS, auth_header=auth_header, auth_scheme=auth_scheme, auth_query_param=query_param
    ) as fake:
        config = make_config(
            fake.url,
            "ab",
            auth_header_name=auth_header,
            auth_scheme=auth_scheme,
            auth_query_param=query_param,
            **settings,
        )
        proxy = RunningProxy(config).start()
        try:
            yield fake, proxy
        finally:
            proxy.stop()


def no_token_in(attempt: Attempt) -> None:
    seen = repr(attempt.headers) + attempt.query_string + attempt.path
    for token in TOKENS:
        assert token not in seen
    assert "x-poolswitch-token" not in dict(attempt.headers)


def assert_envelope(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["x-poolswitch-error"] == code
    error = resp.json()["error"]
    assert (error["type"], error["code"]) == ("poolswitch_error", code)
    for token in TOKENS:
        assert token not in resp.text


POSITIONS = [
    # (pool's auth position, how the caller sends its token)
    pytest.param({}, {"headers": {"Authorization": f"Bearer {SEARCH}"}}, id="openai-bearer"),
    pytest.param({}, {"headers": {"x-poolswitch-token": SEARCH}}, id="x-poolswitch-token"),
    pytest.param(
        {"auth_header": "x-api-key", "auth_scheme": None},
        {"headers": {"x-api-key": SEARCH, "anthropic-version": "2023-06-01"}},
        id="anthropic-x-api-key",
    ),
    pytest.param(
        {"auth_header": "x-api-key", "auth_scheme": None},
        {"headers": {"Authorization": f"Bearer {SEARCH}"}},
        id="bearer-to-x-api-key-pool",
    ),
    pytest.param(
        {"query_param": "key"}, {"headers": {"x-goog-api-key": SEARCH}}, id="google-genai-header"
    ),
    pytest.param({"query_param": "key"}, {"params": {"key": SEARCH}}, id="gemini-query-key"),
]


@pytest.mark.parametrize(("pool_auth", "send"), POSITIONS)
def test_every_credential_position_is_accepted_and_never_forwarded(
    pool_auth: dict[str, Any], send: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pool(**pool_auth, callers=CALLERS) as (fake, proxy), proxy.client() as client:
        resp = client.get("/v1/models", **send)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-poolswitch-key-id"] == "a"
        metrics = client.get("/metrics").text
    [attempt] = fake.attempts
    assert attempt.key_id == "a"
    no_token_in(attempt)
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("poolswitch", "uvicorn"))
    )
    assert "GET /v1/models 200 key=a attempts=1 caller=search" in logged
    assert not any(token in logged for token in TOKENS)
    line = 'poolswitch_requests_total{caller="search",method="GET",pool="default",status_class='
    line += '"2xx"}'
    assert line + " 1.0" in metrics
    assert SEARCH not in metrics


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer tok-wrong-0123456789abcdef"}, id="wrong-bearer"),
        pytest.param({"x-poolswitch-token": SEARCH[:-1]}, id="prefix"),
        pytest.param({"x-api-key": SEARCH + "x"}, id="extended"),
        pytest.param({"Authorization": SEARCH}, id="no-scheme"),
        pytest.param({"Authorization": f"Bearer {ADMIN}"}, id="admin-token-is-not-a-caller"),
    ],
)
def test_missing_or_wrong_token_is_401_and_nothing_goes_upstream(
    upstream: FakeUpstream, make_proxy: ProxyFactory, headers: dict[str, str]
) -> None:
    proxy = make_proxy(callers=CALLERS, admin_token=ADMIN)
    with proxy.client() as client:
        resp = client.post("/v1/chat/completions", json={"model": "m"}, headers=headers)
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    assert_envelope(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert upstream.attempts == []
    assert (
        'poolswitch_requests_total{caller="-",method="POST",pool="default",status_class="4xx"} 1.0'
        in metrics
    )
    assert 'poolswitch_proxy_errors_total{code="unauthorized"} 1.0' in metrics


def test_builtin_endpoints_with_callers(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(callers=CALLERS, admin_token=ADMIN)
    bearer = {"Authorization": f"Bearer {BILLING}"}
    with proxy.client() as client:
        assert client.get("/health").status_code == 200
        assert_envelope(client.get("/status"), 401, "unauthorized")
        client.get("/v1/models", headers=bearer)
        doc = client.get("/status", headers=bearer)
        assert doc.json()["keys"][0]["id"] == "a"
        assert not any(token in doc.text for token in TOKENS)
        assert client.get("/status", headers={"x-poolswitch-token": SEARCH}).status_code == 200
        admin = {"Authorization": f"Bearer {ADMIN}"}
        assert client.get("/status", headers=admin).status_code == 200
        # the admin API takes the admin token only
        assert_envelope(client.get("/poolswitch/admin/keys", headers=bearer), 401, "unauthorized")
        assert client.get("/poolswitch/admin/keys", headers=admin).status_code == 200
        # /metrics stays open without metrics_token
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and 'caller="billing"' in metrics.text
        assert not any(token in metrics.text for token in TOKENS)
    assert len(upstream.attempts) == 1


def test_metrics_token(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(metrics_token=METRICS, admin_token=ADMIN)
    with proxy.client() as client:
        assert_envelope(client.get("/metrics"), 401, "unauthorized")
        wrong = {"x-poolswitch-token": METRICS}  # only as a bearer token, as Prometheus sends it
        assert_envelope(client.get("/metrics", headers=wrong), 401, "unauthorized")
        for token in (METRICS, ADMIN):
            resp = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 200 and 'poolswitch_keys{pool="default"} 3.0' in resp.text
        assert client.get("/status").status_code == 200  # no callers: /status stays open
        assert client.get("/v1/models").status_code == 200  # nor does the proxy need a token


def test_cli_status_and_metrics_send_a_token(
    make_proxy: ProxyFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = make_proxy(callers=CALLERS, metrics_token=METRICS)
    monkeypatch.delenv("POOLSWITCH_TOKEN", raising=False)
    assert cli.main(["status", "--url", proxy.url]) == 1
    assert "/status needs a caller token" in capsys.readouterr().err
    assert cli.main(["status", "--url", proxy.url, "--token", SEARCH]) == 0
    assert "KEY" in capsys.readouterr().out
    monkeypatch.setenv("POOLSWITCH_TOKEN", METRICS)
    assert cli.main(["metrics", "--url", proxy.url]) == 0
    out, err = capsys.readouterr()
    assert 'poolswitch_keys{pool="default"} 3.0' in out and METRICS not in out + err


def test_caller_credentials_never_reach_the_upstream_without_callers() -> None:
    own = "caller-own-credential-0123"
    sent = {"Authorization": f"Bearer {own}", "x-goog-api-key": own, "x-poolswitch-token": own}
    with pool("x-api-key", None) as (fake, proxy), proxy.client() as client:
        assert client.get("/v1/models", headers={**sent, "x-api-key": own}).status_code == 200
    with pool(query_param="key") as (fake2, proxy2), proxy2.client() as client:
        resp = client.get("/v1/models", params={"key": own}, headers={**sent, "x-api-key": own})
        assert resp.status_code == 200
    for attempt in (*fake.attempts, *fake2.attempts):
        assert own not in repr(attempt.headers) + attempt.query_string
        assert attempt.key_id == "a"
    assert dict(fake.attempts[0].headers)["x-api-key"] == "sk-test-alpha-0001-SECRET"
    assert "authorization" not in dict(fake.attempts[0].headers)
    assert "x-goog-api-key" not in dict(fake2.attempts[0].headers)


def raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("path", [b"/v1/models", b"/status", b"/metrics"])
def test_dns_rebinding_host_is_refused(
    upstream: FakeUpstream, make_proxy: ProxyFactory, path: bytes
) -> None:
    proxy = make_proxy()
    port = int(proxy.url.rsplit(":", 1)[1])
    answer = raw_request(
        port,
        b"GET "
        + path
        + b" HTTP/1.1\r\nHost: rebind.evil.example:%d\r\nConnection: close\r\n\r\n" % port,
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"x-poolswitch-error: bad_request" in answer
    assert b'"keys"' not in answer and b"poolswitch_keys" not in answer
    ok = raw_request(
        port, b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    assert ok.startswith(b"HTTP/1.1 200")
    assert len(upstream.attempts) == (1 if path == b"/v1/models" else 0)


def test_health_answers_any_host_and_allowed_hosts_extend_the_names(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy(allowed_hosts=["proxy.internal"])
    port = int(proxy.url.rsplit(":", 1)[1])
    for host, status in (
        (b"10.1.2.3:8080", b"200"),  # a load balancer probing by IP
        (b"rebind.evil.example", b"200"),
    ):
        answer = raw_request(
            port, b"GET /health HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 " + status)
    answer = raw_request(
        port, b"GET /v1/models HTTP/1.1\r\nHost: Proxy.Internal:443\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200")


def test_cross_origin_simple_post_is_refused_before_anything_is_sent(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy()
    with proxy.client() as client:
        resp = client.post(
            "/v1/chat/completions",
            content=b'{"model": "m", "messages": []}',
            headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
        )
        status = client.get("/status", headers={"Origin": "https://evil.example"})
    assert_envelope(resp, 403, "forbidden")
    assert_envelope(status, 403, "forbidden")
    assert "access-control-allow-origin" not in resp.headers
    assert upstream.attempts == []


def test_allowed_origin_gets_cors(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    app = "https://app.example.com"
    proxy = make_proxy(allowed_origins=[app], callers=CALLERS)
    with proxy.client() as client:
        preflight = client.options(
            "/v1/chat/completions",
            headers={
                "Origin": app,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == app
        assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
        assert upstream.attempts == []  # a preflight is never forwarded
        ok = client.post(
            "/v1/chat/completions",
            json={"model": "m"},
            headers={"Origin": app, "Authorization": f"Bearer {SEARCH}"},
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == app
        assert "x-poolswitch-key-id" in ok.headers["access-control-expose-headers"]
        denied = client.post("/v1/chat/completions", json={}, headers={"Origin": app})
        assert_envelope(denied, 401, "unauthorized")
        assert denied.headers["access-control-allow-origin"] == app  # the page can read why
        status = client.get("/status", headers={"Origin": app, "x-poolswitch-token": SEARCH})
        assert status.headers["access-control-allow-origin"] == app
        plain = client.get("/v1/models", headers={"x-poolswitch-token": SEARCH})
        assert "access-control-allow-origin" not in plain.headers  # no Origin: no CORS
    assert len(upstream.attempts) == 2


def test_start_on_a_public_address_without_callers_exits_2_before_binding(
    tmp_config: Callable[[str], Path],
) -> None:
    config = tmp_config("upstream_base_url: http://127.0.0.1:9\nkeys:\n  - {id: a, value: sk-a}\n")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "poolswitch", "start", "--config", str(config), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "callers" in lines[0] and "allow_unauthenticated" in lines[0]
    assert "Uvicorn running" not in done.stderr and time.monotonic() - started < 20
    listen = tmp_config(
        "listen_host: 10.0.0.1\nupstream_base_url: http://127.0.0.1:9\n"
        "keys:\n  - {id: a, value: sk-a}\n"
    )
    assert cli.main(["start", "--config", str(listen)]) == 2
    assert cli.main(["validate", "--config", str(listen)]) == 2


@pytest.mark.parametrize(
    ("host", "settings", "refused"),
    [
        ("127.0.0.1", {}, False),
        ("localhost", {}, False),
        ("::1", {}, False),
        ("0.0.0.0", {}, True),
        ("::", {}, True),
        ("10.0.0.1", {}, True),
        ("0.0.0.0", {"allow_unauthenticated": True}, False),
        ("0.0.0.0", {"callers": CALLERS}, False),
    ],
)
def test_exposed(host: str, settings: dict[str, Any], refused: bool) -> None:
    problem = cli.exposed(make_config("http://127.0.0.1:9", "a", **settings), host)
    assert (problem is not None) is refused
    if problem:
        assert "callers" in problem and "allow_unauthenticated" in problem
