// End to end: the client against the real proxy (`poolswitch start`) in front of the shared fake
// upstream (conformance/fake_upstream.py). Proxies whose keys get parked are fresh per scenario.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";

import { PoolSwitchProxyClient, ProxyError, ProxyTimeoutError, UpstreamError } from "poolswitch-node";

import { proxyConfig, startFake, startProxy, within } from "./support/harness.mjs";

const CHAT = { model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }] };

let fake;
let shared; // keys a and b, 2 attempts: nothing here parks a key until the last test
let exhaust; // key a only: parked for 30 s
let recover; // key a only: parked for 1 s

describe("end to end", () => {
  before(async () => {
    fake = await startFake();
    [shared, exhaust, recover] = await Promise.all([
      startProxy({ config: proxyConfig(fake, { retry_attempts: 2 }) }),
      startProxy({ config: proxyConfig(fake, {}, ["a"]) }),
      startProxy({ config: proxyConfig(fake, {}, ["a"]) }),
    ]);
  });

  after(async () => {
    // The fake first: it ends the attempt the proxy still holds for the `hang` test (the proxy
    // does not cancel it when the caller leaves), so the proxies then stop at once.
    await fake?.stop();
    await Promise.all([shared?.stop(), exhaust?.stop(), recover?.stop()]);
  });

  describe("through the real proxy", { timeout: 60_000 }, () => {
    beforeEach(async () => {
      await fake.reset();
    });

    test("the seed call returns the upstream's JSON", async () => {
      const client = new PoolSwitchProxyClient(shared.url);
      const result = await client.post("/v1/chat/completions", { json: CHAT });
      assert.equal(result.object, "chat.completion");
      assert.match(result.choices[0].message.content, /fake upstream/);
    });

    test("send() reports the key and attempts; the pool key is put on the request", async () => {
      await fake.script({ a: [{ kind: "echo" }], b: [{ kind: "echo" }] });
      const client = new PoolSwitchProxyClient(shared.url, { headers: { "x-trace": "t1" } });
      const response = await client.send("POST", "/v1/echo", { json: { n: 1 }, query: { q: "x y" } });
      assert.equal(response.status, 200);
      assert.ok(["a", "b"].includes(response.keyId));
      assert.equal(response.attempts, 1);
      const echoed = response.json();
      assert.equal(echoed.key_id, response.keyId);
      assert.equal(echoed.path, "/v1/echo");
      assert.equal(echoed.query_string, "q=x+y");
      const headers = Object.fromEntries(echoed.headers);
      assert.equal(headers.authorization, `Bearer sk-test-${response.keyId}`);
      assert.equal(headers["x-trace"], "t1");
    });

    test("a relayed 400 is an UpstreamError with status, body, key id and attempts", async () => {
      await fake.script({ a: [{ kind: "bad_request" }], b: [{ kind: "bad_request" }] });
      const client = new PoolSwitchProxyClient(shared.url);
      const error = await client.post("/v1/chat/completions", { json: {} }).catch((e) => e);
      assert.ok(error instanceof UpstreamError, String(error));
      assert.equal(error.status, 400);
      assert.ok(["a", "b"].includes(error.keyId));
      assert.equal(error.attempts, 1);
      assert.match(error.body.error.message, /'messages' is a required property/);
    });

    test("an upstream 503 after failover is an UpstreamError, not a ProxyError", async () => {
      await fake.script({ a: [{ kind: "server_error", status: 503 }], b: [{ kind: "server_error", status: 503 }] });
      const client = new PoolSwitchProxyClient(shared.url);
      const error = await client.post("/v1/chat/completions", { json: CHAT }).catch((e) => e);
      assert.ok(error instanceof UpstreamError, String(error));
      assert.ok(!(error instanceof ProxyError));
      assert.equal(error.status, 503);
      assert.equal(error.attempts, 2);
    });

    test("every key's connection dropped: ProxyError upstream_unreachable", async () => {
      await fake.script({ a: [{ kind: "drop" }], b: [{ kind: "drop" }] });
      const client = new PoolSwitchProxyClient(shared.url);
      // GET: the proxy fails over a dropped connection for any method only when it is idempotent.
      const error = await client.get("/v1/models").catch((e) => e);
      assert.ok(error instanceof ProxyError, String(error));
      assert.equal(error.code, "upstream_unreachable");
      assert.equal(error.status, 502);
      assert.equal(error.attempts, 2);
    });

    test("stream() yields the first event long before the upstream finishes", async () => {
      const events = Array.from({ length: 10 }, (_, i) => JSON.stringify({ choices: [{ delta: { content: `t${i}` } }] }));
      await fake.script({
        a: [{ kind: "sse", events, interval: 0.1 }],
        b: [{ kind: "sse", events, interval: 0.1 }],
      });
      const client = new PoolSwitchProxyClient(shared.url);
      const stream = client.stream("POST", "/v1/chat/completions", { json: { ...CHAT, stream: true } });
      const arrivals = [];
      const contents = [];
      await within(15_000, "sse through the proxy", (async () => {
        for await (const event of stream) {
          arrivals.push(Date.now());
          if (event.data === "[DONE]") {
            break;
          }
          contents.push(event.json().choices[0].delta.content);
        }
      })());
      assert.deepEqual(contents, events.map((_, i) => `t${i}`));
      assert.ok(["a", "b"].includes(stream.keyId));
      assert.equal(stream.attempts, 1);
      // The upstream spends ~1 s between its first and last event; a buffered relay would
      // deliver them all at once.
      const spread = arrivals.at(-1) - arrivals[0];
      assert.ok(spread >= 600, `first event ${spread} ms before the last`);
    });

    test("a hanging upstream and a short timeoutMs: ProxyTimeoutError", async () => {
      await fake.script({ a: [{ kind: "hang" }], b: [{ kind: "hang" }] });
      const client = new PoolSwitchProxyClient(shared.url, { timeoutMs: 300 });
      await assert.rejects(client.get("/v1/models"), ProxyTimeoutError);
    });

    test("health(), status() and metrics()", async () => {
      const client = new PoolSwitchProxyClient(shared.url);
      const health = await client.health();
      assert.equal(health.status, "ok");
      assert.equal(health.keys_total, 2);
      const status = await client.status();
      assert.equal(status.strategy, "round_robin");
      assert.equal(status.upstream_base_url, fake.url);
      assert.deepEqual(status.keys.map((key) => key.id).sort(), ["a", "b"]);
      assert.ok(status.keys.every((key) => key.state === "available"));
      const metrics = await client.metrics();
      assert.match(metrics, /^poolswitch_requests_total\{/m);
      assert.ok(!JSON.stringify(status).includes("sk-test-"), "key values never shown");
    });

    test("failover: a rate-limited key is skipped and the answer names the key that served", async () => {
      await fake.script({ a: [{ kind: "rate_limit", headers: { "retry-after": "30" } }], b: [{ kind: "ok" }] });
      const client = new PoolSwitchProxyClient(shared.url);
      const seen = [];
      for (let i = 0; i < 2; i += 1) {
        const response = await client.send("POST", "/v1/chat/completions", { json: CHAT });
        assert.equal(response.status, 200);
        seen.push([response.keyId, response.attempts]);
      }
      assert.equal(seen.every(([keyId]) => keyId === "b"), true, JSON.stringify(seen));
      assert.ok(seen.some(([, attempts]) => attempts === 2), JSON.stringify(seen));
    });
  });

  describe("every key parked", { timeout: 60_000 }, () => {
    test("the relayed 429, then ProxyError no_available_keys with retryAfter ~30", async () => {
      await fake.script({ a: [{ kind: "rate_limit", headers: { "retry-after": "30" } }] });
      const client = new PoolSwitchProxyClient(exhaust.url, { timeoutMs: 5_000 });
      const first = await client.post("/v1/chat/completions", { json: CHAT }).catch((e) => e);
      assert.ok(first instanceof UpstreamError, String(first));
      assert.equal(first.status, 429);
      assert.equal(first.keyId, "a");
      assert.equal(first.attempts, 1);
      assert.equal(first.headers.get("retry-after"), "30");

      const started = Date.now();
      const second = await client.post("/v1/chat/completions", { json: CHAT }).catch((e) => e);
      assert.ok(second instanceof ProxyError, String(second));
      assert.equal(second.code, "no_available_keys");
      assert.ok([429, 503].includes(second.status), `status ${second.status}`); // 429 in the contract
      assert.ok(second.retryAfter >= 25 && second.retryAfter <= 30, `retryAfter ${second.retryAfter}`);
      assert.ok(Date.now() - started < 2_000, "a wait longer than the timeout is not attempted");

      const health = await client.health();
      assert.equal(health.status, "degraded");
      const [key] = (await client.status()).keys;
      assert.equal(key.state, "cooling_down");
      assert.equal(key.reason, "rate_limited");
    });

    test("maxRetries waits out a short cooldown and then succeeds", async () => {
      await fake.script({ a: [{ kind: "rate_limit", headers: { "retry-after": "1" } }, { kind: "ok" }] });
      const client = new PoolSwitchProxyClient(recover.url, { timeoutMs: 10_000, maxRetries: 2 });
      await assert.rejects(client.post("/v1/chat/completions", { json: CHAT }), UpstreamError);
      const started = Date.now();
      const response = await client.send("POST", "/v1/chat/completions", { json: CHAT });
      assert.equal(response.status, 200);
      assert.equal(response.keyId, "a");
      assert.ok(Date.now() - started >= 300, "waited for the key to come back");
    });
  });
});
