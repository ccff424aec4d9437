/**
 * The errors the client throws, one tree:
 *
 * ```
 * PoolSwitchError                 base of every error below (and of unexpected answers)
 * ├── ProxyError                  the proxy made this answer itself (`x-poolswitch-error`)
 * ├── UpstreamError               the upstream answered non-2xx and the proxy relayed it
 * ├── ProxyConnectionError        the proxy could not be reached, or the connection broke
 * └── ProxyTimeoutError           the call timed out, or the caller's signal aborted it
 * ```
 *
 * `errorFromResponse` is the one place that turns an HTTP answer into an error class.
 *
 * @module
 */

import type { ProxyErrorCode } from "./codes.js";
import type { PoolSwitchResponse } from "./response.js";

/** Base class of every error this package throws. `cause` holds the wrapped error, if any. */
export class PoolSwitchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PoolSwitchError";
  }
}

/** The fields of a {@link ProxyError}. */
export interface ProxyErrorInit {
  code: string;
  status: number;
  retryAfter: number | null;
  attempts: number | null;
  headers: Headers;
  /** The whole answer, when the error was made from one. */
  response?: PoolSwitchResponse | null;
  /** The answer's `x-poolswitch-request-id`, if any. */
  requestId?: string | null;
}

/**
 * An answer the proxy made itself (it carries `x-poolswitch-error: <code>`), such as
 * `429 no_available_keys` or `502 upstream_unreachable`.
 */
export class ProxyError extends PoolSwitchError {
  /**
   * The `x-poolswitch-error` code, one of {@link ProxyErrorCode}: `no_available_keys`,
   * `upstream_unavailable`, `overloaded`, `upstream_unreachable`, `upstream_timeout`,
   * `payload_too_large`, `bad_request`, `unauthorized`, `forbidden`, `headers_too_large`,
   * `not_found`, `no_such_pool`, `caller_rate_limited`, `internal_error` (or a code newer than
   * this version).
   */
  readonly code: ProxyErrorCode | (string & {});
  /** The HTTP status of the proxy's answer. */
  readonly status: number;
  /**
   * Seconds to wait, from the body's `error.retry_after` (else `Retry-After`): for
   * `no_available_keys` the real time until a key returns (it may be hours), `null` when none
   * will return by itself or the proxy did not say.
   */
  readonly retryAfter: number | null;
  /** Upstream attempts the proxy made for this request (`x-poolswitch-attempts`), if it said. */
  readonly attempts: number | null;
  /** The response headers. */
  readonly headers: Headers;
  /** The whole answer (status, headers, raw body), when the error was made from one. */
  readonly response: PoolSwitchResponse | null;
  /**
   * The proxy's id of the request (the answer's `x-poolswitch-request-id`), also in its access log: quote it
   * when reporting a failure. `null` when the answer had none.
   */
  readonly requestId: string | null;

  constructor(message: string, init: ProxyErrorInit) {
    super(message);
    this.name = "ProxyError";
    this.code = init.code;
    this.status = init.status;
    this.retryAfter = init.retryAfter;
    this.attempts = init.attempts;
    this.headers = init.headers;
    this.response = init.response ?? null;
    this.requestId = init.requestId ?? null;
  }
}

/** The fields of an {@link UpstreamError}. */
export interface UpstreamErrorInit {
  status: number;
  body: unknown;
  keyId: string | null;
  attempts: number | null;
  headers: Headers;
  /** The whole answer, when the error was made from one. */
  response?: PoolSwitchResponse | null;
  /** The answer's `x-poolswitch-request-id`, if any. */
  requestId?: string | null;
}

/**
 * A non-2xx answer of the upstream API, relayed by the proxy (say, a 429 from the last key tried,
 * or a 400 for a malformed request). An upstream 503 is an `UpstreamError`, never a `ProxyError`.
 */
export class UpstreamError extends PoolSwitchError {
  /** The upstream's HTTP status. */
  readonly status: number;
  /** The body: parsed JSON when the answer was JSON, else the text. */
  readonly body: unknown;
  /** The id of the key that produced this answer (`x-poolswitch-key-id`), if any. */
  readonly keyId: string | null;
  /** Upstream attempts made for this request (`x-poolswitch-attempts`), if any. */
  readonly attempts: number | null;
  /** The response headers. */
  readonly headers: Headers;
  /** The whole answer (status, headers, raw body), when the error was made from one. */
  readonly response: PoolSwitchResponse | null;
  /**
   * The proxy's id of the request (the answer's `x-poolswitch-request-id`), also in its access log: quote it
   * when reporting a failure. `null` when the answer had none.
   */
  readonly requestId: string | null;

  constructor(message: string, init: UpstreamErrorInit) {
    super(message);
    this.name = "UpstreamError";
    this.status = init.status;
    this.body = init.body;
    this.keyId = init.keyId;
    this.attempts = init.attempts;
    this.headers = init.headers;
    this.response = init.response ?? null;
    this.requestId = init.requestId ?? null;
  }
}

/** The proxy could not be reached, or the connection to it broke mid-answer. */
export class ProxyConnectionError extends PoolSwitchError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ProxyConnectionError";
  }
}

/** The fields of a {@link ProxyTimeoutError}. */
export interface ProxyTimeoutErrorInit {
  /** The timeout that expired, or `null` when the caller aborted. */
  timeoutMs: number | null;
  /** `true` when the caller's `AbortSignal` aborted the call. */
  aborted: boolean;
  cause?: unknown;
}

/**
 * The call did not finish in time (`timeoutMs`; for a stream, no data for `timeoutMs`), or the
 * caller's `AbortSignal` aborted it (`aborted: true`, `cause` = the signal's reason).
 */
export class ProxyTimeoutError extends PoolSwitchError {
  /** The timeout that expired, or `null` when the caller aborted. */
  readonly timeoutMs: number | null;
  /** `true` when the caller's `AbortSignal` aborted the call. */
  readonly aborted: boolean;

  constructor(message: string, init: ProxyTimeoutErrorInit) {
    super(message, "cause" in init ? { cause: init.cause } : undefined);
    this.name = "ProxyTimeoutError";
    this.timeoutMs = init.timeoutMs;
    this.aborted = init.aborted;
  }
}

const MAX_DETAIL = 300;

/**
 * The error for a non-2xx answer: a {@link ProxyError} when the proxy made it (the
 * `x-poolswitch-error` header, and only that, tells), else an {@link UpstreamError}.
 */
export function errorFromResponse(response: PoolSwitchResponse): ProxyError | UpstreamError {
  const body = response.body();
  const code = response.proxyError;
  if (code !== null) {
    const envelope = errorEnvelope(body);
    const detail = stringField(envelope, "message") ?? `the proxy answered ${response.status}`;
    return new ProxyError(`${code}: ${clip(detail)}`, {
      code,
      status: response.status,
      retryAfter: numberField(envelope, "retry_after") ?? retryAfterSeconds(response.headers),
      attempts: response.attempts,
      headers: response.headers,
      response,
      requestId: response.headers.get("x-poolswitch-request-id"),
    });
  }
  const where =
    response.keyId === null ? "" : ` (key ${response.keyId}, attempts ${response.attempts ?? "?"})`;
  const detail = upstreamMessage(body);
  return new UpstreamError(
    `upstream answered ${response.status}${where}${detail ? `: ${clip(detail)}` : ""}`,
    {
      status: response.status,
      body,
      keyId: response.keyId,
      attempts: response.attempts,
      headers: response.headers,
      response,
      requestId: response.headers.get("x-poolswitch-request-id"),
    },
  );
}

/**
 * Seconds from a `Retry-After` header (delta-seconds or an HTTP date), rounded up; `null` when
 * absent or unreadable.
 */
export function retryAfterSeconds(headers: Headers, now: number = Date.now()): number | null {
  const value = headers.get("retry-after")?.trim();
  if (!value) {
    return null;
  }
  if (/^\d+(\.\d+)?$/.test(value)) {
    return Number(value);
  }
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

function errorEnvelope(body: unknown): Record<string, unknown> | undefined {
  const error = isRecord(body) ? body["error"] : undefined;
  return isRecord(error) ? error : undefined;
}

/** The human message of an OpenAI-style (`error.message`), Anthropic-style or plain body. */
function upstreamMessage(body: unknown): string | undefined {
  if (typeof body === "string") {
    return body.trim() || undefined;
  }
  const top = isRecord(body) ? body : undefined;
  return stringField(errorEnvelope(body), "message") ?? stringField(top, "message");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringField(record: Record<string, unknown> | undefined, name: string): string | undefined {
  const value = record?.[name];
  return typeof value === "string" && value !== "" ? value : undefined;
}

function numberField(record: Record<string, unknown> | undefined, name: string): number | null {
  const value = record?.[name];
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function clip(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > MAX_DETAIL ? `${line.slice(0, MAX_DETAIL)}…` : line;
}
