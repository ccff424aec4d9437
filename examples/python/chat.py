"""One chat completion through a PoolSwitch proxy; prints the JSON answer.

POOLSWITCH_URL=http://127.0.0.1:8080 python examples/python/chat.py
"""

from __future__ import annotations

import json
import os
import sys

from poolswitch_client import PoolSwitchClient, PoolSwitchError


def main() -> int:
    url = os.environ.get("POOLSWITCH_URL", "http://127.0.0.1:8080")
    with PoolSwitchClient(url) as client:
        try:
            result = client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]},
            )
        except PoolSwitchError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
