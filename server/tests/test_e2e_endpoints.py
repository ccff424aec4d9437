"""The built-in endpoints: /health, /status, /metrics."""

from __future__ import annotations

import shutil
import subprocess

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import ProxyFactory

STATUS_KEY_FIELDS = {
    "id",
    "state",
    "cooldown_until",
    "reason",
    "total_requests",
    "errors",
    "failovers",
    "estimated_remaining_quota",
    "last_used_at",
    "successes",
    "cooldown_source",
}

STORAGE_OK = {"backend": "memory", "status": "ok", "reason": None, "since": None, "outages": 0}


def test_health_reports_counts_and_never_calls_upstream(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy("ab")
    with proxy.client() as client:
        assert client.get("/health").json() == {
            "status": "ok",
            "keys_available": 2,
            "keys_total": 2,
            "pools": [{"name": "default", "status": "ok", "keys_available": 2, "keys_total": 2}],
            "storage": STORAGE_OK,
        }
    assert upstream.attempts == []


def test_health_is_degraded_when_no_key_is_available(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "quota_exhausted"})
    proxy = make_proxy("a")
    with proxy.client() as client:
        client.get("/v1/models")
        resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "degraded",
        "keys_available": 0,
        "keys_total": 1,
        "pools": [{"name": "default", "status": "degraded", "keys_available": 0, "keys_total": 1}],
        "storage": STORAGE_OK,
    }


def test_status_schema(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    upstream.script("a", {"kind": "ok", "headers": {"x-ratelimit-remaining-requests": "77"}})
    proxy = make_proxy("ab", strategy="least_used")
    with proxy.client() as client:
        client.get("/v1/models")
        doc = client.get("/status").json()
    assert doc["strategy"] == "least_used"
    assert doc["storage"] == "memory"
    assert doc["upstream_base_url"] == upstream.url
    assert [k["id"] for k in doc["keys"]] == ["a", "b"]
    for key in doc["keys"]:
        assert set(key) == STATUS_KEY_FIELDS
    a = doc["keys"][0]
    assert (a["state"], a["total_requests"], a["estimated_remaining_quota"]) == ("available", 1, 77)


def test_other_methods_on_builtin_paths_are_proxied(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy("a")
    with proxy.client() as client:
        assert client.post("/health", json={}).headers["x-poolswitch-key-id"] == "a"
    assert [a.path for a in upstream.attempts] == ["/health"]


def test_metrics_names_labels_and_promtool(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "30"}})
    proxy = make_proxy("ab")
    with proxy.client() as client:
        client.post("/v1/chat/completions?user=someone", json={})
        client.get("/v1/models")
        resp = client.get("/metrics")
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    for line in (
        'poolswitch_requests_total{caller="-",method="POST",pool="default",status_class="2xx"} 1.0',
        'poolswitch_upstream_attempts_total{key_id="a",outcome="rate_limited",pool="default"} 1.0',
        'poolswitch_upstream_attempts_total{key_id="b",outcome="success",pool="default"} 2.0',
        'poolswitch_failovers_total{pool="default",reason="rate_limited"} 1.0',
        'poolswitch_key_state{key_id="a",pool="default",state="cooling_down"} 1.0',
        'poolswitch_key_state{key_id="b",pool="default",state="available"} 1.0',
        'poolswitch_keys_available{pool="default"} 1.0',
        'poolswitch_keys{pool="default"} 2.0',
    ):
        assert line in text, line
    assert "poolswitch_request_duration_seconds_bucket" in text
    assert "poolswitch_upstream_duration_seconds_bucket" in text
    assert "/v1/" not in text and "someone" not in text  # no paths in labels
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed (Debian package prometheus; nox installs it)"
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
