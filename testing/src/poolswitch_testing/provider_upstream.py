"""A stand-in for every provider the docs show, answering each one's success shape on its path.

The checked-docs runner (docrun.py) points the providers' hosts at it, so that a guide's config,
its `poolswitch start` and its official-SDK snippet run together offline. Any key is accepted;
a request that carries none gets the provider's 401, as a key the proxy failed to inject would.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

TEXT = "Hello from the docs upstream"
KEY_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "x-subscription-token")


def _has_key(request: web.Request) -> bool:
    return any(request.headers.get(h) for h in KEY_HEADERS) or "key" in request.query


def openai_chat(model: str) -> dict[str, Any]:
    """An OpenAI chat completion; Groq and Mistral answer the same shape."""
    return {
        "id": "chatcmpl-docs",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": TEXT},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6},
    }


def anthropic_message(model: str) -> dict[str, Any]:
    return {
        "id": "msg_docs",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 5},
    }


def gemini_content(model: str) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": TEXT}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 5, "totalTokenCount": 6},
        "modelVersion": model,
    }


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        parsed = await request.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


async def _handle(request: web.Request) -> web.Response:
    if not _has_key(request):
        return web.json_response({"error": {"message": "no API key", "code": 401}}, status=401)
    path = request.path
    body = await _body(request) if request.method == "POST" else {}
    model = str(body.get("model", "docs-model"))
    if path.endswith("/chat/completions"):
        return web.json_response(openai_chat(model))
    if path == "/v1/messages":
        return web.json_response(anthropic_message(model))
    if ":generateContent" in path:
        return web.json_response(gemini_content(path.rsplit("/", 1)[-1].split(":")[0]))
    if path.endswith("/models"):
        listed = {"id": "docs-model", "object": "model", "created": 0, "owned_by": "docs"}
        return web.json_response({"object": "list", "data": [listed]})
    if path == "/res/v1/web/search":
        query = {"original": request.query.get("q", "")}
        return web.json_response({"type": "search", "query": query, "web": {"results": []}})
    return web.json_response({"error": {"message": f"no such path {path}"}}, status=404)


def app() -> web.Application:
    application = web.Application()
    application.router.add_route("*", "/{tail:.*}", _handle)
    return application
