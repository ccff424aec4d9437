// maxRetries: only connection failures to the proxy and the proxy's no_available_keys, overloaded
// and upstream_unavailable (unless x-should-retry: false), waiting at most 60 s, within the timeout.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, beforeEach, describe, test } from "node:test";

import { PoolSwitchProxyClient, ProxyConnectionError, ProxyError, UpstreamError } from "poolswitch-node";

import { freePort, localServer, sleep, within } from "./support/harness.mjs";

const NO_KEYS = (retryAfter) => ({
  status: 503,
  headers: {
    "content-type": "application/json",
    "x-poolswitch-error": "no_available_keys",
    ...(retryAfter === null ? {} : { "retry-after": String(retryAfter) }),
  },
  body: JSON.stringify({
    error: { type: "poolswitch_error", code: "no_available_keys", message: "all parked", retry_after: retryAfter },
  }),
});
/** The contract's answers: `status`, `code`, body `retry_after`, extra headers. */
const PROXY = (status, code, retryAfter, headers = {}) => ({
  status,
  headers: { "content-type": "application/json", "x-poolswitch-error": code, ...headers },
  body: JSON.stringify({ error: { type: "poolswitch_error", code, message: "m", retry_after: retryAfter } }),
});
const OK = { status: 200, headers: { "content-type": "application/json" }, body: '{"ok":true}' };

/** A fetch that counts its calls and hands them to the global fetch. */
function countingFetch() {
  const counter = { calls: 0 };
  counter.fetch = (url, init) => {
    counter.calls += 1;
    return fetch(url, init);
  };
  return counter;
}

let server;
let answers; // queue of answers; the last one repeats; "destroy" drops the connection

describe("retries", () => {
  before(async () => {
    server = await localServer((req, res) => {
      req.resume();
      req.on("end", () => {
        const next = answers.length > 1 ? answers.shift() : answers[0];
        if (next === "destroy") {
          req.socket.destroy();
          return;
        }
        res.writeHead(next.status, next.headers);
        res.end(next.body);
      });
    });
  });

  after(async () => {
    await server?.close();
  });

  beforeEach(() => {
    answers = [OK];
  });

  describe("connection failures", () => {
    test("a proxy that refuses connections is tried 1 + maxRetries times", async () => {
      const port = await freePort();
      const counter = countingFetch();
      const client = new PoolSwitchProxyClient(`http://127.0.0.1:${port}`, { maxRetries: 2, fetch: counter.fetch });
      const started = Date.now();
      const error = await client.post("/v1/chat/completions", { json: {} }).catch((e) => e);
      assert.ok(error instanceof ProxyConnectionError, String(error));
      assert.equal(counter.calls, 3);
      assert.ok(Date.now() - started >= 250, "backs off 100 + 200 ms between tries");
    });

    test("a proxy that comes up during the retries is reached", { timeout: 10_000 }, async () => {
      const port = await freePort();
      const late = http.createServer((req, res) => res.end("up"));
      const listening = sleep(120).then(
        () => new Promise((done) => late.listen(port, "127.0.0.1", done)),
      );
      try {
        const client = new PoolSwitchProxyClient(`http://127.0.0.1:${port}`, { maxRetries: 4 });
        assert.equal(await client.post("/x", { json: {} }), "up");
      } finally {
        await listening;
        await new Promise((done) => late.close(done));
      }
    });

    test("maxRetries 0 tries once", async () => {
      const port = await freePort();
      const counter = countingFetch();
      const client = new PoolSwitchProxyClient(`http://127.0.0.1:${port}`, { maxRetries: 0, fetch: counter.fetch });
      await assert.rejects(client.get("/health"), ProxyConnectionError);
      assert.equal(counter.calls, 1);
    });

    test("a connection dropped mid-request: GET is retried, POST is not (it may have been served)", async () => {
      answers = ["destroy"];
      const post = countingFetch();
      const postClient = new PoolSwitchProxyClient(server.url, { maxRetries: 2, fetch: post.fetch });
      await assert.rejects(postClient.post("/v1/chat/completions", { json: {} }), ProxyConnectionError);
      assert.equal(post.calls, 1);

      answers = ["destroy", OK];
      const get = countingFetch();
      const getClient = new PoolSwitchProxyClient(server.url, { maxRetries: 2, fetch: get.fetch });
      assert.deepEqual(await getClient.get("/v1/models"), { ok: true });
      assert.equal(get.calls, 2);
    });

    test("no retry when the backoff does not fit in the timeout", async () => {
      const port = await freePort();
      const counter = countingFetch();
      const client = new PoolSwitchProxyClient(`http://127.0.0.1:${port}`, {
        maxRetries: 5,
        timeoutMs: 250,
        fetch: counter.fetch,
      });
      await assert.rejects(client.get("/x"), ProxyConnectionError);
      assert.equal(counter.calls, 2, "100 ms fits, 200 more does not");
    });
  });

  describe("no_available_keys", () => {
    test("waits Retry-After, then retries and succeeds", { timeout: 10_000 }, async () => {
      answers = [NO_KEYS(1), OK];
      const counter = countingFetch();
      const client = new PoolSwitchProxyClient(server.url, { fetch: counter.fetch, timeoutMs: 5_000 });
      const started = Date.now();
      assert.deepEqual(await client.post("/v1/chat/completions", { json: {} }), { ok: true });
      assert.equal(counter.calls, 2);
      assert.ok(Date.now() - started >= 1_000, "waited the Retry-After");
    });

    test("a Retry-After beyond the time left is not waited for", async () => {
      answers = [NO_KEYS(30), OK];
      const counter = countingFetch();
      const client = new PoolSwitchProxyClient(server.url, { fetch: counter.fetch, timeoutMs: 5_000 });
      const started = Date.now();
      const error = await client.post("/x", { json: {} }).catch((e) => e);
      assert.ok(error instanceof ProxyError);
      assert.equal(error.code, "no_available_keys");
      assert.equal(error.retryAfter, 30);
      assert.equal(counter.calls, 1);
      assert.ok(Date.now() - started < 1_000, "answered at once");
    });

    test("retries stop after maxRetries; the last answer is thrown", async () => {
      answers = [NO_KEYS(0)];
      const counter = countingFetch();
      const client = new PoolSwitchProxyClient(server.url, { fetch: counter.fetch, maxRetries: 2 });
      await assert.rejects(client.get("/x"), (error) => error instanceof ProxyError && error.retryAfter === 0);
      assert.equal(counter.calls, 3);
    });

    test("no Retry-After (no key returns by itself) or maxRetries 0: no retry", async () => {
      answers = [NO_KEYS(null), OK];
      const counter = countingFetch();
      const client = new PoolSwitchProxyClient(server.url, { fetch: counter.fetch });
      await assert.rejects(client.get("/x"), ProxyError);
      assert.equal(counter.calls, 1);

      answers = [NO_KEYS(0), OK];
      const once = countingFetch();
      const noRetries = new PoolSwitchProxyClient(server.url, { fetch: once.fetch, maxRetries: 0 });
      await assert.rejects(noRetries.get("/x"), ProxyError);
      assert.equal(once.calls, 1);
    });

    test("send() retries too and returns the final answer", async () => {
      answers = [NO_KEYS(0), OK];
      const counter = countingFetch();
      const client = new PoolSwitchProxyClient(server.url, { fetch: counter.fetch });
      const response = await client.send("GET", "/x");
      assert.equal(response.status, 200);
      assert.equal(counter.calls, 2);
    });

    test("stream() retries no_available_keys before the stream starts", async () => {
      answers = [
        NO_KEYS(0),
        { status: 200, headers: { "content-type": "text/event-stream" }, body: "data: one\n\n" },
      ];
      const counter = countingFetch();
      const client = new PoolSwitchProxyClient(server.url, { fetch: counter.fetch });
      const events = [];
      for await (const event of client.stream("POST", "/x", { json: {} })) {
        events.push(event.data);
      }
      assert.deepEqual(events, ["one"]);
      assert.equal(counter.calls, 2);
    });
  });

  describe("x-should-retry and the 60 s bound", () => {
    for (const [name, answer, calls] of [
      ["429 no_available_keys, x-should-retry: false, a month away", PROXY(429, "no_available_keys", 2617953, { "x-should-retry": "false" }), 1],
      ["429 no_available_keys, x-should-retry: false, soon", PROXY(429, "no_available_keys", 0, { "x-should-retry": "false", "retry-after": "0" }), 1],
      ["429 no_available_keys, retry_after null", PROXY(429, "no_available_keys", null, { "x-should-retry": "false" }), 1],
      ["no x-should-retry but 61 s away (an older proxy)", PROXY(503, "no_available_keys", 61, { "retry-after": "61" }), 1],
      ["503 overloaded, x-should-retry: FALSE", PROXY(503, "overloaded", 0, { "x-should-retry": " FALSE " }), 1],
      ["401 unauthorized, even with x-should-retry: true", PROXY(401, "unauthorized", 0, { "x-should-retry": "true" }), 1],
      ["431 headers_too_large", PROXY(431, "headers_too_large", null), 1],
      ["429 no_available_keys, x-should-retry: true", PROXY(429, "no_available_keys", 0, { "x-should-retry": "true", "retry-after": "0" }), 2],
      ["503 overloaded, x-should-retry: true", PROXY(503, "overloaded", 0, { "x-should-retry": "true", "retry-after": "0" }), 2],
      ["503 upstream_unavailable, x-should-retry: true", PROXY(503, "upstream_unavailable", 0, { "x-should-retry": "true" }), 2],
    ]) {
      test(`${name}: ${calls === 1 ? "thrown at once" : "retried"}`, async () => {
        answers = [answer, OK];
        const counter = countingFetch();
        const client = new PoolSwitchProxyClient(server.url, { fetch: counter.fetch, maxRetries: 3, timeoutMs: 3_600_000 });
        const started = Date.now();
        const result = await within(5_000, name, client.get("/x").catch((e) => e));
        assert.equal(counter.calls, calls);
        assert.ok(Date.now() - started < 2_000, "no long wait");
        if (calls === 1) {
          assert.ok(result instanceof ProxyError, String(result));
          assert.equal(result.status, answer.status);
        } else {
          assert.deepEqual(result, { ok: true });
        }
      });
    }
  });

  describe("never retried", () => {
    for (const [name, answer, type] of [
      ["an upstream 503", { status: 503, headers: { "retry-after": "0" }, body: "busy" }, UpstreamError],
      ["a relayed 429", { status: 429, headers: { "retry-after": "0", "x-poolswitch-key-id": "a" }, body: "{}" }, UpstreamError],
      [
        "502 upstream_unreachable",
        { status: 502, headers: { "x-poolswitch-error": "upstream_unreachable" }, body: "{}" },
        ProxyError,
      ],
      ["504 upstream_timeout", { status: 504, headers: { "x-poolswitch-error": "upstream_timeout" }, body: "{}" }, ProxyError],
    ]) {
      test(name, async () => {
        answers = [answer, OK];
        const counter = countingFetch();
        const client = new PoolSwitchProxyClient(server.url, { fetch: counter.fetch, maxRetries: 3 });
        await within(5_000, name, assert.rejects(client.post("/x", { json: {} }), type));
        assert.equal(counter.calls, 1);
      });
    }
  });
});
