"""logmask: credential headers, auth query parameters and key values never reach a log line;
checked on records and on `poolswitch start --log-level debug` over loopback."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from poolswitch.logmask import LogMask, install
from poolswitch.redact import Redactor
from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import VALUES, free_port

MASK = LogMask(["X-Custom-Auth"], ["k"], Redactor([("sk-pool-SECRET-1", "a")]))


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("< authorization: Bearer CALLER", "< authorization: ***"),
        ("< X-Api-Key: CALLER", "< X-Api-Key: ***"),
        ("x-goog-api-key=CALLER", "x-goog-api-key=***"),
        ("(b'authorization', b'Bearer CALLER')", "(b'authorization', b'***')"),
        ("{'x-poolswitch-token': 'CALLER', 'ok': 1}", "{'x-poolswitch-token': '***', 'ok': 1}"),
        ('{"x-custom-auth": "CALLER"}', '{"x-custom-auth": "***"}'),
        ("cookie: a=CALLER; b=CALLER", "cookie: ***"),
        ('"WebSocket /v1/x?key=CALLER&page=2" 403', '"WebSocket /v1/x?key=***&page=2" 403'),
        ("GET /v1/x?page=2&api_key=CALLER", "GET /v1/x?page=2&api_key=***"),
        ("GET /v1/x?k=CALLER", "GET /v1/x?k=***"),
        ("upstream said sk-pool-SECRET-1", "upstream said a"),
        ("POST /v1/chat/completions 200 key=a attempts=1 3.2ms", None),
        ("a plain line", None),
    ],
)
def test_mask_table(line: str, masked: str | None) -> None:
    assert MASK.mask(line) == (line if masked is None else masked)


def test_filter_masks_the_rendered_message_and_the_traceback() -> None:
    logger = logging.getLogger("test_logmask.records")
    handler = _Keep()
    records = handler.records
    logger.addHandler(handler)
    logger.propagate = False
    install(MASK, logger)
    try:
        logger.warning("< %s: %s", "authorization", "Bearer CALLER")
        try:
            raise ValueError("bad url https://x/v1?key=CALLER sk-pool-SECRET-1")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(f"{r.getMessage()} {r.exc_text}" for r in records)
    assert "CALLER" not in text and "SECRET" not in text
    assert "< authorization: ***" in text and "?key=***" in text
    assert len(records) == 2


def test_debug_log_of_a_running_proxy_shows_no_credential(tmp_path: Path) -> None:
    """`poolswitch start --log-level debug`: plain requests, a failing upstream, and a websocket
    upgrade carrying authorization and x-api-key (the websockets library logs every header)."""
    secrets = ("CALLER-AUTH-TOKEN", "CALLER-XAPI-KEY", "CALLER-QUERY-KEY", *VALUES.values())
    with FakeUpstream({VALUES["a"]: "a"}) as upstream:
        upstream.script("a", {"kind": "ok"}, {"kind": "invalid_key"})
        config = tmp_path / "poolswitch.yaml"
        config.write_text(
            f"upstream_base_url: {upstream.url}\nkeys:\n  - {{id: a, value: {VALUES['a']}}}\n"
        )
        port = free_port()
        log = tmp_path / "proxy.log"
        command = [sys.executable, "-m", "poolswitch", "start", "--config", str(config)]
        with log.open("w") as out:
            process = subprocess.Popen(
                [*command, "--port", str(port), "--log-level", "debug"],
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, process)
            headers = {"Authorization": "Bearer CALLER-AUTH-TOKEN", "x-api-key": "CALLER-XAPI-KEY"}
            with httpx.Client(base_url=url, timeout=10) as client:
                client.post("/v1/chat/completions?key=CALLER-QUERY-KEY", json={}, headers=headers)
                client.post("/v1/chat/completions", json={}, headers=headers)
            answer = _websocket_upgrade(port)
        finally:
            process.terminate()
            process.wait(timeout=40)
    text = log.read_text()
    assert answer.startswith(b"HTTP/1.1 ")
    assert "< authorization: ***" in text  # the websockets library's header dump, masked
    assert "x-api-key: ***" in text
    for secret in secrets:
        assert secret not in text


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("proxy did not start")


def _websocket_upgrade(port: int) -> bytes:
    request = (
        b"GET /v1/realtime?key=CALLER-QUERY-KEY HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Authorization: Bearer CALLER-AUTH-TOKEN\r\nx-api-key: CALLER-XAPI-KEY\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        for _ in range(100):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                break
    return data
