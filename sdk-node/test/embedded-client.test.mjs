// PoolSwitchClient against a local upstream (http.createServer on port 0): failover, cooldowns,
// exhaustion, invalid keys, streams, aborts and timeouts, and no key value anywhere.
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { after, before, beforeEach, describe, test } from "node:test";

import { PoolSwitchClient, PoolSwitchError, ProxyError, ProxyTimeoutError, UpstreamError } from "../dist/esm/index.js";
import { freePort, localServer } from "./support/harness.mjs";

const SECRETS = { "sk-embedded-alpha-0001": "alpha", "sk-embedded-bravo-0002": "bravo", "sk-embedded-charlie-03": "charlie" };
const VALUES = Object.keys(SECRETS);
const [ALPHA, BRAVO, CHARLIE] = VALUES;

/** What each key does: a list of behaviours used in turn (the last one repeats). */
let scripts = {};
/** Every request the upstream saw: { key, method, path, headers }. */
let seen = [];
let upstream;

const json = (res, status, body, headers = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
};

const BEHAVIOURS = {
  ok: (req, res, key) => json(res, 200, { object: "chat.completion", served_by: key }, { "x-ratelimit-remaining-requests": "99" }),
  quota: (req, res) => json(res, 429, { error: { type: "insufficient_quota", code: "insufficient_quota", message: "You exceeded your current quota" } }),
  rate: (req, res) => json(res, 429, { error: { type: "rate_limit_exceeded", message: "slow down" } }, { "retry-after": "30" }),
  invalid: (req, res) => json(res, 401, { error: { type: "invalid_request_error", code: "invalid_api_key", message: `Incorrect API key provided: ${req.headers.authorization}` } }),
  echo401: (req, res) => json(res, 400, { error: { message: `bad request with key ${req.headers.authorization.slice(7)} (${encodeURIComponent(req.headers.authorization.slice(7))})` } }, { "x-echo": req.headers.authorization }),
  server: (req, res) => json(res, 500, { error: { message: "boom" } }),
  hang: () => undefined,
  sse: (req, res, key) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write(`data: {"served_by": "${key}", "n": 1}\n\n`);
    setTimeout(() => res.end(`data: {"n": 2}\n\ndata: [DONE]\n\n`), 5);
  },
  sseError: (req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.end(`event: error\ndata: {"error": {"type": "server_error", "message": "the model crashed"}}\n\n`);
  },
};

function keyOf(req) {
  const auth = req.headers.authorization ?? "";
  const fromQuery = new URL(req.url, "http://x").searchParams.get("key");
  const value = auth.startsWith("Bearer ") ? auth.slice(7) : fromQuery;
  return SECRETS[value] ?? null;
}

before(async () => {
  upstream = await localServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const key = keyOf(req);
      seen.push({ key, method: req.method, path: req.url, headers: req.headers });
      if (key === null) {
        json(res, 400, { error: { message: "no or unknown key" } });
        return;
      }
      const script = scripts[key] ?? ["ok"];
      const name = script.length > 1 ? script.shift() : script[0];
      BEHAVIOURS[name](req, res, key);
    });
  });
});

after(async () => {
  await upstream.close();
});

beforeEach(() => {
  scripts = {};
  seen = [];
});

function client(options = {}) {
  return new PoolSwitchClient({
    upstreamBaseUrl: upstream.url,
    keys: [{ id: "alpha", value: ALPHA }, { id: "bravo", value: BRAVO }],
    sleep: async () => undefined,
    ...options,
  });
}

function keyOrder() {
  return seen.map((s) => s.key);
}

function assertNoSecret(value, what) {
  const text = typeof value === "string" ? value : inspect(value, { depth: 12, showHidden: true });
  for (const secret of VALUES) {
    assert.ok(!text.includes(secret), `${what} shows a key value:\n${text}`);
  }
}

describe("PoolSwitchClient", () => {
  test("fails over from a quota-exhausted key to a healthy one", async () => {
    let now = 1_800_000_000;
    scripts = { alpha: ["quota"], bravo: ["ok"] };
    const pool = client({ strategy: "quota_failover", clock: () => now });
    const response = await pool.send("POST", "/v1/chat/completions", {
      json: { model: "m" },
      headers: { authorization: "Bearer caller-own-token", "x-api-key": "caller-key", "x-trace": "t1" },
    });
    assert.equal(response.status, 200);
    assert.equal(response.keyId, "bravo");
    assert.equal(response.attempts, 2);
    assert.equal(response.headers.get("x-poolswitch-key-id"), "bravo");
    assert.equal(response.json().served_by, "bravo");
    assert.deepEqual(keyOrder(), ["alpha", "bravo"]);
    for (const s of seen) {
      assert.ok(!("x-api-key" in s.headers), "the caller's own credential is not forwarded");
      assert.ok(!s.headers.authorization.includes("caller-own-token"));
      assert.equal(s.headers["x-trace"], "t1");
      assert.equal(s.headers["content-type"], "application/json");
    }
    const status = pool.status();
    const [alpha, bravo] = status.keys;
    assert.deepEqual([alpha.id, alpha.state, alpha.reason, alpha.cooldown_until], ["alpha", "cooling_down", "quota_exhausted", now + 3600]);
    assert.deepEqual([alpha.total_requests, alpha.errors, alpha.failovers, alpha.successes], [1, 1, 1, 0]);
    assert.deepEqual([bravo.state, bravo.successes, bravo.estimated_remaining_quota, bravo.last_used_at], ["available", 1, 99, now]);
    // quota_failover stays on the healthy key while the primary is parked
    assert.equal((await pool.post("/v1/chat/completions", { json: {} })).served_by, "bravo");
    assert.deepEqual(keyOrder(), ["alpha", "bravo", "bravo"]);
  });

  test("a rate-limited key cools down for Retry-After, then returns", async () => {
    let now = 1_800_000_000;
    scripts = { alpha: ["rate", "ok"], bravo: ["ok"] };
    const pool = client({ clock: () => now });
    assert.equal((await pool.get("/v1/models")).served_by, "bravo");
    const alpha = pool.status().keys[0];
    assert.deepEqual([alpha.state, alpha.reason, alpha.cooldown_until], ["cooling_down", "rate_limited", now + 30]);
    await pool.get("/v1/models");
    await pool.get("/v1/models");
    assert.deepEqual(keyOrder(), ["alpha", "bravo", "bravo", "bravo"]);
    now += 30;
    assert.equal(pool.status().keys[0].state, "available");
    const served = [await pool.get("/v1/models"), await pool.get("/v1/models")].map((r) => r.served_by);
    assert.deepEqual(served.sort(), ["alpha", "bravo"]);
  });

  test("exhaustion: the last upstream answer relayed, then no_available_keys shaped as the proxy's", async () => {
    const now = 1_800_000_000;
    scripts = { alpha: ["rate"], bravo: ["rate"] };
    const pool = client({ clock: () => now });
    const relayed = await pool.get("/v1/models").catch((e) => e);
    assert.ok(relayed instanceof UpstreamError, String(relayed));
    assert.deepEqual([relayed.status, relayed.keyId, relayed.attempts], [429, "bravo", 2]);
    assert.equal(relayed.response.headers.get("retry-after"), "30");
    const error = await pool.get("/v1/models").catch((e) => e);
    assert.ok(error instanceof ProxyError, String(error));
    assert.ok(error instanceof PoolSwitchError);
    assert.deepEqual([error.code, error.status, error.retryAfter, error.attempts], ["no_available_keys", 429, 30, null]);
    const r = error.response;
    assert.equal(r.headers.get("x-poolswitch-error"), "no_available_keys");
    assert.equal(r.headers.get("retry-after"), "30");
    assert.equal(r.headers.get("x-should-retry"), "true");
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.equal(
      r.text(),
      '{"error": {"type": "poolswitch_error", "code": "no_available_keys", "message": "every key is cooling down or disabled; the first returns in 30.0s", "retry_after": 30, ' +
        `"request_id": "${error.requestId}"}}`,
    );
    assert.match(error.requestId, /^[0-9a-f]{16}$/);
    assert.equal(seen.length, 2, "nothing was sent upstream for the exhausted pool");
    const health = pool.health();
    assert.deepEqual([health.status, health.keys_available, health.keys_total], ["degraded", 0, 2]);
  });

  test("a key answering 401 is disabled once the verify path confirms it; the request succeeds on the next", async () => {
    scripts = { alpha: ["invalid"], bravo: ["ok"] };
    const pool = client({ verifyPath: "/v1/models", strategy: "quota_failover" });
    const result = await pool.post("/v1/chat/completions", { json: {} });
    assert.equal(result.served_by, "bravo");
    assert.deepEqual(
      seen.map((s) => `${s.key} ${s.method} ${s.path}`),
      ["alpha POST /v1/chat/completions", "alpha GET /v1/models", "bravo POST /v1/chat/completions"],
    );
    const verification = seen[1];
    assert.ok(!("content-type" in verification.headers), "no caller header on the verification");
    const alpha = pool.status().keys[0];
    assert.deepEqual([alpha.state, alpha.reason, alpha.cooldown_source], ["disabled", "key_invalid", "confirmed: verify_path"]);
    assert.equal(pool.enable("alpha"), true);
    assert.equal(pool.status().keys[0].state, "available");
  });

  test("a 401 for a key verified good is relayed: the request's own fault", async () => {
    scripts = { alpha: ["invalid", "ok"], bravo: ["ok"] };
    const pool = client({ verifyPath: "/v1/models", strategy: "quota_failover" });
    const error = await pool.get("/v1/secret-admin").catch((e) => e);
    assert.ok(error instanceof UpstreamError, String(error));
    assert.deepEqual([error.status, error.keyId, error.attempts], [401, "alpha", 1]);
    assert.equal(pool.status().keys[0].state, "available");
    assertNoSecret(error, "the relayed 401");
    assert.match(error.body.error.message, /Incorrect API key provided: Bearer alpha/);
  });

  test("an event stream whose first event is an error fails over to the next key", async () => {
    scripts = { alpha: ["sseError"], bravo: ["sse"] };
    const pool = client({ strategy: "quota_failover" });
    const stream = pool.stream("/v1/chat/completions", { json: { stream: true } });
    const events = [];
    for await (const event of stream) {
      events.push(event.data);
    }
    assert.deepEqual(events, ['{"served_by": "bravo", "n": 1}', '{"n": 2}', "[DONE]"]);
    assert.deepEqual([stream.keyId, stream.attempts], ["bravo", 2]);
    assert.deepEqual(seen.map((s) => `${s.key} ${s.method} ${s.headers.accept}`), ["alpha POST text/event-stream", "bravo POST text/event-stream"]);
    assert.equal(pool.status().keys[0].errors, 1);
    assert.equal(pool.status().keys[1].successes, 1);
  });

  test("stream(method, path) and an error answer thrown from the first step", async () => {
    scripts = { alpha: ["echo401"], bravo: ["echo401"] };
    const pool = client();
    const error = await (async () => {
      for await (const _ of pool.stream("GET", "/v1/events")) {
        // no event comes
      }
    })().catch((e) => e);
    assert.ok(error instanceof UpstreamError, String(error));
    assert.equal(error.status, 400);
    assert.equal(seen.length, 1, "a client error is not failed over");
  });

  test("the caller's AbortSignal ends the call with ProxyTimeoutError (aborted); the key is not blamed", async () => {
    scripts = { alpha: ["hang"], bravo: ["hang"] };
    const pool = client();
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("user left")), 50);
    const error = await pool.post("/v1/chat/completions", { json: {}, signal: controller.signal }).catch((e) => e);
    assert.ok(error instanceof ProxyTimeoutError, String(error));
    assert.equal(error.aborted, true);
    assert.equal(error.timeoutMs, null);
    assert.equal(pool.status().keys[0].errors, 0);
    const early = await pool.get("/x", { signal: AbortSignal.abort() }).catch((e) => e);
    assert.ok(early instanceof ProxyTimeoutError && early.aborted);
  });

  test("timeouts: the call's timeoutMs, an attempt timeout failing over, and upstream_timeout", async () => {
    scripts = { alpha: ["hang"], bravo: ["hang"] };
    const pool = client();
    const error = await pool.get("/v1/models", { timeoutMs: 80 }).catch((e) => e);
    assert.ok(error instanceof ProxyTimeoutError, String(error));
    assert.deepEqual([error.aborted, error.timeoutMs], [false, 80]);

    scripts = { alpha: ["hang"], bravo: ["ok"] };
    const failover = client({ attemptTimeoutSeconds: 0.1, strategy: "quota_failover" });
    const response = await failover.send("GET", "/v1/models");
    assert.deepEqual([response.keyId, response.attempts], ["bravo", 2]);

    scripts = { alpha: ["hang"], bravo: ["hang"] };
    const slow = client({ attemptTimeoutSeconds: 0.05, retryAttempts: 2 });
    const timedOut = await slow.get("/v1/models").catch((e) => e);
    assert.ok(timedOut instanceof ProxyError, String(timedOut));
    assert.deepEqual([timedOut.code, timedOut.status, timedOut.attempts], ["upstream_timeout", 504, 2]);
    assert.equal(timedOut.response.headers.get("x-poolswitch-attempts"), "2");
    assert.equal(timedOut.response.json().error.message, "the upstream did not answer in time (2 attempt(s))");

    const post = await slow.post("/v1/chat/completions", { json: {} }).catch((e) => e);
    assert.equal(post.code, "upstream_timeout");
    assert.equal(post.attempts, 1, "a sent POST is not retried after a timeout");
  });

  test("an unreachable upstream: upstream_unreachable after every attempt", async () => {
    const port = await freePort();
    const pool = new PoolSwitchClient({ upstreamBaseUrl: `http://127.0.0.1:${port}`, keys: [ALPHA, BRAVO], sleep: async () => undefined });
    const error = await pool.post("/v1/chat/completions", { json: {} }).catch((e) => e);
    assert.ok(error instanceof ProxyError, String(error));
    assert.deepEqual([error.code, error.status, error.attempts], ["upstream_unreachable", 502, 3]);
    assert.match(error.message, /the upstream could not be reached \(3 attempt\(s\)\): cannot connect to upstream: ECONNREFUSED/);
    assert.deepEqual(pool.status().keys.map((k) => k.id), ["key-1", "key-2"]);
    assertNoSecret(error, "upstream_unreachable");
  });

  test("5xx on every key: a backoff (injected sleep), then the keys are reused", async () => {
    scripts = { alpha: ["server", "ok"], bravo: ["server"] };
    const slept = [];
    const pool = client({ sleep: async (ms) => void slept.push(ms), rng: () => 0.5, strategy: "quota_failover" });
    const response = await pool.send("GET", "/v1/models");
    assert.deepEqual([response.keyId, response.attempts], ["alpha", 3]);
    assert.deepEqual(keyOrder(), ["alpha", "bravo", "alpha"], "quota_failover starts again from the first key");
    assert.deepEqual(slept, [50], "jitter 0.5 x 0.1 s");
  });

  test("authQueryParam: the key goes in the query, the caller's own parameter is dropped", async () => {
    const pool = client({ authQueryParam: "key", keys: [{ id: "alpha", value: ALPHA }] });
    const response = await pool.send("GET", "/v1beta/models?key=callers-own&alt=json", { query: { page: 2 } });
    assert.equal(response.keyId, "alpha");
    assert.equal(seen[0].path, `/v1beta/models?alt=json&page=2&key=${ALPHA}`);
    assert.equal(seen[0].headers.authorization, undefined);
  });

  test("key values appear in no error, status, health, inspect or JSON", async () => {
    scripts = { alpha: ["echo401"], bravo: ["ok"] };
    const pool = client({ keys: [{ id: "alpha", value: ALPHA }, { id: "bravo", value: BRAVO }, CHARLIE] });
    const error = await pool.get("/v1/models").catch((e) => e);
    assert.ok(error instanceof UpstreamError);
    assert.equal(error.body.error.message, "bad request with key alpha (alpha)");
    assert.equal(error.headers.get("x-echo"), "Bearer alpha");
    for (const [what, value] of [
      ["error", error],
      ["error message", error.message],
      ["error body", JSON.stringify(error.body)],
      ["error response text", error.response.text()],
      ["status", JSON.stringify(pool.status())],
      ["health", JSON.stringify(pool.health())],
      ["client", pool],
      ["client JSON", JSON.stringify(pool)],
      ["client string", String(pool)],
    ]) {
      assertNoSecret(value, what);
    }
    assert.deepEqual(pool.keyIds, ["alpha", "bravo", "key-3"]);
    for (const bad of [
      { keys: [ALPHA, ALPHA] },
      { keys: [{ id: "a b", value: ALPHA }] },
      { keys: [{ id: "a", value: `${ALPHA} x` }] },
    ]) {
      assert.throws(() => client(bad), (e) => {
        assertNoSecret(e.message, "an option error");
        return e instanceof TypeError;
      });
    }
  });

  test("the status document is the proxy's /status for one pool", async () => {
    const pool = client({ strategy: "least_used", clock: () => 1_800_000_000 });
    await pool.get("/v1/models");
    const doc = pool.status();
    assert.deepEqual(Object.keys(doc), ["storage", "storage_health", "degraded", "pools", "callers", "config_version", "reloaded_at", "strategy", "upstream_base_url", "provider", "outage", "keys"]);
    assert.deepEqual([doc.config_version, doc.reloaded_at], ["embedded", null]);
    assert.deepEqual(doc.storage_health, { status: "ok", reason: null, since: null, outages: 0 });
    assert.deepEqual([doc.storage, doc.degraded, doc.callers, doc.strategy, doc.upstream_base_url, doc.outage], ["memory", false, [], "least_used", upstream.url, null]);
    const [only] = doc.pools;
    assert.deepEqual(Object.keys(only), ["name", "route", "strategy", "upstream_base_url", "provider", "degraded", "outage", "keys"]);
    assert.deepEqual([only.name, only.route, only.provider], ["default", "/", "generic"]);
    assert.deepEqual(Object.keys(doc.keys[0]), [
      "id", "state", "cooldown_until", "reason", "cooldown_source", "total_requests", "successes", "errors", "failovers", "estimated_remaining_quota", "last_used_at",
    ]);
    assert.deepEqual(doc.keys, only.keys);
    assert.deepEqual(pool.health(), {
      status: "ok",
      keys_available: 2,
      keys_total: 2,
      pools: [{ name: "default", status: "ok", keys_available: 2, keys_total: 2 }],
      storage: { backend: "memory", status: "ok", reason: null, since: null, outages: 0 },
    });
  });

  test("options are checked, each message naming its option", () => {
    for (const [options, message] of [
      [{ upstreamBaseUrl: undefined }, /^upstreamBaseUrl: required/],
      [{ upstreamBaseUrl: "ftp://x" }, /^upstreamBaseUrl: must be an http or https URL/],
      [{ upstreamBaseUrl: "http://h/?a=1" }, /^upstreamBaseUrl: must not carry a query/],
      [{ keys: [] }, /^keys must be a non-empty array/],
      [{ strategy: "fastest" }, /^strategy: must be one of round_robin, least_used, random, quota_failover/],
      [{ retryAttempts: 0 }, /^retryAttempts: must be an integer from 1 to 100/],
      [{ cooldownSeconds: -1 }, /^cooldownSeconds: must be a number >= 0/],
      [{ requestTimeoutSeconds: 0 }, /^requestTimeoutSeconds: must be a number > 0/],
      [{ attemptTimeoutSeconds: 0 }, /^attemptTimeoutSeconds: must be a number > 0/],
      [{ queueTimeoutSeconds: -1 }, /^queueTimeoutSeconds: must be a number >= 0/],
      [{ retryNonIdempotent: "yes" }, /^retryNonIdempotent: must be true or false/],
      [{ authHeaderName: "bad header" }, /^authHeaderName: must be a valid HTTP header name/],
      [{ authScheme: "Two words" }, /^authScheme: must be a single word/],
      [{ provider: "azure" }, /^provider: must be one of auto, openai, anthropic, gemini, generic/],
      [{ verifyPath: "v1/models" }, /^verifyPath: must be a path starting with \//],
      [{ onStatus: [{ status: 429, action: "explode" }] }, /^onStatus\[0\]\.action: must be one of/],
      [{ onStatus: [{ status: 429, action: "cooldown" }] }, /^onStatus\[0\]\.seconds: must be a number >= 0/],
      [{ fetch: "no" }, /^fetch: must be a function/],
      [{ retries: 3 }, /^retries: unknown option/],
    ]) {
      assert.throws(() => client(options), (e) => e instanceof TypeError && message.test(e.message), String(message));
    }
  });

  test("a path climbing above the base is refused as the proxy does (bad_request)", async () => {
    const pool = client();
    assert.throws(() => pool.stream("GET", "/x", { json: {} }), /a GET request cannot have a body/);
    await assert.rejects(pool.get("/x", { headers: { "x-bad": "a\nb" } }), /headers: the value of x-bad must be a string without line breaks/);
    await assert.rejects(pool.get("/x", { headers: { "bad name": "a" } }), /headers: "bad name" is not a valid header name/);
    assert.throws(() => pool.stream("GET", "/../admin"), (e) => e instanceof ProxyError && e.code === "bad_request" && e.status === 400);
    assert.equal(seen.length, 0);
  });
});
