"""The call's deadline (`_deadline.py`): on a fake clock."""

from __future__ import annotations

import httpx
import pytest
from scripted import Clock

from poolswitch_client import ProxyTimeoutError
from poolswitch_client._deadline import Deadline


def test_the_deadline_counts_down_on_its_clock() -> None:
    clock = Clock()
    deadline = Deadline(10.0, clock)
    assert deadline.remaining() == 10.0
    assert deadline.timeout() == httpx.Timeout(10.0)
    clock.now += 4
    assert deadline.timeout() == httpx.Timeout(6.0)
    assert deadline.allows(5.9) and not deadline.allows(6.0)
    clock.now += 6
    with pytest.raises(ProxyTimeoutError, match="timeout ran out"):
        deadline.check()


def test_no_deadline() -> None:
    clock = Clock()
    deadline = Deadline(None, clock)
    clock.now += 1e9
    deadline.check()
    assert deadline.remaining() is None and deadline.allows(1e9)
    assert deadline.timeout() == httpx.Timeout(None)
