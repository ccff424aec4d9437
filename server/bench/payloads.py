"""Fixed request and response bodies used by every benchmark target."""

from __future__ import annotations

import json
from typing import Any


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


# ~600-byte OpenAI chat completion, answered by nginx on every path.
COMPLETION_JSON = _compact(
    {
        "id": "chatcmpl-bench000000000000000000000001",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! This is the fixed completion text"
                    " of the benchmark upstream.",
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 14,
            "completion_tokens": 38,
            "total_tokens": 52,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "system_fingerprint": "fp_0ba0d124f1",
    }
)

# OpenAI-style 429 body, returned for the rate-limited key in target (e).
RATE_LIMIT_JSON = _compact(
    {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini on requests per min (RPM). "
            "Please try again in 1s.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
)

# ~150-byte chat request sent by wrk and the SSE client.
CHAT_REQUEST_JSON = _compact(
    {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "Say hello in one short sentence, please. Keep it brief."}
        ],
        "max_tokens": 16,
        "temperature": 0,
    }
)

STREAM_REQUEST_JSON = _compact(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Count from one to twenty."}],
        "stream": True,
    }
)

CHAT_PATH = "/v1/chat/completions"

# The key whose requests the limited nginx server answers with 429.
LIMITED_KEY_VALUE = "sk-bench-1"
