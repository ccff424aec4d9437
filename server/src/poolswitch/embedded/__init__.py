"""The embedded clients: the key pool inside a Python app, with the proxy's exact rules.

from poolswitch.embedded import PoolSwitchClient

client = PoolSwitchClient(
    upstream_base_url="https://api.openai.com",
    keys=[os.environ["OPENAI_KEY_1"], os.environ["OPENAI_KEY_2"]],
    strategy="quota_failover",
)
result = client.post("/v1/chat/completions", json={...})

The same methods, answers and errors as `poolswitch_client`'s proxy clients, so moving between
embedded and proxy mode changes only where the pool lives. Needs the `embedded` extra
(`pip install "poolswitch[embedded]"`: httpx and poolswitch-client); imports neither aiohttp,
starlette, uvicorn nor prometheus_client.
"""

from __future__ import annotations

from poolswitch.embedded._async_client import AsyncPoolSwitchClient
from poolswitch.embedded._client import PoolSwitchClient

__all__ = ["AsyncPoolSwitchClient", "PoolSwitchClient"]
