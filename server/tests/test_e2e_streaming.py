"""SSE and other streams are relayed as they arrive, never buffered."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import ProxyFactory

EVENTS = [json.dumps({"i": i, "text": "héllo"}) for i in range(20)]


def test_first_event_arrives_while_the_stream_is_still_going(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "sse", "events": EVENTS, "interval": 0.05})
    proxy = make_proxy("a")
    arrivals: list[float] = []
    data: list[str] = []
    with (
        proxy.client() as client,
        client.stream("POST", "/v1/chat/completions", json={"stream": True}) as resp,
    ):
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-poolswitch-key-id"] == "a"
        for line in resp.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
                data.append(line.removeprefix("data: "))
    sent = upstream.attempts[0].at  # the upstream writes its first event on arrival
    assert arrivals[0] - sent < 0.1, "first event was held back"
    assert arrivals[-1] - arrivals[0] > 0.9, "stream was buffered"
    assert data == [*EVENTS, "[DONE]"]


def test_stream_cut_by_upstream_ends_the_callers_stream_abruptly(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    cut = {"kind": "sse", "events": EVENTS[:3], "interval": 0.01, "cut": True, "done": False}
    upstream.script("a", cut, {"kind": "ok"})
    proxy = make_proxy("a")
    with proxy.client() as client:
        with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", "/s") as resp:
            for _ in resp.iter_lines():
                pass
        key = client.get("/status").json()["keys"][0]
        assert client.get("/v1/models").status_code == 200  # the proxy carries on
    assert key["errors"] == 1


def test_caller_leaving_mid_stream_is_handled(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "sse", "events": EVENTS, "interval": 0.05}, {"kind": "ok"})
    proxy = make_proxy("a")
    with proxy.client() as client:
        with client.stream("GET", "/s") as resp:
            next(resp.iter_lines())
        time.sleep(0.2)
        assert client.get("/v1/models").status_code == 200
