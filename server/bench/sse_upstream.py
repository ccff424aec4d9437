"""Tiny SSE upstream: on any path, 20 `data: {json}` events 50 ms apart, each flushed at once.

Run as: python sse_upstream.py --port PORT [--events 20] [--interval 0.05]
GET /ready answers 200 "ok" (used to wait for startup).
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web


def _event(i: int) -> bytes:
    chunk = {
        "id": "chatcmpl-bench-sse",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": {"content": f"token{i}"}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def make_app(events: int, interval: float) -> web.Application:
    payloads = [_event(i) for i in range(events)]

    async def ready(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )
        await resp.prepare(request)
        for i, payload in enumerate(payloads):
            if i:
                await asyncio.sleep(interval)
            await resp.write(payload)  # aiohttp sends each write immediately
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/ready", ready)
    app.router.add_route("*", "/{tail:.*}", stream)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    web.run_app(
        make_app(args.events, args.interval),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
