"""The embedded clients end to end over loopback, against the fake upstream: failover, cooldowns
and their return, escalation, confirming an invalid key, streams, strategies (as the proxy
picks keys), both clients."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from test_embedded_helpers import Clock, Either, keys, states

from poolswitch.embedded import AsyncPoolSwitchClient, PoolSwitchClient
from poolswitch.errors import ConfigError
from poolswitch_client import ProxyConnectionError, ProxyError, UpstreamError
from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import ProxyFactory

KINDS = ["sync", "async"]
CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def client(kind: str, upstream: FakeUpstream, ids: str = "ab", **options: Any) -> Either:
    return Either(kind, upstream_base_url=upstream.url, keys=keys(ids), **options)


@pytest.mark.parametrize("kind", KINDS)
def test_a_quota_exhausted_key_fails_over_to_a_healthy_one(
    kind: str, upstream: FakeUpstream
) -> None:
    upstream.script("a", {"kind": "quota_exhausted"})
    with client(kind, upstream, strategy="quota_failover") as c:
        resp = c.send("POST", CHAT, json=BODY)
        assert resp.status == 200 and resp.json()["object"] == "chat.completion"
        assert (resp.key_id, resp.attempts) == ("b", 2)
        assert upstream.key_ids() == ["a", "b"]
        assert states(c) == {"a": ("cooling_down", "quota_exhausted"), "b": ("available", None)}
        again = c.send("POST", CHAT, json=BODY)  # the parked key is not tried again
        assert (again.key_id, again.attempts) == ("b", 1)
    assert upstream.key_ids() == ["a", "b", "b"]


@pytest.mark.parametrize("kind", KINDS)
def test_plain_string_keys_get_positional_ids(kind: str, upstream: FakeUpstream) -> None:
    upstream.script("a", {"kind": "quota_exhausted"})
    values = [k["value"] for k in keys("ab")]
    with Either(kind, upstream_base_url=upstream.url, keys=values, strategy="quota_failover") as c:
        resp = c.send("GET", "/v1/models")
        assert (resp.key_id, resp.attempts) == ("key-2", 2)
        assert [k["id"] for k in c.status()["keys"]] == ["key-1", "key-2"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_rate_limited_key_cools_for_the_reset_then_returns(
    kind: str, upstream: FakeUpstream
) -> None:
    clock = Clock()
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "20"}}, {"kind": "ok"})
    with client(kind, upstream, strategy="quota_failover", clock=clock) as c:
        assert c.send("GET", "/v1/models").key_id == "b"
        key = c.status()["keys"][0]
        assert (key["state"], key["cooldown_source"]) == ("cooling_down", "retry-after")
        assert key["cooldown_until"] == clock.now + 20
        clock.advance(19)
        assert c.send("GET", "/v1/models").key_id == "b"
        clock.advance(2)
        assert c.send("GET", "/v1/models").key_id == "a"  # back, and first in priority
        assert states(c)["a"] == ("available", None)
    assert upstream.key_ids() == ["a", "b", "b", "a"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_key_that_fails_again_after_returning_cools_twice_as_long(
    kind: str, upstream: FakeUpstream
) -> None:
    clock = Clock()
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "10"}})
    with client(kind, upstream, strategy="quota_failover", clock=clock) as c:
        c.send("GET", "/v1/models")
        assert c.status()["keys"][0]["cooldown_until"] == clock.now + 10
        clock.advance(11)
        c.send("GET", "/v1/models")
        key = c.status()["keys"][0]
        assert key["cooldown_until"] == clock.now + 20
        assert key["cooldown_source"] == "retry-after, x2 (failed again after returning)"


@pytest.mark.parametrize("kind", KINDS)
def test_an_invalid_key_is_disabled_once_verify_path_confirms_it(
    kind: str, upstream: FakeUpstream
) -> None:
    upstream.script("a", {"kind": "invalid_key"})
    with client(kind, upstream, strategy="quota_failover", verify_path="/v1/models") as c:
        resp = c.send("POST", CHAT, json=BODY)
        assert (resp.key_id, resp.attempts) == ("b", 2)
        key = c.status()["keys"][0]
        assert (key["state"], key["reason"]) == ("disabled", "key_invalid")
        assert key["cooldown_source"] == "confirmed: verify_path"
    seen = [(a.key_id, a.method, a.path) for a in upstream.attempts]
    assert seen == [("a", "POST", CHAT), ("a", "GET", "/v1/models"), ("b", "POST", CHAT)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_401_for_a_path_the_keys_may_not_use_is_relayed_not_disabling(
    kind: str, upstream: FakeUpstream
) -> None:
    # the verification (GET /v1/models) succeeds: the key is good, the 401 is the request's
    upstream.script("a", {"kind": "invalid_key"}, {"kind": "ok"}, {"kind": "invalid_key"})
    with client(kind, upstream, strategy="quota_failover", verify_path="/v1/models") as c:
        with pytest.raises(UpstreamError) as caught:
            c.send("POST", "/v1/admin", json={})
        assert (caught.value.status, caught.value.key_id, caught.value.attempts) == (401, "a", 1)
        assert states(c)["a"] == ("available", None)


@pytest.mark.parametrize("kind", KINDS)
def test_an_error_as_a_streams_first_event_fails_over(kind: str, upstream: FakeUpstream) -> None:
    error = (
        '{"error": {"type": "insufficient_quota", "code": "insufficient_quota", "message": "x"}}'
    )
    upstream.script("a", {"kind": "sse", "events": [error]})
    upstream.script("b", {"kind": "sse"})
    with client(kind, upstream, strategy="quota_failover") as c:
        key_id, events = c.events("POST", CHAT, json={**BODY, "stream": True})
        assert key_id == "b"
        assert [e.data for e in events][-1] == "[DONE]" and len(events) == 4
        assert events[0].json()["choices"][0]["delta"]["content"] == "Hello"
        assert states(c)["a"] == ("cooling_down", "quota_exhausted")


@pytest.mark.parametrize("kind", KINDS)
def test_an_error_first_event_from_the_last_key_is_relayed_as_the_stream(
    kind: str, upstream: FakeUpstream
) -> None:
    error = '{"error": {"type": "server_error", "message": "boom"}}'
    upstream.script("a", {"kind": "sse", "events": [error]})
    with client(kind, upstream, "a") as c:
        key_id, events = c.events("POST", CHAT, json=BODY)
        assert key_id == "a" and events[0].json()["error"]["message"] == "boom"


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_cut_mid_way_raises_and_counts_against_the_key(
    kind: str, upstream: FakeUpstream
) -> None:
    upstream.script("a", {"kind": "sse", "cut": True, "interval": 0.01})
    with client(kind, upstream, "a") as c:
        with pytest.raises(ProxyConnectionError):
            c.events("POST", CHAT, json=BODY)
        key = c.status()["keys"][0]
        assert (key["successes"], key["errors"]) == (1, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_every_key_cooling_answers_no_available_keys(kind: str, upstream: FakeUpstream) -> None:
    for key in "ab":
        upstream.script(key, {"kind": "rate_limit", "headers": {"retry-after": "30"}})
    with client(kind, upstream) as c:
        with pytest.raises(UpstreamError) as relayed:  # the last upstream answer, as it was
            c.send("GET", "/v1/models")
        assert (relayed.value.status, relayed.value.attempts) == (429, 2)
        with pytest.raises(ProxyError) as caught:
            c.send("GET", "/v1/models")
    err = caught.value
    assert (err.code, err.status) == ("no_available_keys", 429)
    assert err.retry_after is not None and 29 <= err.retry_after <= 30
    assert err.response is not None and err.response.headers["x-should-retry"] == "true"
    assert len(upstream.attempts) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_queue_timeout_waits_for_a_key_to_return(kind: str, upstream: FakeUpstream) -> None:
    clock = Clock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    async def asleep(seconds: float) -> None:
        sleep(seconds)

    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "2"}}, {"kind": "ok"})
    options: dict[str, Any] = {"queue_timeout_seconds": 5, "clock": clock}
    options["sleep"] = sleep if kind == "sync" else asleep
    with client(kind, upstream, "a", **options) as c:
        with pytest.raises(UpstreamError):
            c.send("GET", "/v1/models")
        resp = c.send("GET", "/v1/models")
    assert resp.key_id == "a" and len(slept) == 1 and 2 <= slept[0] < 2.1


@pytest.mark.parametrize("strategy", ["round_robin", "least_used", "random", "quota_failover"])
def test_the_strategies_pick_keys_as_the_proxy_does(
    strategy: str, upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    weights = {"a": 3, "b": 1, "c": 2}
    weighted = [{**k, "weight": weights[k["id"]]} for k in keys("abc")]
    proxy = make_proxy(keys=weighted, strategy=strategy, app_options={"rng": random.Random(7)})
    with proxy.client() as http:
        for _ in range(12):
            assert http.get("/v1/models").status_code == 200
    by_proxy = upstream.key_ids()
    upstream.reset()
    for kind in KINDS:
        with Either(
            kind,
            upstream_base_url=upstream.url,
            keys=weighted,
            strategy=strategy,
            rng=random.Random(7),
        ) as c:
            for _ in range(12):
                c.send("GET", "/v1/models")
        assert upstream.key_ids() == by_proxy, kind
        upstream.reset()
    if strategy == "quota_failover":
        assert set(by_proxy) == {"a"}
    else:
        assert len(set(by_proxy)) >= 2


@pytest.mark.parametrize("kind", KINDS)
def test_the_callers_own_credentials_are_dropped_and_the_key_put_in(
    kind: str, upstream: FakeUpstream
) -> None:
    upstream.script("a", {"kind": "echo"})
    own = {"Authorization": "Bearer callers-own", "x-api-key": "callers-own", "X-Trace": "t1"}
    with client(kind, upstream, "a", headers={"x-poolswitch-pool": "p"}) as c:
        echoed = c.send("POST", "/v1/x?y=1", json={"a": 1}, headers=own).json()
    headers = dict(echoed["headers"])
    assert headers["authorization"] == "Bearer " + keys("a")[0]["value"]
    assert "x-api-key" not in headers and "x-poolswitch-pool" not in headers
    assert headers["x-trace"] == "t1" and echoed["query_string"] == "y=1"
    assert (echoed["method"], echoed["path"], echoed["body_length"]) == ("POST", "/v1/x", 7)


@pytest.mark.parametrize("kind", KINDS)
def test_the_remaining_quota_a_success_reports_is_recorded(
    kind: str, upstream: FakeUpstream
) -> None:
    upstream.script("a", {"kind": "ok", "headers": {"x-ratelimit-remaining-requests": "42"}})
    with client(kind, upstream, "a") as c:
        c.send("GET", "/v1/models")
        assert c.status()["keys"][0]["estimated_remaining_quota"] == 42


@pytest.mark.parametrize("kind", KINDS)
def test_a_redirect_is_relayed_not_followed(kind: str, upstream: FakeUpstream) -> None:
    moved = {"kind": "text", "status": 307, "headers": {"location": "http://127.0.0.1:9/x"}}
    upstream.script("a", moved)
    with client(kind, upstream, "a") as c:
        resp = c.send("GET", "/v1/models")
    assert (resp.status, resp.headers["location"]) == (307, "http://127.0.0.1:9/x")
    assert len(upstream.attempts) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_path_climbing_above_the_base_is_refused_as_the_proxy_does(
    kind: str, upstream: FakeUpstream
) -> None:
    with client(kind, upstream, "a") as c, pytest.raises(ProxyError) as caught:
        c.send("GET", "/v1/../../admin")
    assert (caught.value.code, caught.value.status) == ("bad_request", 400)
    assert upstream.attempts == []


def test_a_bad_option_raises_the_servers_config_error(upstream: FakeUpstream) -> None:
    secret = keys("a")[0]["value"]
    with pytest.raises(ConfigError) as caught:
        Either("sync", upstream_base_url=upstream.url, keys=[secret, secret], retry_attempts=0)
    assert caught.value.problems == (
        "keys[1].value: same value as keys[0]",
        "retry_attempts: must be between 1 and 100, got 0",
    )


def test_the_verbs_return_the_parsed_body_as_the_proxy_client(upstream: FakeUpstream) -> None:
    options: dict[str, Any] = {"upstream_base_url": upstream.url, "keys": keys("ab")}
    with PoolSwitchClient(**options) as c:
        answers = [
            c.get("/v1/models"),
            c.post(CHAT, json=BODY),
            c.put("/v1/x", content=b"x"),
            c.patch("/v1/x", json={}),
            c.delete("/v1/x"),
            c.request("GET", "v1/models", params={"limit": 1}),
        ]

    async def run() -> list[Any]:
        async with AsyncPoolSwitchClient(**options) as a:
            return [await a.get("/v1/models"), await a.post(CHAT, json=BODY)]

    answers += asyncio.run(run())
    assert all(answer["object"] == "chat.completion" for answer in answers)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "GET", "GET", "POST"]
    assert [a.method for a in upstream.attempts] == methods
    assert upstream.attempts[5].path == "/v1/models"
    assert upstream.attempts[5].query_string == "limit=1"
