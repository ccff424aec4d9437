"""The conformance client for the Python SDK (poolswitch_client): every call through its methods.

Reads one JSON request per line on stdin, answers one JSON line per request on stdout
(conformance/README.md, "The client protocol"). Uses only the SDK, json and stdio. One SDK client
per distinct `client` option set (max_retries default 0: the suite's retries are off). A relayed
upstream non-2xx, raised by `send`, is reported with its status, headers and body, and the error
`{"code": null, "status"}`, exactly as the raw client reports it.

A line with `embedded` is for the embedded client (`--sdk embedded-python`): the same calls go
through `poolswitch.embedded.PoolSwitchClient`, built from the line's pool settings (they are its
options, same spelling) once per case; its methods, answers and errors are the proxy client's.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from typing import IO, Any

from poolswitch_client import (
    PoolSwitchClient,
    ProxyConnectionError,
    ProxyError,
    ProxyResponse,
    ProxyTimeoutError,
    UpstreamError,
)

Client = Any  # PoolSwitchClient, or the embedded one (the same methods)
clients: dict[tuple[Any, ...], Client] = {}


def embedded_for(embedded: dict[str, Any]) -> Client:
    """The embedded client of a case: built on its first line, kept for the rest of it; the
    previous case's is closed."""
    key = ("embedded", embedded["id"])
    if key not in clients:
        from poolswitch.embedded import PoolSwitchClient as EmbeddedClient

        for old in [k for k in clients if k[0] == "embedded"]:
            clients.pop(old).close()
        clients[key] = EmbeddedClient(**embedded["settings"])
    return clients[key]


def client_for(request: dict[str, Any]) -> Client:
    if "embedded" in request:
        return embedded_for(request["embedded"])
    options = request.get("client") or {}
    key = (
        request["proxy_url"],
        options.get("token", request.get("token")),
        options.get("pool"),
        options.get("max_retries", 0),
        options.get("timeout", request["timeout"]),
    )
    if key not in clients:
        url, token, pool, retries, timeout = key
        clients[key] = PoolSwitchClient(
            url, token=token, pool=pool, max_retries=retries, timeout=timeout
        )
    return clients[key]


def answer_of(response: ProxyResponse) -> dict[str, Any]:
    """Status, headers and body of a whole answer (the body as received: the runner reads it)."""
    body = base64.b64encode(response.content).decode()
    headers = dict(response.headers.items())
    return {"status": response.status, "headers": headers, "body_b64": body, "error": None}


def failure(code: str | None, status: int | None = None, retry_after: Any = None) -> dict[str, Any]:
    return {"code": code, "status": status, "retry_after": retry_after}


def call(request: dict[str, Any]) -> dict[str, Any]:
    client, kind = client_for(request), request["call"]
    options: dict[str, Any] = {"headers": request.get("headers") or {}}
    if "json" in request:
        options["json"] = request["json"]
    elif "text" in request:
        options["content"] = request["text"]
    elif "body_b64" in request:
        options["content"] = base64.b64decode(request["body_b64"])
    if "embedded" in request and kind in ("request", "stream"):  # the call's own deadline
        options["timeout"] = (request.get("client") or {}).get("timeout", request["timeout"])
    events: list[dict[str, Any]] = []
    result: dict[str, Any] = {"status": None, "headers": {}, "error": None}
    started = time.monotonic()
    try:
        if kind in ("health", "status"):
            document = client.health() if kind == "health" else client.status()
            return {"status": 200, "headers": {}, "json": document, "error": None}
        if kind == "metrics":
            return {"status": 200, "headers": {}, "text": client.metrics(), "error": None}
        if kind == "request":
            return answer_of(client.send(request["method"], request["path"], **options))
        result["events"] = events
        with client.stream(request["method"], request["path"], **options) as stream:
            result.update(status=stream.status, headers=dict(stream.headers.items()))
            for event in stream:
                at = time.monotonic() - started
                events.append({"event": event.event, "data": event.data, "id": event.id, "at": at})
        return result
    except ProxyError as err:
        answer = answer_of(err.response) if err.response is not None else {}
        return {**result, **answer, "error": failure(err.code, err.status, err.retry_after)}
    except UpstreamError as err:  # send raises it: report the answer, as the raw client does
        answer = answer_of(err.response) if err.response is not None else {}
        return {**result, **answer, "error": failure(None, err.status)}
    except ProxyTimeoutError:
        return {**result, "error": failure("timeout")}
    except ProxyConnectionError:
        return {**result, "error": failure("connection")}


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
            print(f"python client: {exc!r}", file=stderr)
            answer = {"id": request_id, "harness_error": f"{type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
    for client in clients.values():
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.stdin, sys.stdout, sys.stderr))
