"""A scriptable fake upstream API for PoolSwitch tests.

The fake knows a pool of API keys (key value -> key id), identifies the key of
every request, records the request as an `Attempt`, and answers with the next
behaviour scripted for that key (the last scripted behaviour repeats forever;
an unscripted key answers ``ok``). ``mirror`` answers with the request's own body
and Content-Type, byte for byte, so a test can check what arrived without the
request's headers (which carry the key) coming back. The behaviours are
`poolswitch_testing.behaviours`. Use it in-process (`FakeUpstream`), from
another thread (`start_in_thread` / context manager), or as a separate process
(`python -m poolswitch_testing.fake_upstream --keys ...`) driven by the HTTP control
API under ``/__fake/``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import signal
import ssl
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, final
from urllib.parse import parse_qsl

from aiohttp import web

from poolswitch_testing.behaviours import (
    BLOB_DEFAULT,
    MAX_WAIT,
    BehaviourError,
    blob_bytes,
    validate_behaviour,
)

__all__ = [
    "Attempt",
    "BehaviourError",
    "FakeUpstream",
    "blob_bytes",
    "main",
    "validate_behaviour",
]

BLOB_PIECE = 64 * 1024
CONTROL_PREFIX = "/__fake/"
START_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 2.0


def _openai_error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


_RATE_LIMIT = (
    "Rate limit reached for gpt-4o-mini in organization org-fake on requests per min"
    " (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s."
)
_QUOTA = "You exceeded your current quota, please check your plan and billing details."
_ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "rate_limit": (429, _openai_error(_RATE_LIMIT, "requests", "rate_limit_exceeded")),
    "quota_exhausted": (
        429,
        _openai_error(_QUOTA, "insufficient_quota", "insufficient_quota"),
    ),
    "invalid_key": (
        401,
        _openai_error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    ),
    "server_error": (
        500,
        {"error": {"message": "The server had an error", "type": "server_error"}},
    ),
    "overloaded": (
        529,
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
        },
    ),
    "bad_request": (
        400,
        _openai_error(
            "Invalid request: 'messages' is a required property.",
            "invalid_request_error",
            None,
        ),
    ),
}


def _chat_completion(n: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake{n:06d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! This is a canned answer from the PoolSwitch fake upstream.",
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 15,
            "total_tokens": 27,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake0001",
    }


def _default_events() -> list[str]:
    def chunk(delta: dict[str, Any], finish: str | None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = {
            "id": "chatcmpl-fakestream",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [choice],
        }
        return json.dumps(body, separators=(",", ":"))

    return [
        chunk({"role": "assistant", "content": "Hello"}, None),
        chunk({"content": " world"}, None),
        chunk({}, "stop"),
    ]


@dataclass(frozen=True)
class Attempt:
    """One request as the fake received it."""

    key_id: str | None
    method: str
    path: str  # raw, undecoded
    query_string: str  # raw, undecoded, without the leading "?"
    headers: tuple[tuple[str, str], ...]  # received order, names lower-cased
    body_sha256: str
    body_length: int
    at: float  # time.monotonic() when the request arrived

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "method": self.method,
            "path": self.path,
            "query_string": self.query_string,
            "headers": [[name, value] for name, value in self.headers],
            "body_sha256": self.body_sha256,
            "body_length": self.body_length,
            "at": self.at,
        }


def _error_response(status: int, message: str) -> web.Response:
    body = {"error": {"type": "fake_upstream", "message": message}}
    return web.json_response(body, status=status)


def _sse_frame(event: str | Mapping[str, str]) -> bytes:
    lines: list[str] = []
    if isinstance(event, str):
        data = event
    else:
        data = event["data"]
        if "event" in event:
            lines.append(f"event: {event['event']}")
        if "id" in event:
            lines.append(f"id: {event['id']}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


@final
class FakeUpstream:
    """A scriptable fake upstream; see the module docstring."""

    def __init__(
        self,
        keys: Mapping[str, str],
        *,
        auth_header: str = "authorization",
        auth_scheme: str | None = "Bearer",
        auth_query_param: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not all(isinstance(k, str) and k and isinstance(i, str) for k, i in keys.items()):
            raise TypeError("keys must map non-empty key values (str) to key ids (str)")
        self._keys = dict(keys)
        self._key_ids = frozenset(self._keys.values())
        self.auth_header = auth_header
        self.auth_scheme = auth_scheme
        self.auth_query_param = auth_query_param
        self.host = host
        self.port = port
        self.ssl_context = ssl_context  # a server context: serve https
        self.url = ""
        self.attempts: list[Attempt] = []
        self._scripts: dict[str, list[dict[str, Any]]] = {}
        self._counter = 0
        self._lock = threading.Lock()
        self._runner: web.ServerRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ---- scripting and recording (thread-safe) ----

    def script(self, key_id: str, *behaviours: Mapping[str, Any]) -> None:
        """Set `key_id`'s queue; the last behaviour repeats. No behaviours: back to ``ok``."""
        self._set_scripts({key_id: list(behaviours)})

    def _set_scripts(self, scripts: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        checked: dict[str, list[dict[str, Any]]] = {}
        for key_id, behaviours in scripts.items():
            if key_id not in self._key_ids:
                raise BehaviourError(f"unknown key id: {key_id!r}")
            if isinstance(behaviours, (str, bytes)) or not isinstance(behaviours, Sequence):
                raise BehaviourError(f"script for key id {key_id!r} must be a list of behaviours")
            try:
                checked[key_id] = [validate_behaviour(b) for b in behaviours]
            except BehaviourError as exc:
                raise BehaviourError(f"key id {key_id!r}: {exc}") from None
        with self._lock:
            for key_id, queue in checked.items():
                if queue:
                    self._scripts[key_id] = queue
                else:
                    self._scripts.pop(key_id, None)

    def key_ids(self) -> list[str | None]:
        with self._lock:
            return [attempt.key_id for attempt in self.attempts]

    def reset(self) -> None:
        with self._lock:
            self.attempts.clear()
            self._scripts.clear()

    # ---- lifecycle ----

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("fake upstream already started")
        server = web.Server(
            self._handle,
            handler_cancellation=True,
            auto_decompress=False,
            access_log=None,
        )
        runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "http" if self.ssl_context is None else "https"
        self.url = f"{scheme}://{host}:{port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def start_in_thread(self) -> FakeUpstream:
        """Serve from a daemon thread with its own event loop; return once listening."""
        if self._thread is not None:
            raise RuntimeError("fake upstream thread already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self._run_loop, args=(loop,), name="fake-upstream", daemon=True
        )
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(START_TIMEOUT)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(START_TIMEOUT)
            raise
        self._loop, self._thread = loop, thread
        return self

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(START_TIMEOUT)
            self._loop = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start_in_thread()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()

    # ---- request handling ----

    def _extract_key(self, request: web.BaseRequest, query_string: str) -> str | None:
        if self.auth_query_param is not None:
            pairs = parse_qsl(query_string, keep_blank_values=True)
            return next((v for k, v in pairs if k == self.auth_query_param), None)
        header = request.headers.get(self.auth_header)
        if header is None or self.auth_scheme is None:
            return header
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != self.auth_scheme.lower():
            return None
        return token.strip()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        at = time.monotonic()
        path, _, query_string = request.raw_path.partition("?")
        if path.startswith(CONTROL_PREFIX):
            return await self._control(request, path)
        digest = hashlib.sha256()
        length = 0
        pieces: list[bytes] = []
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            length += len(chunk)
            pieces.append(chunk)
        key = self._extract_key(request, query_string)
        key_id = self._keys.get(key) if key else None
        headers = tuple(
            (name.decode("latin-1").lower(), value.decode("utf-8", "backslashreplace"))
            for name, value in request.raw_headers
        )
        attempt = Attempt(
            key_id,
            request.method,
            path,
            query_string,
            headers,
            digest.hexdigest(),
            length,
            at,
        )
        with self._lock:
            self.attempts.append(attempt)
            if key_id is None:
                return _error_response(400, "missing or unknown key")
            queue = self._scripts.get(key_id)
            behaviour = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else {"kind": "ok"}
            self._counter += 1
            counter = self._counter
        return await self._respond(request, behaviour, attempt, counter, b"".join(pieces))

    async def _respond(
        self,
        request: web.BaseRequest,
        b: dict[str, Any],
        attempt: Attempt,
        counter: int,
        received: bytes = b"",
    ) -> web.StreamResponse:
        kind: str = b["kind"]
        if b.get("delay", 0):
            await asyncio.sleep(b["delay"])
        if kind in ("drop", "hang"):
            if kind == "hang":  # cancelled early when the client leaves or the server stops
                await asyncio.sleep(MAX_WAIT)
            return await self._disconnect(request)
        if kind == "sse":
            return await self._sse(request, b)
        resp: web.StreamResponse
        status: int
        if kind == "blob":
            data = blob_bytes(b.get("size", BLOB_DEFAULT)) + b.get("tail", "").encode()
            if b.get("gzip", False):
                data = gzip.compress(data, mtime=0)
            resp = web.StreamResponse(status=b.get("status", 200))
            resp.content_type = "application/octet-stream"
            if b.get("gzip", False):
                resp.headers["Content-Encoding"] = "gzip"
            if not b.get("chunked", False):
                resp.content_length = len(data)
            self._apply_headers(resp, b)
            await resp.prepare(request)
            for offset in range(0, len(data), BLOB_PIECE):
                if offset and b.get("interval", 0):
                    await asyncio.sleep(b["interval"])
                await resp.write(data[offset : offset + BLOB_PIECE])
            await resp.write_eof()
            return resp
        if kind == "text":
            resp = web.Response(status=b.get("status", 200), text=b.get("body", ""))
        elif kind == "mirror":
            resp = web.Response(status=b.get("status", 200), body=received)
            resp.headers["Content-Type"] = request.headers.get(
                "Content-Type", "application/octet-stream"
            )
        else:
            if kind == "ok":
                status, body = 200, _chat_completion(counter)
            elif kind == "echo":
                status, body = 200, attempt.to_json()
                del body["at"]
            else:
                status, body = _ERRORS[kind]
            resp = web.json_response(b.get("json", body), status=b.get("status", status))
        if b.get("gzip", False) and isinstance(resp.body, bytes):
            resp.body = gzip.compress(resp.body, mtime=0)
            resp.headers["Content-Encoding"] = "gzip"
        self._apply_headers(resp, b)
        return resp

    @staticmethod
    def _apply_headers(resp: web.StreamResponse, b: Mapping[str, Any]) -> None:
        for name, value in b.get("headers", {}).items():
            resp.headers[name] = value

    @staticmethod
    async def _disconnect(request: web.BaseRequest) -> web.StreamResponse:
        """Close the connection with no (further) response bytes; wait to be cancelled."""
        transport = request.transport
        if transport is not None:
            transport.close()
        # handler_cancellation=True: connection_lost cancels this task almost at once.
        await asyncio.sleep(MAX_WAIT)
        raise ConnectionResetError("fake upstream dropped the connection")

    async def _sse(self, request: web.BaseRequest, b: Mapping[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(status=b.get("status", 200))
        resp.headers["Content-Type"] = "text/event-stream"
        resp.headers["Cache-Control"] = "no-cache"
        self._apply_headers(resp, b)
        await resp.prepare(request)
        events: list[str | Mapping[str, str]] = list(b.get("events", _default_events()))
        if b.get("done", True):
            events.append("[DONE]")
        await asyncio.sleep(b.get("first_delay", 0))
        for index, event in enumerate(events):
            if index:
                await asyncio.sleep(b.get("interval", 0.05))
            await resp.write(_sse_frame(event))
        if b.get("cut", False):
            return await self._disconnect(request)
        await resp.write_eof()
        return resp

    async def _control(self, request: web.BaseRequest, path: str) -> web.Response:
        routes = {
            "/__fake/script": "PUT",
            "/__fake/attempts": "GET",
            "/__fake/reset": "POST",
        }
        if path not in routes:
            return _error_response(404, f"unknown control endpoint {path}")
        if request.method != routes[path]:
            resp = _error_response(405, f"use {routes[path]} {path}")
            resp.headers["Allow"] = routes[path]
            return resp
        if path == "/__fake/attempts":
            with self._lock:
                snapshot = list(self.attempts)
            return web.json_response([attempt.to_json() for attempt in snapshot])
        if path == "/__fake/reset":
            self.reset()
            return web.Response(status=204)
        try:
            scripts = json.loads(await request.read())
            if not isinstance(scripts, dict):
                raise BehaviourError("body must be an object mapping key ids to behaviour lists")
            self._set_scripts(scripts)
        except ValueError as exc:  # includes json.JSONDecodeError
            return _error_response(400, str(exc))
        return web.Response(status=204)


# ---- command line ----


def _load_keys(arg: str) -> dict[str, str]:
    text = arg if arg.lstrip().startswith("{") else Path(arg).read_text(encoding="utf-8")
    keys = json.loads(text)
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
    ):
        raise TypeError("keys must be a JSON object mapping key values to key ids")
    return keys


async def _serve(fake: FakeUpstream) -> None:
    await fake.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    try:
        print(json.dumps({"url": fake.url}), flush=True)
        await stopped.wait()
    finally:
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scriptable fake upstream for PoolSwitch tests.")
    parser.add_argument("--keys", required=True, help="JSON file or inline JSON: key -> key id")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--auth-header", default="authorization")
    parser.add_argument("--auth-scheme", default="Bearer", help='scheme, or "none" for raw')
    parser.add_argument("--auth-query-param", default=None)
    args = parser.parse_args(argv)
    try:
        keys = _load_keys(args.keys)
    except (OSError, TypeError, ValueError) as exc:
        parser.error(f"--keys: {exc}")
    scheme = None if args.auth_scheme.lower() == "none" else args.auth_scheme
    fake = FakeUpstream(
        keys,
        auth_header=args.auth_header,
        auth_scheme=scheme,
        auth_query_param=args.auth_query_param,
        port=args.port,
    )
    asyncio.run(_serve(fake))
    return 0


if __name__ == "__main__":
    sys.exit(main())
