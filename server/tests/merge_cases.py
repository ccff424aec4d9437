"""The table of storage/merge.py: what a stored key record and one replica's update become.
Shared by test_merge.py (the Python rule) and test_redis_store.py (the same rule in Lua)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from poolswitch.storage.base import PARK, RECOVERED, REPLACE, SET, KeyRecord, KeyUpdate

NOW = 1_000_000.0
FP = "f" * 16


def stored(**fields: object) -> KeyRecord:
    base: dict[str, object] = {"key_id": "k", "fingerprint": FP, "version": 5}
    base.update(fields)
    return KeyRecord(**base)  # type: ignore[arg-type]


def update(kind: str | None, **fields: object) -> KeyUpdate:
    base: dict[str, object] = {
        "key_id": "k",
        "fingerprint": FP,
        "available_at": 0.0,
        "disabled": False,
        "reason": None,
        "source": None,
        "strikes": 0,
        "estimated_remaining_quota": None,
        "last_used_at": None,
        "kind": kind,
    }
    base.update(fields)
    return KeyUpdate(**base)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    name: str
    stored: KeyRecord | None
    update: KeyUpdate
    state: tuple[float, bool, str | None, str | None, int]
    """(available_at, disabled, reason, source, strikes) after the merge."""
    changed: bool
    """Whether the state changed (a new version)."""
    counters: tuple[int, int, int, int] = (0, 0, 0, 0)


PARKED = stored(available_at=NOW + 60, reason="rate_limited", source="retry-after", strikes=1)
DISABLED = stored(available_at=math.inf, disabled=True, reason="key_invalid", strikes=0)
COUNTED = stored(total_requests=10, successes=8, errors=2, failovers=1)

CASES = (
    Case(
        "use only: nothing stored",
        None,
        update(None, add_requests=1),
        (0, False, None, None, 0),
        False,
        (1, 0, 0, 0),
    ),
    Case(
        "use only: counters add, a stored cooldown stays",
        PARKED,
        update(None, add_requests=2, add_successes=1),
        (NOW + 60, False, "rate_limited", "retry-after", 1),
        False,
        (2, 1, 0, 0),
    ),
    Case(
        "use only: counters add to stored ones",
        COUNTED,
        update(None, add_requests=3, add_errors=1),
        (0, False, None, None, 0),
        False,
        (13, 8, 3, 1),
    ),
    Case(
        "park: nothing stored",
        None,
        update(PARK, available_at=NOW + 30, reason="rate_limited", source="s", strikes=1),
        (NOW + 30, False, "rate_limited", "s", 1),
        True,
    ),
    Case(
        "park: the later deadline wins (update later)",
        PARKED,
        update(PARK, available_at=NOW + 3600, reason="quota_exhausted", source="q", strikes=1),
        (NOW + 3600, False, "quota_exhausted", "q", 1),
        True,
    ),
    Case(
        "park: the later deadline wins (stored later)",
        PARKED,
        update(PARK, available_at=NOW + 10, reason="rate_limited", source="x", strikes=1),
        (NOW + 60, False, "rate_limited", "retry-after", 1),
        False,
    ),
    Case(
        "park: the higher escalation level is kept",
        PARKED,
        update(PARK, available_at=NOW + 10, reason="rate_limited", strikes=3),
        (NOW + 60, False, "rate_limited", "retry-after", 3),
        True,
    ),
    Case(
        "park: a disabled key stays disabled",
        DISABLED,
        update(PARK, available_at=NOW + 3600, reason="quota_exhausted", strikes=1),
        (math.inf, True, "key_invalid", None, 0),
        False,
    ),
    Case(
        "park: a disable (key invalid) wins over a cooldown",
        PARKED,
        update(PARK, available_at=math.inf, disabled=True, reason="key_invalid", source="401"),
        (math.inf, True, "key_invalid", "401", 1),
        True,
    ),
    Case(
        "recovered: strikes return to 0 on an available key",
        stored(strikes=2, reason="rate_limited", available_at=NOW - 1),
        update(RECOVERED),
        (NOW - 1, False, "rate_limited", None, 0),
        True,
    ),
    Case(
        "recovered: not while another replica has it parked",
        PARKED,
        update(RECOVERED),
        (NOW + 60, False, "rate_limited", "retry-after", 1),
        False,
    ),
    Case(
        "recovered: not on a disabled key",
        DISABLED,
        update(RECOVERED),
        (math.inf, True, "key_invalid", None, 0),
        False,
    ),
    Case(
        "set: an operator's enable replaces a cooldown",
        PARKED,
        update(SET),
        (0, False, None, None, 0),
        True,
    ),
    Case(
        "set: an operator's enable replaces a disable",
        DISABLED,
        update(SET),
        (0, False, None, None, 0),
        True,
    ),
    Case(
        "set: an operator's disable",
        PARKED,
        update(
            SET,
            available_at=math.inf,
            disabled=True,
            reason="disabled_by_operator",
            source="admin",
            strikes=1,
        ),
        (math.inf, True, "disabled_by_operator", "admin", 1),
        True,
    ),
    Case(
        "replace: another key under this id starts afresh",
        COUNTED,
        update(REPLACE, add_requests=1),
        (0, False, None, None, 0),
        False,
        (1, 0, 0, 0),
    ),
    Case(
        "a changed fingerprint replaces the record even without the kind",
        stored(fingerprint="0" * 16, total_requests=5, available_at=NOW + 60, reason="x"),
        update(None, add_requests=1),
        (0, False, None, None, 0),
        True,
        (1, 0, 0, 0),
    ),
)
