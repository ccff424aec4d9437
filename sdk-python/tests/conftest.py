"""Fixtures shared by every test file: no token from the shell, anyio on asyncio.

The SDK's tests run on `httpx.MockTransport` (see `scripted.py`): no sockets, no sleeps. What
crosses the SDK/proxy boundary is checked by the conformance suite (`conformance/cases`).
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `POOLSWITCH_TOKEN` of the shell running the tests must not reach the clients."""
    monkeypatch.delenv("POOLSWITCH_TOKEN", raising=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
