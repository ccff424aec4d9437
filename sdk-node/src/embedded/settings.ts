/**
 * The options of `new PoolSwitchClient(options)`, checked once: the proxy's pool settings
 * (`poolsettings.py`) in camelCase, with the same defaults, plus what an in-process client needs
 * injected (fetch, clock, randomness, sleep, a logger, the classifier). Messages name the option,
 * never a key's value.
 *
 * @module
 */

import type { FetchFunction, HeaderValues } from "../options.js";
import { Key, keysFromOptions, type KeyOption } from "./keys.js";
import type { PoolLogger } from "./pool.js";
import { STRATEGY_NAMES, type Rng, type StrategyName } from "./strategies.js";
import type { Classifier, StatusRule } from "./verdict.js";

export const PROVIDERS = ["auto", "openai", "anthropic", "gemini", "generic"] as const;
export type ProviderName = (typeof PROVIDERS)[number];
const RULE_ACTIONS = ["retry", "failover", "cooldown", "disable", "relay"];
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Waits `ms` milliseconds, or rejects as soon as `signal` (the call's, when it has one) aborts. */
export type SleepFunction = (ms: number, signal?: AbortSignal) => Promise<void>;

/** Options of `new PoolSwitchClient(options)`; defaults are the proxy's (`poolswitch.example.yaml`). */
export interface PoolSwitchClientOptions {
  /** http(s) URL of the API, may carry a base path; request paths are appended to it. Required. */
  upstreamBaseUrl: string | URL;
  /** The keys (at least one): values, or `{ id, value, weight? }` (a plain value gets id `key-<n>`). */
  keys: readonly KeyOption[];
  /** `round_robin` (default), `least_used`, `random`, `quota_failover`. */
  strategy?: StrategyName;
  /** Attempts per request in all (1-100, default 3). */
  retryAttempts?: number;
  /** How long a quota-exhausted key is parked when the provider names no reset; the escalation cap (default 3600). */
  cooldownSeconds?: number;
  /** The whole request, retries included (default 600). */
  requestTimeoutSeconds?: number;
  /** Wait for a connection to the upstream (default 10: Node's own fetch connect timeout). */
  connectTimeoutSeconds?: number;
  /** One attempt's wait for an answer before moving on to the next key (default: what is left of the request's). */
  attemptTimeoutSeconds?: number | null;
  /** When every key is cooling, wait up to this long for one to return (default 0: answer `no_available_keys` at once). */
  queueTimeoutSeconds?: number;
  /** Retry a POST/PATCH after a timeout or reset once it was sent (default false). */
  retryNonIdempotent?: boolean;
  /** Header that carries the key (default `authorization`; `x-api-key` for Anthropic, `x-goog-api-key` for Gemini). */
  authHeaderName?: string;
  /** Word before the key (default `Bearer`); `null` sends the raw key. */
  authScheme?: string | null;
  /** Send the key in this query parameter instead of a header (Gemini `key`). */
  authQueryParam?: string | null;
  /** How answers are read: `auto` (default: by host), `openai`, `anthropic`, `gemini`, `generic`. */
  provider?: ProviderName;
  /** Overrides for provider quirks, checked before the built-in rules, first match wins. */
  onStatus?: readonly StatusRule[];
  /** GET path that confirms a key answering 401/403 is bad before it is disabled: `auto` (default), a path, or `null`. */
  verifyPath?: string | null;
  /** Headers sent with every call (a call's own `headers` win). */
  headers?: HeaderValues;
  /** The `fetch` to use (default: the global one). */
  fetch?: FetchFunction;
  /** The time in Unix seconds (default `Date.now() / 1000`): cooldowns, deadlines, status. */
  clock?: () => number;
  /** Randomness in [0, 1) for the `random` strategy and backoff jitter (default `Math.random`). */
  rng?: Rng;
  /** The wait of backoffs and queueing (default: a timer that ends early on abort). */
  sleep?: SleepFunction;
  /** Where the pool says what it did: `info` / `warn` lines, keys by id only (default: silent). */
  logger?: PoolLogger;
  /** The classifier of upstream answers (default: the provider profiles). */
  classifier?: Classifier;
}

/** The checked options. @internal */
export interface Settings {
  readonly upstreamBaseUrl: string;
  readonly keys: readonly Key[];
  readonly strategy: StrategyName;
  readonly retryAttempts: number;
  readonly cooldownSeconds: number;
  readonly requestTimeoutSeconds: number;
  readonly connectTimeoutSeconds: number;
  readonly attemptTimeoutSeconds: number | null;
  readonly queueTimeoutSeconds: number;
  readonly retryNonIdempotent: boolean;
  readonly authHeaderName: string;
  readonly authScheme: string | null;
  readonly authQueryParam: string | null;
  readonly provider: ProviderName;
  readonly onStatus: readonly StatusRule[];
  readonly verifyPath: string | null;
  readonly headers: HeaderValues;
  readonly fetch: FetchFunction;
  readonly clock: () => number;
  readonly rng: Rng;
  readonly sleep: SleepFunction | null;
  readonly logger: PoolLogger | undefined;
  readonly classifier: Classifier | undefined;
}

const KNOWN = new Set([
  "upstreamBaseUrl", "keys", "strategy", "retryAttempts", "cooldownSeconds", "requestTimeoutSeconds",
  "connectTimeoutSeconds", "attemptTimeoutSeconds", "queueTimeoutSeconds", "retryNonIdempotent",
  "authHeaderName", "authScheme", "authQueryParam", "provider", "onStatus", "verifyPath", "headers",
  "fetch", "clock", "rng", "sleep", "logger", "classifier",
]);

function number(value: unknown, name: string, { min, above = false, max }: { min: number; above?: boolean; max?: number }): number {
  const ok =
    typeof value === "number" &&
    Number.isFinite(value) &&
    (above ? value > min : value >= min) &&
    (max === undefined || value <= max);
  if (!ok) {
    const range = `${above ? ">" : ">="} ${min}${max === undefined ? "" : ` and <= ${max}`}`;
    throw new TypeError(`${name}: must be a number ${range}, got ${describeValue(value)}`);
  }
  return value as number;
}

function describeValue(value: unknown): string {
  return typeof value === "number" || typeof value === "boolean" || value === null ? String(value) : `a ${typeof value}`;
}

function token(value: unknown, name: string, what: string): string {
  if (typeof value !== "string" || !TOKEN.test(value)) {
    throw new TypeError(`${name}: ${what}`);
  }
  return value;
}

function fn<T>(value: unknown, name: string): T | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (typeof value !== "function") {
    throw new TypeError(`${name}: must be a function`);
  }
  return value as T;
}

function baseUrl(value: unknown): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new TypeError("upstreamBaseUrl: must be an http or https URL with a host");
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
    throw new TypeError(`upstreamBaseUrl: must be an http or https URL with a host, got the scheme ${url.protocol}`);
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new TypeError("upstreamBaseUrl: must not carry a query, fragment or credentials");
  }
  return String(value).replace(/\/+$/, "");
}

function rules(value: unknown): StatusRule[] {
  if (!Array.isArray(value)) {
    throw new TypeError("onStatus: must be a list of { status, match?, action, seconds? } rules");
  }
  return value.map((rule: unknown, i) => {
    const at = `onStatus[${i}]`;
    if (typeof rule !== "object" || rule === null) {
      throw new TypeError(`${at}: must be an object with status, match and action`);
    }
    const r = rule as Record<string, unknown>;
    for (const name of Object.keys(r)) {
      if (!["status", "action", "match", "seconds"].includes(name)) {
        throw new TypeError(`${at}.${name}: unknown field (status, match, action, seconds)`);
      }
    }
    if (typeof r["status"] !== "number" || !Number.isInteger(r["status"]) || r["status"] < 100 || r["status"] > 599) {
      throw new TypeError(`${at}.status: must be an integer from 100 to 599`);
    }
    if (typeof r["action"] !== "string" || !RULE_ACTIONS.includes(r["action"])) {
      throw new TypeError(`${at}.action: must be one of: retry, failover, cooldown, disable, relay`);
    }
    if (r["match"] !== undefined && r["match"] !== null && (typeof r["match"] !== "string" || r["match"] === "")) {
      throw new TypeError(`${at}.match: must be a non-empty string`);
    }
    if (r["action"] === "cooldown") {
      number(r["seconds"], `${at}.seconds`, { min: 0 });
    } else if (r["seconds"] !== undefined && r["seconds"] !== null) {
      throw new TypeError(`${at}.seconds: only with action cooldown`);
    }
    return Object.freeze({ ...r }) as unknown as StatusRule;
  });
}

function verifyPathOption(value: unknown): string | null {
  if (value === null) {
    return null;
  }
  if (typeof value !== "string" || (value !== "auto" && (!value.startsWith("/") || /[\s\x00-\x1f#?]/.test(value)))) {
    throw new TypeError("verifyPath: must be a path starting with / (no query), auto or null");
  }
  return value;
}

/** The options, checked, with the proxy's defaults. */
export function resolveSettings(given: PoolSwitchClientOptions): Settings {
  if (typeof given !== "object" || given === null) {
    throw new TypeError("PoolSwitchClient needs an options object with upstreamBaseUrl and keys");
  }
  for (const name of Object.keys(given)) {
    if (!KNOWN.has(name)) {
      throw new TypeError(`${name}: unknown option`);
    }
  }
  const o = given as PoolSwitchClientOptions & Record<string, unknown>;
  if (o.upstreamBaseUrl === undefined) {
    throw new TypeError("upstreamBaseUrl: required");
  }
  const strategy = o.strategy ?? "round_robin";
  if (!(STRATEGY_NAMES as readonly string[]).includes(strategy)) {
    throw new TypeError(`strategy: must be one of ${STRATEGY_NAMES.join(", ")}, got ${JSON.stringify(String(strategy))}`);
  }
  const provider = o.provider ?? "auto";
  if (!(PROVIDERS as readonly string[]).includes(provider)) {
    throw new TypeError(`provider: must be one of ${PROVIDERS.join(", ")}, got ${JSON.stringify(String(provider))}`);
  }
  const retryAttempts = o.retryAttempts ?? 3;
  if (!Number.isInteger(retryAttempts) || retryAttempts < 1 || retryAttempts > 100) {
    throw new TypeError(`retryAttempts: must be an integer from 1 to 100, got ${describeValue(retryAttempts)}`);
  }
  const authScheme = o.authScheme === undefined ? "Bearer" : o.authScheme;
  if (authScheme !== null) {
    token(authScheme, "authScheme", "must be a single word such as Bearer, or null for the raw key");
  }
  const authQueryParam = o.authQueryParam ?? null;
  if (authQueryParam !== null) {
    token(authQueryParam, "authQueryParam", "must be a valid query parameter name (letters, digits, - and _)");
  }
  const attempt = o.attemptTimeoutSeconds ?? null;
  if (o.fetch === undefined && typeof globalThis.fetch !== "function") {
    throw new TypeError("fetch: no global fetch; use Node.js 18 or later, or pass options.fetch");
  }
  const classifier = o.classifier;
  if (
    classifier !== undefined &&
    (typeof classifier !== "object" || classifier === null || typeof classifier.classify !== "function" || typeof classifier.classifyStreamStart !== "function")
  ) {
    throw new TypeError("classifier: must have classify() and classifyStreamStart()");
  }
  if (o.headers !== undefined && (typeof o.headers !== "object" || o.headers === null)) {
    throw new TypeError("headers: must be an object of header names to values");
  }
  const logger = o.logger;
  if (logger !== undefined && (typeof logger !== "object" || logger === null)) {
    throw new TypeError("logger: must be an object with info() and warn()");
  }
  const fetchOption = fn<FetchFunction>(o.fetch, "fetch");
  return Object.freeze({
    upstreamBaseUrl: baseUrl(o.upstreamBaseUrl),
    keys: Object.freeze(keysFromOptions(o.keys, authScheme)),
    strategy,
    retryAttempts,
    cooldownSeconds: number(o.cooldownSeconds ?? 3600, "cooldownSeconds", { min: 0 }),
    requestTimeoutSeconds: number(o.requestTimeoutSeconds ?? 600, "requestTimeoutSeconds", { min: 0, above: true }),
    connectTimeoutSeconds: number(o.connectTimeoutSeconds ?? 10, "connectTimeoutSeconds", { min: 0, above: true }),
    attemptTimeoutSeconds: attempt === null ? null : number(attempt, "attemptTimeoutSeconds", { min: 0, above: true }),
    queueTimeoutSeconds: number(o.queueTimeoutSeconds ?? 0, "queueTimeoutSeconds", { min: 0 }),
    retryNonIdempotent: boolOption(o.retryNonIdempotent ?? false, "retryNonIdempotent"),
    authHeaderName: token(o.authHeaderName ?? "authorization", "authHeaderName", "must be a valid HTTP header name (letters, digits, - and _)").toLowerCase(),
    authScheme,
    authQueryParam,
    provider,
    onStatus: Object.freeze(rules(o.onStatus ?? [])),
    verifyPath: verifyPathOption(o.verifyPath === undefined ? "auto" : o.verifyPath),
    headers: { ...o.headers },
    fetch: fetchOption ?? ((url: string, init: RequestInit) => globalThis.fetch(url, init)),
    clock: fn<() => number>(o.clock, "clock") ?? (() => Date.now() / 1000),
    rng: fn<Rng>(o.rng, "rng") ?? Math.random,
    sleep: fn<SleepFunction>(o.sleep, "sleep") ?? null,
    logger,
    classifier,
  });
}

function boolOption(value: unknown, name: string): boolean {
  if (typeof value !== "boolean") {
    throw new TypeError(`${name}: must be true or false`);
  }
  return value;
}
