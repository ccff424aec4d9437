"""PoolSwitch's test support, one package for every Python suite (server/tests,
sdk-python/tests, conformance/tests, the conformance runner); `pip install -e ./testing`.

    fake_upstream.py   the scriptable fake upstream (in a thread, or
                       `python -m poolswitch_testing.fake_upstream --keys ...` with an HTTP
                       control API for the Node and Go harnesses)
    behaviours.py      the fake's behaviours as pydantic models (`validate_behaviour`)
    proxy.py           a real `poolswitch start` on a free 127.0.0.1 port, waited on /health
    redis_server.py    a real `redis-server` on a free 127.0.0.1 port: kill, pause, restart
    delay_proxy.py     a TCP proxy that adds latency, cuts or refuses connections (slow Redis)
    official_bounds.py the time bounds the official-SDK tests hold every SDK to
    conformance/       the conformance runner (`python conformance/run_cases.py --sdk raw`)
"""

from __future__ import annotations

from poolswitch_testing.behaviours import BehaviourError, blob_bytes, validate_behaviour
from poolswitch_testing.delay_proxy import DelayProxy
from poolswitch_testing.fake_upstream import Attempt, FakeUpstream
from poolswitch_testing.proxy import ProxyProcess, ProxyStartError, free_port
from poolswitch_testing.redis_server import RedisServer, RedisServerNotFound, RedisStartError

__all__ = [
    "Attempt",
    "BehaviourError",
    "DelayProxy",
    "FakeUpstream",
    "ProxyProcess",
    "ProxyStartError",
    "RedisServer",
    "RedisServerNotFound",
    "RedisStartError",
    "blob_bytes",
    "free_port",
    "validate_behaviour",
]
