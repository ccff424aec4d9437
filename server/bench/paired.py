"""Paired rounds: two (or more) targets running at once, loaded in turn, the order reversed
every round, and the median run of each kept, so that drift of this machine's speed during the
run (it swings by +-30 % here) cancels out of their ratio instead of landing on one side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def paired(
    sides: Sequence[tuple[str, Callable[[int], T]]],
    concurrency: Sequence[int],
    rounds: int,
    rps: Callable[[T], float],
) -> dict[str, dict[int, T]]:
    """For each concurrency, `rounds` rounds in which every side's `load(conc)` runs once (in
    reverse order on odd rounds); returns each side's median run by `rps`, per concurrency."""
    out: dict[str, dict[int, T]] = {name: {} for name, _ in sides}
    for conc in concurrency:
        seen: dict[str, list[T]] = {name: [] for name, _ in sides}
        for round_ in range(rounds):
            for name, load in sides if round_ % 2 == 0 else sides[::-1]:
                seen[name].append(load(conc))
        for name, runs in seen.items():
            out[name][conc] = sorted(runs, key=rps)[len(runs) // 2]
    return out
