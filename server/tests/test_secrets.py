"""A key's value never shows: not in a log line, /status, /metrics, an error body or a repr."""

from __future__ import annotations

import logging

import pytest

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import KEYS, ProxyFactory


def test_no_key_value_anywhere_after_a_full_scenario(
    upstream: FakeUpstream, make_proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream.script(
        "a", {"kind": "server_error"}, {"kind": "rate_limit", "headers": {"retry-after": "30"}}
    )
    upstream.script("b", {"kind": "ok"}, {"kind": "invalid_key"})  # disabled on its 2nd path
    upstream.script("c", {"kind": "sse"}, {"kind": "drop"}, {"kind": "quota_exhausted"})
    proxy = make_proxy("abc")
    seen: list[str] = []
    with proxy.client() as client:
        for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/x", "/v1/y"):
            resp = client.post(
                path, json={"q": 1}, headers={"Authorization": "Bearer caller-own-7f3a"}
            )
            seen.append(resp.text)
            seen.extend(f"{k}: {v}" for k, v in resp.headers.items())
        for path in ("/status", "/metrics", "/health"):
            seen.append(client.get(path).text)
        seen.append(client.get("/../escape").text)
    assert '"no_available_keys"' in seen[-5] or any("no_available_keys" in s for s in seen)
    seen.extend(record.getMessage() for record in caplog.records)
    seen.extend(str(record.args) for record in caplog.records)
    seen.append(repr(proxy.app.pool.keys))
    seen.append(repr(proxy.app.config))
    everything = "\n".join(seen)
    assert "poolswitch.access" in {r.name for r in caplog.records}
    for value in KEYS:
        assert value not in everything
        assert "SECRET" not in everything
    assert "caller-own-7f3a" not in "\n".join(r.getMessage() for r in caplog.records)
