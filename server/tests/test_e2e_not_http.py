"""Bytes that are not HTTP, and CONNECT: a JSON 400 in the wire contract's envelope, the
connection closed, nothing (more) sent upstream, no traceback (protocol.py)."""

from __future__ import annotations

import logging
import time

import pytest
from test_e2e_limits import HangingUpstream, connect, envelope, read_until_closed

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import ProxyFactory, RunningProxy, make_config


def test_garbage_gets_a_json_400_and_the_connection_closes(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy("a")
    with connect(proxy) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        answer, closed = read_until_closed(sock, 5)
    status, headers, body = envelope(answer)
    assert status == 400 and headers["x-poolswitch-error"] == "bad_request"
    assert body["error"]["code"] == "bad_request"  # type: ignore[index]
    assert closed < float("inf")
    assert upstream.attempts == []


def test_connect_is_refused_and_opens_no_tunnel(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy("a")
    for target in (b"/v1/models", b"api.openai.com:443"):
        with connect(proxy) as sock:
            sock.sendall(b"CONNECT " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nhello")
            answer, closed = read_until_closed(sock, 5)
        status, headers, body = envelope(answer)
        assert status == 400 and headers["x-poolswitch-error"] == "bad_request"
        assert "CONNECT" in body["error"]["message"]  # type: ignore[index]
        assert closed < float("inf")  # closed by the proxy, not left open as a tunnel
    assert upstream.attempts == []


@pytest.fixture
def hanging() -> HangingUpstream:
    return HangingUpstream(stream=False)


def test_garbage_after_a_request_in_flight_cancels_it_without_a_traceback(
    hanging: HangingUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the socket fuzz: uvicorn answered the garbage and closed the connection while
    the first request was still at the upstream; relaying its answer then raised."""
    proxy = RunningProxy(make_config(hanging.url, "ab")).start()
    try:
        with caplog.at_level(logging.INFO), connect(proxy) as sock:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            deadline = time.monotonic() + 5
            while not hanging.requests and time.monotonic() < deadline:
                time.sleep(0.005)
            sock.sendall(b"PATCH \x00\x01 nonsense\r\n\r\n")
            answer, _ = read_until_closed(sock, 5)
            deadline = time.monotonic() + 2
            while not hanging.closed and time.monotonic() < deadline:
                time.sleep(0.005)
    finally:
        proxy.stop()
        hanging.listener.close()
    status, headers, _ = envelope(answer)
    assert status == 400 and headers["x-poolswitch-error"] == "bad_request"
    assert len(hanging.requests) == 1 and hanging.closed  # the attempt was dropped
    assert any(" 499 key=" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info or r.levelno >= logging.ERROR for r in caplog.records)


def test_a_431_behind_a_request_in_flight_cancels_it_without_a_traceback(
    upstream: FakeUpstream, make_proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the socket fuzz: the 431 half-closes the connection (write_eof) while the first
    request is at the upstream; its answer, arriving a moment later, could not be written."""
    upstream.script("a", {"kind": "ok", "delay": 0.3})
    proxy = make_proxy("a")
    with caplog.at_level(logging.INFO), connect(proxy) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + 5
        while not upstream.attempts and time.monotonic() < deadline:
            time.sleep(0.005)
        sock.sendall(b"GET /v1/" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
        answer, _ = read_until_closed(sock, 5)
        time.sleep(0.5)  # the first request's upstream answer has come by now
    status, headers, _ = envelope(answer)
    assert status == 431 and headers["x-poolswitch-error"] == "headers_too_large"
    assert any(" 499 key=" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info or r.levelno >= logging.ERROR for r in caplog.records)
