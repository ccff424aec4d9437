"""The key pool inside the app (no proxy): a chat completion that fails over from a key whose
quota is spent to a healthy one, then a streamed one, then the pool's status.

Offline, against the repo's fake upstream: run as is with the test-support package installed
(`pip install ./testing`: it starts the fake in a thread), or point FAKE_UPSTREAM_URL at a fake
started elsewhere (`python -m poolswitch_testing.fake_upstream --keys '{"sk-example-primary":
"primary", "sk-example-backup": "backup"}'`), which this script then scripts. Needs only
`pip install ./sdk-python "./server[embedded]"` itself.

python examples/python/embedded.py
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import httpx

from poolswitch.embedded import PoolSwitchClient
from poolswitch_client import PoolSwitchError

KEYS = {"sk-example-primary": "primary", "sk-example-backup": "backup"}
# The primary key's quota is spent; the backup answers (JSON first, then a stream).
SCRIPT = {
    "primary": [{"kind": "quota_exhausted"}],
    "backup": [{"kind": "ok"}, {"kind": "sse"}],
}


@contextlib.contextmanager
def fake_upstream() -> Iterator[str]:
    """The fake upstream's URL, scripted: the one at FAKE_UPSTREAM_URL, else one of our own."""
    url = os.environ.get("FAKE_UPSTREAM_URL")
    if url:
        httpx.put(f"{url}/__fake/script", json=SCRIPT).raise_for_status()
        yield url
        return
    from poolswitch_testing.fake_upstream import FakeUpstream

    with FakeUpstream(KEYS) as fake:
        for key_id, behaviours in SCRIPT.items():
            fake.script(key_id, *behaviours)
        yield fake.url


def main() -> int:
    with fake_upstream() as upstream_url:
        client = PoolSwitchClient(
            upstream_base_url=upstream_url,  # https://api.openai.com for real
            keys=[
                {"id": "primary", "value": os.environ.get("OPENAI_KEY_1", "sk-example-primary")},
                {"id": "backup", "value": os.environ.get("OPENAI_KEY_2", "sk-example-backup")},
            ],
            strategy="quota_failover",  # round_robin | least_used | random | quota_failover
            retry_attempts=3,
            cooldown_seconds=3600,
        )
        with client:
            try:
                answer = client.send(
                    "POST",
                    "/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                )
                print(f"answered by key {answer.key_id} after {answer.attempts} attempt(s)")
                print(answer.json()["choices"][0]["message"]["content"])
                with client.stream(
                    "POST",
                    "/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": [], "stream": True},
                ) as stream:
                    text = ""
                    for event in stream:
                        if event.data != "[DONE]":
                            text += event.json()["choices"][0]["delta"].get("content", "")
                print(f"streamed by key {stream.key_id}: {text}")
            except PoolSwitchError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
            for key in client.status()["keys"]:
                print(f"key {key['id']}: {key['state']} ({key['reason'] or 'ok'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
