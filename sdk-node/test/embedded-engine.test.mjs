// The embedded request loop with an injected table classifier (no provider rules involved):
// queueing, the outage guard, gzip answers, verification headers and remaining quota.
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { after, before, beforeEach, describe, test } from "node:test";

import { PoolSwitchClient, ProxyError, UpstreamError } from "../dist/esm/index.js";
import { verdict } from "../dist/esm/embedded/verdict.js";
import { localServer } from "./support/harness.mjs";

/** status -> verdict; anything else below 400 a success. */
const TABLE = {
  418: verdict("quota_exhausted", { failover: true, cooldown: 5, source: "table" }),
  429: verdict("rate_limited", { failover: true, cooldown: 30, source: "table" }),
  401: verdict("key_invalid", { failover: true, disable: true, confirm: true }),
  500: verdict("upstream_error", { failover: true }),
  400: verdict("client_error"),
};

function tableClassifier(seen = []) {
  return {
    profile: "table",
    classify(status, headers, body) {
      seen.push({ status, encoding: headers.get("content-encoding"), text: new TextDecoder().decode(body) });
      return status < 400 ? verdict("success") : TABLE[status] ?? verdict("client_error");
    },
    classifyStreamStart(first) {
      return new TextDecoder().decode(first).includes("event: error") ? TABLE[500] : null;
    },
  };
}

const HOOKS = {
  verifyPath: (profile) => (profile === "table" ? "/check" : null),
  verifyHeaders: () => ({ "x-verify": "1" }),
  remainingQuotaHeaders: ["x-left"],
};

let upstream;
let handler;
let seen;

before(async () => {
  upstream = await localServer((req, res) => {
    req.resume();
    req.on("end", () => {
      seen.push({ key: req.headers["x-key"], path: req.url, headers: req.headers });
      handler(req, res);
    });
  });
});

after(() => upstream.close());

beforeEach(() => {
  seen = [];
});

function client(options, hooks = HOOKS) {
  return new PoolSwitchClient(
    {
      upstreamBaseUrl: upstream.url,
      keys: [{ id: "a", value: "sk-engine-aaaa" }, { id: "b", value: "sk-engine-bbbb" }],
      authHeaderName: "x-key",
      authScheme: null,
      classifier: tableClassifier(),
      ...options,
    },
    hooks,
  );
}

describe("the embedded request loop", () => {
  test("every key cooling: queue for the first one to return (injected clock and sleep)", async () => {
    let now = 1000;
    const slept = [];
    handler = (req, res) => {
      res.writeHead(req.headers["x-key"] === "sk-engine-aaaa" && now < 1005 ? 418 : 200, { "x-left": "7" });
      res.end("{}");
    };
    const pool = client({
      strategy: "quota_failover",
      keys: [{ id: "a", value: "sk-engine-aaaa" }],
      queueTimeoutSeconds: 10,
      clock: () => now,
      sleep: async (ms) => {
        slept.push(ms);
        now += ms / 1000;
      },
    });
    const first = await pool.get("/x").catch((e) => e);
    assert.ok(first instanceof UpstreamError && first.status === 418);
    const response = await pool.send("GET", "/x");
    assert.deepEqual([response.keyId, response.attempts], ["a", 1]);
    assert.deepEqual(slept, [5005], "the key's return plus QUEUE_SLACK");
    assert.equal(pool.status().keys[0].estimated_remaining_quota, 7);
    now += 0; // a queue only when the wait fits in queueTimeoutSeconds:
    const short = client({ keys: [{ id: "a", value: "sk-engine-aaaa" }], queueTimeoutSeconds: 1, clock: () => now, sleep: async () => undefined });
    handler = (req, res) => {
      res.writeHead(418);
      res.end();
    };
    await short.get("/x").catch(() => undefined);
    const refused = await short.get("/x").catch((e) => e);
    assert.ok(refused instanceof ProxyError);
    assert.deepEqual([refused.code, refused.retryAfter], ["no_available_keys", 5]);
  });

  test("the outage guard: a majority of keys failing 5xx holds requests (upstream_unavailable)", async () => {
    handler = (req, res) => {
      res.writeHead(500);
      res.end("down");
    };
    const now = 1000;
    const pool = client({ clock: () => now, retryAttempts: 2, keys: ["sk-g-1", "sk-g-2", "sk-g-3"] });
    await pool.get("/x").catch(() => undefined);
    await pool.get("/x").catch(() => undefined);
    const status = pool.status();
    assert.deepEqual([status.degraded, status.outage], [true, { kind: "upstream", since: 1000 }]);
    assert.equal(pool.health().status, "degraded");
    const probe = pool.get("/x").catch((e) => e); // the probe goes upstream...
    const held = await pool.get("/x").catch((e) => e); // ...the others are answered at once
    assert.ok(held instanceof ProxyError);
    assert.deepEqual([held.code, held.status, held.retryAfter], ["upstream_unavailable", 503, 0.5]);
    assert.equal(held.response.headers.get("retry-after"), "1");
    assert.equal(held.response.headers.get("x-should-retry"), "true");
    assert.match(held.response.text(), /"retry_after": 0\.5, "request_id": "[0-9a-f]{16}"\}\}$/);
    assert.ok((await probe) instanceof UpstreamError);
    handler = (req, res) => {
      res.writeHead(200);
      res.end("{}");
    };
    assert.equal(pool.enable("key-1"), true, "enabling a key resets the guard");
    assert.equal(pool.status().degraded, false);
  });

  test("gzip: the classifier sees decoded bytes without content-encoding; the relayed body is decoded and redacted", async () => {
    const seenByClassifier = [];
    handler = (req, res) => {
      const body = gzipSync(JSON.stringify({ error: { message: `bad value ${req.headers["x-key"]}` } }));
      res.writeHead(400, { "content-type": "application/json", "content-encoding": "gzip", "content-length": body.length, etag: '"v1"' });
      res.end(body);
    };
    const pool = client({ classifier: tableClassifier(seenByClassifier) });
    const error = await pool.get("/x").catch((e) => e);
    assert.ok(error instanceof UpstreamError);
    assert.deepEqual(seenByClassifier, [{ status: 400, encoding: null, text: '{"error":{"message":"bad value sk-engine-aaaa"}}' }]);
    assert.equal(error.body.error.message, "bad value a");
    assert.equal(error.headers.get("content-encoding"), null);
    assert.equal(error.headers.get("etag"), null);
    assert.equal(error.headers.get("content-length"), String(error.response.bytes().length));
    assert.deepEqual([error.keyId, error.attempts], ["a", 1]);
  });

  test("verification: GET the hooks' path with the key and the profile's headers, never the caller's", async () => {
    handler = (req, res) => {
      const good = req.headers["x-key"] === "sk-engine-bbbb";
      res.writeHead(good ? 200 : 401);
      res.end("{}");
    };
    const pool = client({ strategy: "quota_failover", headers: { "x-app": "me" } });
    const response = await pool.send("POST", "/v1/do", { json: { a: 1 } });
    assert.deepEqual([response.keyId, response.attempts], ["b", 2]);
    const check = seen.find((s) => s.path === "/check");
    assert.equal(check.key, "sk-engine-aaaa");
    assert.equal(check.headers["x-verify"], "1");
    assert.equal(check.headers["x-app"], undefined);
    assert.equal(pool.keyState("a"), "disabled");
  });

  test("without a verify path, another key's success confirms the suspect", async () => {
    handler = (req, res) => {
      res.writeHead(req.headers["x-key"] === "sk-engine-bbbb" ? 200 : 401);
      res.end("{}");
    };
    const pool = client({ strategy: "quota_failover", verifyPath: null });
    await pool.get("/x");
    assert.equal(seen.length, 2, "no verification");
    const a = pool.status().keys[0];
    assert.deepEqual([a.state, a.cooldown_source], ["disabled", "confirmed: another key succeeded"]);
  });

  test("a 2xx that is not an event stream, asked for as a stream, is refused; a 2xx stream error event is retried", async () => {
    handler = (req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    };
    const pool = client({ strategy: "quota_failover" });
    await assert.rejects(
      (async () => {
        for await (const _ of pool.stream("GET", "/x")) {
          // none
        }
      })(),
      /not an event stream/,
    );
    handler = (req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(req.headers["x-key"] === "sk-engine-aaaa" ? "event: error\ndata: {}\n\n" : "data: one\n\ndata: two\n\n");
    };
    const whole = await pool.send("GET", "/events", {});
    assert.deepEqual([whole.keyId, whole.attempts, whole.text()], ["b", 2, "data: one\n\ndata: two\n\n"]);
  });

  test("a storm of 401s costs one verification per key", async () => {
    handler = (req, res) => {
      if (req.url === "/check") {
        setTimeout(() => {
          res.writeHead(401);
          res.end();
        }, 300); // every 401 arrives while the verification is in flight
        return;
      }
      res.writeHead(req.headers["x-key"] === "sk-engine-bbbb" ? 200 : 401);
      res.end("{}");
    };
    const pool = client({ strategy: "quota_failover" });
    const answers = await Promise.all(Array.from({ length: 6 }, () => pool.send("GET", "/v1/x")));
    assert.ok(answers.every((r) => r.keyId === "b"));
    assert.equal(seen.filter((s) => s.path === "/check").length, 1);
    assert.equal(pool.keyState("a"), "disabled");
  });

  test("an upstream that dies mid-stream: the stream errors, the key counts a network error", async () => {
    handler = (req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", connection: "keep-alive", "x-extra": "kept" });
      res.write("data: first\n\n");
      setTimeout(() => res.destroy(), 20);
    };
    const pool = client({ keys: [{ id: "a", value: "sk-engine-aaaa" }] });
    const stream = pool.stream("GET", "/events");
    const got = [];
    const error = await (async () => {
      for await (const event of stream) {
        got.push(event.data);
      }
    })().catch((e) => e);
    assert.deepEqual(got, ["first"]);
    assert.ok(error instanceof Error, "the cut stream is not mistaken for a complete one");
    assert.equal(stream.info.headers.get("x-extra"), "kept");
    assert.equal(stream.info.headers.get("connection"), null, "hop-by-hop headers are not relayed");
    const a = pool.status().keys[0];
    assert.deepEqual([a.successes, a.errors], [1, 1]);
  });
});
