"""The Python client programs' run(): one JSON line out per line in, errors as data."""

from __future__ import annotations

import importlib.util
import io
import json
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CLIENTS = Path(__file__).resolve().parent.parent / "clients"


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def programs() -> list[Any]:
    found: list[Any] = [pytest.param(CLIENTS / "raw" / "raw_client.py", id="raw")]
    found.append(pytest.param(CLIENTS / "python" / "python_client.py", id="python"))
    return found


def answers(path: Path, *requests: Any) -> list[dict[str, Any]]:
    if path.parent.name == "python":
        pytest.importorskip("poolswitch_client")
    module = load(f"client_{path.parent.name}", path)
    stdin = io.StringIO(
        "".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in requests)
    )
    stdout, stderr = io.StringIO(), io.StringIO()
    assert module.run(stdin, stdout, stderr) == 0
    return [json.loads(line) for line in stdout.getvalue().splitlines()]


@pytest.fixture
def dead_url() -> Any:
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("path", programs())
def test_an_unreachable_proxy_is_a_connection_error(path: Path, dead_url: str) -> None:
    request = {
        "id": "r1",
        "proxy_url": dead_url,
        "call": "request",
        "method": "GET",
        "path": "/v1/models",
        "headers": {},
        "timeout": 5,
    }
    health = {
        "id": "r2",
        "proxy_url": dead_url,
        "call": "health",
        "method": "GET",
        "path": "/health",
        "timeout": 5,
    }
    [first, second] = answers(path, request, health)
    assert first == {
        "id": "r1",
        "result": {
            "status": None,
            "headers": {},
            "error": {"code": "connection", "status": None, "retry_after": None},
        },
    }
    assert second["id"] == "r2" and second["result"]["error"]["code"] == "connection"


@pytest.mark.parametrize("path", programs())
def test_a_bad_line_is_a_harness_error_and_the_next_still_runs(path: Path, dead_url: str) -> None:
    [bad, missing, good] = answers(
        path,
        "not json\n",
        {"id": "x"},
        {
            "id": "y",
            "proxy_url": dead_url,
            "call": "metrics",
            "method": "GET",
            "path": "/metrics",
            "timeout": 5,
        },
    )
    assert bad["id"] is None and "harness_error" in bad
    assert missing["id"] == "x" and "harness_error" in missing
    assert good["result"]["error"]["code"] == "connection"


@pytest.fixture
def recording_url() -> Any:
    """A loopback server answering `{}` to everything; yields (url, headers seen per request)."""
    import http.server
    import threading

    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = b'{"status": "ok", "keys": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("path", programs())
def test_the_token_goes_out_as_x_poolswitch_token(
    path: Path, recording_url: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = recording_url
    base = {"proxy_url": url, "method": "GET", "headers": {}, "timeout": 5}
    [with_token, status, without] = answers(
        path,
        {**base, "id": "r1", "call": "request", "path": "/v1/models", "token": "tok-1"},
        {**base, "id": "r2", "call": "status", "path": "/status", "token": "tok-1"},
        {**base, "id": "r3", "call": "request", "path": "/v1/models"},
    )
    assert [a["result"]["error"] for a in (with_token, status, without)] == [None] * 3
    assert [h.get("x-poolswitch-token") for h in seen] == ["tok-1", "tok-1", None]


@pytest.mark.parametrize("path", programs()[:1])  # raw; the SDK clients' own tests cover theirs
def test_client_options_pool_and_token_become_headers(
    path: Path, recording_url: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = recording_url
    base = {"proxy_url": url, "method": "GET", "headers": {}, "timeout": 5}
    options = {"pool": "openai", "token": "tok-2", "max_retries": 2, "timeout": 3}
    [request, status] = answers(
        path,
        {
            **base,
            "id": "r1",
            "call": "request",
            "path": "/v1/models",
            "token": "t",
            "client": options,
        },
        {**base, "id": "r2", "call": "status", "path": "/status", "client": options},
    )
    assert [a["result"]["error"] for a in (request, status)] == [None] * 2
    assert [h.get("x-poolswitch-pool") for h in seen] == ["openai", None]
    assert [h.get("x-poolswitch-token") for h in seen] == ["tok-2", "tok-2"]
