// Error classes and the one factory that maps an answer to them (local server on port 0).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  errorFromResponse,
  PoolSwitchError,
  PoolSwitchProxyClient,
  isProxyErrorCode,
  PoolSwitchResponse,
  PROXY_ERROR_CODES,
  ProxyConnectionError,
  ProxyError,
  ProxyErrorCode,
  ProxyTimeoutError,
  UpstreamError,
} from "poolswitch-node";

import { freePort, localServer } from "./support/harness.mjs";

/** Answers are described by the request path: /answer/<name>. */
const ANSWERS = {
  "no-keys": {
    status: 503,
    headers: { "x-poolswitch-error": "no_available_keys", "retry-after": "42" },
    body: {
      error: {
        type: "poolswitch_error",
        code: "no_available_keys",
        message: "every key is cooling down or disabled; the first returns in 41.2s",
        retry_after: 42,
      },
    },
  },
  "no-keys-never": {
    status: 503,
    headers: { "x-poolswitch-error": "no_available_keys" },
    body: {
      error: { type: "poolswitch_error", code: "no_available_keys", message: "all disabled", retry_after: null },
    },
  },
  unreachable: {
    status: 502,
    headers: { "x-poolswitch-error": "upstream_unreachable", "x-poolswitch-attempts": "3" },
    body: {
      error: { type: "poolswitch_error", code: "upstream_unreachable", message: "connection failed", retry_after: null },
    },
  },
  "no-keys-429": {
    status: 429,
    headers: { "x-poolswitch-error": "no_available_keys", "x-should-retry": "false" },
    body: {
      error: { type: "poolswitch_error", code: "no_available_keys", message: "quota spent", retry_after: 2617953.5 },
    },
  },
  unauthorized: {
    status: 401,
    headers: { "x-poolswitch-error": "unauthorized" },
    body: { error: { type: "poolswitch_error", code: "unauthorized", message: "no caller token", retry_after: null } },
  },
  forbidden: {
    status: 403,
    headers: { "x-poolswitch-error": "forbidden" },
    body: { error: { type: "poolswitch_error", code: "forbidden", message: "origin not allowed", retry_after: null } },
  },
  "headers-too-large": {
    status: 431,
    headers: { "x-poolswitch-error": "headers_too_large" },
    body: { error: { type: "poolswitch_error", code: "headers_too_large", message: "too big", retry_after: null } },
  },
  overloaded: {
    status: 503,
    headers: { "x-poolswitch-error": "overloaded", "retry-after": "1", "x-should-retry": "true" },
    body: { error: { type: "poolswitch_error", code: "overloaded", message: "busy", retry_after: 1 } },
  },
  "proxy-not-json": {
    status: 500,
    headers: { "x-poolswitch-error": "internal_error", "content-type": "text/plain" },
    body: "oops",
  },
  "upstream-503": {
    status: 503,
    headers: { "x-poolswitch-key-id": "b", "x-poolswitch-attempts": "3", "retry-after": "5" },
    body: { error: { message: "The server is overloaded", type: "server_error" } },
  },
  "upstream-429": {
    status: 429,
    headers: { "x-poolswitch-key-id": "a", "x-poolswitch-attempts": "1", "retry-after": "30" },
    body: { error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } },
  },
  "upstream-text": {
    status: 404,
    headers: { "content-type": "text/plain", "x-poolswitch-key-id": "a", "x-poolswitch-attempts": "1" },
    body: "no such route",
  },
  anthropic: {
    status: 529,
    headers: { "x-poolswitch-key-id": "a", "x-poolswitch-attempts": "2" },
    body: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
  },
};

let server;
let client;

describe("errors", () => {
  before(async () => {
    server = await localServer((req, res) => {
      const answer = ANSWERS[req.url.replace("/answer/", "")];
      const text = typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body);
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
      res.end(text);
    });
    client = new PoolSwitchProxyClient(server.url, { maxRetries: 0 });
  });

  after(async () => {
    await server?.close();
  });

  async function caught(promise) {
    try {
      await promise;
    } catch (error) {
      return error;
    }
    assert.fail("expected a rejection");
  }

  describe("class tree", () => {
    test("every error is a PoolSwitchError and an Error, with its own name", () => {
      const headers = new Headers();
      const errors = [
        [new ProxyError("m", { code: "c", status: 503, retryAfter: 1, attempts: null, headers }), "ProxyError"],
        [new UpstreamError("m", { status: 429, body: null, keyId: "a", attempts: 1, headers }), "UpstreamError"],
        [new ProxyConnectionError("m"), "ProxyConnectionError"],
        [new ProxyTimeoutError("m", { timeoutMs: 5, aborted: false }), "ProxyTimeoutError"],
        [new PoolSwitchError("m"), "PoolSwitchError"],
      ];
      for (const [error, name] of errors) {
        assert.ok(error instanceof PoolSwitchError);
        assert.ok(error instanceof Error);
        assert.equal(error.name, name);
        assert.ok(String(error).startsWith(`${name}: m`));
        assert.ok(error.stack.includes(name));
      }
    });

    test("cause is kept on wrapped errors", () => {
      const cause = new Error("ECONNREFUSED");
      assert.equal(new ProxyConnectionError("m", { cause }).cause, cause);
      assert.equal(new ProxyTimeoutError("m", { timeoutMs: null, aborted: true, cause }).cause, cause);
      assert.equal("cause" in new ProxyTimeoutError("m", { timeoutMs: 1, aborted: false }), false);
    });
  });

  describe("request id", () => {
    test("both errors carry the answer's x-poolswitch-request-id, null without one", () => {
      const body = new TextEncoder().encode(
        JSON.stringify({ error: { type: "poolswitch_error", code: "overloaded", message: "m", retry_after: 1, request_id: "req-1" } }),
      );
      const proxy = errorFromResponse(
        new PoolSwitchResponse(503, new Headers({ "x-poolswitch-error": "overloaded", "x-poolswitch-request-id": "req-1" }), body),
      );
      const upstream = errorFromResponse(
        new PoolSwitchResponse(429, new Headers({ "x-poolswitch-request-id": "req-2" }), new TextEncoder().encode("slow down")),
      );
      const bare = errorFromResponse(new PoolSwitchResponse(500, new Headers(), new Uint8Array()));
      assert.ok(proxy instanceof ProxyError);
      assert.equal(proxy.requestId, "req-1");
      assert.ok(upstream instanceof UpstreamError);
      assert.equal(upstream.requestId, "req-2");
      assert.equal(bare.requestId, null);
      assert.equal(new ProxyError("m", { code: "c", status: 503, retryAfter: 1, attempts: null, headers: new Headers() }).requestId, null);
    });
  });

  describe("codes", () => {
    test("a constant for every proxy error code of the contract, and no other", () => {
      const contract = [
        "no_available_keys",
        "upstream_unavailable",
        "overloaded",
        "upstream_unreachable",
        "upstream_timeout",
        "payload_too_large",
        "bad_request",
        "unauthorized",
        "forbidden",
        "headers_too_large",
        "not_found",
        "no_such_pool",
        "caller_rate_limited",
        "internal_error",
      ];
      assert.deepEqual([...PROXY_ERROR_CODES].sort(), [...contract].sort());
      assert.deepEqual(Object.values(ProxyErrorCode).sort(), [...contract].sort());
      assert.equal(ProxyErrorCode.NoSuchPool, "no_such_pool");
      assert.equal(ProxyErrorCode.CallerRateLimited, "caller_rate_limited");
      assert.ok(Object.isFrozen(PROXY_ERROR_CODES));
      assert.ok(contract.every((code) => isProxyErrorCode(code)));
      assert.equal(isProxyErrorCode("rate_limited"), false);
      assert.equal(isProxyErrorCode(undefined), false);
    });

    test("every code comes back as a ProxyError with that code", () => {
      for (const code of PROXY_ERROR_CODES) {
        const headers = new Headers({ "x-poolswitch-error": code, "content-type": "application/json" });
        const body = new TextEncoder().encode(JSON.stringify({ error: { type: "poolswitch_error", code, message: "m", retry_after: null } }));
        const error = errorFromResponse(new PoolSwitchResponse(400, headers, body));
        assert.ok(error instanceof ProxyError, code);
        assert.equal(error.code, code);
      }
    });
  });

  describe("errorFromResponse", () => {
    for (const [name, code, status, retryAfter] of [
      ["no-keys-429", "no_available_keys", 429, 2617953.5],
      ["unauthorized", "unauthorized", 401, null],
      ["forbidden", "forbidden", 403, null],
      ["headers-too-large", "headers_too_large", 431, null],
      ["overloaded", "overloaded", 503, 1],
    ]) {
      test(`${status} ${code} is a ProxyError with code, status and retryAfter from the body`, async () => {
        const error = await caught(client.get(`/answer/${name}`));
        assert.ok(error instanceof ProxyError, String(error));
        assert.equal(error.code, code);
        assert.equal(error.status, status);
        assert.equal(error.retryAfter, retryAfter);
      });
    }

    test("503 with x-poolswitch-error is a ProxyError with code, status and retryAfter", async () => {
      const error = await caught(client.post("/answer/no-keys", { json: {} }));
      assert.ok(error instanceof ProxyError);
      assert.equal(error.code, "no_available_keys");
      assert.equal(error.status, 503);
      assert.equal(error.retryAfter, 42);
      assert.equal(error.attempts, null);
      assert.match(error.message, /^no_available_keys: every key is cooling down/);
      assert.equal(error.headers.get("retry-after"), "42");
    });

    test("retry_after null stays null", async () => {
      const error = await caught(client.get("/answer/no-keys-never"));
      assert.ok(error instanceof ProxyError);
      assert.equal(error.retryAfter, null);
    });

    test("502 upstream_unreachable keeps the attempts", async () => {
      const error = await caught(client.get("/answer/unreachable"));
      assert.ok(error instanceof ProxyError);
      assert.equal(error.code, "upstream_unreachable");
      assert.equal(error.status, 502);
      assert.equal(error.attempts, 3);
    });

    test("a proxy error without a JSON body still has its code", async () => {
      const error = await caught(client.get("/answer/proxy-not-json"));
      assert.ok(error instanceof ProxyError);
      assert.equal(error.code, "internal_error");
      assert.equal(error.status, 500);
      assert.equal(error.retryAfter, null);
    });

    test("an upstream 503 (no x-poolswitch-error) is an UpstreamError, never a ProxyError", async () => {
      const error = await caught(client.get("/answer/upstream-503"));
      assert.ok(error instanceof UpstreamError);
      assert.ok(!(error instanceof ProxyError));
      assert.equal(error.status, 503);
      assert.equal(error.keyId, "b");
      assert.equal(error.attempts, 3);
      assert.deepEqual(error.body, ANSWERS["upstream-503"].body);
      assert.match(error.message, /upstream answered 503 \(key b, attempts 3\): The server is overloaded/);
    });

    test("a relayed 429 carries status, body, key id and attempts", async () => {
      const error = await caught(client.post("/answer/upstream-429", { json: {} }));
      assert.ok(error instanceof UpstreamError);
      assert.equal(error.status, 429);
      assert.equal(error.keyId, "a");
      assert.equal(error.attempts, 1);
      assert.equal(error.body.error.code, "rate_limit_exceeded");
      assert.equal(error.headers.get("retry-after"), "30");
    });

    test("a text body is kept as text; Anthropic-style messages are found", async () => {
      const text = await caught(client.get("/answer/upstream-text"));
      assert.ok(text instanceof UpstreamError);
      assert.equal(text.body, "no such route");
      assert.match(text.message, /404.*no such route/);
      const anthropic = await caught(client.get("/answer/anthropic"));
      assert.equal(anthropic.status, 529);
      assert.match(anthropic.message, /Overloaded/);
    });

    test("send() rejects on a non-2xx; the error keeps the whole answer", async () => {
      const proxyError = await caught(client.send("GET", "/answer/no-keys"));
      assert.ok(proxyError instanceof ProxyError);
      assert.equal(proxyError.retryAfter, 42);
      assert.ok(proxyError.response instanceof PoolSwitchResponse);
      assert.equal(proxyError.response.status, 503);
      assert.equal(proxyError.response.proxyError, "no_available_keys");
      assert.equal(proxyError.response.json().error.retry_after, 42);

      const upstream = await caught(client.send("POST", "/answer/upstream-429", { json: {} }));
      assert.ok(upstream instanceof UpstreamError);
      assert.equal(upstream.status, 429);
      assert.equal(upstream.keyId, "a");
      assert.equal(upstream.attempts, 1);
      assert.equal(upstream.body.error.code, "rate_limit_exceeded");
      assert.equal(upstream.response.text(), JSON.stringify(ANSWERS["upstream-429"].body));
      assert.equal(upstream.response.keyId, "a");
    });

    test("errorFromResponse maps an answer built by hand", () => {
      const headers = new Headers({ "x-poolswitch-error": "caller_rate_limited", "retry-after": "3" });
      const error = errorFromResponse(new PoolSwitchResponse(429, headers, new Uint8Array()));
      assert.ok(error instanceof ProxyError);
      assert.equal(error.code, ProxyErrorCode.CallerRateLimited);
      assert.equal(error.retryAfter, 3);
      const upstream = errorFromResponse(new PoolSwitchResponse(500, new Headers(), new Uint8Array()));
      assert.ok(upstream instanceof UpstreamError);
      assert.equal(upstream.response.status, 500);
    });

    test("Retry-After as an HTTP date is read when the body has no retry_after", () => {
      const at = new Date(Date.now() + 10_000).toUTCString();
      const headers = new Headers({ "x-poolswitch-error": "no_available_keys", "retry-after": at });
      const error = errorFromResponse(new PoolSwitchResponse(503, headers, new Uint8Array()));
      assert.ok(error.retryAfter >= 9 && error.retryAfter <= 11, String(error.retryAfter));
    });
  });

  describe("connection errors", () => {
    test("a proxy that does not listen gives ProxyConnectionError with a cause", async () => {
      const port = await freePort();
      const dead = new PoolSwitchProxyClient(`http://127.0.0.1:${port}`, { maxRetries: 0 });
      const error = await caught(dead.get("/health"));
      assert.ok(error instanceof ProxyConnectionError);
      assert.ok(error instanceof PoolSwitchError);
      assert.ok(error.cause instanceof Error);
      assert.match(error.message, /GET http:\/\/127\.0\.0\.1:\d+\/health failed: .*ECONNREFUSED/);
    });
  });
});
