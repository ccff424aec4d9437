/**
 * The pool's `status()` and `health()` documents: what the proxy's `GET /status` and
 * `GET /health` answer for a config with this one pool (the server's `app.py`), key ids only.
 * The embedded pool lives in memory: storage `memory`, always healthy.
 *
 * @module
 */

import type { HealthDocument, KeyStatus, StatusDocument, StorageHealth } from "../endpoints.js";
import type { Pool } from "./pool.js";

/** The pool's name and route in the documents: the proxy's for a single-pool config. */
export const POOL_NAME = "default";
export const POOL_ROUTE = "/";

function storageHealth(): StorageHealth {
  return { status: "ok", reason: null, since: null, outages: 0 };
}

function keyStatus(pool: Pool): KeyStatus[] {
  return pool.snapshot().map((k) => ({
    id: k.id,
    state: k.state,
    cooldown_until: k.cooldownUntil,
    reason: k.reason,
    cooldown_source: k.source,
    total_requests: k.totalRequests,
    successes: k.successes,
    errors: k.errors,
    failovers: k.failovers,
    estimated_remaining_quota: k.estimatedRemainingQuota,
    last_used_at: k.lastUsedAt,
  }));
}

/** `GET /status` of a proxy serving this pool alone. */
export function statusDocument(pool: Pool, facts: { strategy: string; upstreamBaseUrl: string; provider: string }): StatusDocument {
  const guard = pool.guard;
  const outage = guard.trippedKind === null ? null : { kind: guard.trippedKind, since: guard.since! };
  const only = {
    name: POOL_NAME,
    route: POOL_ROUTE,
    strategy: facts.strategy,
    upstream_base_url: facts.upstreamBaseUrl,
    provider: facts.provider,
    degraded: guard.tripped,
    outage,
    keys: keyStatus(pool),
  };
  return {
    storage: "memory",
    storage_health: storageHealth(),
    degraded: only.degraded,
    pools: [only],
    callers: [],
    // no config file, no reload: the version names the kind of pool (docs/protocol.md)
    config_version: "embedded",
    reloaded_at: null,
    strategy: only.strategy,
    upstream_base_url: only.upstream_base_url,
    provider: only.provider,
    outage: only.outage === null ? null : { ...only.outage },
    keys: keyStatus(pool),
  };
}

/** `GET /health` of a proxy serving this pool alone. */
export function healthDocument(pool: Pool): HealthDocument {
  const [available, total] = pool.counts();
  const status = available && !pool.guard.tripped ? "ok" : "degraded";
  return {
    status,
    keys_available: available,
    keys_total: total,
    pools: [{ name: POOL_NAME, status, keys_available: available, keys_total: total }],
    storage: { backend: "memory", ...storageHealth() },
  };
}
