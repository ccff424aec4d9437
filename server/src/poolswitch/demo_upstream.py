"""The scripted upstream of `poolswitch demo`: a small OpenAI-compatible API on loopback.

It speaks `POST /v1/chat/completions` (JSON, or server-sent events with `"stream": true`) and
`GET /v1/models`, and knows four keys, each answering as a real OpenAI key in that condition
would (OpenAI's documented bodies and headers, as profiles/providers.json reads them):

    out-of-quota   429 `insufficient_quota`                           -> quota_exhausted
    rate-limited   429 `rate_limit_exceeded` + `Retry-After: 3` to    -> rate_limited, cooled
                   its first request (RATE_LIMITED_ANSWERS), then 200    for 3 s, then back
    healthy        200                                                -> success
    invalid        401 `invalid_api_key` (the message echoes part of  -> key_invalid
                   the key, as OpenAI's does: the proxy redacts it)

Any other key is invalid too. The key values are obviously fake (`sk-demo-...`); the demo
never reaches the network. The `created` times come from an injected clock.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

RATE_LIMITED_ANSWERS = 1
"""How many requests the rate-limited key refuses before it is served again."""
RETRY_AFTER_SECONDS = 3
"""Its `Retry-After`: the proxy cools it that long, then tries it again."""
LATENCY_SECONDS = 0.08
"""How long a successful answer takes (a stream: each of its pieces)."""
MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class DemoKey:
    """One key of the demo pool: its id, its (fake) value, and what the upstream does with it."""

    id: str
    value: str
    behaviour: str
    """`quota`, `rate`, `ok` or `invalid`."""
    script: str
    """What the upstream does with it, in words (the live view and the summary say it)."""


KEYS = (
    DemoKey(
        "out-of-quota",
        "sk-demo-quota-0001-not-a-real-key",
        "quota",
        "429 insufficient_quota, always",
    ),
    DemoKey(
        "rate-limited",
        "sk-demo-ratelimit-0002-not-a-real-key",
        "rate",
        f"429 + Retry-After: {RETRY_AFTER_SECONDS} once, then 200",
    ),
    DemoKey("healthy", "sk-demo-healthy-0003-not-a-real-key", "ok", "200, always"),
    DemoKey(
        "invalid",
        "sk-demo-invalid-0004-not-a-real-key",
        "invalid",
        "401 invalid_api_key, always",
    ),
)


def _error(message: str, type_: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


QUOTA_BODY = _error(
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    "insufficient_quota",
    "insufficient_quota",
)


def rate_limit_body(seconds: int) -> dict[str, Any]:
    return _error(
        f"Rate limit reached for {MODEL} in organization org-demo on requests per min (RPM): "
        f"Limit 3, Used 3, Requested 1. Please try again in {seconds}s.",
        "requests",
        "rate_limit_exceeded",
    )


def invalid_key_body(value: str) -> dict[str, Any]:
    shown = f"{value[:3]}{'*' * 12}{value[-4:]}" if len(value) > 8 else "(hidden)"
    return _error(
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    )


def completion(n: int, now: float) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-demo{n:06d}",
        "object": "chat.completion",
        "created": int(now),
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
    }


ANSWER = "Hello from the PoolSwitch demo upstream!"


def stream_events(n: int, now: float) -> list[bytes]:
    """The server-sent events of a streamed completion, `data: [DONE]` last."""

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        body = {
            "id": f"chatcmpl-demo{n:06d}",
            "object": "chat.completion.chunk",
            "created": int(now),
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    words = ANSWER.split(" ")
    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": w if i == 0 else " " + w}, None) for i, w in enumerate(words)]
    return [*events, chunk({}, "stop"), b"data: [DONE]\n\n"]


class DemoUpstream:
    """The scripted upstream, served by aiohttp in the running event loop."""

    def __init__(
        self,
        keys: tuple[DemoKey, ...] = KEYS,
        *,
        latency: float = LATENCY_SECONDS,
        rate_limited_answers: int = RATE_LIMITED_ANSWERS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = {key.value: key for key in keys}
        self._clock = clock
        self._latency = latency
        self._rate_limited_left = rate_limited_answers
        self._count = 0
        self.answers: Counter[tuple[str, int]] = Counter()
        """(key id, status) -> how many answers; an unknown key counts as `?`."""
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1") -> str:
        """Listen on a free port of `host`; the base URL."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, 0))
        site = web.SockSite(self._runner, sock, shutdown_timeout=1.0)
        await site.start()
        self.url = f"http://{host}:{sock.getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def refusal(self, authorization: str | None) -> web.Response | None:
        """The error this key gets now, or None when it is served."""
        value = (authorization or "").removeprefix("Bearer ").strip()
        key = self._keys.get(value)
        if key is None or key.behaviour == "invalid":
            return self._answer(key, 401, invalid_key_body(value))
        if key.behaviour == "quota":
            return self._answer(key, 429, QUOTA_BODY)
        if key.behaviour == "rate" and self._rate_limited_left > 0:
            self._rate_limited_left -= 1
            seconds = RETRY_AFTER_SECONDS
            return self._answer(key, 429, rate_limit_body(seconds), {"Retry-After": str(seconds)})
        return None

    def _answer(
        self,
        key: DemoKey | None,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        self.answers[(key.id if key else "?", status)] += 1
        return web.json_response(body, status=status, headers=headers)

    def _served(self, request: web.Request) -> None:
        key = self._keys[request.headers["Authorization"].removeprefix("Bearer ").strip()]
        self.answers[(key.id, 200)] += 1

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        refused = self.refusal(request.headers.get("Authorization"))
        if refused is not None:
            return refused
        try:
            asked = await request.json()
        except ValueError:
            asked = None
        if not isinstance(asked, dict) or not isinstance(asked.get("messages"), list):
            return web.json_response(
                _error("'messages' is a required property", "invalid_request_error", "invalid"),
                status=400,
            )
        self._served(request)
        self._count += 1
        now = self._clock()
        if not asked.get("stream"):
            await asyncio.sleep(self._latency)
            return web.json_response(completion(self._count, now))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for event in stream_events(self._count, now):
            await asyncio.sleep(self._latency / 4)
            await response.write(event)
        await response.write_eof()
        return response

    async def _models(self, request: web.Request) -> web.Response:
        refused = self.refusal(request.headers.get("Authorization"))
        if refused is not None:
            return refused
        self._served(request)
        model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "poolswitch-demo"}
        return web.json_response({"object": "list", "data": [model]})

    async def _unknown(self, request: web.Request) -> web.Response:
        return web.json_response(
            _error(
                f"Unknown request URL: {request.method} {request.path}",
                "invalid_request_error",
                "unknown_url",
            ),
            status=404,
        )
