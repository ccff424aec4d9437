"""Failure semantics through the running proxy: cooldowns sized by the provider, disabled keys
and the admin API, escalation, outage guard, queueing, stream commit point, redaction."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import KEYS, VALUES, ProxyFactory, RunningProxy, make_config

ADMIN = "admin-token-0123456789"
ANTHROPIC_OVERLOADED = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
}


def key_state(client: httpx.Client, key_id: str) -> dict[str, Any]:
    keys: dict[str, dict[str, Any]] = {k["id"]: k for k in client.get("/status").json()["keys"]}
    return keys[key_id]


def test_per_minute_rate_limit_cools_for_retry_after_only(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "2"}}, {"kind": "ok"})
    proxy = make_proxy("ab")
    with proxy.client() as client:
        assert client.get("/v1/models").headers["x-poolswitch-key-id"] == "b"
        parked = key_state(client, "a")
        assert parked["reason"] == "rate_limited" and parked["cooldown_source"] == "retry-after"
        assert parked["cooldown_until"] == pytest.approx(time.time() + 2, abs=0.5)
        started = time.monotonic()
        seen = []
        while time.monotonic() - started < 3.0:
            seen.append(
                (
                    time.monotonic() - started,
                    client.get("/v1/models").headers["x-poolswitch-key-id"],
                )
            )
            time.sleep(0.05)
    back = [t for t, key in seen if key == "a"]
    assert back, "key a never returned"
    assert 1.5 < back[0] < 2.5


def test_invalid_key_is_disabled_until_enabled_with_the_cli(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "invalid_key"})
    proxy = make_proxy("ab", admin_token=ADMIN)
    with proxy.client() as client:
        for _ in range(6):
            assert client.get("/v1/models").status_code == 200
        assert key_state(client, "a")["state"] == "disabled"
        assert upstream.key_ids().count("a") == 1
        denied = client.post("/poolswitch/admin/keys/a/enable")
        assert denied.status_code == 401 and denied.headers["x-poolswitch-error"] == "unauthorized"
        upstream.script("a", {"kind": "ok"})
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "poolswitch",
                "keys",
                "enable",
                "a",
                "--url",
                proxy.url,
                "--token",
                ADMIN,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout.strip() == "a: available"
        assert {client.get("/v1/models").headers["x-poolswitch-key-id"] for _ in range(4)} == {
            "a",
            "b",
        }
        listed = subprocess.run(
            [sys.executable, "-m", "poolswitch", "keys", "list", "--url", proxy.url],
            capture_output=True,
            text=True,
            timeout=30,
            env={"POOLSWITCH_ADMIN_TOKEN": ADMIN, "PATH": ""},
        )
        assert listed.returncode == 0 and "available" in listed.stdout
        disabled = client.post(
            "/poolswitch/admin/keys/b/disable", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert disabled.json()["state"] == "disabled"
        missing = client.post(
            "/poolswitch/admin/keys/zz/enable", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert missing.status_code == 404


def test_admin_api_is_off_without_a_token(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy("a")
    with proxy.client() as client:
        resp = client.post("/poolswitch/admin/keys/a/enable")
    assert resp.headers["x-poolswitch-key-id"] == "a"  # just another path, proxied


def test_failing_again_right_after_returning_cools_longer(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    limited = {"kind": "rate_limit", "headers": {"retry-after": "1"}}
    upstream.script("a", limited, limited, {"kind": "ok"})
    proxy = make_proxy("ab", strategy="quota_failover")
    with proxy.client() as client:
        client.get("/v1/models")
        time.sleep(1.1)
        client.get("/v1/models")  # a is back, fails the same way again
        a = key_state(client, "a")
        assert a["cooldown_until"] == pytest.approx(time.time() + 2, abs=0.5)
        assert "failed again" in a["cooldown_source"]
        time.sleep(2.1)
        assert client.get("/v1/models").headers["x-poolswitch-key-id"] == "a"


def test_provider_overload_never_parks_keys_and_recovery_is_automatic(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    overloaded = {"kind": "overloaded", "json": ANTHROPIC_OVERLOADED}
    for key in "abc":
        upstream.script(key, overloaded)
    proxy = make_proxy("abc", cooldown_seconds=3600)
    statuses: list[int] = []
    with proxy.client() as client:
        started = time.monotonic()
        while time.monotonic() - started < 30:
            statuses.append(client.get("/v1/models").status_code)
            time.sleep(0.1)
        degraded = client.get("/health").json()
        keys = client.get("/status").json()["keys"]
        for key in "abc":
            upstream.script(key, {"kind": "ok"})
        recovered = time.monotonic()
        while client.get("/v1/models").status_code != 200:
            assert time.monotonic() - recovered < 2, "no recovery within 2 s"
            time.sleep(0.05)
        healthy = client.get("/health").json()
    assert set(statuses) <= {529, 503}
    assert degraded["status"] == "degraded"
    assert all(k["state"] == "available" for k in keys), keys
    assert healthy["status"] == "ok"
    # while degraded, only probes reached the upstream
    assert len(upstream.attempts) < len(statuses) * 3 / 2


def test_stream_whose_first_event_is_an_error_fails_over(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    error = {"event": "error", "data": json.dumps(ANTHROPIC_OVERLOADED)}
    upstream.script("a", {"kind": "sse", "events": [error], "done": False})
    upstream.script("b", {"kind": "sse", "events": ["one", "two"], "interval": 0.01})
    proxy = make_proxy("ab")
    with proxy.client() as client, client.stream("POST", "/v1/messages", json={}) as resp:
        body = resp.read().decode()
    assert resp.status_code == 200 and resp.headers["x-poolswitch-key-id"] == "b"
    assert resp.headers["x-poolswitch-attempts"] == "2"
    assert body == "data: one\n\ndata: two\n\ndata: [DONE]\n\n"
    assert upstream.key_ids() == ["a", "b"]


def test_queue_waits_for_a_key_to_return(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "2"}}, {"kind": "ok"})
    proxy = make_proxy("a", queue_timeout_seconds=5)
    with proxy.client() as client:
        assert client.get("/v1/models").status_code == 429  # the pool's only key, relayed
        started = time.monotonic()
        resp = client.get("/v1/models")
        waited = time.monotonic() - started
    assert resp.status_code == 200 and resp.headers["x-poolswitch-key-id"] == "a"
    assert 1.0 < waited < 3.0


def test_queue_does_not_wait_past_its_timeout(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "30"}})
    proxy = make_proxy("a", queue_timeout_seconds=1)
    with proxy.client() as client:
        client.get("/v1/models")
        started = time.monotonic()
        resp = client.get("/v1/models")
    assert resp.status_code == 429 and time.monotonic() - started < 0.5
    assert 29 <= int(resp.headers["retry-after"]) <= 31


def test_key_values_in_relayed_error_bodies_are_replaced_by_ids(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    leak = {
        "error": {
            "message": f"Incorrect API key provided: {VALUES['a']}.",
            "code": "invalid_api_key",
        }
    }
    upstream.script("a", {"kind": "bad_request", "json": leak})
    proxy = make_proxy("a")
    with proxy.client() as client:
        resp = client.get("/v1/models")
    assert resp.status_code == 400
    assert VALUES["a"] not in resp.text
    assert resp.json()["error"]["message"] == "Incorrect API key provided: a."
    assert int(resp.headers["content-length"]) == len(resp.content)


def test_post_is_not_retried_after_a_read_timeout_unless_allowed(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "hang"})
    proxy = make_proxy("ab", request_timeout_seconds=0.5)
    with proxy.client() as client:
        post = client.post("/v1/chat/completions", json={})
        get = client.get("/v1/models")
    assert post.status_code == 504 and post.headers["x-poolswitch-attempts"] == "1"
    assert get.status_code == 200  # a GET is retried on the next key (b)


def test_retry_non_idempotent_allows_it(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    upstream.script("a", {"kind": "drop"})
    proxy = make_proxy("ab", retry_non_idempotent=True)
    with proxy.client() as client:
        resp = client.post("/v1/chat/completions", json={})
    assert resp.status_code == 200 and resp.headers["x-poolswitch-attempts"] == "2"


def test_on_status_rules_override_the_classifier(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script(
        "a", {"kind": "bad_request", "json": {"error": {"code": "quirk_busy"}}}, {"kind": "ok"}
    )
    rules = [{"status": 400, "match": "quirk_busy", "action": "cooldown 120"}]
    proxy = make_proxy("ab", on_status=rules)
    with proxy.client() as client:
        resp = client.get("/v1/models")
        a = key_state(client, "a")
    assert resp.status_code == 200 and resp.headers["x-poolswitch-key-id"] == "b"
    assert a["state"] == "cooling_down" and a["cooldown_source"] == "on_status[0]"


def test_gemini_key_in_query_parameter_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    with FakeUpstream(KEYS, auth_query_param="key") as upstream:
        upstream.script("a", {"kind": "echo"})
        config = make_config(
            upstream.url,
            "a",
            auth_query_param="key",
            auth_header_name="x-goog-api-key",
            auth_scheme=None,
        )
        proxy = RunningProxy(config).start()
        try:
            with proxy.client() as client:
                resp = client.get("/v1beta/models?key=caller-own&alt=json")
        finally:
            proxy.stop()
    seen = resp.json()
    assert resp.status_code == 200
    assert seen["query_string"] == f"alt=json&key={VALUES['a']}"
    assert "x-goog-api-key" not in {name for name, _ in seen["headers"]}
    logged = "\n".join(  # the proxy's own log lines (the test client's and fake's are not ours)
        r.getMessage() for r in caplog.records if r.name.startswith(("poolswitch", "uvicorn"))
    )
    assert VALUES["a"] not in logged and "caller-own" not in logged


def test_attempt_timeout_lets_a_get_fail_over_within_the_request_timeout(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "hang"})
    proxy = make_proxy("ab", attempt_timeout_seconds=0.3, request_timeout_seconds=5)
    with proxy.client() as client:
        started = time.monotonic()
        resp = client.get("/v1/models")
        elapsed = time.monotonic() - started
    assert resp.status_code == 200 and resp.headers["x-poolswitch-key-id"] == "b"
    assert resp.headers["x-poolswitch-attempts"] == "2"
    assert 0.3 <= elapsed < 1.5
