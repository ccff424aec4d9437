"""Failover, cooldown and exhaustion through the running proxy."""

from __future__ import annotations

import time
from typing import Any

import pytest

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import ProxyFactory


def test_quota_exhausted_key_is_skipped_until_its_cooldown_ends(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "quota_exhausted"})
    proxy = make_proxy("ab")
    with proxy.client() as client:
        statuses = [
            client.post("/v1/chat/completions", json={"n": i}).status_code for i in range(100)
        ]
        status = {k["id"]: k for k in client.get("/status").json()["keys"]}
    assert statuses == [200] * 100
    assert upstream.key_ids() == ["a"] + ["b"] * 100
    assert status["a"]["state"] == "cooling_down"
    assert status["a"]["reason"] == "quota_exhausted"
    assert status["a"]["cooldown_until"] == pytest.approx(time.time() + 3600, abs=5)


@pytest.mark.parametrize(
    ("behaviour", "parked"),
    [
        ({"kind": "rate_limit", "headers": {"retry-after": "30"}}, "rate_limited"),
        ({"kind": "quota_exhausted"}, "quota_exhausted"),
        ({"kind": "invalid_key"}, "disabled"),
        ({"kind": "invalid_key", "status": 403}, "disabled"),
        ({"kind": "server_error"}, None),
        ({"kind": "server_error", "status": 503}, None),
        ({"kind": "overloaded"}, None),
    ],
)
def test_fails_over_on_each_error_kind(
    upstream: FakeUpstream,
    make_proxy: ProxyFactory,
    behaviour: dict[str, Any],
    parked: str | None,
) -> None:
    upstream.script("a", behaviour, {"kind": "ok"})
    proxy = make_proxy("ab")
    with proxy.client() as client:
        resp = client.post("/v1/chat/completions", json={})
        key_a = client.get("/status").json()["keys"][0]
    assert resp.status_code == 200
    assert resp.headers["x-poolswitch-key-id"] == "b"
    assert resp.headers["x-poolswitch-attempts"] == "2"
    assert upstream.key_ids() == ["a", "b"]
    assert key_a["failovers"] == 1
    if parked == "disabled":
        assert (key_a["state"], key_a["reason"]) == ("disabled", "key_invalid")
    elif parked:
        assert (key_a["state"], key_a["reason"]) == ("cooling_down", parked)
    else:
        assert key_a["state"] == "available"


def test_dropped_connection_is_retried_for_get_but_not_for_post(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "drop"})
    proxy = make_proxy("ab", strategy="quota_failover")
    with proxy.client() as client:
        get = client.get("/v1/models")
        post = client.post("/v1/chat/completions", json={})
        key_a = client.get("/status").json()["keys"][0]
    assert get.status_code == 200 and get.headers["x-poolswitch-key-id"] == "b"
    assert post.status_code == 502 and post.headers["x-poolswitch-attempts"] == "1"
    assert post.json()["error"]["code"] == "upstream_unreachable"
    assert key_a["state"] == "available"


def test_retry_after_is_honoured_then_the_key_returns(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "1"}}, {"kind": "ok"})
    proxy = make_proxy("ab")
    with proxy.client() as client:
        client.get("/v1/models")  # a: 429, fails over to b
        first = time.monotonic()
        for _ in range(5):
            client.get("/v1/models")
        assert upstream.key_ids() == ["a"] + ["b"] * 6
        time.sleep(max(0.0, 1.1 - (time.monotonic() - first)))
        seen = {client.get("/v1/models").headers["x-poolswitch-key-id"] for _ in range(4)}
    assert seen == {"a", "b"}


def test_every_key_cooling_gives_429_with_accurate_retry_after(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "20"}})
    upstream.script("b", {"kind": "rate_limit", "headers": {"retry-after": "45"}})
    proxy = make_proxy("ab")
    with proxy.client() as client:
        last = client.get("/v1/models")
        started = time.monotonic()
        resp = client.get("/v1/models")
        elapsed = time.monotonic() - started
    # the request that exhausted the pool got the last upstream answer as it was
    assert last.status_code == 429 and last.headers["x-poolswitch-key-id"] == "b"
    assert last.headers["retry-after"] == "45" and "x-poolswitch-error" not in last.headers
    assert resp.status_code == 429
    assert resp.headers["x-poolswitch-error"] == "no_available_keys"
    assert resp.headers["x-should-retry"] == "true"
    error = resp.json()["error"]
    assert error["code"] == "no_available_keys"
    assert 19 <= float(resp.headers["retry-after"]) <= 21
    assert error["retry_after"] == float(resp.headers["retry-after"])
    assert elapsed < 0.1
    assert len(upstream.attempts) == 2


def test_attempts_are_bounded_by_retry_attempts(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    for key in "abc":
        upstream.script(key, {"kind": "server_error", "headers": {"x-from": key}})
    proxy = make_proxy("abc", retry_attempts=2)
    with proxy.client() as client:
        resp = client.get("/v1/models")
    assert resp.status_code == 500
    assert resp.headers["x-poolswitch-attempts"] == "2"
    assert resp.headers["x-from"] == resp.headers["x-poolswitch-key-id"] == "b"
    assert upstream.key_ids() == ["a", "b"]


def test_rotation_walks_the_pool_before_reusing_a_key(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    for key in "abc":
        upstream.script(key, {"kind": "server_error"})
    proxy = make_proxy("abc", retry_attempts=5)
    with proxy.client() as client:
        resp = client.get("/v1/models")
    assert resp.status_code == 500 and resp.headers["x-poolswitch-attempts"] == "5"
    seen = upstream.key_ids()
    assert set(seen[:3]) == {"a", "b", "c"}  # every key once before any is reused
    assert len(seen) == 5


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("round_robin", list("abcabcabc")),
        ("quota_failover", list("aaaaaaaaa")),
        ("least_used", list("abcabcabc")),
    ],
)
def test_strategy_order_through_the_proxy(
    upstream: FakeUpstream, make_proxy: ProxyFactory, strategy: str, expected: list[str]
) -> None:
    proxy = make_proxy("abc", strategy=strategy)
    with proxy.client() as client:
        seen = [client.get("/v1/models").headers["x-poolswitch-key-id"] for _ in range(9)]
    assert seen == expected == upstream.key_ids()


def test_random_strategy_uses_every_key(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy("abc", strategy="random")
    with proxy.client() as client:
        seen = [client.get("/v1/models").headers["x-poolswitch-key-id"] for _ in range(60)]
    assert set(seen) == {"a", "b", "c"}
    assert all(seen.count(k) >= 8 for k in "abc")
