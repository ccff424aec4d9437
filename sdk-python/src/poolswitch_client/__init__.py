"""Python client for PoolSwitch, the proxy that holds a pool of API keys.

from poolswitch_client import PoolSwitchClient

client = PoolSwitchClient("http://127.0.0.1:8080")
result = client.post("/v1/chat/completions", json={...})
"""

from __future__ import annotations

from poolswitch_client._async_client import AsyncPoolSwitchClient
from poolswitch_client._client import PoolSwitchClient
from poolswitch_client._codes import ErrorCode
from poolswitch_client._errors import (
    PoolSwitchError,
    ProxyConnectionError,
    ProxyError,
    ProxyTimeoutError,
    UpstreamError,
)
from poolswitch_client._response import ProxyResponse
from poolswitch_client._sse import ServerSentEvent
from poolswitch_client._status import (
    CallerStatus,
    HealthDocument,
    HealthStorage,
    KeyStatus,
    Outage,
    PoolHealth,
    PoolStatus,
    ReplicaStatus,
    StatusDocument,
    StorageHealth,
)
from poolswitch_client._stream import AsyncProxyStream, ProxyStream
from poolswitch_client._types import USE_CLIENT_DEFAULT, UseClientDefault
from poolswitch_client._version import __version__

__all__ = [
    "USE_CLIENT_DEFAULT",
    "AsyncPoolSwitchClient",
    "AsyncProxyStream",
    "CallerStatus",
    "ErrorCode",
    "HealthDocument",
    "HealthStorage",
    "KeyStatus",
    "Outage",
    "PoolHealth",
    "PoolStatus",
    "PoolSwitchClient",
    "PoolSwitchError",
    "ProxyConnectionError",
    "ProxyError",
    "ProxyResponse",
    "ProxyStream",
    "ProxyTimeoutError",
    "ReplicaStatus",
    "ServerSentEvent",
    "StatusDocument",
    "StorageHealth",
    "UpstreamError",
    "UseClientDefault",
    "__version__",
]

# Show the public classes as `poolswitch_client.X` (reprs, tracebacks, docs), not the private
# module.
for _name in __all__:
    if isinstance(globals()[_name], type):
        globals()[_name].__module__ = __name__
del _name
