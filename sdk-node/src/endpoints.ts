/**
 * The documents of the proxy's own endpoints, `GET /health` and `GET /status` (see
 * docs/protocol.md; docs/status.example.json is a `/status` document that a test checks these
 * types against, key by key).
 *
 * @module
 */

/** One pool in `GET /health`. */
export interface PoolHealth {
  /** The pool's name (`pools[].name` in the config; `default` for a single-pool config). */
  name: string;
  /** `"degraded"` when no key of this pool can serve right now. */
  status: "ok" | "degraded";
  keys_available: number;
  keys_total: number;
}

/** Whether the key-state store answers (a proxy whose Redis is away serves on local state). */
export interface StorageHealth {
  /** `"degraded"` while the store cannot be used. */
  status: "ok" | "degraded";
  /** Why the store cannot be used (one line, no secrets), else `null`. */
  reason: string | null;
  /** Unix time (seconds) since when, else `null`. */
  since: number | null;
  /** Times the store became unusable since the proxy started. */
  outages: number;
}

/** The key-state store's part of `GET /health`. */
export interface HealthStorage extends StorageHealth {
  /** `memory`, `sqlite` or `redis`. */
  backend: string;
}

/** `GET /health`. */
export interface HealthDocument {
  /** `"degraded"` when keys are missing to serve (see docs/protocol.md). */
  status: "ok" | "degraded";
  /** Keys able to serve now, over every pool. */
  keys_available: number;
  keys_total: number;
  /** Each pool's own health. */
  pools: PoolHealth[];
  /** The key-state store's health. */
  storage: HealthStorage;
}

/** A key's state in `GET /status` (ids only, never values). */
export interface KeyStatus {
  id: string;
  state: "available" | "cooling_down" | "disabled" | "draining" | "drained";
  /** Unix time (seconds) when a cooling key returns, else `null`. */
  cooldown_until: number | null;
  /** The outcome that parked the key (`rate_limited`, `quota_exhausted`, `key_invalid`, ...), else `null`. */
  reason: string | null;
  /**
   * What set the cooldown's length (such as `retry-after`, a reset header, or a text like
   * `3 consecutive timeouts`), else `null`.
   */
  cooldown_source: string | null;
  total_requests: number;
  successes: number;
  errors: number;
  failovers: number;
  /** The last remaining-requests count the upstream reported for this key, else `null`. */
  estimated_remaining_quota: number | null;
  /** Unix time (seconds) of the key's last attempt, else `null`. */
  last_used_at: number | null;
}

/** A pool's upstream outage, while its guard holds requests. */
export interface Outage {
  /** `upstream`: the upstream fails; `rate_limited`: a storm of 429s across the keys. */
  kind: "upstream" | "rate_limited";
  /** Unix time (seconds) when the outage began. */
  since: number;
}

/** One pool in `GET /status`. */
export interface PoolStatus {
  name: string;
  /** The path prefix that reaches this pool (`/` for a single-pool config). */
  route: string;
  strategy: string;
  upstream_base_url: string;
  /** The provider profile in use (`openai`, `anthropic`, `gemini`, ...). */
  provider: string;
  /** `true` when no key of this pool can serve right now. */
  degraded: boolean;
  /** The current outage, else `null`. */
  outage: Outage | null;
  keys: KeyStatus[];
}

/** One replica on the same Redis in `GET /status` (`replicas`): the config version it serves. */
export interface ReplicaStatus {
  /** `<hostname>:<pid>`. */
  id: string;
  config_version: string;
  /** Unix seconds of its last heartbeat. */
  seen_at: number;
}

/** One caller (`callers:` in the config) in `GET /status`: its use against its limits (ids only). */
export interface CallerStatus {
  id: string;
  /** The pools it may use; `null` = every pool. */
  pools: string[] | null;
  /** Its requests-per-minute limit; `null` = none. */
  rpm: number | null;
  /** Its limit on requests in flight at once; `null` = none. */
  max_concurrency: number | null;
  requests_last_minute: number;
  in_flight: number;
  /** Requests refused with `caller_rate_limited` so far. */
  rejected: number;
}

/**
 * `GET /status`. The optional top-level `strategy`, `upstream_base_url`, `provider`, `outage`
 * and `keys` are there only when the config has exactly one pool (as 0.x proxies answered).
 */
export interface StatusDocument {
  /** Where key state is kept: `memory`, `sqlite` or `redis`. */
  storage: string;
  /** Whether that store answers now. */
  storage_health: StorageHealth;
  /** `true` when `GET /health` would answer `degraded`. */
  degraded: boolean;
  pools: PoolStatus[];
  callers: CallerStatus[];
  /** The config the proxy serves: the first 12 hex digits of the SHA-256 of its config file. */
  config_version: string;
  /** Unix seconds of the last config reload; `null` before any. */
  reloaded_at: number | null;
  /** With `storage.backend: redis` only: every replica heard from lately, by id. */
  replicas?: ReplicaStatus[];
  /** Single-pool configs only: the pool's strategy. */
  strategy?: string;
  /** Single-pool configs only: the pool's upstream. */
  upstream_base_url?: string;
  /** Single-pool configs only: the pool's provider. */
  provider?: string;
  /** Single-pool configs only: the pool's outage. */
  outage?: Outage | null;
  /** Single-pool configs only: the pool's keys. */
  keys?: KeyStatus[];
}
