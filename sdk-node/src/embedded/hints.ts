/**
 * Retry hints: what a pool-made answer tells clients about trying again (the server's
 * `hints.py`). `Retry-After` only for a wait worth sleeping through, with `x-should-retry: true`;
 * for a longer wait, or none, `x-should-retry: false`, the real wait left to the body's
 * `retry_after`. Pure.
 *
 * @module
 */

/** A client is invited to retry when the pool expects to serve it within this many seconds. */
export const SHOULD_RETRY_WITHIN = 60.0;
/** Retry-After for a transient answer that names no wait of its own. */
export const DEFAULT_RETRY_AFTER = 1;
/** Answers that hold a request for a moment: always worth a retry soon. */
export const TRANSIENT: ReadonlySet<string> = new Set(["upstream_unavailable", "overloaded"]);
export const CALLER_LIMIT = "caller_rate_limited";

/**
 * [Retry-After in whole seconds or null, x-should-retry or null] for a pool-made answer with
 * `code`, when the pool expects to serve again in `wait` seconds (null: not by itself).
 * [null, null]: say nothing, the status speaks for itself.
 */
export function retryHint(code: string, wait: number | null): [number | null, boolean | null] {
  if (TRANSIENT.has(code)) {
    const seconds = wait === null ? DEFAULT_RETRY_AFTER : Math.max(1, Math.ceil(wait));
    return [Math.min(seconds, SHOULD_RETRY_WITHIN), true];
  }
  if (code === CALLER_LIMIT) {
    const seconds = wait === null ? 1 : Math.max(1, Math.ceil(wait));
    return [seconds, seconds <= SHOULD_RETRY_WITHIN];
  }
  if (code === "no_available_keys") {
    if (wait === null) {
      return [null, false];
    }
    const seconds = Math.max(1, Math.ceil(wait));
    if (seconds > SHOULD_RETRY_WITHIN) {
      return [null, false];
    }
    return [seconds, true];
  }
  return [null, null];
}

/** The hint as response headers (lower-case names). */
export function retryHeaders(code: string, wait: number | null): [string, string][] {
  const [retryAfter, shouldRetry] = retryHint(code, wait);
  const headers: [string, string][] = [];
  if (retryAfter !== null) {
    headers.push(["retry-after", String(retryAfter)]);
  }
  if (shouldRetry !== null) {
    headers.push(["x-should-retry", shouldRetry ? "true" : "false"]);
  }
  return headers;
}
