"""The answers the proxy makes itself, as the wire contract draws them (docs/protocol.md).

`x-poolswitch-error: <code>` and an OpenAI-style body, so official SDKs show the message, plus
the retry hint (hints.py): the body's `retry_after` is the real wait, the headers only what a
client should act on; and the request id (requestid.py), in the body's `request_id` and the
`x-request-id` header. And the CORS wrapper that adds an allowed origin's headers to any answer.
"""

from __future__ import annotations

import json

from poolswitch.errors import ProxyError
from poolswitch.hints import retry_headers
from poolswitch.origins import cors_headers
from poolswitch.request import Message, Send
from poolswitch.requestid import HEADER as REQUEST_ID
from poolswitch.requestid import OWN_HEADER as OWN_REQUEST_ID
from poolswitch.requestid import RequestIds

_IDS = RequestIds()  # for answers made outside a proxied request (the built-in endpoints)


def error_response(
    err: ProxyError, request_id: str | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) of the envelope for `err`; `request_id` (sane, requestid.py)
    or a fresh one."""
    if request_id is None:
        request_id = _IDS.new()
    body = json.dumps(
        {
            "error": {
                "type": "poolswitch_error",
                "code": err.code,
                "message": err.message,
                "retry_after": err.retry_after,
                "request_id": request_id,
            }
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-poolswitch-error", err.code.encode()),
        (REQUEST_ID, request_id.encode()),
        (OWN_REQUEST_ID, request_id.encode()),
    ]
    headers.extend(retry_headers(err.code, err.retry_after))
    if err.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="poolswitch"'))
    return err.status, headers, body


def with_cors(send: Send, origin: bytes) -> Send:
    """`send`, adding the CORS headers to the answer's start (only for an allowed origin)."""
    extra = cors_headers(origin)

    async def cors_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [
                (name, value)
                for name, value in message["headers"]
                if not name.lower().startswith(b"access-control-")
            ]
            message = {**message, "headers": kept + extra}
        await send(message)

    return cors_send
