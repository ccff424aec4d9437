"""A streamed chat completion through a PoolSwitch proxy; prints the text as it arrives.

POOLSWITCH_URL=http://127.0.0.1:8080 python examples/python/stream.py
"""

from __future__ import annotations

import os
import sys

from poolswitch_client import PoolSwitchClient, PoolSwitchError


def main() -> int:
    url = os.environ.get("POOLSWITCH_URL", "http://127.0.0.1:8080")
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "hello"}],
    }
    with PoolSwitchClient(url) as client:
        try:
            with client.stream("POST", "/v1/chat/completions", json=body) as stream:
                print(f"[key {stream.key_id}, {stream.attempts} attempt(s)]", file=sys.stderr)
                for event in stream:
                    if event.data == "[DONE]":
                        break
                    for choice in event.json().get("choices", []):
                        print(choice.get("delta", {}).get("content") or "", end="", flush=True)
        except PoolSwitchError as err:
            print(f"\nerror: {err}", file=sys.stderr)
            return 1
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
