/**
 * The outage guard: tell an upstream outage from failing keys (the server's `guard.py`).
 *
 * When most keys fail the same not-the-key's-fault way within a short window — 5xx, overload,
 * connection errors or timeouts; or the same 429 on many keys at once, the signature of an
 * account- or IP-wide limit — parking keys one by one would only darken the pool. The guard trips
 * instead and the pool reports itself degraded.
 *
 * - `upstream` (5xx, overload, network, timeouts): keys are no longer parked for repeated 5xx,
 *   and only one request at a time (a probe, at most one per `probeInterval`) goes upstream; the
 *   others are answered at once with `upstream_unavailable` (`holds`).
 * - `rate_limited`: nothing is held; each 429 already parks its key for as long as the provider
 *   says, so an exhausted pool answers `no_available_keys` with the real wait.
 *
 * The first success clears it, and so does enabling a key (`reset`). Pure: time is injected.
 *
 * @module
 */

import { faultOf, type Verdict } from "./verdict.js";

export const WINDOW_SECONDS = 10.0;
export const PROBE_INTERVAL = 0.5;
export const MIN_FAILURES = 3;
/** The one kind of trip that holds requests. */
export const HOLDING_KIND = "upstream";

export type OutageKind = "upstream" | "rate_limited";

interface Failure {
  readonly at: number;
  readonly key: number;
  readonly kind: OutageKind;
}

export class OutageGuard {
  readonly clock: () => number;
  readonly window: number;
  readonly probeInterval: number;
  /** Distinct keys: a majority of the pool. */
  readonly threshold: number;
  trippedKind: OutageKind | null = null;
  since: number | null = null;
  /** Successes that came after failures (see `Pool.record`). */
  recoveries = 0;
  #events: Failure[] = [];
  #probing = false;
  #nextProbe = 0;

  constructor(
    keyCount: number,
    clock: () => number,
    options: { window?: number; probeInterval?: number } = {},
  ) {
    this.clock = clock;
    this.window = options.window ?? WINDOW_SECONDS;
    this.probeInterval = options.probeInterval ?? PROBE_INTERVAL;
    this.threshold = Math.floor(keyCount / 2) + 1;
  }

  /** The pool is degraded: most keys failed alike, not through their own fault. */
  get tripped(): boolean {
    return this.trippedKind !== null;
  }

  /** Requests are held (one probe at a time): the upstream itself is failing. */
  get holds(): boolean {
    return this.trippedKind === HOLDING_KIND;
  }

  /**
   * An attempt on key `key` ended in `verdict`: counted when it was not the key's fault (the
   * upstream's, or either's), or a rate limit (many keys at once: account-wide).
   */
  failure(key: number, verdict: Verdict): void {
    let kind: OutageKind;
    const fault = faultOf(verdict);
    if (verdict.outcome === "rate_limited") {
      kind = "rate_limited";
    } else if (fault === "upstream" || fault === "either") {
      kind = "upstream";
    } else {
      return;
    }
    const now = this.clock();
    const events = this.#events;
    events.push({ at: now, key, kind });
    let old = 0;
    while (old < events.length && events[old]!.at < now - this.window) {
      old += 1;
    }
    if (old > 0) {
      events.splice(0, old);
    }
    if (this.trippedKind === kind || this.trippedKind === HOLDING_KIND) {
      return; // already tripped; a rate-limit storm may still turn into an outage
    }
    const same = events.filter((e) => e.kind === kind).map((e) => e.key);
    if (same.length >= MIN_FAILURES && new Set(same).size >= this.threshold) {
      this.trippedKind = kind;
      this.since = now;
    }
  }

  /** The upstream answered well: whatever was wrong is over. */
  success(): void {
    this.reset();
  }

  /** Forget what was seen (a success, or a key put back in service). */
  reset(): void {
    if (this.#events.length > 0) {
      this.#events = [];
      this.recoveries += 1;
    }
    if (this.trippedKind !== null) {
      this.trippedKind = null;
      this.since = null;
      this.#probing = false;
    }
  }

  /** May a request go upstream now? Always, unless it holds: then one probe at a time. */
  admit(): boolean {
    if (this.trippedKind !== HOLDING_KIND) {
      return true;
    }
    const now = this.clock();
    if (this.#probing || now < this.#nextProbe) {
      return false;
    }
    this.#probing = true;
    this.#nextProbe = now + this.probeInterval;
    return true;
  }

  probeDone(): void {
    this.#probing = false;
  }

  retryAfter(): number {
    return Math.max(this.#nextProbe - this.clock(), this.probeInterval);
  }
}
