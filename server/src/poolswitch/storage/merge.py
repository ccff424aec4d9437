"""How a stored key record and a replica's update combine: the one rule every shared store
applies atomically (sqlite in a write transaction, Redis in the Lua script of redis.py, which
mirrors this function line for line and is tested against the same table).

An update carries a `kind` that says what the replica did to the key since its last write:

- `None`: nothing but use. Counters are added; the key's state (cooldown, disable, strikes) is
  left as stored, so a replica that has not yet heard of another's transition cannot undo it.
- `PARK`: the key cooled down (or was disabled, or both). The later deadline wins, and a disabled
  key stays disabled: two replicas parking one key at once end with the longer cooldown.
- `RECOVERED`: the key answered again after failing: its escalation level (strikes) returns to 0,
  unless another replica has parked or disabled it meanwhile.
- `SET`: an operator (or a confirmed invalid key) set the state: it replaces what is stored.
- `REPLACE`: another key now has this id (its value changed): the old record is dropped, the
  counters start from this update.

Each state change gets a new `version`, later than the stored one and than the writer's clock in
milliseconds (so a Redis that restarted empty still hands out versions newer than those a replica
has seen). A replica applies a record to its mirror only when its version is newer than the last
it applied.
"""

from __future__ import annotations

import dataclasses

from poolswitch.storage.base import PARK, RECOVERED, REPLACE, SET, KeyRecord, KeyUpdate

_STRENGTH = {None: 0, RECOVERED: 1, PARK: 2, SET: 3, REPLACE: 4}


def combine(pending: str | None, new: str) -> str:
    """The kind of two changes of one key written at once: the stronger one (a SET after a PARK
    writes the whole current state, which includes that park)."""
    return pending if pending is not None and _STRENGTH[pending] >= _STRENGTH[new] else new


def next_version(stored: int, now: float) -> int:
    return max(stored + 1, int(now * 1000))


def merge(stored: KeyRecord | None, update: KeyUpdate, now: float) -> KeyRecord:
    """The record after `update` (written at `now`) meets `stored` (None: nothing stored)."""
    kind = update.kind
    if stored is None:
        stored = KeyRecord(key_id=update.key_id, fingerprint=update.fingerprint)
    elif stored.fingerprint not in (None, update.fingerprint):
        kind = REPLACE
    base = KeyRecord(key_id=update.key_id, version=stored.version) if kind == REPLACE else stored
    merged = dataclasses.replace(
        base,
        fingerprint=update.fingerprint,
        total_requests=base.total_requests + update.add_requests,
        successes=base.successes + update.add_successes,
        errors=base.errors + update.add_errors,
        failovers=base.failovers + update.add_failovers,
        estimated_remaining_quota=(
            base.estimated_remaining_quota
            if update.estimated_remaining_quota is None
            else update.estimated_remaining_quota
        ),
        last_used_at=_later(base.last_used_at, update.last_used_at),
    )
    state = _state(base, update, kind, now)
    if state is None or state == _fields(stored):
        return merged
    available_at, disabled, reason, source, strikes = state
    return dataclasses.replace(
        merged,
        available_at=available_at,
        disabled=disabled,
        reason=reason,
        source=source,
        strikes=strikes,
        version=next_version(base.version, now),
        changed_at=now,
    )


_State = tuple[float, bool, "str | None", "str | None", int]


def _fields(r: KeyRecord | KeyUpdate) -> _State:
    return (r.available_at, r.disabled, r.reason, r.source, r.strikes)


def _state(base: KeyRecord, update: KeyUpdate, kind: str | None, now: float) -> _State | None:
    """The key's new state fields, or None to keep the stored ones."""
    if kind in (SET, REPLACE):
        return _fields(update)
    if kind == PARK:
        if base.disabled:
            return None
        if update.disabled or update.available_at > base.available_at:
            return (*_fields(update)[:4], max(base.strikes, update.strikes))
        return (*_fields(base)[:4], max(base.strikes, update.strikes))
    if kind == RECOVERED and not base.disabled and base.available_at <= now and base.strikes:
        return (*_fields(base)[:4], 0)
    return None


def _later(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)
