/**
 * What to do next in a request: try a key, wait, or answer (the server's `retry.py`). Pure:
 * values in, a `Step` out.
 *
 * The request loop (engine.ts) asks at two moments:
 *
 * - `afterAttempt`: an attempt did not succeed. `try` another key, or stop: `relay` the last
 *   upstream answer, or `fail` with a pool-made error when the last attempt got no answer.
 * - `whenNoKey`: no key that is free now is left untried. `backoff` (wait, then keys already
 *   tried may be used again), `queue` (wait for a cooling key to return), or stop as above.
 *
 * Each attempt uses a key not yet tried for this request while untried keys remain, and never
 * sleeps before trying another healthy key. Only when every available key has been tried does a
 * retry reuse one — and only when the failure was not the key's fault — after a backoff with full
 * jitter. Everything is bounded by `retryAttempts` attempts and by the request's deadline.
 *
 * A connection that failed before the request was sent is always safe to retry. A timeout or a
 * reset after a non-idempotent request (POST, PATCH) was sent is not retried unless
 * `retryNonIdempotent` is set.
 *
 * @module
 */

import { isKeyFault, type Verdict } from "./verdict.js";

export const IDEMPOTENT: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);
export const BACKOFF_BASE = 0.1;
export const BACKOFF_CAP = 2.0;
/** A queued request wakes this long after the first key's return, so that the key is free. */
export const QUEUE_SLACK = 0.005;

/** The pool-made errors a request may end in. */
export type FailCode = "upstream_timeout" | "upstream_unreachable" | "no_available_keys";

/**
 * The next thing the request loop does: `try` (select another key now), `backoff` (wait `delay`
 * seconds, then tried keys may be reused), `queue` (wait `delay` for a key to return), `relay`
 * (answer with the last upstream answer), `fail` (answer with the pool-made error `error`).
 */
export interface Step {
  readonly action: "try" | "backoff" | "queue" | "relay" | "fail";
  readonly delay: number;
  readonly error: FailCode | null;
}

function step(action: Step["action"], delay = 0, error: FailCode | null = null): Step {
  return Object.freeze({ action, delay, error });
}

export const TRY = step("try");
export const RELAY = step("relay");
export const TIMED_OUT = step("fail", 0, "upstream_timeout");
export const UNREACHABLE = step("fail", 0, "upstream_unreachable");
export const NO_KEYS = step("fail", 0, "no_available_keys");

function isTransport(verdict: Verdict): boolean {
  return verdict.outcome === "network_error" || verdict.outcome === "timeout";
}

/** True when the request should get another attempt after `attempts` attempts. */
export function mayRetry(
  verdict: Verdict,
  attempts: number,
  retryAttempts: number,
  options: { method: string; sent?: boolean; retryNonIdempotent?: boolean },
): boolean {
  if (!verdict.failover || attempts >= retryAttempts) {
    return false;
  }
  if (isTransport(verdict) && (options.sent ?? true)) {
    return IDEMPOTENT.has(options.method) || (options.retryNonIdempotent ?? false);
  }
  return true;
}

/**
 * May a key already tried for this request be tried again (after a backoff)? Only when the
 * failure was not the key's fault; a parked or disabled key is never selected anyway.
 */
export function mayReuse(verdict: Verdict): boolean {
  return verdict.failover && !isKeyFault(verdict);
}

/** Full jitter: `jitter` (uniform in [0, 1)) times min(cap, base * 2**round), in seconds. */
export function backoff(round: number, jitter: number): number {
  return jitter * Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** round);
}

/**
 * The answer when the request stops: the last upstream answer if there is one, else the error
 * that names why the last attempt got none (or that no key was free).
 */
export function giveUp(last: Verdict | null, answered: boolean): Step {
  if (answered) {
    return RELAY;
  }
  if (last === null) {
    return NO_KEYS;
  }
  return last.outcome === "timeout" ? TIMED_OUT : UNREACHABLE;
}

/**
 * An attempt ended in `verdict` (`answered`: with an upstream answer, not a transport failure;
 * `sent`: the request reached the upstream).
 */
export function afterAttempt(
  verdict: Verdict,
  facts: {
    answered: boolean;
    attempts: number;
    retryAttempts: number;
    method: string;
    sent: boolean;
    retryNonIdempotent: boolean;
    now: number;
    deadline: number;
  },
): Step {
  if (
    facts.now < facts.deadline &&
    mayRetry(verdict, facts.attempts, facts.retryAttempts, {
      method: facts.method,
      sent: facts.sent,
      retryNonIdempotent: facts.retryNonIdempotent,
    })
  ) {
    return TRY;
  }
  return giveUp(verdict, facts.answered);
}

/**
 * No free key is left untried. `last`: the last attempt's verdict (null: none yet); `tried`: keys
 * were tried since the last backoff; `rounds`: backoffs so far; `returnsIn`: seconds until the
 * first cooling key returns (null: none will); `jitter` in [0, 1).
 */
export function whenNoKey(facts: {
  last: Verdict | null;
  answered: boolean;
  tried: boolean;
  attempts: number;
  retryAttempts: number;
  rounds: number;
  now: number;
  deadline: number;
  queueDeadline: number;
  returnsIn: number | null;
  jitter: number;
}): Step {
  const { last } = facts;
  if (facts.tried && last !== null && mayReuse(last) && facts.attempts < facts.retryAttempts) {
    const delay = backoff(facts.rounds, facts.jitter);
    if (facts.now + delay >= facts.deadline) {
      return giveUp(last, facts.answered);
    }
    return step("backoff", delay);
  }
  if (last === null && facts.returnsIn !== null && facts.now + facts.returnsIn < facts.queueDeadline) {
    return step("queue", facts.returnsIn + QUEUE_SLACK);
  }
  return giveUp(last, facts.answered);
}
