from __future__ import annotations

import math

from poolswitch.config import KeyConfig
from poolswitch.keys import AVAILABLE, COOLING_DOWN, DISABLED, Key, KeyState


def test_key_builds_auth_value_and_hides_it() -> None:
    key = Key(KeyConfig("a", "sk-secret-value"), "Bearer")
    assert key.auth_value == "Bearer sk-secret-value"
    assert "sk-secret" not in repr(key)
    assert Key(KeyConfig("a", "raw"), None).auth_value == "raw"


def test_park_then_expire() -> None:
    s = KeyState("a")
    assert s.state(100.0) == AVAILABLE
    s.park(160.0, "rate_limited")
    assert s.state(100.0) == COOLING_DOWN
    assert s.cooldown_until(100.0) == 160.0
    assert s.state(160.0) == AVAILABLE
    assert s.cooldown_until(161.0) is None


def test_park_keeps_the_later_deadline() -> None:
    s = KeyState("a")
    s.park(200.0, "quota_exhausted")
    s.park(150.0, "rate_limited")
    assert s.available_at == 200.0


def test_disable_and_restore() -> None:
    s = KeyState("a")
    s.disable("key_invalid")
    assert s.state(1e12) == DISABLED and s.available_at == math.inf
    s.park(10.0, "rate_limited")
    assert s.state(0.0) == DISABLED
    s.restore()
    assert s.state(0.0) == AVAILABLE and s.reason is None
