/**
 * The key pool: the only code that changes key state (the server's `pool.py`, in memory only).
 *
 * `select()` picks a key for an attempt, `record()` applies what the upstream answered, and
 * `snapshot()` reports. All run on the event loop without awaiting: an in-place update with no
 * `await` in between is atomic there, so the hot path needs no lock and no copy.
 *
 * @module
 */

import { OutageGuard } from "./guard.js";
import { Key, KeyState, type KeyStateName } from "./keys.js";
import { STRATEGIES, type Rng, type Strategy, type StrategyName, type Tried } from "./strategies.js";
import { faultOf, type Verdict } from "./verdict.js";

/** Consecutive 5xx answers or timeouts on one key, while other keys answered, that park it. */
export const ERRORS_BEFORE_PARKING = 3;
export const SERVER_ERROR_COOLDOWN = 30.0;
const LABELS: Readonly<Record<string, string>> = { upstream_error: "5xx", timeout: "timeouts" };

/** Where the pool says what it did (key ids only). */
export interface PoolLogger {
  info?(message: string): void;
  warn?(message: string): void;
}

/** One key as `status()` shows it: ids and facts, never the value. */
export interface KeySnapshot {
  readonly id: string;
  readonly state: KeyStateName;
  readonly cooldownUntil: number | null;
  readonly reason: string | null;
  readonly source: string | null;
  readonly totalRequests: number;
  readonly successes: number;
  readonly errors: number;
  readonly failovers: number;
  readonly estimatedRemainingQuota: number | null;
  readonly lastUsedAt: number | null;
}

const NOTHING_TRIED: Tried = { has: () => false };

export class Pool {
  readonly keys: readonly Key[];
  readonly states: KeyState[];
  readonly index: ReadonlyMap<string, number>;
  readonly strategy: Strategy;
  readonly cooldownSeconds: number;
  readonly guard: OutageGuard;
  readonly clock: () => number;
  readonly #log: PoolLogger;

  constructor(
    keys: readonly Key[],
    options: {
      strategy: StrategyName;
      cooldownSeconds: number;
      clock: () => number;
      rng: Rng;
      logger?: PoolLogger | undefined;
    },
  ) {
    this.keys = keys;
    this.states = keys.map((k) => new KeyState(k.id));
    this.index = new Map(keys.map((k, i) => [k.id, i]));
    this.strategy = new STRATEGIES[options.strategy](this.keys, this.states, options.rng);
    this.cooldownSeconds = options.cooldownSeconds;
    this.clock = options.clock;
    this.guard = new OutageGuard(keys.length, options.clock);
    this.#log = options.logger ?? {};
  }

  /** Index of the key for the next attempt, or null when none is available. */
  select(tried: Tried = NOTHING_TRIED): number | null {
    const now = this.clock();
    const i = this.strategy.select(now, tried);
    if (i !== null) {
      const state = this.states[i]!;
      state.totalRequests += 1;
      state.lastUsedAt = now;
    }
    return i;
  }

  /** Apply an attempt's verdict to key `i`; `failover` when the request moves on. */
  record(i: number, verdict: Verdict, options: { failover?: boolean; remainingQuota?: number | null } = {}): void {
    const state = this.states[i]!;
    const outcome = verdict.outcome;
    if (outcome === "success") {
      state.successes += 1;
      if (state.strikes || state.consecutiveErrors) {
        state.succeeded();
      }
      if (options.remainingQuota !== undefined && options.remainingQuota !== null) {
        state.estimatedRemainingQuota = options.remainingQuota;
      }
      this.guard.success();
      return;
    }
    state.errors += 1;
    if (options.failover) {
      state.failovers += 1;
    }
    const guard = this.guard;
    guard.failure(i, verdict);
    if (verdict.disable) {
      state.disable(outcome, verdict.source);
      this.#log.warn?.(`key ${state.keyId} disabled: ${outcome}`);
    } else if (verdict.cooldown !== null) {
      this.#park(i, verdict.cooldown, outcome, verdict.source);
    } else if (faultOf(verdict) === "either" && !guard.holds) {
      // A 5xx or a timeout is the upstream's fault, unless it keeps happening on this key while
      // other keys answer (the guard counts successes that follow failures).
      if (!state.consecutiveErrors) {
        state.streakMark = guard.recoveries;
      }
      state.consecutiveErrors += 1;
      if (state.consecutiveErrors < ERRORS_BEFORE_PARKING || guard.recoveries === state.streakMark) {
        return;
      }
      state.consecutiveErrors = 0;
      const source = `${ERRORS_BEFORE_PARKING} consecutive ${LABELS[outcome] ?? outcome}`;
      this.#park(i, SERVER_ERROR_COOLDOWN, outcome, source);
    }
  }

  /** Key `i`'s earlier auth failure on this request turned out to be the key's fault: disable it. */
  confirmedInvalid(i: number, source: string): void {
    const state = this.states[i]!;
    state.disable("key_invalid", source);
    this.#log.warn?.(`key ${state.keyId} disabled: key_invalid (${source})`);
  }

  #park(i: number, seconds: number, reason: string, source: string | null): void {
    const state = this.states[i]!;
    const now = this.clock();
    const longer = state.escalated(seconds, reason, Math.max(this.cooldownSeconds, seconds), now);
    if (longer > seconds) {
      source = `${source ?? reason}, x${formatG(longer / seconds)} (failed again after returning)`;
    }
    state.park(now + longer, reason, source);
    this.#log.info?.(`key ${state.keyId} cooling down for ${longer.toFixed(1)}s: ${reason} (${source})`);
  }

  /** Put a key back in service. False if the id is unknown. */
  enable(keyId: string): boolean {
    const i = this.index.get(keyId);
    if (i === undefined) {
      return false;
    }
    this.states[i]!.restore();
    this.guard.reset(); // the pool is said to be fit again: stop holding requests
    this.#log.warn?.(`key ${keyId} enabled`);
    return true;
  }

  /** Take a key out of service until enabled again. */
  disable(keyId: string): boolean {
    const i = this.index.get(keyId);
    if (i === undefined) {
      return false;
    }
    this.states[i]!.disable("disabled_by_operator", "admin");
    this.#log.warn?.(`key ${keyId} disabled by an operator`);
    return true;
  }

  /** Seconds until the earliest unavailable key returns; null if none ever will. */
  retryAfter(): number | null {
    const now = this.clock();
    let earliest = Infinity;
    for (const s of this.states) {
      if (!s.disabled && s.availableAt < earliest) {
        earliest = s.availableAt;
      }
    }
    if (earliest === Infinity) {
      return null;
    }
    return Math.max(earliest - now, 0);
  }

  /** [keys available now, keys in all]. */
  counts(): [number, number] {
    const now = this.clock();
    return [this.states.filter((s) => s.availableAt <= now).length, this.states.length];
  }

  snapshot(): KeySnapshot[] {
    const now = this.clock();
    return this.states.map((s) => {
      const parked = s.availableAt > now;
      return {
        id: s.keyId,
        state: s.state(now),
        cooldownUntil: s.cooldownUntil(now),
        reason: parked ? s.reason : null,
        source: parked ? s.source : null,
        totalRequests: s.totalRequests,
        successes: s.successes,
        errors: s.errors,
        failovers: s.failovers,
        estimatedRemainingQuota: s.estimatedRemainingQuota,
        lastUsedAt: s.lastUsedAt,
      };
    });
  }
}

/** Python's `format(x, "g")`: 6 significant digits, trailing zeros dropped (2.0 -> "2"). */
export function formatG(x: number): string {
  if (!Number.isFinite(x)) {
    return x > 0 ? "inf" : x < 0 ? "-inf" : "nan";
  }
  if (x === 0) {
    return "0";
  }
  const exponent = Math.floor(Math.log10(Math.abs(x)));
  if (exponent < -4 || exponent >= 6) {
    const [mantissa, exp] = x.toExponential(5).split("e");
    const m = mantissa!.replace(/\.?0+$/, "");
    const e = Number(exp);
    return `${m}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  }
  return x.toPrecision(6).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}
