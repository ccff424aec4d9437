// The client's request building and answer parsing (local server on port 0, and a swapped fetch).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { inspect } from "node:util";

import {
  PoolSwitchProxyClient,
  PoolSwitchResponse,
  ProxyConnectionError,
  ProxyError,
  UpstreamError,
  VERSION,
} from "poolswitch-node";

import { localServer, SDK_ROOT } from "./support/harness.mjs";

const TOKEN = "ps-token-SECRET-4242";

let server;
let seen; // requests the server received: { method, url, headers, body }
let answer; // what the server answers next: { status, headers, body }

describe("client", () => {
  before(async () => {
    server = await localServer((req, res) => {
      const chunks = [];
      req.on("data", (chunk) => chunks.push(chunk));
      req.on("end", () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
      });
    });
  });

  after(async () => {
    await server?.close();
  });

  beforeEach(() => {
    seen = [];
    answer = {
      status: 200,
      headers: { "content-type": "application/json", "x-poolswitch-key-id": "a", "x-poolswitch-attempts": "2" },
      body: JSON.stringify({ ok: true }),
    };
  });

  describe("constructor", () => {
    test("rejects bad base URLs and options", () => {
      assert.throws(() => new PoolSwitchProxyClient("not a url"), TypeError);
      assert.throws(() => new PoolSwitchProxyClient("ftp://host"), /http\(s\)/);
      assert.throws(() => new PoolSwitchProxyClient("http://u:p@host"), /credentials/);
      assert.throws(() => new PoolSwitchProxyClient("http://host/?q=1"), /query/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { timeoutMs: -1 }), /timeoutMs/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { timeoutMs: Infinity }), /timeoutMs/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { timeoutMs: Number.NaN }), /timeoutMs/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { maxRetries: -1 }), /maxRetries/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { maxRetries: 1.5 }), /maxRetries/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { fetch: 3 }), /fetch/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { random: 0.5 }), /random/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { token: "" }), /token/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { token: "a\nb" }), /token/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { pool: "" }), /pool/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { pool: "open ai" }), /pool/);
      assert.throws(() => new PoolSwitchProxyClient("http://host", { pool: 7 }), /pool/);
    });

    test("defaults and a normalized base URL", () => {
      const client = new PoolSwitchProxyClient(new URL("http://127.0.0.1:8080/gw/"));
      assert.equal(client.baseUrl, "http://127.0.0.1:8080/gw");
      assert.equal(client.timeoutMs, 600_000);
      assert.equal(client.maxRetries, 2);
      assert.equal(client.pool, null);
      assert.equal(new PoolSwitchProxyClient("http://host", { timeoutMs: 0 }).timeoutMs, 0, "0: no deadline");
    });

    test("VERSION matches package.json", () => {
      const pkg = JSON.parse(readFileSync(join(SDK_ROOT, "package.json"), "utf8"));
      assert.equal(VERSION, pkg.version);
    });
  });

  describe("requests", () => {
    test("the seed call: POST JSON, parsed JSON back", async () => {
      const client = new PoolSwitchProxyClient(server.url);
      const json = { model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }] };
      const result = await client.post("/v1/chat/completions", { json });
      assert.deepEqual(result, { ok: true });
      assert.equal(seen.length, 1);
      assert.equal(seen[0].method, "POST");
      assert.equal(seen[0].url, "/v1/chat/completions");
      assert.equal(seen[0].headers["content-type"], "application/json");
      assert.equal(seen[0].headers["user-agent"], `poolswitch-node/${VERSION}`);
      assert.deepEqual(JSON.parse(seen[0].body), json);
    });

    test("each method helper sends its method", async () => {
      const client = new PoolSwitchProxyClient(server.url);
      await client.get("/x");
      await client.post("/x");
      await client.put("/x");
      await client.patch("/x");
      await client.delete("/x");
      await client.request("options", "/x");
      assert.deepEqual(
        seen.map((r) => r.method),
        ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
      );
    });

    test("base path, relative paths and query parameters", async () => {
      const client = new PoolSwitchProxyClient(`${server.url}/gw/`);
      await client.get("v1/models", { query: { limit: 5, tag: ["a", "b c"], skip: undefined, none: null, on: true } });
      await client.get("/v1/models?x=1", { query: { y: "2" } });
      assert.equal(seen[0].url, "/gw/v1/models?limit=5&tag=a&tag=b+c&on=true");
      assert.equal(seen[1].url, "/gw/v1/models?x=1&y=2");
      await assert.rejects(client.get("http://elsewhere/x"), TypeError);
      await assert.rejects(client.get("//elsewhere/x"), TypeError);
    });

    test("token, client headers and call headers, the call's winning", async () => {
      const client = new PoolSwitchProxyClient(server.url, {
        token: TOKEN,
        headers: { "x-team": "search", "x-drop": "yes", "user-agent": "mine/1" },
      });
      await client.get("/x", { headers: { "x-team": "ads", "x-drop": undefined, accept: "text/plain" } });
      const headers = seen[0].headers;
      assert.equal(headers["x-poolswitch-token"], TOKEN);
      assert.equal(headers.authorization, undefined);
      assert.equal(headers["x-team"], "ads");
      assert.equal(headers["x-drop"], undefined);
      assert.equal(headers["user-agent"], "mine/1");
      assert.equal(headers.accept, "text/plain");
    });

    test("the token goes out as x-poolswitch-token on every call, helpers and streams too", async () => {
      const client = new PoolSwitchProxyClient(server.url, { token: TOKEN });
      await client.get("/x");
      await client.post("/x", { json: {} });
      await client.send("DELETE", "/x");
      await client.health();
      await client.status();
      await client.metrics();
      answer = { status: 200, headers: { "content-type": "text/event-stream" }, body: "data: 1\n\n" };
      for await (const event of client.stream("POST", "/x", { json: {} })) {
        assert.equal(event.data, "1");
      }
      assert.equal(seen.length, 7);
      assert.deepEqual(
        seen.map((request) => request.headers["x-poolswitch-token"]),
        Array(7).fill(TOKEN),
      );
    });

    test("the token defaults to $POOLSWITCH_TOKEN; the option wins; empty means none", async () => {
      const saved = process.env.POOLSWITCH_TOKEN;
      try {
        process.env.POOLSWITCH_TOKEN = TOKEN;
        const fromEnv = new PoolSwitchProxyClient(server.url);
        const given = new PoolSwitchProxyClient(server.url, { token: "mine" });
        assert.ok(!inspect(fromEnv, { depth: 10, showHidden: true }).includes(TOKEN));
        process.env.POOLSWITCH_TOKEN = "";
        const none = new PoolSwitchProxyClient(server.url);
        process.env.POOLSWITCH_TOKEN = ` ${TOKEN}\n`;
        assert.throws(
          () => new PoolSwitchProxyClient(server.url),
          (error) => error instanceof TypeError && /^POOLSWITCH_TOKEN /.test(error.message) && !error.message.includes(TOKEN),
        );
        await fromEnv.get("/x");
        await given.get("/x");
        await none.get("/x");
        assert.deepEqual(
          seen.map((request) => request.headers["x-poolswitch-token"]),
          [TOKEN, "mine", undefined],
        );
      } finally {
        if (saved === undefined) {
          delete process.env.POOLSWITCH_TOKEN;
        } else {
          process.env.POOLSWITCH_TOKEN = saved;
        }
      }
    });

    test("raw bodies; json and body together are refused", async () => {
      const client = new PoolSwitchProxyClient(server.url);
      await client.post("/x", { body: "plain", headers: { "content-type": "text/plain" } });
      await client.post("/x", { body: new TextEncoder().encode("bytes") });
      await client.post("/x", { body: new URLSearchParams({ a: "1" }) });
      await client.post("/x", { json: null });
      assert.deepEqual(
        seen.map((r) => r.body),
        ["plain", "bytes", "a=1", "null"],
      );
      assert.equal(seen[2].headers["content-type"], "application/x-www-form-urlencoded;charset=UTF-8");
      await assert.rejects(client.post("/x", { json: {}, body: "x" }), /json or body/);
    });

    test("answers: JSON, text, empty", async () => {
      const client = new PoolSwitchProxyClient(server.url);
      answer = { status: 200, headers: { "content-type": "text/plain; version=0.0.4" }, body: "metric 1\n" };
      assert.equal(await client.get("/metrics"), "metric 1\n");
      answer = { status: 204, headers: {}, body: "" };
      assert.equal(await client.delete("/x"), "");
      answer = { status: 200, headers: { "content-type": "application/json" }, body: "" };
      assert.equal(await client.get("/x"), null);
      answer = { status: 200, headers: { "content-type": "application/vnd.api+json" }, body: "[1,2]" };
      assert.deepEqual(await client.get("/x"), [1, 2]);
    });

    test("send() gives status, headers, keyId, attempts, json() and text()", async () => {
      const client = new PoolSwitchProxyClient(server.url);
      const response = await client.send("POST", "/v1/chat/completions", { json: { a: 1 } });
      assert.ok(response instanceof PoolSwitchResponse);
      assert.equal(response.status, 200);
      assert.equal(response.ok, true);
      assert.equal(response.keyId, "a");
      assert.equal(response.attempts, 2);
      assert.equal(response.proxyError, null);
      assert.equal(response.headers.get("content-type"), "application/json");
      assert.deepEqual(response.json(), { ok: true });
      assert.deepEqual(await response.json(), { ok: true });
      assert.equal(response.text(), '{"ok":true}');
      assert.equal(response.bytes().length, 11);

      answer = { status: 429, headers: { "content-type": "application/json", "x-poolswitch-key-id": "b" }, body: "{}" };
      const failed = await client.send("GET", "/x").catch((error) => error);
      assert.ok(failed instanceof UpstreamError, String(failed));
      assert.equal(failed.status, 429);
      assert.equal(failed.keyId, "b");
      assert.equal(failed.attempts, null);
      assert.equal(failed.response.ok, false);
    });

    test("health(), status() and metrics() call the proxy's own endpoints", async () => {
      const client = new PoolSwitchProxyClient(server.url);
      answer.body = JSON.stringify({ status: "ok", keys_available: 2, keys_total: 2 });
      assert.deepEqual(await client.health(), { status: "ok", keys_available: 2, keys_total: 2 });
      answer.body = JSON.stringify({ strategy: "round_robin", storage: "memory", upstream_base_url: "u", keys: [] });
      assert.equal((await client.status()).strategy, "round_robin");
      answer = { status: 200, headers: { "content-type": "text/plain; version=0.0.4" }, body: "poolswitch_keys 2\n" };
      assert.equal(await client.metrics(), "poolswitch_keys 2\n");
      assert.deepEqual(
        seen.map((r) => `${r.method} ${r.url}`),
        ["GET /health", "GET /status", "GET /metrics"],
      );
    });
  });

  describe("pool", () => {
    test("the client's pool goes out as x-poolswitch-pool on proxied calls and streams", async () => {
      const client = new PoolSwitchProxyClient(server.url, { pool: "openai" });
      assert.equal(client.pool, "openai");
      await client.get("/v1/models");
      await client.post("/v1/chat/completions", { json: {} });
      await client.send("DELETE", "/x");
      answer = { status: 200, headers: { "content-type": "text/event-stream" }, body: "data: 1\n\n" };
      for await (const event of client.stream("POST", "/x", { json: {} })) {
        assert.equal(event.data, "1");
      }
      assert.deepEqual(
        seen.map((request) => request.headers["x-poolswitch-pool"]),
        ["openai", "openai", "openai", "openai"],
      );
      assert.deepEqual(
        seen.map((request) => request.url),
        ["/v1/models", "/v1/chat/completions", "/x", "/x"],
        "the path is sent unchanged",
      );
    });

    test("a call's pool wins; null sends none; the proxy's own endpoints get none", async () => {
      const client = new PoolSwitchProxyClient(server.url, { pool: "openai", token: TOKEN });
      await client.get("/x", { pool: "anthropic" });
      await client.get("/x", { pool: null });
      await client.health();
      await client.status();
      await client.metrics();
      answer = { status: 200, headers: { "content-type": "text/event-stream" }, body: "data: 1\n\n" };
      for await (const event of client.stream("GET", "/x", { pool: "gemini" })) {
        assert.equal(event.data, "1");
      }
      const none = new PoolSwitchProxyClient(server.url);
      answer = { status: 200, headers: {}, body: "" };
      await none.get("/x");
      await none.get("/x", { pool: "per-call" });
      assert.deepEqual(
        seen.map((request) => request.headers["x-poolswitch-pool"]),
        ["anthropic", undefined, undefined, undefined, undefined, "gemini", undefined, "per-call"],
      );
      assert.equal(seen[2].headers["x-poolswitch-token"], TOKEN, "the token still goes to the endpoints");
      await assert.rejects(none.get("/x", { pool: "a b" }), TypeError);
    });
  });

  describe("secrets", () => {
    test("the token never shows in inspect, JSON or errors", async () => {
      const client = new PoolSwitchProxyClient(server.url, {
        token: TOKEN,
        headers: { authorization: `Bearer ${TOKEN}` },
        maxRetries: 0,
      });
      assert.ok(!inspect(client, { depth: 10, showHidden: true }).includes(TOKEN));
      assert.ok(!JSON.stringify(client).includes(TOKEN));
      assert.ok(!String(client).includes(TOKEN));

      answer = { status: 401, headers: { "content-type": "application/json" }, body: '{"error":{"message":"no"}}' };
      const upstream = await client.get("/x").catch((error) => error);
      assert.ok(upstream instanceof UpstreamError);
      answer = {
        status: 401,
        headers: { "content-type": "application/json", "x-poolswitch-error": "unauthorized" },
        body: '{"error":{"type":"poolswitch_error","code":"unauthorized","message":"wrong caller token","retry_after":null}}',
      };
      const proxy = await client.get("/x").catch((error) => error);
      assert.ok(proxy instanceof ProxyError);
      const broken = new PoolSwitchProxyClient("http://127.0.0.1:1", { token: TOKEN, maxRetries: 0 });
      const connection = await broken.get("/x").catch((error) => error);
      assert.ok(connection instanceof ProxyConnectionError);
      for (const error of [upstream, proxy, connection]) {
        assert.ok(!inspect(error, { depth: 10, showHidden: true }).includes(TOKEN));
        assert.ok(!String(error).includes(TOKEN));
      }
    });
  });

  describe("fetch option", () => {
    test("a swapped fetch receives the request and its answer is used", async () => {
      const calls = [];
      const client = new PoolSwitchProxyClient("http://proxy.invalid:9", {
        fetch: async function (url, init) {
          assert.equal(this, undefined); // called as a plain function
          calls.push({ url, method: init.method, body: init.body, signal: init.signal });
          return new Response('{"via":"fake"}', { status: 200, headers: { "content-type": "application/json" } });
        },
      });
      assert.deepEqual(await client.put("/v1/x", { json: [1] }), { via: "fake" });
      assert.equal(calls.length, 1);
      assert.equal(calls[0].url, "http://proxy.invalid:9/v1/x");
      assert.equal(calls[0].method, "PUT");
      assert.equal(calls[0].body, "[1]");
      assert.ok(calls[0].signal instanceof AbortSignal);
    });

    test("an error thrown by fetch becomes a ProxyConnectionError with it as cause", async () => {
      const boom = new Error("boom");
      const client = new PoolSwitchProxyClient("http://proxy.invalid", {
        maxRetries: 0,
        fetch: async () => {
          throw boom;
        },
      });
      const error = await client.post("/x").catch((e) => e);
      assert.ok(error instanceof ProxyConnectionError);
      assert.equal(error.cause, boom);
    });
  });
});
