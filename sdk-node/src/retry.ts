/**
 * The retry rules of a call, as pure functions (docs/protocol.md, "Client behaviour"): which
 * answers are asked again, and how long to wait first. The client only carries them out.
 *
 * @module
 */

import { ProxyErrorCode } from "./codes.js";
import { retryAfterSeconds } from "./errors.js";
import type { PoolSwitchResponse } from "./response.js";

/** The proxy's answers worth asking again: nothing was sent upstream, and it may soon pass. */
export const RETRIED_CODES: ReadonlySet<string> = new Set([
  ProxyErrorCode.NoAvailableKeys,
  ProxyErrorCode.Overloaded,
  ProxyErrorCode.UpstreamUnavailable,
  ProxyErrorCode.CallerRateLimited,
]);
/** A named wait longer than this (seconds) is never slept: the error is thrown at once. */
export const MAX_NAMED_WAIT_SECONDS = 60;
/** The first backoff (seconds) when no wait is named; it doubles per retry... */
const BACKOFF_FIRST_SECONDS = 0.5;
/** ...up to this. */
const BACKOFF_CAP_SECONDS = 8;

/** A source of randomness in [0, 1), such as `Math.random`. */
export type RandomFunction = () => number;

/**
 * `true` for a proxy-made answer in {@link RETRIED_CODES} that does not say
 * `x-should-retry: false`. Relayed upstream answers (no `x-poolswitch-error`) are never retried.
 */
export function isRetried(response: PoolSwitchResponse): boolean {
  const should = response.headers.get("x-should-retry")?.trim().toLowerCase();
  return response.proxyError !== null && RETRIED_CODES.has(response.proxyError) && should !== "false";
}

/** The wait an answer names, in seconds: `Retry-After`, else the body's `error.retry_after`. */
export function namedWaitSeconds(response: PoolSwitchResponse): number | null {
  const header = retryAfterSeconds(response.headers);
  if (header !== null) {
    return header;
  }
  const body = response.body();
  const error = typeof body === "object" && body !== null ? (body as { error?: unknown }).error : undefined;
  const value = typeof error === "object" && error !== null ? (error as { retry_after?: unknown }).retry_after : undefined;
  return typeof value === "number" && Number.isFinite(value) ? Math.max(0, value) : null;
}

/**
 * Whole milliseconds to wait before retry `retry` (0 for the first retry), or `null` to give up now.
 * A named wait is `named * U(1.0, 1.1)`, never more than 60 s, and a named wait over 60 s gives
 * up; without one (a connection failure, or an answer that names none) the wait is
 * `min(8, 0.5 * 2**retry) * U(0.5, 1.0)` seconds. Whether it fits in the call's deadline is the
 * caller's check.
 */
export function retryDelayMs(retry: number, named: number | null, random: RandomFunction): number | null {
  const u = unit(random());
  if (named !== null) {
    if (named > MAX_NAMED_WAIT_SECONDS) {
      return null;
    }
    return Math.round(Math.min(MAX_NAMED_WAIT_SECONDS, named * (1 + 0.1 * u)) * 1000);
  }
  return Math.round(Math.min(BACKOFF_CAP_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** retry) * (0.5 + 0.5 * u) * 1000);
}

/** A random value forced into [0, 1] (a broken `random` must not make a wait negative or huge). */
function unit(value: number): number {
  return Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
}
