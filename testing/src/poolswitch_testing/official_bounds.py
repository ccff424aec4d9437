"""What the official-SDK tests share, in Python and in Node and Go alike
(server/tests/test_official_sdks.py, conformance/official/test_official_clients.py): the time
bounds every SDK is held to on an exhausted pool, the one reply a success needs that the fake
upstream lacks, and examples/gateway.yaml made runnable against fake upstreams."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

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


GATEWAY_KEYS: dict[str, dict[str, str]] = {
    pool: {f"sk-gw-{pool}-{n}-SECRET-000{n}": f"{pool}-{n}" for n in (1, 2)}
    for pool in ("openai", "anthropic", "gemini")
}
"""pool -> {key value: key id}, as each pool's fake upstream knows them."""
GATEWAY_TOKENS = {
    "WEB_TOKEN": "tok-gw-web-0123456789abcdef",
    "BATCH_TOKEN": "tok-gw-batch-0123456789ab",
}
GATEWAY_AUTH = {
    "openai": ("authorization", "Bearer"),
    "anthropic": ("x-api-key", None),
    "gemini": ("x-goog-api-key", None),
}
"""pool -> (auth header, scheme) the example sends the pool's keys in (for the fake upstreams)."""


def gateway_env() -> dict[str, str]:
    """The environment examples/gateway.yaml reads: caller tokens and two keys per pool."""
    env = dict(GATEWAY_TOKENS)
    for pool, keys in GATEWAY_KEYS.items():
        for value, key_id in keys.items():
            env[f"{pool.upper()}_KEY_{key_id.rsplit('-', 1)[1]}"] = value
    return env


def example_gateway(path: Path, upstreams: Mapping[str, str]) -> dict[str, Any]:
    """examples/gateway.yaml (at `path`) as a config document, its ${VARS} filled in from
    `gateway_env()` and each pool's upstream_base_url replaced by `upstreams[pool name]`."""
    env = gateway_env()
    text = re.sub(
        r"\$\{([A-Z0-9_]+)\}",
        lambda m: env.get(m.group(1), m.group(0)),
        path.read_text(),
    )
    doc: dict[str, Any] = yaml.safe_load(text)
    for pool in doc["pools"]:
        pool["upstream_base_url"] = upstreams[pool["name"]]
    return doc
