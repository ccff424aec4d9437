// maxRetries: what is retried (connection failures; the proxy's no_available_keys, overloaded,
// upstream_unavailable and caller_rate_limited unless x-should-retry: false), how long the client
// waits first (jittered, injectable `random`), and when it gives up at once. An injected fetch
// plays the proxy; the retry plan's arithmetic is checked on its pure functions.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  PoolSwitchProxyClient,
  PoolSwitchResponse,
  ProxyConnectionError,
  ProxyError,
  ProxyTimeoutError,
  UpstreamError,
} from "poolswitch-node";

import { isRetried, namedWaitSeconds, RETRIED_CODES, retryDelayMs } from "../dist/esm/retry.js";

/** A proxy-made answer: `code` in x-poolswitch-error and the envelope, `retry_after` in the body. */
function proxy(status, code, retryAfter = null, headers = {}) {
  const body = { error: { type: "poolswitch_error", code, message: "m", retry_after: retryAfter } };
  return { status, headers: { "content-type": "application/json", "x-poolswitch-error": code, ...headers }, body };
}
const OK = { status: 200, headers: { "content-type": "application/json" }, body: { ok: true } };
const REFUSED = "refused";

/**
 * A fetch that plays `answers` in order (the last one repeats): an answer object, or REFUSED
 * (rejects like undici's `fetch failed` with ECONNREFUSED). Records each call's time and method.
 */
function scripted(...answers) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ at: Date.now(), method: init.method, headers: init.headers });
    const next = answers.length > 1 ? answers.shift() : answers[0];
    if (next === REFUSED) {
      throw new TypeError("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) });
    }
    const text = typeof next.body === "string" ? next.body : JSON.stringify(next.body);
    return new Response(text, { status: next.status, headers: next.headers });
  };
  return { fetch, calls };
}

function client(fetch, options = {}) {
  return new PoolSwitchProxyClient("http://proxy.invalid", { fetch, random: () => 0, ...options });
}

describe("retries", () => {
  describe("the retried set", () => {
    for (const [name, answer] of [
      ["429 no_available_keys", proxy(429, "no_available_keys", 0, { "retry-after": "0", "x-should-retry": "true" })],
      ["503 overloaded", proxy(503, "overloaded", 0, { "retry-after": "0", "x-should-retry": "true" })],
      ["503 upstream_unavailable", proxy(503, "upstream_unavailable", 0, { "retry-after": "0" })],
      ["429 caller_rate_limited", proxy(429, "caller_rate_limited", 0, { "retry-after": "0", "x-should-retry": "true" })],
    ]) {
      test(`${name} is retried, and the retry's answer returned`, async () => {
        const { fetch, calls } = scripted(answer, OK);
        assert.deepEqual(await client(fetch).post("/v1/chat/completions", { json: {} }), { ok: true });
        assert.equal(calls.length, 2);
      });
    }

    test("the set is exactly the four codes", () => {
      assert.deepEqual(
        [...RETRIED_CODES].sort(),
        ["caller_rate_limited", "no_available_keys", "overloaded", "upstream_unavailable"],
      );
    });

    for (const [name, answer, type] of [
      ["x-should-retry: false", proxy(429, "no_available_keys", 0, { "x-should-retry": " FALSE " }), ProxyError],
      ["caller_rate_limited, x-should-retry: false", proxy(429, "caller_rate_limited", 120, { "x-should-retry": "false" }), ProxyError],
      ["401 unauthorized, even with x-should-retry: true", proxy(401, "unauthorized", 0, { "x-should-retry": "true" }), ProxyError],
      ["403 forbidden", proxy(403, "forbidden"), ProxyError],
      ["404 no_such_pool", proxy(404, "no_such_pool"), ProxyError],
      ["502 upstream_unreachable", proxy(502, "upstream_unreachable"), ProxyError],
      ["504 upstream_timeout", proxy(504, "upstream_timeout"), ProxyError],
      ["431 headers_too_large", proxy(431, "headers_too_large"), ProxyError],
      ["an upstream 503 with Retry-After", { status: 503, headers: { "retry-after": "0" }, body: "busy" }, UpstreamError],
      ["a relayed 429", { status: 429, headers: { "retry-after": "0", "x-poolswitch-key-id": "a" }, body: "{}" }, UpstreamError],
    ]) {
      test(`${name}: thrown at once`, async () => {
        const { fetch, calls } = scripted(answer, OK);
        await assert.rejects(client(fetch, { maxRetries: 3 }).get("/x"), type);
        assert.equal(calls.length, 1);
      });
    }

    test("a timeout is not retried", async () => {
      let calls = 0;
      const hanging = (url, init) => {
        calls += 1;
        return new Promise((_, reject) => init.signal.addEventListener("abort", () => reject(init.signal.reason)));
      };
      await assert.rejects(client(hanging, { timeoutMs: 50, maxRetries: 3 }).get("/x"), ProxyTimeoutError);
      assert.equal(calls, 1);
    });
  });

  describe("how many", () => {
    test("maxRetries defaults to 2: three attempts, then the last answer is thrown", async () => {
      const { fetch, calls } = scripted(proxy(503, "overloaded", 0, { "retry-after": "0" }));
      const error = await client(fetch).get("/x").catch((e) => e);
      assert.ok(error instanceof ProxyError, String(error));
      assert.equal(error.code, "overloaded");
      assert.equal(calls.length, 3);
    });

    test("maxRetries 0 tries once", async () => {
      const { fetch, calls } = scripted(proxy(503, "overloaded", 0, { "retry-after": "0" }), OK);
      await assert.rejects(client(fetch, { maxRetries: 0 }).get("/x"), ProxyError);
      assert.equal(calls.length, 1);
    });
  });

  describe("connection failures", () => {
    test("a refused connection is retried with a backoff, POST too; then ProxyConnectionError", async () => {
      const { fetch, calls } = scripted(REFUSED);
      const error = await client(fetch).post("/v1/chat/completions", { json: {} }).catch((e) => e);
      assert.ok(error instanceof ProxyConnectionError, String(error));
      assert.match(error.message, /ECONNREFUSED/);
      assert.equal(calls.length, 3);
      assert.deepEqual(calls.map((c) => c.method), ["POST", "POST", "POST"]);
      // random() = 0: 0.5 s * 2**n * 0.5 -> 250 ms, then 500 ms
      const gaps = [calls[1].at - calls[0].at, calls[2].at - calls[1].at];
      assert.ok(gaps[0] >= 240 && gaps[0] < 450, `first wait ${gaps[0]} ms`);
      assert.ok(gaps[1] >= 490 && gaps[1] < 800, `second wait ${gaps[1]} ms`);
    });

    test("a proxy that comes back is reached", async () => {
      const { fetch, calls } = scripted(REFUSED, OK);
      assert.deepEqual(await client(fetch).get("/x"), { ok: true });
      assert.equal(calls.length, 2);
    });

    test("a backoff that would end after the deadline is not waited", async () => {
      const { fetch, calls } = scripted(REFUSED);
      const started = Date.now();
      const error = await client(fetch, { timeoutMs: 400, maxRetries: 5 }).get("/x").catch((e) => e);
      assert.ok(error instanceof ProxyConnectionError, String(error));
      assert.equal(calls.length, 2, "250 ms fits in 400, 500 more does not");
      assert.ok(Date.now() - started < 400, "thrown before the deadline");
    });
  });

  describe("waits", () => {
    test("Retry-After is waited, times U(1.0, 1.1) (random() = 1: 1.1x)", async () => {
      const { fetch, calls } = scripted(proxy(503, "overloaded", 5, { "retry-after": "0.2" }), OK);
      await client(fetch, { random: () => 1 }).get("/x");
      const gap = calls[1].at - calls[0].at;
      assert.ok(gap >= 215 && gap < 500, `waited ${gap} ms, not the body's 5 s`);
    });

    test("without Retry-After, the body's retry_after", async () => {
      const { fetch, calls } = scripted(proxy(429, "caller_rate_limited", 0.15), OK);
      await client(fetch).get("/x");
      const gap = calls[1].at - calls[0].at;
      assert.ok(gap >= 145 && gap < 450, `waited ${gap} ms`);
    });

    test("a named wait over 60 s is thrown at once, whatever the timeout", async () => {
      const { fetch, calls } = scripted(proxy(429, "no_available_keys", 61, { "retry-after": "61" }), OK);
      const started = Date.now();
      const error = await client(fetch, { timeoutMs: 0, maxRetries: 3 }).get("/x").catch((e) => e);
      assert.ok(error instanceof ProxyError);
      assert.equal(error.retryAfter, 61);
      assert.equal(calls.length, 1);
      assert.ok(Date.now() - started < 1_000);
    });

    test("a named wait that would end after the deadline is thrown at once", async () => {
      const { fetch, calls } = scripted(proxy(503, "upstream_unavailable", 30, { "retry-after": "30" }), OK);
      const started = Date.now();
      const error = await client(fetch, { timeoutMs: 5_000 }).post("/x", { json: {} }).catch((e) => e);
      assert.ok(error instanceof ProxyError);
      assert.equal(error.code, "upstream_unavailable");
      assert.equal(calls.length, 1);
      assert.ok(Date.now() - started < 1_000);
    });

    test("an answer that names no wait is retried after the backoff", async () => {
      const { fetch, calls } = scripted(proxy(503, "overloaded", null), OK);
      await client(fetch).get("/x");
      const gap = calls[1].at - calls[0].at;
      assert.ok(gap >= 240 && gap < 500, `waited ${gap} ms`);
    });

    test("stream() retries before the stream starts", async () => {
      const sse = { status: 200, headers: { "content-type": "text/event-stream" }, body: "data: one\n\n" };
      const { fetch, calls } = scripted(proxy(429, "caller_rate_limited", 0, { "retry-after": "0" }), sse);
      const events = [];
      for await (const event of client(fetch).stream("POST", "/x", { json: {} })) {
        events.push(event.data);
      }
      assert.deepEqual(events, ["one"]);
      assert.equal(calls.length, 2);
    });
  });

  describe("the plan (pure functions)", () => {
    test("retryDelayMs: named waits jittered up by 0..10 %, capped at 60 s; over 60 s none", () => {
      assert.equal(retryDelayMs(0, 2, () => 0), 2_000);
      assert.equal(retryDelayMs(5, 2, () => 1), 2_200);
      assert.equal(retryDelayMs(0, 0, () => 0.5), 0);
      assert.equal(retryDelayMs(0, 60, () => 1), 60_000, "never more than 60 s");
      assert.equal(retryDelayMs(0, 60.001, () => 0), null);
      assert.equal(retryDelayMs(0, 3_600, () => 0), null);
    });

    test("retryDelayMs: backoff min(8, 0.5 * 2**n) s times U(0.5, 1.0)", () => {
      const low = [0, 1, 2, 3, 4, 5, 10].map((n) => retryDelayMs(n, null, () => 0));
      const high = [0, 1, 2, 3, 4, 5, 10].map((n) => retryDelayMs(n, null, () => 1));
      assert.deepEqual(low, [250, 500, 1_000, 2_000, 4_000, 4_000, 4_000]);
      assert.deepEqual(high, [500, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
      assert.equal(retryDelayMs(0, null, () => Number.NaN), 250, "a broken random stays in range");
      assert.equal(retryDelayMs(0, null, () => 7), 500);
    });

    test("namedWaitSeconds: Retry-After (seconds or a date) first, else error.retry_after", () => {
      const answer = (headers, body) =>
        new PoolSwitchResponse(429, new Headers({ "content-type": "application/json", ...headers }), new TextEncoder().encode(JSON.stringify(body)));
      assert.equal(namedWaitSeconds(answer({ "retry-after": "3" }, { error: { retry_after: 2.4 } })), 3);
      assert.equal(namedWaitSeconds(answer({}, { error: { retry_after: 2.4 } })), 2.4);
      assert.equal(namedWaitSeconds(answer({}, { error: { retry_after: null } })), null);
      assert.equal(namedWaitSeconds(answer({}, "text")), null);
      const date = new Date(Date.now() + 10_000).toUTCString();
      const fromDate = namedWaitSeconds(answer({ "retry-after": date }, {}));
      assert.ok(fromDate >= 9 && fromDate <= 11, String(fromDate));
    });

    test("isRetried: a retried code without x-should-retry: false, made by the proxy", () => {
      const answer = (headers) => new PoolSwitchResponse(503, new Headers(headers), new Uint8Array());
      assert.equal(isRetried(answer({ "x-poolswitch-error": "overloaded" })), true);
      assert.equal(isRetried(answer({ "x-poolswitch-error": "overloaded", "x-should-retry": "false" })), false);
      assert.equal(isRetried(answer({ "x-poolswitch-error": "upstream_timeout" })), false);
      assert.equal(isRetried(answer({})), false);
    });
  });
});
