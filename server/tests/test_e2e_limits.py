"""The limits on what callers send, over raw sockets against the running proxy (protocol.py,
proxy.py): header size and count, receive deadlines, idle keep-alive, connection and in-flight
caps, the bound on buffered bodies, and a caller that leaves."""

from __future__ import annotations

import json
import logging
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import VALUES, ProxyFactory, RunningProxy, free_port


def connect(proxy: RunningProxy) -> socket.socket:
    host, port = proxy.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the proxy sends until it closes (or `timeout`), and when it closed."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return data, time.monotonic()
        if not chunk:
            return data, time.monotonic()
        data += chunk
    return data, float("inf")


def send_head_until_answered(
    sock: socket.socket, head_start: bytes, filler: bytes, total: int
) -> bytes:
    """Send a head of `total` bytes (or until the proxy answers); return the answer."""
    sock.sendall(head_start)
    sent = len(head_start)
    while sent < total:
        ready, _, _ = select.select([sock], [], [], 0)
        if ready:
            break
        try:
            sock.sendall(filler)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(filler)
    return read_until_closed(sock, 5)[0]


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def envelope(answer: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_huge_header_gets_431_and_is_read_only_up_to_the_limit(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy("a")
    before = rss_bytes()
    with connect(proxy) as sock:
        answer = send_head_until_answered(
            sock, b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ", b"a" * 65536, 64 << 20
        )
    status, headers, body = envelope(answer)
    assert status == 431
    assert headers["x-poolswitch-error"] == "headers_too_large"
    assert body["error"]["code"] == "headers_too_large"  # type: ignore[index]
    assert rss_bytes() - before < 24 << 20
    assert upstream.attempts == []


def test_hundred_thousand_headers_get_431(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy("a")
    with connect(proxy) as sock:
        answer = send_head_until_answered(
            sock, b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"x: 1\r\n" * 1000, 600_000
        )
    assert envelope(answer)[0] == 431
    assert upstream.attempts == []


def test_header_count_limit(upstream: FakeUpstream, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy("a", max_header_count=20)
    with proxy.client() as client:  # httpx sends 5 headers of its own
        ok = client.get("/v1/models", headers={f"x-h{i}": "1" for i in range(15)})
        assert ok.status_code == 200
        refused = client.get("/v1/models", headers={f"x-h{i}": "1" for i in range(16)})
    assert refused.status_code == 431
    assert refused.headers["x-poolswitch-error"] == "headers_too_large"
    assert len(upstream.attempts) == 1


def test_slow_loris_and_silent_connections_are_closed_after_header_timeout(
    make_proxy: ProxyFactory,
) -> None:
    proxy = make_proxy("a", header_timeout_seconds=1)
    with connect(proxy) as silent, connect(proxy) as loris:
        started = time.monotonic()
        loris.sendall(b"GET /v1/models HTTP/1.1\r\n")
        closed_at = float("inf")
        for _ in range(40):  # one header byte every 0.1 s: never a complete head
            try:
                loris.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
            if select.select([loris], [], [], 0.1)[0]:
                closed_at = read_until_closed(loris, 1)[1]
                break
        silent_closed = read_until_closed(silent, 3)[1]
    assert 0.9 < closed_at - started < 2.0
    assert 0.9 < silent_closed - started < 2.0


def test_a_stalled_body_closes_the_connection_and_nothing_goes_upstream(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy("a", body_timeout_seconds=1)
    with connect(proxy) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n")
        for _ in range(5):  # progress resets the deadline
            time.sleep(0.3)
            sock.sendall(b"{")
        answer, closed = read_until_closed(sock, 4)
    assert answer == b""
    assert 2.4 < closed - started < 3.5
    assert upstream.attempts == []


def test_idle_keep_alive_connections_are_closed(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy("a", keepalive_timeout_seconds=1)
    with connect(proxy) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer, closed = read_until_closed(sock, 4)
        answered = time.monotonic()
    assert answer.startswith(b"HTTP/1.1 200")
    assert closed < answered and closed != float("inf")


def test_connections_beyond_the_cap_are_closed_and_open_ones_keep_working(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy("a", max_connections=20)
    with proxy.client() as client:
        assert client.get("/v1/models").status_code == 200
        idle = [connect(proxy) for _ in range(30)]
        try:
            refused = 0
            for sock in idle:
                if select.select([sock], [], [], 0.05)[0]:
                    refused += read_until_closed(sock, 0.5)[1] != float("inf")
            assert refused == 11  # 1 keep-alive + 19 idle reach the cap of 20
            for _ in range(5):
                assert client.get("/v1/models").status_code == 200
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # once they are gone, new connections work
            try:
                if httpx.get(proxy.url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError("new connections still refused")


def in_threads(
    proxy: RunningProxy, count: int, path: str, body: bytes = b""
) -> list[threading.Thread]:
    def call() -> None:
        with proxy.client() as client:
            client.post(path, content=body)

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def wait_for_attempts(upstream: FakeUpstream, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(upstream.attempts) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(upstream.attempts) == count


def test_requests_beyond_max_in_flight_get_503_overloaded(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "ok", "delay": 1.0})
    proxy = make_proxy("a", max_in_flight_requests=2)
    threads = in_threads(proxy, 2, "/v1/slow")
    wait_for_attempts(upstream, 2)
    with proxy.client() as client:
        shed = client.get("/v1/models")
        assert client.get("/health").status_code == 200  # built-in endpoints are not shed
    for thread in threads:
        thread.join(timeout=10)
    assert shed.status_code == 503
    assert shed.headers["x-poolswitch-error"] == "overloaded"
    assert shed.headers["retry-after"] == "1"
    assert shed.headers["x-should-retry"] == "true"
    assert len(upstream.attempts) == 2
    with proxy.client() as client:
        assert client.get("/v1/models").status_code == 200  # the count went back down


def test_all_buffered_bodies_together_are_bounded(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "ok", "delay": 1.0}, {"kind": "ok"})
    proxy = make_proxy("a", max_buffered_body_bytes=1000, max_request_body_bytes=800)
    threads = in_threads(proxy, 1, "/v1/slow", b"x" * 600)
    wait_for_attempts(upstream, 1)
    with proxy.client() as client:
        over_total = client.post("/v1/chat", content=b"y" * 600)
        chunked = client.post("/v1/chat", content=iter([b"z" * 300, b"z" * 300]))
        over_one = client.post("/v1/chat", content=b"w" * 900)
        fits = client.post("/v1/chat", content=b"v" * 300)
    for thread in threads:
        thread.join(timeout=10)
    assert over_total.status_code == 503
    assert over_total.headers["x-poolswitch-error"] == "overloaded"
    assert over_total.headers["retry-after"] == "1"
    assert chunked.status_code == 503
    assert over_one.status_code == 413
    assert fits.status_code == 200
    assert len(upstream.attempts) == 2
    with proxy.client() as client:  # released when the first request ended
        assert client.post("/v1/chat", content=b"u" * 800).status_code == 200


class HangingUpstream:
    """Accepts connections, reads a request, answers nothing (or a stream head and one event),
    and records when each connection closes: the fake upstream does not tell that."""

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[float] = []
        self.closed: list[float] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(10)
        for _ in range(5):
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            for _ in range(100):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
                if b"\r\n\r\n" in data:
                    break
            self.requests.append(time.monotonic())
            if self.stream:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                    b'14\r\ndata: {"first": 1}\n\n\r\n'  # 20 bytes
                )
            try:
                for _ in range(1000):  # until the proxy closes (or 10 s of silence)
                    if not conn.recv(65536):
                        break
            except OSError:
                pass
            self.closed.append(time.monotonic())


@pytest.fixture(params=[False, True], ids=["waiting", "streaming"])
def hanging(request: pytest.FixtureRequest) -> Iterator[HangingUpstream]:
    fake = HangingUpstream(stream=request.param)
    yield fake
    fake.listener.close()


def test_a_caller_that_leaves_cancels_the_upstream_attempt(
    hanging: HangingUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    from conftest import make_config

    proxy = RunningProxy(make_config(hanging.url, "ab")).start()
    try:
        with caplog.at_level(logging.INFO), connect(proxy) as sock:
            sock.sendall(b"GET /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            time.sleep(0.3)
            sock.close()
            left = time.monotonic()
            deadline = left + 2
            while not hanging.closed and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(0.3)  # time for a second attempt, if one were to start
        with proxy.client() as client:
            keys = client.get("/status").json()["keys"]
            metrics = client.get("/metrics").text
    finally:
        proxy.stop()
    assert len(hanging.requests) == 1, "a second attempt started after the caller left"
    assert hanging.closed and hanging.closed[0] - left < 0.1
    assert all(key["errors"] == 0 and key["state"] == "available" for key in keys)
    assert (
        'poolswitch_requests_total{caller="-",method="GET",pool="default",status_class="4xx"} 1.0'
        in metrics
    )
    assert any(" 499 key=" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


def test_the_shutdown_drain_cuts_requests_without_a_traceback(
    hanging: HangingUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    from conftest import make_config

    proxy = RunningProxy(make_config(hanging.url, "a")).start()
    proxy.server.config.timeout_graceful_shutdown = 1
    with caplog.at_level(logging.INFO), connect(proxy) as sock:
        sock.sendall(b"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + 5
        while not hanging.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        proxy.stop()
        answer, closed = read_until_closed(sock, 5)
    assert closed != float("inf")
    if hanging.stream:
        assert answer.startswith(b"HTTP/1.1 200")
        assert not answer.endswith(b"0\r\n\r\n")  # cut, not passed off as complete
    else:
        status, headers, _ = envelope(answer)
        assert (status, headers["x-poolswitch-error"]) == (503, "overloaded")
    assert not any(r.exc_info for r in caplog.records)
    assert any("cut by the shutdown drain" in r.getMessage() for r in caplog.records)


def test_with_1024_file_descriptors_1100_idle_sockets_do_not_break_open_connections(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """The issue's reproduction: the proxy process limited to 1,024 descriptors."""
    port = free_port()
    keys = "".join(f"  - {{id: {i}, value: {VALUES[i]}}}\n" for i in "ab")
    config = tmp_path / "poolswitch.yaml"
    config.write_text(f"upstream_base_url: {upstream.url}\nkeys:\n{keys}")
    log = tmp_path / "proxy.log"

    limited = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)); "
        "os.execv(sys.executable, [sys.executable, '-m', 'poolswitch', *sys.argv[1:]])"
    )
    command = [sys.executable, "-c", limited, "start", "--config", str(config)]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=out
        )
    idle: list[socket.socket] = []
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=5) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and process.poll() is None, log.read_text()
                time.sleep(0.05)
            for _ in range(1100):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            for _ in range(20):
                assert client.get("/v1/models").status_code == 200
    finally:
        for sock in idle:
            sock.close()
        process.terminate()
        process.wait(timeout=40)
    text = log.read_text()
    # 1,024 less one upstream connection per request in flight (512) and FD_RESERVE (64)
    assert "max_connections 1000 lowered to 448: the file-descriptor limit is 1024" in text
    assert "refusing new connections" in text
    assert "Traceback" not in text and "Too many open files" not in text
