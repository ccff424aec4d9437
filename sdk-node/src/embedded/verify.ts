/**
 * Confirming that a key is bad before it is disabled (the server's `verify.py`).
 *
 * A 401 or 403 (or an "invalid key" error) may be the key's fault or the request's. Disabling on
 * the first one lets a single request that answers 401 for every key disable the whole pool. So a
 * `key_invalid` verdict from the provider profile (`Verdict.confirm`) disables the key only once
 * it is confirmed bad; an `onStatus` `disable` rule needs no confirming.
 *
 * `judge()` is the rule, pure, in this order:
 *
 * ```
 * the key was verified good in the last 30 s    relay: the answer is the request's own
 * the request already disabled a key            fail over, the key not penalised
 * the request is itself `GET <verifyPath>`      disable (it was the verification)
 * verification said invalid                     disable
 * a verify path is set, nothing known yet       verify: `GET <verifyPath>` with this key
 * the key failed so, unconfirmed, on another    disable
 * path in the last 10 minutes with no success
 * otherwise                                     fail over, the key not penalised; if another
 *                                               key then succeeds on this request, it is disabled
 * ```
 *
 * At most one verification per key runs at a time (the others wait for it), each within
 * `VERIFY_TIMEOUT`, and its result is kept `VALID_TTL` (good) or `UNKNOWN_TTL` (nothing learned)
 * seconds.
 *
 * @module
 */

import type { Outcome, Verdict } from "./verdict.js";

export const VALID = "valid";
export const INVALID = "invalid";
export const UNKNOWN = "unknown";
export type Reading = typeof VALID | typeof INVALID | typeof UNKNOWN;

export const VALID_TTL = 30.0;
export const UNKNOWN_TTL = 5.0;
export const SUSPECT_WINDOW = 600.0;
export const VERIFY_TIMEOUT = 5.0;
export const VERIFY_READ = 64 * 1024;

export type Judgement = "disable" | "relay" | "verify" | "fail_over";

/** The rule above (see the module docs for each fact). */
export function judge(facts: {
  known: Reading | null;
  disabledOne: boolean;
  isVerifyRequest: boolean;
  canVerify: boolean;
  failedElsewhere: boolean;
}): Judgement {
  if (facts.known === VALID) {
    return "relay";
  }
  if (facts.disabledOne) {
    return "fail_over";
  }
  if (facts.isVerifyRequest || facts.known === INVALID) {
    return "disable";
  }
  if (facts.canVerify && facts.known === null) {
    return "verify";
  }
  if (facts.failedElsewhere) {
    return "disable";
  }
  return "fail_over";
}

/** What a verification answer says about the key. */
export function reading(outcome: Outcome): Reading {
  if (outcome === "success" || outcome === "rate_limited" || outcome === "quota_exhausted") {
    return VALID;
  }
  return outcome === "key_invalid" ? INVALID : UNKNOWN;
}

/** One request's unconfirmed auth failures; made only when there is one. */
export class Confirming {
  /** Keys that failed over on an unconfirmed 401/403. */
  readonly suspects: number[] = [];
  /** This request has disabled a key: it disables no other. */
  disabled = false;
}

/**
 * The memory of `judge()`: verifications (cached, one in flight per key) and each key's last
 * unconfirmed auth failure. Time comes from `clock` (seconds).
 */
export class Verifier {
  readonly path: string | null;
  readonly clock: () => number;
  readonly #known = new Map<number, { result: Reading; until: number }>();
  readonly #running = new Map<number, Promise<Reading>>();
  readonly #suspects = new Map<number, { path: string; at: number; successes: number }>();

  constructor(path: string | null, clock: () => number) {
    this.path = path;
    this.clock = clock;
  }

  known(key: number): Reading | null {
    const found = this.#known.get(key);
    if (found === undefined) {
      return null;
    }
    if (found.until <= this.clock()) {
      this.#known.delete(key);
      return null;
    }
    return found.result;
  }

  /** Did the key fail so, unconfirmed, on another path recently, with no success since? */
  failedElsewhere(key: number, path: string, successes: number): boolean {
    const found = this.#suspects.get(key);
    if (found === undefined) {
      return false;
    }
    return found.path !== path && found.successes === successes && this.clock() - found.at < SUSPECT_WINDOW;
  }

  /** Remember an unconfirmed auth failure of `key` on `path`. */
  suspect(key: number, path: string, successes: number): void {
    this.#suspects.set(key, { path, at: this.clock(), successes });
  }

  /** The key was disabled (or re-enabled): nothing learned of it applies any longer. */
  forget(key: number): void {
    this.#suspects.delete(key);
    this.#known.delete(key);
  }

  /** The key's verification result: cached, or the one in flight, or `run()` now. */
  verify(key: number, run: () => Promise<Reading>): Promise<Reading> {
    const found = this.known(key);
    if (found !== null) {
      return Promise.resolve(found);
    }
    const running = this.#running.get(key);
    if (running !== undefined) {
      return running;
    }
    const done = (async (): Promise<Reading> => {
      let result: Reading = UNKNOWN;
      try {
        result = await run();
      } catch {
        result = UNKNOWN;
      } finally {
        this.#running.delete(key);
        if (result !== INVALID) {
          // an invalid key is disabled; enabling it starts afresh
          const ttl = result === VALID ? VALID_TTL : UNKNOWN_TTL;
          this.#known.set(key, { result, until: this.clock() + ttl });
        }
      }
      return result;
    })();
    this.#running.set(key, done);
    return done;
  }

  /**
   * A profile's key_invalid `verdict` for `key` on `method path`, made what `judge()` says:
   * disabling (confirmed), relayed (the key is good), or failing over without penalty.
   */
  async confirm(
    key: number,
    verdict: Verdict,
    facts: {
      method: string;
      path: string;
      successes: number;
      confirming: Confirming;
      run: () => Promise<Reading>;
    },
  ): Promise<Verdict> {
    const { method, path, successes, confirming } = facts;
    const isVerify = method === "GET" && path === this.path;
    const decide = (known: Reading | null): Judgement =>
      judge({
        known,
        disabledOne: confirming.disabled,
        isVerifyRequest: isVerify,
        canVerify: this.path !== null,
        failedElsewhere: this.failedElsewhere(key, path, successes),
      });
    let known = this.known(key);
    let decision = decide(known);
    if (decision === "verify") {
      known = await this.verify(key, facts.run);
      decision = decide(known);
    }
    if (decision === "disable") {
      confirming.disabled = true;
      this.forget(key);
      const how = isVerify || known === INVALID ? "verify_path" : "invalid on two paths";
      return { ...verdict, confirm: false, source: `confirmed: ${how}` };
    }
    if (decision === "relay") {
      return { ...verdict, failover: false, disable: false, confirm: false, source: "verified" };
    }
    confirming.suspects.push(key);
    this.suspect(key, path, successes);
    return { ...verdict, disable: false, confirm: false, source: "unconfirmed" };
  }

  /**
   * Another key succeeded on the request: the first key that failed over on an unconfirmed auth
   * failure is bad (unless the request already disabled one).
   */
  confirmedByPeer(confirming: Confirming): number | null {
    if (confirming.suspects.length === 0 || confirming.disabled) {
      return null;
    }
    confirming.disabled = true;
    const key = confirming.suspects[0]!;
    this.forget(key);
    return key;
  }
}
