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
import type { ProxyErrorCode } from "./codes.js";
import { PoolSwitchResponse } from "./response.js";
import { isRetried, namedWaitSeconds, retryDelayMs, type RandomFunction } from "./retry.js";
import { CallScope } from "./scope.js";
import { PoolSwitchStream, type OpenedStream } from "./stream.js";
import { VERSION } from "./version.js";

const DEFAULT_TIMEOUT_MS = 600_000;
const DEFAULT_MAX_RETRIES = 2;
/** The header that carries the caller token. */
const TOKEN_HEADER = "x-poolswitch-token";
/** The header that names the pool. */
const POOL_HEADER = "x-poolswitch-pool";
/** The environment variable the token comes from when the options have none. */
const TOKEN_ENV = "POOLSWITCH_TOKEN";

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
 * Every call, `send()` included, rejects on a non-2xx answer: `ProxyError` (the proxy's own
 * answers, such as `429 no_available_keys`; `code` is a {@link ProxyErrorCode}) or
 * `UpstreamError` (a non-2xx answer of the upstream, relayed); and with `ProxyConnectionError`
 * or `ProxyTimeoutError` when no answer came. All are subclasses of `PoolSwitchError`.
 * `timeoutMs` is one deadline for the whole call, retries and their waits included; see
 * `ClientOptions.maxRetries` for what is retried.
 */
export class PoolSwitchProxyClient {
  /** The proxy's base URL, without a trailing slash. */
  readonly baseUrl: string;
  /** The default deadline of a call, in milliseconds (`0`: none). */
  readonly timeoutMs: number;
  /** How many times a call may be retried (see `ClientOptions.maxRetries`). */
  readonly maxRetries: number;
  /** The pool sent as `x-poolswitch-pool` on proxied calls, or `null`. */
  readonly pool: string | null;
  readonly #token: string | undefined;
  readonly #headers: HeaderValues;
  readonly #fetch: FetchFunction;
  readonly #random: RandomFunction;

  /**
   * @param baseUrl the proxy, such as `http://127.0.0.1:8080` (it may carry a base path).
   * @param options token, pool, timeout, default headers, retries, `fetch` and `random`.
   */
  constructor(baseUrl: string | URL, options: ClientOptions = {}) {
    this.baseUrl = normalizeBaseUrl(baseUrl);
    this.timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, "timeoutMs");
    const maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    if (!Number.isInteger(maxRetries) || maxRetries < 0) {
      throw new TypeError(`maxRetries must be an integer >= 0, got ${String(maxRetries)}`);
    }
    this.maxRetries = maxRetries;
    this.pool = options.pool === undefined ? null : checkPool(options.pool);
    this.#token = callerToken(options.token);
    this.#headers = { ...options.headers };
    if (options.fetch === undefined && typeof globalThis.fetch !== "function") {
      throw new TypeError("no global fetch: use Node.js 18 or later, or pass options.fetch");
    }
    if (options.fetch !== undefined && typeof options.fetch !== "function") {
      throw new TypeError("fetch must be a function");
    }
    this.#fetch = options.fetch ?? ((url, init) => globalThis.fetch(url, init));
    if (options.random !== undefined && typeof options.random !== "function") {
      throw new TypeError("random must be a function returning a number in [0, 1)");
    }
    this.#random = options.random ?? Math.random;
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
    return response.body() as T;
  }

  /**
   * Any method; resolves to the whole 2xx answer (`status`, `headers`, `keyId`, `attempts`,
   * `json()`, `text()`, `bytes()`). A non-2xx answer rejects: `ProxyError` when the proxy made it
   * (`x-poolswitch-error`), else `UpstreamError`; both keep the answer as `error.response`. No
   * answer: `ProxyConnectionError`, `ProxyTimeoutError`.
   */
  send(method: string, path: string, options: RequestOptions = {}): Promise<PoolSwitchResponse> {
    return this.#send(method, path, options, true);
  }

  /**
   * A server-sent event stream: `for await (const event of client.stream("POST", path, { json }))`
   * yields `{ event, data, id, json() }` as each event arrives. A non-2xx answer throws from the
   * first step (after the same retries as `send()`). `timeoutMs` bounds the time until the
   * response headers arrive, retries included, then each silence between two pieces of the
   * stream (`0`: neither).
   */
  stream(method: string, path: string, options: RequestOptions = {}): PoolSwitchStream {
    const call = this.#prepare(method, path, options, "text/event-stream", true);
    return new PoolSwitchStream(() => this.#openStream(call, options.signal));
  }

  /** `GET /health`: `{ status, keys_available, keys_total, pools: [{ name, status, ... }] }`. */
  async health(options?: CallOptions): Promise<HealthDocument> {
    return (await this.#send("GET", "/health", callOnly(options), false)).body() as HealthDocument;
  }

  /** `GET /status`: storage, every pool with its keys' state (ids only), and every caller's use. */
  async status(options?: CallOptions): Promise<StatusDocument> {
    return (await this.#send("GET", "/status", callOnly(options), false)).body() as StatusDocument;
  }

  /** `GET /metrics`: the Prometheus text. */
  async metrics(options?: CallOptions): Promise<string> {
    return (await this.#send("GET", "/metrics", callOnly(options), false)).text();
  }

  async #send(method: string, path: string, options: RequestOptions, proxied: boolean): Promise<PoolSwitchResponse> {
    const call = this.#prepare(method, path, options, undefined, proxied);
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

  async #openStream(call: PreparedCall, signal: AbortSignal | undefined): Promise<OpenedStream> {
    const scope = new CallScope(signal, call.timeoutMs);
    try {
      const response = await this.#fetchWithRetries(call, scope);
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
   * Send `call` until a 2xx answer, which it resolves to (its body unread). Retries, at most
   * `maxRetries` times and within the call's deadline: a failure to reach the proxy, and the
   * proxy's retried answers (see `retry.ts`). Anything else, or the last failure, is thrown:
   * a non-2xx answer as its `ProxyError` / `UpstreamError` (its body read whole).
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
        // No answer came (refused, DNS, reset before the response head): retried with a backoff.
        const wait = retry < this.maxRetries ? retryDelayMs(retry, null, this.#random) : null;
        if (scope.kind !== undefined || wait === null || !scope.fits(wait)) {
          throw error;
        }
        await scope.sleep(wait);
        continue;
      }
      if (response.status >= 200 && response.status < 300) {
        return response;
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      const answer = new PoolSwitchResponse(response.status, response.headers, bytes);
      const error = errorFromResponse(answer);
      if (error instanceof ProxyError && retry < this.maxRetries && isRetried(answer)) {
        const wait = retryDelayMs(retry, namedWaitSeconds(answer), this.#random);
        if (wait !== null && scope.fits(wait)) {
          await scope.sleep(wait);
          continue;
        }
      }
      throw error;
    }
  }

  #prepare(
    method: string,
    path: string,
    options: RequestOptions,
    accept: string | undefined,
    proxied: boolean,
  ): PreparedCall {
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
    const pool = options.pool === undefined ? this.pool : options.pool === null ? null : checkPool(options.pool);
    if (proxied && pool !== null) {
      headers.set(POOL_HEADER, pool);
    }
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

/** A pool name: a non-empty string with no white space or control characters. */
function checkPool(pool: unknown): string {
  if (typeof pool !== "string" || !/^[\x21-\x7e]+$/.test(pool)) {
    throw new TypeError(`pool must be a pool name such as "openai", got ${JSON.stringify(pool)}`);
  }
  return pool;
}

/** @internal (also used by the embedded client) */
export function applyHeaders(headers: Headers, values: HeaderValues | undefined): void {
  for (const [name, value] of Object.entries(values ?? {})) {
    if (value === undefined) {
      headers.delete(name);
    } else {
      headers.set(name, value);
    }
  }
}

/** @internal (also used by the embedded client) */
export function encodeQuery(query: Query | undefined): string {
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

/** @internal (also used by the embedded client) */
export function checkTimeout(value: number, name: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${name} must be a number of milliseconds >= 0 (0: no deadline), got ${String(value)}`);
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
