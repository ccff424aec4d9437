/**
 * The documents of the proxy's own endpoints, `GET /health` and `GET /status`
 * (see docs/protocol.md).
 *
 * @module
 */

/** `GET /health`. */
export interface HealthDocument {
  /** `"degraded"` when no key can serve right now. */
  status: "ok" | "degraded";
  keys_available: number;
  keys_total: number;
}

/** A key's state in `GET /status` (ids only, never values). */
export interface KeyStatus {
  id: string;
  state: "available" | "cooling_down" | "disabled";
  /** Unix time (seconds) when a cooling key returns, else `null`. */
  cooldown_until: number | null;
  /** The outcome that parked the key (`rate_limited`, `quota_exhausted`, `key_invalid`), else `null`. */
  reason: string | null;
  total_requests: number;
  successes?: number;
  errors: number;
  failovers: number;
  /** The last remaining-requests count the upstream reported for this key, else `null`. */
  estimated_remaining_quota: number | null;
  /** Unix time (seconds) of the key's last attempt, else `null`. */
  last_used_at: number | null;
}

/** `GET /status`. */
export interface StatusDocument {
  strategy: string;
  storage: string;
  upstream_base_url: string;
  keys: KeyStatus[];
}
