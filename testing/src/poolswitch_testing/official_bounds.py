"""What the official-SDK tests hold every SDK to, in Python and in Node and Go alike
(server/tests/test_official_sdks.py, conformance/official/test_official_clients.py): the time
bounds on an exhausted pool and the one reply a success needs that the fake upstream lacks."""

from __future__ import annotations

from typing import Any

FAST = 5.0  # no key returns within the window: the SDK must give up at least this fast
BOUNDED = 20.0  # a key returns in ~2 s: retry into it or give up, within this long
PROBE_HANGS = 8.0
HELD = 7.0  # the outage guard holds every attempt: the SDK gives up while the probe hangs

ANTHROPIC_MESSAGE: dict[str, Any] = {
    "id": "msg_fake",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1},
}
"""A Messages API answer, for a success through the Anthropic SDKs."""
