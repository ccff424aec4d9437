"""storage/merge.py: the rule every shared store applies to a replica's update."""

from __future__ import annotations

import pytest
from merge_cases import CASES, FP, NOW, Case, stored, update

from poolswitch.storage.base import PARK, RECOVERED, REPLACE, SET
from poolswitch.storage.merge import combine, merge, next_version


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_merge(case: Case) -> None:
    merged = merge(case.stored, case.update, NOW)
    assert (merged.available_at, merged.disabled, merged.reason, merged.source, merged.strikes) == (
        case.state
    )
    before = 0 if case.stored is None else case.stored.version
    assert (merged.version > before) is case.changed
    assert (merged.total_requests, merged.successes, merged.errors, merged.failovers) == (
        case.counters
    )
    assert merged.fingerprint == FP
    if case.changed:
        assert merged.changed_at == NOW


def test_versions_grow_past_the_writers_clock() -> None:
    assert next_version(5, NOW) == int(NOW * 1000)
    assert next_version(int(NOW * 1000) + 7, NOW) == int(NOW * 1000) + 8


def test_soft_fields_take_the_latest_news() -> None:
    merged = merge(
        stored(last_used_at=NOW, estimated_remaining_quota=100),
        update(None, last_used_at=NOW - 5, estimated_remaining_quota=None),
        NOW,
    )
    assert (merged.last_used_at, merged.estimated_remaining_quota) == (NOW, 100)
    merged = merge(
        stored(last_used_at=NOW),
        update(None, last_used_at=NOW + 1, estimated_remaining_quota=7),
        NOW,
    )
    assert (merged.last_used_at, merged.estimated_remaining_quota) == (NOW + 1, 7)


@pytest.mark.parametrize(
    ("pending", "new", "written"),
    [
        (None, PARK, PARK),
        (RECOVERED, PARK, PARK),
        (PARK, RECOVERED, PARK),
        (PARK, SET, SET),
        (SET, PARK, SET),
        (SET, REPLACE, REPLACE),
        (None, RECOVERED, RECOVERED),
    ],
)
def test_combine_keeps_the_stronger_kind(pending: str | None, new: str, written: str) -> None:
    assert combine(pending, new) == written
