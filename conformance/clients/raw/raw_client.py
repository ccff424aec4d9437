"""The conformance client with no SDK: plain HTTP (http.client), so it checks the proxy alone.

Reads one JSON request per line on stdin, answers one JSON line per request on stdout
(conformance/README.md, "The client protocol"). Standard library only.
"""

from __future__ import annotations

import base64
import http.client
import json
import sys
import time
from typing import IO, Any
from urllib.parse import urlsplit


def failure(code: str | None, status: int | None = None, retry_after: Any = None) -> dict[str, Any]:
    return {"code": code, "status": status, "retry_after": retry_after}


def error_of(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
    """None for a 2xx; a proxy error only with x-poolswitch-error, else the upstream's."""
    code = headers.get("x-poolswitch-error")
    if 200 <= status < 300 or code is None:
        return None if 200 <= status < 300 else failure(None, status)
    try:
        retry_after = json.loads(body)["error"]["retry_after"]
    except (ValueError, KeyError, TypeError):
        retry_after = None
    if retry_after is None and headers.get("retry-after", "").isdigit():
        retry_after = int(headers["retry-after"])
    return failure(code, status, retry_after)


def read_events(response: http.client.HTTPResponse, started: float, events: list[Any]) -> None:
    """Server-sent events as each blank line arrives (multi-line data joined with "\\n").
    read1() and not readline(): readline() hides a chunked body that was cut short."""
    event, last_id, rest = "", None, b""
    data: list[str] = []
    while chunk := response.read1(65536):
        *lines, rest = (rest + chunk).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8").rstrip("\r")
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if not line and data:
                at = time.monotonic() - started
                event = event or "message"
                events.append({"event": event, "data": "\n".join(data), "id": last_id, "at": at})
            if not line:
                event, data = "", []
            elif name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                last_id = value


def call(request: dict[str, Any]) -> dict[str, Any]:
    kind, method, path = request["call"], request["method"], request["path"]  # GET /health, ...
    headers = dict(request.get("headers") or {})
    options = request.get("client") or {}  # max_retries and timeout: no SDK, nothing to do
    token = options.get("token") or request.get("token")
    if token:
        headers["x-poolswitch-token"] = token
    if options.get("pool") and kind in ("request", "stream"):
        headers["x-poolswitch-pool"] = options["pool"]
    body = None
    if "json" in request:
        body = json.dumps(request["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif "text" in request:
        body = request["text"].encode()
    elif "body_b64" in request:
        body = base64.b64decode(request["body_b64"])
    if kind == "stream":
        headers.setdefault("Accept", "text/event-stream")
    url = urlsplit(request["proxy_url"])
    timeout = options.get("timeout") or request["timeout"]
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
    started = time.monotonic()
    result: dict[str, Any] = {"status": None, "headers": {}, "error": None}
    if kind == "stream":
        result["events"] = []
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        answer = {name.lower(): value for name, value in response.getheaders()}
        result.update(status=response.status, headers=answer)
        if kind == "stream" and 200 <= response.status < 300:
            read_events(response, started, result["events"])
            return result
        data = response.read()
        result["body_b64"] = base64.b64encode(data).decode()  # the runner reads it
        result["error"] = error_of(response.status, answer, data)
    except TimeoutError:
        result["error"] = failure("timeout")
    except (OSError, http.client.HTTPException):
        result["error"] = failure("connection")
    finally:
        conn.close()
    return result


def run(stdin: IO[str], stdout: IO[str], stderr: IO[str]) -> int:
    for line in stdin:
        if not line.strip():
            continue
        request_id = None
        try:
            request = json.loads(line)
            request_id = request["id"]
            answer: dict[str, Any] = {"id": request_id, "result": call(request)}
        except Exception as exc:  # the runner reports it as a harness error
            print(f"raw client: {exc!r}", file=stderr)
            answer = {"id": request_id, "harness_error": f"{type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.stdin, sys.stdout, sys.stderr))
