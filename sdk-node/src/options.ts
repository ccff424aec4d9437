/**
 * The option bags of the client and of each call.
 *
 * @module
 */

import type { RandomFunction } from "./retry.js";

/** Header names to values; `undefined` drops a header set by the client's defaults. */
export type HeaderValues = Record<string, string | undefined>;

/** One query parameter value; `null` and `undefined` are left out. */
export type QueryValue = string | number | boolean | null | undefined;

/** Query parameters; an array repeats the name (`?tag=a&tag=b`). */
export type Query = Record<string, QueryValue | readonly QueryValue[]>;

/** A raw request body (use `json` for a JSON body). */
export type RequestBody = string | Uint8Array | ArrayBuffer | URLSearchParams;

/** The `fetch` the client uses: the global one, or any compatible function (tests, undici). */
export type FetchFunction = (url: string, init: RequestInit) => Promise<Response>;

export type { RandomFunction };

/** Options of `new PoolSwitchProxyClient(baseUrl, options)`. */
export interface ClientOptions {
  /**
   * The caller token, for a proxy that authenticates its callers (`callers:` in its config),
   * sent as `x-poolswitch-token` on every call. Default: the `POOLSWITCH_TOKEN` environment
   * variable, when set and not empty. Never shown in errors, `inspect()` or logs.
   */
  token?: string;
  /**
   * The pool to use, sent as `x-poolswitch-pool` on every proxied call (not on `health()`,
   * `status()`, `metrics()`); the path then goes to that pool unchanged. Default: none (the
   * proxy picks the pool by the path's prefix). A call's own `pool` wins.
   */
  pool?: string;
  /**
   * One deadline for the whole call in milliseconds: every attempt, every wait before a retry,
   * and reading the answer's body (default 600000; `0` = no deadline). For a stream: the time
   * until the response headers arrive, then the longest silence between two pieces.
   */
  timeoutMs?: number;
  /** Headers sent with every call (a call's own `headers` win). */
  headers?: HeaderValues;
  /**
   * How many times to retry a call (default 2, so at most 3 attempts; `0` = never). Retried,
   * and only these: a failure to reach the proxy (no answer came), and the proxy's own
   * `no_available_keys`, `overloaded`, `upstream_unavailable` and `caller_rate_limited`
   * answers unless they say `x-should-retry: false`. The wait before retry n is the answer's
   * `Retry-After` (else `error.retry_after`) times 1.0..1.1, never more than 60 s (a longer
   * named wait is thrown at once), else a backoff of `min(8, 0.5 * 2 ** n)` s times 0.5..1.0.
   * A wait that would end after the call's deadline is not waited: the last error is thrown.
   */
  maxRetries?: number;
  /** The `fetch` to use (default: the global `fetch`). */
  fetch?: FetchFunction;
  /** The randomness of the waits between retries, a function returning [0, 1) (default `Math.random`). */
  random?: RandomFunction;
}

/** Options every call takes. */
export interface CallOptions {
  /** Abort the call: it then rejects with a `ProxyTimeoutError` whose `aborted` is `true`. */
  signal?: AbortSignal;
  /** This call's deadline in milliseconds, `0` for none (default: the client's `timeoutMs`). */
  timeoutMs?: number;
}

/** Options of `get()`, `post()`, `request()`, `send()`, `stream()` and friends. */
export interface RequestOptions extends CallOptions {
  /** A value to send as a JSON body (`content-type: application/json`). */
  json?: unknown;
  /** A raw body (give `json` or `body`, not both). */
  body?: RequestBody;
  /** Query parameters, appended to the path's own. */
  query?: Query;
  /** Headers for this call; they win over the client's. */
  headers?: HeaderValues;
  /** This call's pool (`x-poolswitch-pool`); `null` sends none. Default: the client's `pool`. */
  pool?: string | null;
}
