/**
 * Key selection strategies: which key serves the next attempt (the server's `strategies.py`).
 *
 * Each strategy sees the pool's keys and states (parallel arrays, indexed alike) and returns the
 * index of a key that is available now and not yet tried for this request, or `null`. Selection
 * is in memory and does no I/O; round_robin and random are O(1) on average.
 *
 * ```
 * round_robin     weighted rotation (a key of weight 3 gets three turns per cycle)
 * least_used      the key with the fewest requests per unit of weight
 * random          weighted random choice
 * quota_failover  always the first available key, in order of weight then option order
 * ```
 *
 * @module
 */

import type { Key, KeyState } from "./keys.js";

/** A source of randomness in [0, 1). */
export type Rng = () => number;

/** The indexes already tried for this request. */
export interface Tried {
  has(index: number): boolean;
}

export const STRATEGY_NAMES = ["round_robin", "least_used", "random", "quota_failover"] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

export abstract class Strategy {
  abstract readonly name: StrategyName;

  constructor(
    readonly keys: readonly Key[],
    readonly states: readonly KeyState[],
    readonly rng: Rng,
  ) {}

  abstract select(now: number, tried: Tried): number | null;

  protected firstFree(order: readonly number[], now: number, tried: Tried): number | null {
    const states = this.states;
    for (const i of order) {
      if (states[i]!.availableAt <= now && !tried.has(i)) {
        return i;
      }
    }
    return null;
  }
}

export class RoundRobin extends Strategy {
  readonly name = "round_robin";
  readonly schedule: readonly number[];
  cursor = 0;

  constructor(keys: readonly Key[], states: readonly KeyState[], rng: Rng) {
    super(keys, states, rng);
    this.schedule = weightedSchedule(keys.map((k) => k.weight));
  }

  select(now: number, tried: Tried): number | null {
    const { schedule, states } = this;
    const n = schedule.length;
    let cursor = this.cursor;
    for (let step = 0; step < n; step += 1) {
      const i = schedule[cursor]!;
      cursor = cursor + 1 < n ? cursor + 1 : 0;
      if (states[i]!.availableAt <= now && !tried.has(i)) {
        this.cursor = cursor;
        return i;
      }
    }
    this.cursor = cursor;
    return null;
  }
}

export class LeastUsed extends Strategy {
  readonly name = "least_used";

  select(now: number, tried: Tried): number | null {
    let best: number | null = null;
    let bestLoad = 0;
    for (let i = 0; i < this.keys.length; i += 1) {
      const state = this.states[i]!;
      if (state.availableAt <= now && !tried.has(i)) {
        const load = state.totalRequests / this.keys[i]!.weight;
        if (best === null || load < bestLoad) {
          best = i;
          bestLoad = load;
        }
      }
    }
    return best;
  }
}

export class RandomChoice extends Strategy {
  readonly name = "random";
  static readonly TRIES = 8;
  readonly cumulative: readonly number[];

  constructor(keys: readonly Key[], states: readonly KeyState[], rng: Rng) {
    super(keys, states, rng);
    let total = 0;
    this.cumulative = keys.map((k) => (total += k.weight));
  }

  select(now: number, tried: Tried): number | null {
    const cumulative = this.cumulative;
    const total = cumulative[cumulative.length - 1]!;
    for (let t = 0; t < RandomChoice.TRIES; t += 1) {
      const i = bisectRight(cumulative, this.rng() * total);
      if (i < this.states.length && this.states[i]!.availableAt <= now && !tried.has(i)) {
        return i;
      }
    }
    const free: number[] = [];
    this.states.forEach((s, i) => {
      if (s.availableAt <= now && !tried.has(i)) {
        free.push(i);
      }
    });
    if (free.length === 0) {
      return null;
    }
    // Python's random.choices(free, weights): one draw over the free keys' cumulative weights.
    let sum = 0;
    const weights = free.map((i) => (sum += this.keys[i]!.weight));
    const at = bisectRight(weights, this.rng() * sum);
    return free[Math.min(at, free.length - 1)]!;
  }
}

export class QuotaFailover extends Strategy {
  readonly name = "quota_failover";
  readonly order: readonly number[];

  constructor(keys: readonly Key[], states: readonly KeyState[], rng: Rng) {
    super(keys, states, rng);
    // A stable sort: equal weights keep the options' order.
    this.order = keys.map((_, i) => i).sort((a, b) => keys[b]!.weight - keys[a]!.weight);
  }

  select(now: number, tried: Tried): number | null {
    return this.firstFree(this.order, now, tried);
  }
}

type StrategyClass = new (keys: readonly Key[], states: readonly KeyState[], rng: Rng) => Strategy;

export const STRATEGIES: Readonly<Record<StrategyName, StrategyClass>> = {
  round_robin: RoundRobin,
  least_used: LeastUsed,
  random: RandomChoice,
  quota_failover: QuotaFailover,
};

/**
 * One cycle of weighted rotation, spread rather than bunched (stride scheduling). Key i appears
 * `weights[i]` times; equal weights give simply 0, 1, ..., n-1. Ties go to the lower index, as
 * the server's heap of `(due, index)` pairs does.
 */
export function weightedSchedule(weights: readonly number[]): number[] {
  if (weights.every((w) => w === weights[0])) {
    return weights.map((_, i) => i);
  }
  const due = weights.map((w) => 0.5 / w);
  const total = weights.reduce((a, b) => a + b, 0);
  const schedule: number[] = [];
  for (let n = 0; n < total; n += 1) {
    let best = 0;
    for (let i = 1; i < due.length; i += 1) {
      if (due[i]! < due[best]!) {
        best = i;
      }
    }
    schedule.push(best);
    due[best] = due[best]! + 1 / weights[best]!;
  }
  return schedule;
}

/** The insertion point of `x` after any equal entries (Python's `bisect.bisect_right`). */
function bisectRight(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x < sorted[mid]!) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}
