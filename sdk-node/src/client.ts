/**
 * `PoolSwitchProxyClient`: calls through a PoolSwitch proxy, with typed errors, bounded retries,
 * timeouts, cancellation and server-sent event streams.
 *
 * @module
 */

import type { HealthDocument, StatusDocument } from "./endpoints.js";
import { errorFromResponse, PoolSwitchError, ProxyError } from "./errors.js";
import type {
  CallOptions,
  ClientOptions,
  FetchFunction,
  HeaderValues,
  Query,
  RequestBody,
  RequestOptions,
} from "./options.js";
import { ERROR_HEADER, PoolSwitchResponse } from "./response.js";
import { CallScope } from "./scope.js";
import { PoolSwitchStream, type OpenedStream } from "./stream.js";
import { VERSION } from "./version.js";

const DEFAULT_TIMEOUT_MS = 600_000;
const DEFAULT_MAX_RETRIES = 2;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2_000;
/** The header that carries the caller token. */
const TOKEN_HEADER = "x-poolswitch-token";
/** The environment variable the token comes from when the options have none. */
const TOKEN_ENV = "POOLSWITCH_TOKEN";
/** The proxy's answers worth asking again after their `retryAfter` (nothing went upstream). */
const RETRIED_CODES = new Set(["no_available_keys", "overloaded", "upstream_unavailable"]);
/** The longest the client ever waits on its own before a retry, in seconds. */
const MAX_RETRY_WAIT_SECONDS = 60;

/** Methods a server may receive twice with no harm done. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** Error codes that mean no connection was made, so nothing reached the proxy. */
const NOT_CONNECTED = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** One call, ready to send (and to send again). */
interface PreparedCall {
  readonly method: string;
  readonly url: string;
  readonly headers: Headers;
  readonly body: RequestBody | undefined;
  readonly timeoutMs: number;
  /** `METHOD origin/path`, without the query string, for messages. */
  readonly what: string;
}

/**
 * A client for a PoolSwitch proxy.
 *
 * ```js
 * const client = new PoolSwitchProxyClient("http://127.0.0.1:8080");
 * const result = await client.post("/v1/chat/completions", {
 *   json: { model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }] },
 * });
 * ```
 *
 * Calls throw `ProxyError` (the proxy's own answers, such as `429 no_available_keys`),
 * `UpstreamError` (a non-2xx answer of the upstream), `ProxyConnectionError` and
 * `ProxyTimeoutError`, all subclasses of `PoolSwitchError`.
 */
export class PoolSwitchProxyClient {
  /** The proxy's base URL, without a trailing slash. */
  readonly baseUrl: string;
  /** The default timeout of a call, in milliseconds. */
  readonly timeoutMs: number;
  /** How many times a call may be retried (see `ClientOptions.maxRetries`). */
  readonly maxRetries: number;
  readonly #token: string | undefined;
  readonly #headers: HeaderValues;
  readonly #fetch: FetchFunction;

  /**
   * @param baseUrl the proxy, such as `http://127.0.0.1:8080` (it may carry a base path).
   * @param options token, timeout, default headers, retries and `fetch`.
   */
  constructor(baseUrl: string | URL, options: ClientOptions = {}) {
    this.baseUrl = normalizeBaseUrl(baseUrl);
    this.timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, "timeoutMs");
    const maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    if (!Number.isInteger(maxRetries) || maxRetries < 0) {
      throw new TypeError(`maxRetries must be an integer >= 0, got ${String(maxRetries)}`);
    }
    this.maxRetries = maxRetries;
    this.#token = callerToken(options.token);
    this.#headers = { ...options.headers };
    if (options.fetch === undefined && typeof globalThis.fetch !== "function") {
      throw new TypeError("no global fetch: use Node.js 18 or later, or pass options.fetch");
    }
    if (options.fetch !== undefined && typeof options.fetch !== "function") {
      throw new TypeError("fetch must be a function");
    }
    this.#fetch = options.fetch ?? ((url, init) => globalThis.fetch(url, init));
  }

  /** `GET path`; resolves to the parsed JSON (or the text) of a 2xx answer, throws otherwise. */
  get<T = unknown>(path: string, options?: RequestOptions): Promise<T> {
    return this.request<T>("GET", path, options);
  }

  /** `POST path`; resolves to the parsed JSON (or the text) of a 2xx answer, throws otherwise. */
  post<T = unknown>(path: string, options?: RequestOptions): Promise<T> {
    return this.request<T>("POST", path, options);
  }

  /** `PUT path`; resolves to the parsed JSON (or the text) of a 2xx answer, throws otherwise. */
  put<T = unknown>(path: string, options?: RequestOptions): Promise<T> {
    return this.request<T>("PUT", path, options);
  }

  /** `PATCH path`; resolves to the parsed JSON (or the text) of a 2xx answer, throws otherwise. */
  patch<T = unknown>(path: string, options?: RequestOptions): Promise<T> {
    return this.request<T>("PATCH", path, options);
  }

  /** `DELETE path`; resolves to the parsed JSON (or the text) of a 2xx answer, throws otherwise. */
  delete<T = unknown>(path: string, options?: RequestOptions): Promise<T> {
    return this.request<T>("DELETE", path, options);
  }

  /**
   * Any method. Resolves to the body of a 2xx answer: parsed JSON when its content type is JSON
   * (`null` when empty), else the text. A non-2xx answer throws `ProxyError` or `UpstreamError`.
   */
  async request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T> {
    const response = await this.send(method, path, options);
    if (!response.ok) {
      throw errorFromResponse(response);
    }
    return response.body() as T;
  }

  /**
   * Any method; resolves to the whole answer, whatever its status (`status`, `headers`, `keyId`,
   * `attempts`, `json()`, `text()`). Throws only when no answer came: `ProxyConnectionError`,
   * `ProxyTimeoutError`.
   */
  async send(method: string, path: string, options: RequestOptions = {}): Promise<PoolSwitchResponse> {
    const call = this.#prepare(method, path, options, undefined);
    const scope = new CallScope(options.signal, call.timeoutMs);
    try {
      const response = await this.#fetchWithRetries(call, scope);
      const bytes = new Uint8Array(await response.arrayBuffer());
      return new PoolSwitchResponse(response.status, response.headers, bytes);
    } catch (error) {
      throw scope.failure(error, call.what);
    } finally {
      scope.dispose();
    }
  }

  /**
   * A server-sent event stream: `for await (const event of client.stream("POST", path, { json }))`
   * yields `{ event, data, id, json() }` as each event arrives. A non-2xx answer throws from the
   * first step. `timeoutMs` bounds the wait for the response headers, then each silence between
   * two pieces of the stream.
   */
  stream(method: string, path: string, options: RequestOptions = {}): PoolSwitchStream {
    const call = this.#prepare(method, path, options, "text/event-stream");
    return new PoolSwitchStream(() => this.#openStream(call, options.signal));
  }

  /** `GET /health`: `{ status: "ok" | "degraded", keys_available, keys_total }`. */
  health(options?: CallOptions): Promise<HealthDocument> {
    return this.request<HealthDocument>("GET", "/health", callOnly(options));
  }

  /** `GET /status`: the strategy, storage, upstream and every key's state (ids only). */
  status(options?: CallOptions): Promise<StatusDocument> {
    return this.request<StatusDocument>("GET", "/status", callOnly(options));
  }

  /** `GET /metrics`: the Prometheus text. */
  async metrics(options?: CallOptions): Promise<string> {
    const response = await this.send("GET", "/metrics", callOnly(options));
    if (!response.ok) {
      throw errorFromResponse(response);
    }
    return response.text();
  }

  async #openStream(call: PreparedCall, signal: AbortSignal | undefined): Promise<OpenedStream> {
    const scope = new CallScope(signal, call.timeoutMs);
    try {
      const response = await this.#fetchWithRetries(call, scope);
      if (response.status < 200 || response.status >= 300) {
        const bytes = new Uint8Array(await response.arrayBuffer());
        throw errorFromResponse(new PoolSwitchResponse(response.status, response.headers, bytes));
      }
      const type = response.headers.get("content-type") ?? "";
      if (!type.toLowerCase().startsWith("text/event-stream")) {
        await response.body?.cancel().catch(() => undefined);
        throw new PoolSwitchError(
          `${call.what} answered ${response.status} with ${type || "no content type"}, not an event stream`,
        );
      }
      scope.arm(call.timeoutMs); // until the consumer starts reading, the stream counts as idle
      return { response, scope, idleMs: call.timeoutMs, what: call.what };
    } catch (error) {
      scope.dispose();
      throw scope.failure(error, call.what);
    }
  }

  /**
   * Send `call`; retry connection failures, and the proxy's `no_available_keys`, `overloaded`
   * and `upstream_unavailable` answers (unless `x-should-retry: false`) whose `retryAfter` is
   * known, at most {@link MAX_RETRY_WAIT_SECONDS} and within the time left.
   */
  async #fetchWithRetries(call: PreparedCall, scope: CallScope): Promise<Response> {
    for (let retry = 0; ; retry += 1) {
      let response: Response;
      try {
        const fetchFunction = this.#fetch; // called unbound, as a plain function
        response = await fetchFunction(call.url, {
          method: call.method,
          headers: call.headers,
          body: call.body ?? null,
          signal: scope.signal,
        });
      } catch (error) {
        const wait = Math.min(FIRST_BACKOFF_MS * 2 ** retry, MAX_BACKOFF_MS);
        if (
          scope.kind !== undefined ||
          retry >= this.maxRetries ||
          !isRetriableFailure(error, call.method) ||
          wait >= scope.remaining()
        ) {
          throw error;
        }
        await scope.sleep(wait);
        continue;
      }
      if (retry < this.maxRetries && mayRetry(response)) {
        const bytes = new Uint8Array(await response.clone().arrayBuffer());
        const error = errorFromResponse(new PoolSwitchResponse(response.status, response.headers, bytes));
        const seconds = error instanceof ProxyError ? error.retryAfter : null;
        if (
          seconds !== null &&
          seconds >= 0 &&
          seconds <= MAX_RETRY_WAIT_SECONDS &&
          seconds * 1000 < scope.remaining()
        ) {
          await response.body?.cancel().catch(() => undefined);
          await scope.sleep(seconds * 1000);
          continue;
        }
      }
      return response;
    }
  }

  #prepare(method: string, path: string, options: RequestOptions, accept: string | undefined): PreparedCall {
    if (typeof method !== "string" || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method)) {
      throw new TypeError(`method must be an HTTP method name, got ${JSON.stringify(method)}`);
    }
    const upper = method.toUpperCase();
    const { url, what } = this.#url(upper, path, options.query);
    const headers = new Headers({ "user-agent": `poolswitch-node/${VERSION}` });
    if (accept !== undefined) {
      headers.set("accept", accept);
    }
    if (this.#token !== undefined) {
      headers.set(TOKEN_HEADER, this.#token);
    }
    applyHeaders(headers, this.#headers);
    applyHeaders(headers, options.headers);
    let body: PreparedCall["body"] = options.body;
    if (options.json !== undefined) {
      if (options.body !== undefined) {
        throw new TypeError("give json or body, not both");
      }
      body = JSON.stringify(options.json);
      if (!headers.has("content-type")) {
        headers.set("content-type", "application/json");
      }
    }
    const timeoutMs = checkTimeout(options.timeoutMs ?? this.timeoutMs, "timeoutMs");
    return { method: upper, url, headers, body, timeoutMs, what };
  }

  #url(method: string, path: string, query: Query | undefined): { url: string; what: string } {
    if (typeof path !== "string" || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(path) || path.startsWith("//")) {
      throw new TypeError(`path must be a path such as "/v1/models", got ${JSON.stringify(path)}`);
    }
    const full = path.startsWith("/") ? path : `/${path}`;
    const queryString = encodeQuery(query);
    const separator = full.includes("?") ? "&" : "?";
    const url = `${this.baseUrl}${full}${queryString === "" ? "" : separator + queryString}`;
    return { url, what: `${method} ${this.baseUrl}${full.split("?")[0] ?? ""}` };
  }
}

/** A proxy answer the retry rules consider: a retried code, not marked `x-should-retry: false`. */
function mayRetry(response: Response): boolean {
  const code = response.headers.get(ERROR_HEADER);
  const should = response.headers.get("x-should-retry")?.trim().toLowerCase();
  return code !== null && RETRIED_CODES.has(code) && should !== "false";
}

/** The caller token: the option, else `$POOLSWITCH_TOKEN` (unset or empty: none). */
function callerToken(given: unknown): string | undefined {
  let token = given;
  let where = "token";
  if (token === undefined) {
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
    token = env?.[TOKEN_ENV] || undefined;
    where = TOKEN_ENV;
  }
  if (token !== undefined && (typeof token !== "string" || token.trim() !== token || token === "" || /[\r\n]/.test(token))) {
    throw new TypeError(`${where} must be a non-empty string without surrounding white space or line breaks`);
  }
  return token;
}

/**
 * A connection failure worth another try: always when no connection was made, else only for an
 * idempotent method (the proxy may have received and served the request).
 */
function isRetriableFailure(error: unknown, method: string): boolean {
  return IDEMPOTENT.has(method) || errorCodes(error).some((code) => NOT_CONNECTED.has(code));
}

function errorCodes(error: unknown): string[] {
  const codes: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth += 1) {
    const { code, cause, errors } = current as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === "string") {
      codes.push(code);
    }
    if (Array.isArray(errors)) {
      codes.push(...errors.flatMap((inner) => errorCodes(inner))); // AggregateError (happy eyeballs)
    }
    current = cause;
  }
  return codes;
}

function applyHeaders(headers: Headers, values: HeaderValues | undefined): void {
  for (const [name, value] of Object.entries(values ?? {})) {
    if (value === undefined) {
      headers.delete(name);
    } else {
      headers.set(name, value);
    }
  }
}

function encodeQuery(query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    const values: readonly unknown[] = Array.isArray(value) ? value : [value];
    for (const item of values) {
      if (item !== null && item !== undefined) {
        params.append(name, String(item));
      }
    }
  }
  return params.toString();
}

function normalizeBaseUrl(baseUrl: string | URL): string {
  let url: URL;
  try {
    url = new URL(String(baseUrl));
  } catch {
    const shown = JSON.stringify(String(baseUrl));
    throw new TypeError(`baseUrl must be an http(s) URL such as http://127.0.0.1:8080, got ${shown}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`baseUrl must be an http(s) URL, got the scheme ${url.protocol}`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new TypeError("baseUrl must not carry credentials: use the token option");
  }
  if (url.search !== "" || url.hash !== "") {
    throw new TypeError("baseUrl must not carry a query string or fragment");
  }
  return url.href.replace(/\/+$/, "");
}

function checkTimeout(value: number, name: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new TypeError(`${name} must be a number of milliseconds > 0, got ${String(value)}`);
  }
  return value;
}

function callOnly(options: CallOptions | undefined): RequestOptions {
  const call: RequestOptions = {};
  if (options?.signal !== undefined) {
    call.signal = options.signal;
  }
  if (options?.timeoutMs !== undefined) {
    call.timeoutMs = options.timeoutMs;
  }
  return call;
}
