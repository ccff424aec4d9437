"""Key selection strategies: which key serves the next attempt.

Each strategy sees the pool's keys and states (parallel sequences, indexed alike) and returns the
index of a key that is available now, not draining and not yet tried for this request, or None.
Selection is in memory and does no I/O; round_robin and random are O(1) on average, whatever
the pool size.

    round_robin     weighted rotation (a key of weight 3 gets three turns per cycle)
    least_used      the key with the fewest requests per unit of weight
    random          weighted random choice
    quota_failover  always the first available key, in order of weight then config order:
                    a primary key is used until it runs out, then the next one
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
from collections.abc import Callable, Container, Sequence

from poolswitch.keys import Key, KeyState


class Strategy:
    name = ""

    def __init__(self, keys: Sequence[Key], states: Sequence[KeyState], rng: random.Random) -> None:
        self.keys = keys
        self.states = states
        self.rng = rng

    def select(self, now: float, tried: Container[int]) -> int | None:
        raise NotImplementedError

    def _first_free(self, order: Sequence[int], now: float, tried: Container[int]) -> int | None:
        states = self.states
        for i in order:
            s = states[i]
            if s.available_at <= now and not s.draining and i not in tried:
                return i
        return None


class RoundRobin(Strategy):
    name = "round_robin"

    def __init__(self, keys: Sequence[Key], states: Sequence[KeyState], rng: random.Random) -> None:
        super().__init__(keys, states, rng)
        self.schedule = weighted_schedule([k.weight for k in keys])
        self.cursor = 0

    def select(self, now: float, tried: Container[int]) -> int | None:
        schedule, states = self.schedule, self.states
        n = len(schedule)
        cursor = self.cursor
        for _ in range(n):
            i = schedule[cursor]
            cursor = cursor + 1 if cursor + 1 < n else 0
            s = states[i]
            if s.available_at <= now and not s.draining and i not in tried:
                self.cursor = cursor
                return i
        self.cursor = cursor
        return None


class LeastUsed(Strategy):
    name = "least_used"

    def select(self, now: float, tried: Container[int]) -> int | None:
        best, best_load = None, 0.0
        for i, (key, state) in enumerate(zip(self.keys, self.states, strict=True)):
            if state.available_at <= now and not state.draining and i not in tried:
                load = state.total_requests / key.weight
                if best is None or load < best_load:
                    best, best_load = i, load
        return best


class Random(Strategy):
    name = "random"
    TRIES = 8

    def __init__(self, keys: Sequence[Key], states: Sequence[KeyState], rng: random.Random) -> None:
        super().__init__(keys, states, rng)
        self.cumulative = list(itertools.accumulate(k.weight for k in keys))

    def select(self, now: float, tried: Container[int]) -> int | None:
        total = self.cumulative[-1]
        for _ in range(self.TRIES):
            i = bisect.bisect_right(self.cumulative, self.rng.random() * total)
            s = self.states[i]
            if s.available_at <= now and not s.draining and i not in tried:
                return i
        free = [
            i
            for i, s in enumerate(self.states)
            if s.available_at <= now and not s.draining and i not in tried
        ]
        if not free:
            return None
        return self.rng.choices(free, weights=[self.keys[i].weight for i in free])[0]


class QuotaFailover(Strategy):
    name = "quota_failover"

    def __init__(self, keys: Sequence[Key], states: Sequence[KeyState], rng: random.Random) -> None:
        super().__init__(keys, states, rng)
        self.order = sorted(range(len(keys)), key=lambda i: -keys[i].weight)

    def select(self, now: float, tried: Container[int]) -> int | None:
        return self._first_free(self.order, now, tried)


STRATEGIES: dict[str, Callable[[Sequence[Key], Sequence[KeyState], random.Random], Strategy]] = {
    cls.name: cls for cls in (RoundRobin, LeastUsed, Random, QuotaFailover)
}


def weighted_schedule(weights: Sequence[int]) -> list[int]:
    """One cycle of weighted rotation, spread rather than bunched (stride scheduling).

    Key i appears weights[i] times; equal weights give simply 0, 1, ..., n-1.
    O(total weight x log n) once, at start.
    """
    if all(w == weights[0] for w in weights):
        return list(range(len(weights)))
    heap = [(0.5 / w, i) for i, w in enumerate(weights)]
    heapq.heapify(heap)
    schedule = []
    for _ in range(sum(weights)):
        due, i = heapq.heappop(heap)
        schedule.append(i)
        heapq.heappush(heap, (due + 1.0 / weights[i], i))
    return schedule
