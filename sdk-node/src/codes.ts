/**
 * The codes of the answers the proxy makes itself (`x-poolswitch-error: <code>`, and the same
 * `error.code` in the body), as constants and as a union type (see docs/protocol.md).
 *
 * @module
 */

/**
 * Every proxy error code, by name: `ProxyErrorCode.NoSuchPool === "no_such_pool"`.
 *
 * ```js
 * if (error instanceof ProxyError && error.code === ProxyErrorCode.CallerRateLimited) { ... }
 * ```
 */
export const ProxyErrorCode = {
  /** 429 (+ `Retry-After` when a key returns within 60 s): every key of the pool is cooling down or disabled. Retried. */
  NoAvailableKeys: "no_available_keys",
  /** 503 + `Retry-After`: the outage guard holds requests while a probe checks the upstream. Retried. */
  UpstreamUnavailable: "upstream_unavailable",
  /** 503 + `Retry-After`: the proxy sheds load; nothing was sent upstream. Retried. */
  Overloaded: "overloaded",
  /** 502: the connection to the upstream failed on every attempt. */
  UpstreamUnreachable: "upstream_unreachable",
  /** 504: the upstream did not answer in time on every attempt. */
  UpstreamTimeout: "upstream_timeout",
  /** 413: the request body is over the proxy's limit. */
  PayloadTooLarge: "payload_too_large",
  /** 400: a request target the proxy refuses. */
  BadRequest: "bad_request",
  /** 401: the caller token is missing or wrong. */
  Unauthorized: "unauthorized",
  /** 403: the caller is not allowed on this pool, or a browser origin is not allowed. */
  Forbidden: "forbidden",
  /** 431: the request headers are over the proxy's limit. */
  HeadersTooLarge: "headers_too_large",
  /** 404: the admin API: an unknown key id or action. */
  NotFound: "not_found",
  /** 404: no pool matches the path or the `x-poolswitch-pool` name. */
  NoSuchPool: "no_such_pool",
  /** 429 (+ `Retry-After` when the wait is at most 60 s): the caller is over its `rpm` or `max_concurrency`. Retried. */
  CallerRateLimited: "caller_rate_limited",
  /** 500: a bug in the proxy. */
  InternalError: "internal_error",
} as const;

/** One of the proxy's error codes (`"no_available_keys"`, `"no_such_pool"`, ...). */
export type ProxyErrorCode = (typeof ProxyErrorCode)[keyof typeof ProxyErrorCode];

/** Every proxy error code, in the order of docs/protocol.md. */
export const PROXY_ERROR_CODES: readonly ProxyErrorCode[] = Object.freeze(Object.values(ProxyErrorCode));

/** `true` when `code` is one of the proxy's error codes that this version knows. */
export function isProxyErrorCode(code: unknown): code is ProxyErrorCode {
  return typeof code === "string" && (PROXY_ERROR_CODES as readonly string[]).includes(code);
}
