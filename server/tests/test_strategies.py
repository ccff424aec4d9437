from __future__ import annotations

import random
from collections import Counter

import pytest

from poolswitch.config import KeyConfig
from poolswitch.keys import Key, KeyState
from poolswitch.strategies import STRATEGIES, Strategy, weighted_schedule

NOW = 1000.0


def make(name: str, weights: list[int]) -> tuple[Strategy, list[KeyState]]:
    keys = [Key(KeyConfig(f"k{i}", f"v{i}", w), "Bearer") for i, w in enumerate(weights)]
    states = [KeyState(k.id) for k in keys]
    return STRATEGIES[name](keys, states, random.Random(7)), states


def picks(strategy: Strategy, states: list[KeyState], n: int) -> Counter[int]:
    seen: Counter[int] = Counter()
    for _ in range(n):
        i = strategy.select(NOW, ())
        assert i is not None
        states[i].total_requests += 1
        seen[i] += 1
    return seen


def test_registry_matches_config_names() -> None:
    from poolswitch.config import STRATEGIES as NAMES

    assert tuple(STRATEGIES) == NAMES


def test_round_robin_rotates_in_order() -> None:
    strategy, _ = make("round_robin", [1, 1, 1])
    order = [strategy.select(NOW, ()) for _ in range(6)]
    assert order == [0, 1, 2, 0, 1, 2]


def test_round_robin_honours_weights() -> None:
    strategy, states = make("round_robin", [3, 1])
    assert picks(strategy, states, 400) == {0: 300, 1: 100}


@pytest.mark.parametrize("name", ["least_used", "random"])
def test_balanced_strategies_spread_evenly(name: str) -> None:
    strategy, states = make(name, [1, 1, 1, 1])
    counts = picks(strategy, states, 4000)
    assert all(800 <= c <= 1200 for c in counts.values()), counts


def test_random_is_weighted() -> None:
    strategy, states = make("random", [4, 1])
    counts = picks(strategy, states, 5000)
    assert 3700 <= counts[0] <= 4300


def test_least_used_picks_fewest_requests_per_weight() -> None:
    strategy, states = make("least_used", [1, 2])
    states[0].total_requests, states[1].total_requests = 10, 15
    assert strategy.select(NOW, ()) == 1


def test_quota_failover_sticks_to_primary_until_it_cools() -> None:
    strategy, states = make("quota_failover", [1, 5, 1])
    assert picks(strategy, states, 10) == {1: 10}
    states[1].park(NOW + 60, "quota_exhausted")
    assert strategy.select(NOW, ()) == 0
    assert strategy.select(NOW + 61, ()) == 1


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_skips_cooling_and_tried_keys(name: str) -> None:
    strategy, states = make(name, [1, 1, 1])
    states[0].park(NOW + 10, "rate_limited")
    states[1].disable("key_invalid")
    for _ in range(20):
        assert strategy.select(NOW, ()) == 2
    assert strategy.select(NOW, {2}) is None
    assert strategy.select(NOW + 11, {2}) == 0


def test_weighted_schedule_spreads_turns() -> None:
    assert weighted_schedule([1, 1, 1]) == [0, 1, 2]
    schedule = weighted_schedule([2, 1])
    assert sorted(schedule) == [0, 0, 1]
    assert Counter(weighted_schedule([5, 3, 1])) == {0: 5, 1: 3, 2: 1}
