"""Small wire facts through the running proxy: UTF-8 header values byte for byte, the
upstream's Connection header honoured, a stream cut by the upstream logged once as such; and
a request never sent twice by the upstream client."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

from poolswitch.errors import TransportError
from poolswitch.forwarder import Forwarder
from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import ProxyFactory


def test_utf8_header_values_arrive_byte_for_byte(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy("a")
    with proxy.client() as client:
        resp = client.get("/v1/models", headers={b"x-note": "café ☕".encode()})
        bad = client.get("/v1/models", headers={b"x-note": b"caf\xe9"})  # Latin-1, not UTF-8
    assert resp.status_code == 200
    # the fake decodes what arrived as UTF-8: a double encoding would read "cafÃ©"
    assert dict(upstream.attempts[0].headers)["x-note"] == "café ☕"
    assert bad.status_code == 400 and bad.headers["x-poolswitch-error"] == "bad_request"
    assert "x-note" in bad.json()["error"]["message"]
    assert len(upstream.attempts) == 1  # never sent changed


def test_response_headers_named_in_connection_are_dropped(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    hop = {"Connection": "keep-alive, X-Hop-Secret", "X-Hop-Secret": "1", "X-Kept": "2"}
    upstream.script("a", {"kind": "ok", "headers": hop})
    proxy = make_proxy("a")
    with proxy.client() as client:
        resp = client.get("/v1/models")
    assert resp.status_code == 200
    assert resp.headers["x-kept"] == "2"
    assert "x-hop-secret" not in resp.headers


def test_a_stream_cut_by_the_upstream_is_one_warning_and_logged_incomplete(
    upstream: FakeUpstream, make_proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    events = [f'{{"i": {i}}}' for i in range(3)]
    upstream.script("a", {"kind": "sse", "events": events, "interval": 0.01, "cut": True})
    proxy = make_proxy("a")
    with proxy.client() as client:
        with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", "/s") as resp:
            assert resp.status_code == 200
            for _ in resp.iter_lines():
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            access = [r.getMessage() for r in caplog.records if r.name == "poolswitch.access"]
            if access:
                break
            time.sleep(0.02)
        assert client.get("/health").status_code == 200  # the server is past that request
    assert access and access[0].startswith("GET /s 200 incomplete key=a")
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in loud] == ["poolswitch.proxy"], [r.getMessage() for r in loud]
    assert "mid-stream" in loud[0].getMessage()


def test_uvicorn_still_reports_an_uncompleted_response_in_the_words_we_filter() -> None:
    """cli._not_a_cut_stream drops uvicorn's error by its message: fail if the words change."""
    import inspect

    from uvicorn.protocols.http import httptools_impl

    from poolswitch.cli import UNCOMPLETED

    assert UNCOMPLETED in inspect.getsource(httptools_impl.RequestResponseCycle.run_asgi)


# -- the forwarder never re-sends a request ----------------------------------------------------


async def _serve_then_drop() -> tuple[asyncio.Server, list[bytes]]:
    """A server that answers the first request on a connection and closes the connection on
    any later one without answering: what a keep-alive race looks like to a client."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                seen.append(head.split(b"\r\n", 1)[0])
                if served:
                    break
                served += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


async def _twice() -> tuple[str, list[bytes]]:
    server, seen = await _serve_then_drop()
    port = server.sockets[0].getsockname()[1]
    forwarder = Forwarder(f"http://127.0.0.1:{port}", connect_timeout=5, read_timeout=5)
    await forwarder.open()
    try:
        first = await forwarder.send("GET", "/one", [], b"")
        assert await first.read(10) == (b"ok", True)
        first.release()  # back to the pool: /two goes on the same connection
        try:
            await forwarder.send("GET", "/two", [], b"")
            outcome = "answered"
        except TransportError:
            outcome = "failed"
    finally:
        await forwarder.close()
        server.close()
        await server.wait_closed()
    return outcome, seen


def test_a_request_on_a_dropped_keep_alive_connection_is_not_sent_again() -> None:
    """Re-sending is the retry policy's decision (another key, counted as an attempt), never
    the upstream client's: a keep-alive connection closed under a request is an error."""
    outcome, seen = asyncio.run(_twice())
    assert seen == [b"GET /one HTTP/1.1", b"GET /two HTTP/1.1"]
    assert outcome == "failed"
