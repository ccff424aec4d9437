/**
 * The option bags of the client and of each call.
 *
 * @module
 */

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

/** Options of `new PoolSwitchProxyClient(baseUrl, options)`. */
export interface ClientOptions {
  /**
   * The caller token, for a proxy that authenticates its callers (`callers:` in its config),
   * sent as `x-poolswitch-token` on every call. Default: the `POOLSWITCH_TOKEN` environment
   * variable, when set and not empty. Never shown in errors, `inspect()` or logs.
   */
  token?: string;
  /**
   * Milliseconds a call may take in all, retries and waits included (default 600000). For a
   * stream: the wait for its headers, and then the longest silence between two pieces.
   */
  timeoutMs?: number;
  /** Headers sent with every call (a call's own `headers` win). */
  headers?: HeaderValues;
  /**
   * How many times to retry a call, within its timeout (default 2), and only when: the proxy
   * could not be reached (for POST and PATCH, only when no connection was made, so a request is
   * never sent twice), or the proxy answered `no_available_keys`, `overloaded` or
   * `upstream_unavailable` without `x-should-retry: false`, with a `retryAfter` of at most 60 s
   * that fits in the time left (the client waits that long first; a longer wait is thrown at
   * once as the `ProxyError`). Nothing else is retried: the proxy already fails over between keys.
   */
  maxRetries?: number;
  /** The `fetch` to use (default: the global `fetch`). */
  fetch?: FetchFunction;
}

/** Options every call takes. */
export interface CallOptions {
  /** Abort the call: it then rejects with a `ProxyTimeoutError` whose `aborted` is `true`. */
  signal?: AbortSignal;
  /** This call's timeout in milliseconds (default: the client's `timeoutMs`). */
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
}
