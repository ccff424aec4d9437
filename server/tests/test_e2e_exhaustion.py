"""End to end: the answer on an exhausted pool (429 no_available_keys with its retry hint), and
the outage guard's reach — a 429 storm holds nothing, an operator's `keys enable` clears it."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import ProxyFactory

ADMIN = "admin-token-0123456789"


def limited(seconds: int) -> dict[str, object]:
    return {"kind": "rate_limit", "headers": {"retry-after": str(seconds)}}


def test_a_wait_past_the_window_says_do_not_retry_and_keeps_the_real_wait(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "quota_exhausted", "headers": {"retry-after": "7200"}})
    upstream.script("b", limited(90))
    proxy = make_proxy("ab")
    with proxy.client() as client:
        assert client.get("/v1/models").status_code == 429  # the last upstream answer
        started = time.monotonic()
        resp = client.get("/v1/models")
        elapsed = time.monotonic() - started
    assert resp.status_code == 429 and elapsed < 0.1
    assert resp.headers["x-poolswitch-error"] == "no_available_keys"
    assert resp.headers["x-should-retry"] == "false" and "retry-after" not in resp.headers
    assert 89 <= resp.json()["error"]["retry_after"] <= 90
    assert len(upstream.attempts) == 2


def test_every_key_disabled_says_do_not_retry_and_no_wait(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "invalid_key"})
    upstream.script("b", {"kind": "invalid_key"})
    proxy = make_proxy("ab", verify_path="/v1/models")  # GET /v1/models confirms a 401 at once
    with proxy.client() as client:
        # at most one key is disabled per request (verify.py): two requests disable both
        assert [client.get("/v1/models").status_code for _ in range(2)] == [401, 401]
        resp = client.get("/v1/models")
    assert resp.status_code == 429 and resp.headers["x-should-retry"] == "false"
    assert "retry-after" not in resp.headers and resp.json()["error"]["retry_after"] is None


def test_a_rate_limit_storm_on_two_keys_gets_the_accurate_answer_not_a_hold(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    for key in "ab":
        upstream.script(key, limited(1), limited(1), {"kind": "ok"})
    proxy = make_proxy("ab")
    with proxy.client() as client:
        assert client.get("/v1/models").status_code == 429
        time.sleep(1.1)
        assert client.get("/v1/models").status_code == 429  # a third and fourth 429: tripped
        assert client.get("/health").json()["status"] == "degraded"
        assert client.get("/status").json()["outage"]["kind"] == "rate_limited"
        answers = [client.get("/v1/models") for _ in range(3)]
        time.sleep(2.1)  # failing again right after returning doubled the cooldown
        back = client.get("/v1/models")
        health = client.get("/health").json()
    for resp in answers:  # never "upstream_unavailable": the pool knows the real wait
        assert resp.status_code == 429, resp.text
        assert resp.headers["x-poolswitch-error"] == "no_available_keys"
        assert resp.headers["retry-after"] == "2" and resp.headers["x-should-retry"] == "true"
        assert resp.json()["error"]["retry_after"] == 2
    assert back.status_code == 200 and back.headers["x-poolswitch-attempts"] == "1"
    assert health["status"] == "ok"
    assert len(upstream.attempts) == 5


def test_a_rate_limit_storm_does_not_hold_requests_a_free_key_can_serve(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    for key in "ab":
        upstream.script(key, limited(1))
    upstream.script("c", {"kind": "ok", "delay": 0.5})
    proxy = make_proxy(
        "abc",
        strategy="quota_failover",
        retry_attempts=2,
        keys=[
            {"id": "a", "value": "sk-test-alpha-0001-SECRET", "weight": 3},
            {"id": "b", "value": "sk-test-bravo-0002-SECRET", "weight": 2},
            {"id": "c", "value": "sk-test-charlie-0003-SECRET", "weight": 1},
        ],
    )
    with proxy.client() as client:
        assert client.get("/v1/models").status_code == 429  # a and b: the storm begins
        time.sleep(1.1)
        assert client.get("/v1/models").status_code == 429  # a and b again: tripped
        assert client.get("/status").json()["outage"]["kind"] == "rate_limited"
        with ThreadPoolExecutor(4) as workers:  # 3 requests at once while c is still slow
            answers = list(workers.map(lambda _: client.get("/v1/models"), range(3)))
    assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
    assert {r.headers["x-poolswitch-key-id"] for r in answers} == {"c"}


def test_keys_enable_clears_the_outage_guard(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    for key in "ab":
        upstream.script(key, {"kind": "overloaded"})
    proxy = make_proxy("ab", admin_token=ADMIN)
    with proxy.client() as client:
        client.get("/v1/models")
        client.get("/v1/models")
        held = client.get("/v1/models")
        assert held.status_code == 503, held.text
        assert held.headers["x-poolswitch-error"] == "upstream_unavailable"
        assert held.headers["x-should-retry"] == "true" and held.headers["retry-after"] == "1"
        assert client.get("/status").json()["outage"]["kind"] == "upstream"
        for key in "ab":
            upstream.script(key, {"kind": "ok"})
        command = ["keys", "enable", "a", "--url", proxy.url, "--token", ADMIN]
        cli = subprocess.run(
            [sys.executable, "-m", "poolswitch", *command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/status").json()["outage"] is None
        answers = [client.get("/v1/models") for _ in range(3)]  # no probe interval to wait out
    assert [r.status_code for r in answers] == [200, 200, 200]


def test_the_hint_reaches_the_client_unchanged_over_http(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", limited(3))
    proxy = make_proxy("a")
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        client.get("/v1/models")
        resp = client.get("/v1/models")
    assert resp.status_code == 429 and resp.headers["retry-after"] == "3"
    assert resp.headers["x-should-retry"] == "true"
    assert resp.headers["content-type"] == "application/json"
