/**
 * `PoolSwitchClient`: the key pool inside the app. The proxy's request loop, classifier, retry
 * plan, strategies and key state, run in-process over `fetch` against the upstream directly; the
 * same answers, headers and typed errors as `PoolSwitchProxyClient` through a proxy.
 *
 * @module
 */

import { checkTimeout, encodeQuery } from "../client.js";
import type { HealthDocument, StatusDocument } from "../endpoints.js";
import { PoolSwitchError } from "../errors.js";
import type { HeaderValues, RequestOptions } from "../options.js";
import { PoolSwitchResponse } from "../response.js";
import { CallScope } from "../scope.js";
import { PoolSwitchStream, type OpenedStream } from "../stream.js";
import { VERSION } from "../version.js";
import { defaultClassifier, PROVIDER_HOOKS } from "./defaults.js";
import { Engine, type Call, type ProviderHooks } from "./engine.js";
import { poolError } from "./envelope.js";
import type { KeyStateName } from "./keys.js";
import { resolveSettings, type PoolSwitchClientOptions, type Settings } from "./settings.js";
import { healthDocument, statusDocument } from "./status.js";
import { droppedHeaders, escapesBase, isEventStream, NO_SCOPE, withoutQueryParam } from "./transport.js";

/** Options of one call of `PoolSwitchClient`: those of the proxy client, without `pool`. */
export type EmbeddedRequestOptions = Omit<RequestOptions, "pool">;

const EMPTY = new Uint8Array(0);
/** An HTTP token: a method or a header name. */
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * A pool of API keys inside the app, failing over exactly as the PoolSwitch proxy does.
 *
 * ```js
 * const client = new PoolSwitchClient({
 *   upstreamBaseUrl: "https://api.openai.com",
 *   keys: [{ id: "k1", value: process.env.OPENAI_KEY_1 }, { id: "k2", value: process.env.OPENAI_KEY_2 }],
 *   strategy: "quota_failover",
 * });
 * const result = await client.post("/v1/chat/completions", { json: { model: "gpt-4o-mini", messages } });
 * ```
 *
 * A non-2xx answer throws as the proxy client does: `UpstreamError` for the upstream's own answer
 * once failover is over (key values in its body replaced by key ids), `ProxyError` for the pool's
 * (`no_available_keys` 429, `upstream_unreachable` 502, `upstream_timeout` 504,
 * `upstream_unavailable` 503), with the same `response` the proxy would send. A call's signal or
 * `timeoutMs` ends it with `ProxyTimeoutError`.
 */
export class PoolSwitchClient {
  /** The upstream's base URL, without a trailing slash. */
  readonly upstreamBaseUrl: string;
  /** The strategy that picks keys. */
  readonly strategy: string;
  /** The provider profile that reads the upstream's answers (never `auto`). */
  readonly provider: string;
  readonly #s: Settings;
  readonly #engine: Engine;
  readonly #drop: ReadonlySet<string>;

  /** @param options the pool: `upstreamBaseUrl`, `keys`, and the proxy's pool settings in camelCase. */
  constructor(options: PoolSwitchClientOptions);
  /** @internal the provider hooks, for tests. */
  constructor(options: PoolSwitchClientOptions, hooks: ProviderHooks);
  constructor(options: PoolSwitchClientOptions, hooks: ProviderHooks = PROVIDER_HOOKS) {
    const settings = resolveSettings(options);
    this.#s = settings;
    const classifier = settings.classifier ?? defaultClassifier(settings);
    this.#engine = new Engine(settings, classifier, hooks);
    this.#drop = droppedHeaders(settings.authHeaderName);
    this.upstreamBaseUrl = settings.upstreamBaseUrl;
    this.strategy = settings.strategy;
    this.provider = classifier.profile;
  }

  /** The key ids, in the options' order. */
  get keyIds(): string[] {
    return this.#s.keys.map((k) => k.id);
  }

  /** `GET path`; resolves to the parsed JSON (or the text) of a 2xx answer, throws otherwise. */
  get<T = unknown>(path: string, options?: EmbeddedRequestOptions): Promise<T> {
    return this.request<T>("GET", path, options);
  }

  /** `POST path`; resolves to the parsed JSON (or the text) of a 2xx answer, throws otherwise. */
  post<T = unknown>(path: string, options?: EmbeddedRequestOptions): Promise<T> {
    return this.request<T>("POST", path, options);
  }

  /** `PUT path`. */
  put<T = unknown>(path: string, options?: EmbeddedRequestOptions): Promise<T> {
    return this.request<T>("PUT", path, options);
  }

  /** `PATCH path`. */
  patch<T = unknown>(path: string, options?: EmbeddedRequestOptions): Promise<T> {
    return this.request<T>("PATCH", path, options);
  }

  /** `DELETE path`. */
  delete<T = unknown>(path: string, options?: EmbeddedRequestOptions): Promise<T> {
    return this.request<T>("DELETE", path, options);
  }

  /** Any method; resolves to the body of a 2xx answer (JSON parsed when it is JSON, else text). */
  async request<T = unknown>(method: string, path: string, options?: EmbeddedRequestOptions): Promise<T> {
    return (await this.send(method, path, options)).body() as T;
  }

  /**
   * Any method; resolves to the whole 2xx answer (`status`, `headers`, `keyId`, `attempts`,
   * `json()`, `text()`, `bytes()`), with `x-poolswitch-key-id` and `x-poolswitch-attempts`.
   */
  async send(method: string, path: string, options: EmbeddedRequestOptions = {}): Promise<PoolSwitchResponse> {
    const { call, timeoutMs, what } = this.#prepare(method, path, options, true, undefined);
    if (options.signal === undefined && timeoutMs === 0) {
      // nothing to cancel the call but the pool's own deadlines: no CallScope needed
      const answer = await this.#engine.run(call, NO_SCOPE);
      return new PoolSwitchResponse(answer.status, answer.headers, answer.bytes ?? EMPTY);
    }
    const scope = new CallScope(options.signal, timeoutMs);
    try {
      const answer = await this.#engine.run(call, scope);
      return new PoolSwitchResponse(answer.status, answer.headers, answer.bytes ?? EMPTY);
    } catch (error) {
      throw scope.failure(error, what);
    } finally {
      scope.dispose();
    }
  }

  /**
   * A server-sent event stream: `for await (const event of client.stream(path, { json }))`
   * (POST when a body is given, else GET) or `client.stream(method, path, options)`. The first
   * event is held back to see whether it is an error; if it is, the next key is tried. Errors
   * throw from the first step; `timeoutMs` bounds the time to the first event, then each silence.
   */
  stream(path: string, options?: EmbeddedRequestOptions): PoolSwitchStream;
  stream(method: string, path: string, options?: EmbeddedRequestOptions): PoolSwitchStream;
  stream(a: string, b?: string | EmbeddedRequestOptions, c?: EmbeddedRequestOptions): PoolSwitchStream {
    let method: string;
    let path: string;
    let options: EmbeddedRequestOptions;
    if (typeof b === "string") {
      [method, path, options] = [a, b, c ?? {}];
    } else {
      options = b ?? {};
      [method, path] = [options.json !== undefined || options.body !== undefined ? "POST" : "GET", a];
    }
    const prepared = this.#prepare(method, path, options, false, "text/event-stream");
    return new PoolSwitchStream(() => this.#openStream(prepared, options.signal));
  }

  /** The proxy's `GET /status` document for this pool (key ids only). */
  status(): StatusDocument {
    return statusDocument(this.#engine.pool, {
      strategy: this.strategy,
      upstreamBaseUrl: this.upstreamBaseUrl,
      provider: this.provider,
    });
  }

  /** The proxy's `GET /health` document for this pool. */
  health(): HealthDocument {
    return healthDocument(this.#engine.pool);
  }

  /** Put a key back in service (the admin API's `enable`); false for an unknown id. */
  enable(keyId: string): boolean {
    const done = this.#engine.pool.enable(keyId);
    const i = this.#engine.pool.index.get(keyId);
    if (done && i !== undefined) {
      this.#engine.verifier.forget(i);
    }
    return done;
  }

  /** Take a key out of service until enabled (the admin API's `disable`); false for an unknown id. */
  disable(keyId: string): boolean {
    return this.#engine.pool.disable(keyId);
  }

  /** The state of a key now, or undefined for an unknown id. */
  keyState(keyId: string): KeyStateName | undefined {
    const i = this.#engine.pool.index.get(keyId);
    return i === undefined ? undefined : this.#engine.pool.states[i]!.state(this.#s.clock());
  }

  toString(): string {
    return `PoolSwitchClient(${this.upstreamBaseUrl}, ${this.#s.keys.length} keys, ${this.strategy})`;
  }

  toJSON(): Record<string, unknown> {
    return { upstreamBaseUrl: this.upstreamBaseUrl, strategy: this.strategy, provider: this.provider, keys: this.keyIds };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }

  async #openStream(prepared: { call: Call; timeoutMs: number; what: string }, signal: AbortSignal | undefined): Promise<OpenedStream> {
    const { call, timeoutMs, what } = prepared;
    const scope = new CallScope(signal, timeoutMs);
    try {
      const answer = await this.#engine.run(call, scope);
      const empty = answer.status === 204 || answer.status === 205 || answer.status === 304;
      if (empty) {
        await answer.stream?.cancel().catch(() => undefined);
      }
      const response = new Response(empty ? null : answer.stream, { status: answer.status, headers: answer.headers });
      if (!isEventStream(answer.headers)) {
        await response.body?.cancel().catch(() => undefined);
        const type = answer.headers.get("content-type");
        throw new PoolSwitchError(`${what} answered ${answer.status} with ${type || "no content type"}, not an event stream`);
      }
      const idleMs = timeoutMs === 0 ? this.#s.requestTimeoutSeconds * 1000 : timeoutMs;
      scope.arm(idleMs);
      return { response, scope, idleMs, what };
    } catch (error) {
      scope.dispose();
      throw scope.failure(error, what);
    }
  }

  #prepare(
    method: string,
    path: string,
    options: EmbeddedRequestOptions,
    whole: boolean,
    accept: string | undefined,
  ): { call: Call; timeoutMs: number; what: string } {
    if (typeof method !== "string" || !METHOD.test(method)) {
      throw new TypeError(`method must be an HTTP method name, got ${JSON.stringify(method)}`);
    }
    if (typeof path !== "string" || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(path) || path.startsWith("//")) {
      throw new TypeError(`path must be a path such as "/v1/models", got ${JSON.stringify(path)}`);
    }
    const upper = method.toUpperCase();
    let target = path.startsWith("/") ? path : `/${path}`;
    const what = `${upper} ${this.upstreamBaseUrl}${target.split("?")[0] ?? ""}`;
    if (escapesBase(target.split("?")[0]!)) {
      throw poolError("bad_request", "the request path climbs above the upstream base path", null, 0);
    }
    const query = encodeQuery(options.query);
    if (query !== "") {
      target += (target.includes("?") ? "&" : "?") + query;
    }
    const param = this.#s.authQueryParam;
    if (param !== null) {
      target = withoutQueryParam(target, param);
    }
    const headers = new Map<string, string>([["user-agent", USER_AGENT]]);
    if (accept !== undefined) {
      headers.set("accept", accept);
    }
    setHeaders(headers, this.#s.headers);
    setHeaders(headers, options.headers);
    let body: Call["body"] = options.body ?? null;
    if (options.json !== undefined) {
      if (options.body !== undefined) {
        throw new TypeError("give json or body, not both");
      }
      body = JSON.stringify(options.json);
      if (!headers.has("content-type")) {
        headers.set("content-type", "application/json");
      }
    }
    if (body !== null && (upper === "GET" || upper === "HEAD")) {
      throw new TypeError(`a ${upper} request cannot have a body (json or body)`);
    }
    const forwarded: [string, string][] = [];
    const listed = headers.get("connection");
    const named = listed === undefined ? null : new Set(listed.split(",").map((t) => t.trim().toLowerCase()));
    for (const [name, value] of headers) {
      if (!this.#drop.has(name) && !named?.has(name)) {
        forwarded.push([name, value]);
      }
    }
    const timeoutMs = checkTimeout(options.timeoutMs ?? 0, "timeoutMs");
    return { call: { method: upper, target, headers: forwarded, body, whole }, timeoutMs, what };
  }
}

const USER_AGENT = `poolswitch-node/${VERSION}`;

/** `values` over `headers` (names lower-cased; `undefined` removes one), as the proxy client's `applyHeaders`. */
function setHeaders(headers: Map<string, string>, values: HeaderValues | undefined): void {
  for (const [name, value] of Object.entries(values ?? {})) {
    const lower = name.toLowerCase();
    if (!METHOD.test(name)) {
      throw new TypeError(`headers: ${JSON.stringify(name)} is not a valid header name`);
    }
    if (value !== undefined && (typeof value !== "string" || /[\r\n\0]/.test(value))) {
      throw new TypeError(`headers: the value of ${name} must be a string without line breaks`);
    }
    if (value === undefined) {
      headers.delete(lower);
    } else {
      headers.set(lower, value);
    }
  }
}
