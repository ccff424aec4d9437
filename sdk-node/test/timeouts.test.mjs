// timeoutMs, the caller's AbortSignal, and the cleanup of timers and listeners after every call.
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { after, before, describe, test } from "node:test";

import { PoolSwitchProxyClient, ProxyConnectionError, ProxyError, ProxyTimeoutError } from "poolswitch-node";

import { localServer, sleep } from "./support/harness.mjs";

let server;

describe("timeouts and abort", () => {
  before(async () => {
    // /slow/<ms> answers after <ms>; /stall-body sends headers and then nothing.
    server = await localServer((req, res) => {
      req.resume();
      const slow = /^\/slow\/(\d+)/.exec(req.url);
      if (slow) {
        const timer = setTimeout(() => res.end("late"), Number(slow[1]));
        res.on("close", () => clearTimeout(timer));
      } else if (req.url === "/stall-body") {
        res.writeHead(200, { "content-type": "application/json", "content-length": "100" });
        res.write("{");
      } else {
        res.end("fast");
      }
    });
  });

  after(async () => {
    await server?.close();
  });

  /** Timers alive in this process (`Timeout` handles). */
  function timers() {
    return process.getActiveResourcesInfo().filter((name) => name === "Timeout").length;
  }

  /** A fetch that never answers, but rejects when its signal aborts (no sockets, no undici timers). */
  async function hangingFetch(url, init) {
    return new Promise((_, reject) => {
      init.signal.addEventListener("abort", () => reject(init.signal.reason), { once: true });
    });
  }

  describe("timeouts", () => {
    test("no answer within timeoutMs: ProxyTimeoutError with timeoutMs", async () => {
      const client = new PoolSwitchProxyClient(server.url, { timeoutMs: 150 });
      const started = Date.now();
      const error = await client.get("/slow/5000").catch((e) => e);
      assert.ok(error instanceof ProxyTimeoutError, String(error));
      assert.equal(error.timeoutMs, 150);
      assert.equal(error.aborted, false);
      assert.match(error.message, /GET http:\/\/127\.0\.0\.1:\d+\/slow\/5000 timed out after 150 ms/);
      assert.ok(Date.now() - started < 2_000);
    });

    test("a call's timeoutMs wins over the client's", async () => {
      const client = new PoolSwitchProxyClient(server.url, { timeoutMs: 60_000 });
      const error = await client.get("/slow/5000", { timeoutMs: 100 }).catch((e) => e);
      assert.ok(error instanceof ProxyTimeoutError);
      assert.equal(error.timeoutMs, 100);
      assert.equal(await client.get("/slow/50", { timeoutMs: 2_000 }), "late");
    });

    test("a timeout beyond setTimeout's range (~24.8 days) does not fire at once", async () => {
      const client = new PoolSwitchProxyClient(server.url, { timeoutMs: 1e12 });
      assert.equal(await client.get("/slow/50"), "late");
    });

    test("one deadline for the whole call: every attempt and every wait share it", async () => {
      let calls = 0;
      const client = new PoolSwitchProxyClient("http://proxy.invalid", {
        timeoutMs: 300,
        maxRetries: 5,
        fetch: async (url, init) => {
          calls += 1;
          if (calls === 1) {
            await sleep(150);
            return new Response("{}", { status: 503, headers: { "x-poolswitch-error": "overloaded", "retry-after": "0" } });
          }
          return hangingFetch(url, init);
        },
      });
      const started = Date.now();
      const error = await client.get("/x").catch((e) => e);
      const took = Date.now() - started;
      assert.ok(error instanceof ProxyTimeoutError, String(error));
      assert.equal(error.timeoutMs, 300);
      assert.equal(calls, 2);
      assert.ok(took >= 280 && took < 420, `timed out after ${took} ms, not 300 ms per attempt`);
    });

    test("a stream's deadline covers its retries until the headers arrive", async () => {
      let calls = 0;
      const client = new PoolSwitchProxyClient("http://proxy.invalid", {
        timeoutMs: 250,
        fetch: async (url, init) => {
          calls += 1;
          if (calls === 1) {
            await sleep(150);
            return new Response("{}", { status: 429, headers: { "x-poolswitch-error": "caller_rate_limited", "retry-after": "0" } });
          }
          return hangingFetch(url, init);
        },
      });
      const started = Date.now();
      await assert.rejects(client.stream("POST", "/x", { json: {} }).open(), ProxyTimeoutError);
      assert.ok(Date.now() - started < 400);
      assert.equal(calls, 2);
    });

    test("timeoutMs 0 means no deadline: no timer is armed", async () => {
      const client = new PoolSwitchProxyClient("http://proxy.invalid", { timeoutMs: 0, fetch: hangingFetch });
      await sleep(10);
      const before = timers();
      const controller = new AbortController();
      const pending = client.get("/x", { signal: controller.signal });
      await sleep(20);
      assert.equal(timers(), before, "no deadline timer");
      controller.abort();
      const error = await pending.catch((e) => e);
      assert.ok(error instanceof ProxyTimeoutError);
      assert.equal(error.aborted, true);
      const short = new PoolSwitchProxyClient(server.url, { timeoutMs: 50 });
      assert.equal(await short.get("/slow/200", { timeoutMs: 0 }), "late", "a call's 0 wins over the client's");
    });

    test("the timeout covers reading the body", async () => {
      const client = new PoolSwitchProxyClient(server.url, { timeoutMs: 200 });
      await assert.rejects(client.get("/stall-body"), ProxyTimeoutError);
    });
  });

  describe("abort", () => {
    test("the caller's signal aborts a call in flight: ProxyTimeoutError with aborted", async () => {
      const client = new PoolSwitchProxyClient(server.url);
      const controller = new AbortController();
      const reason = new Error("user left");
      setTimeout(() => controller.abort(reason), 50);
      const error = await client.get("/slow/5000", { signal: controller.signal }).catch((e) => e);
      assert.ok(error instanceof ProxyTimeoutError, String(error));
      assert.equal(error.aborted, true);
      assert.equal(error.timeoutMs, null);
      assert.equal(error.cause, reason);
      assert.equal(getEventListeners(controller.signal, "abort").length, 0);
    });

    test("an already aborted signal fails at once, without a request", async () => {
      let calls = 0;
      const client = new PoolSwitchProxyClient(server.url, {
        fetch: (url, init) => {
          calls += 1;
          return fetch(url, init);
        },
      });
      const error = await client.post("/x", { json: {}, signal: AbortSignal.abort() }).catch((e) => e);
      assert.ok(error instanceof ProxyTimeoutError);
      assert.equal(error.aborted, true);
      assert.ok(calls <= 1);
    });

    test("abort interrupts the wait before a no_available_keys retry", async () => {
      const client = new PoolSwitchProxyClient(server.url, {
        fetch: async () =>
          new Response('{"error":{"code":"no_available_keys","retry_after":5}}', {
            status: 503,
            headers: { "x-poolswitch-error": "no_available_keys", "retry-after": "5" },
          }),
      });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      const started = Date.now();
      const error = await client.get("/x", { signal: controller.signal }).catch((e) => e);
      assert.ok(error instanceof ProxyTimeoutError);
      assert.equal(error.aborted, true);
      assert.ok(Date.now() - started < 2_000);
    });

    test("AbortSignal.timeout as the caller's signal", async () => {
      const client = new PoolSwitchProxyClient(server.url);
      const error = await client.get("/slow/5000", { signal: AbortSignal.timeout(50) }).catch((e) => e);
      assert.ok(error instanceof ProxyTimeoutError);
      assert.equal(error.aborted, true);
      assert.equal(error.cause.name, "TimeoutError");
    });
  });

  describe("cleanup", () => {
    test("no timer and no abort listener outlive a call, whatever its end", async () => {
      const signal = new AbortController().signal;
      // Short timeouts: a leaked timer would only hold the process for a few seconds.
      const ok = new PoolSwitchProxyClient("http://proxy.invalid", {
        timeoutMs: 5_000,
        fetch: async () => new Response("{}", { headers: { "content-type": "application/json" } }),
      });
      const proxyError = new PoolSwitchProxyClient("http://proxy.invalid", {
        timeoutMs: 5_000,
        fetch: async () => new Response("{}", { status: 502, headers: { "x-poolswitch-error": "upstream_unreachable" } }),
      });
      const broken = new PoolSwitchProxyClient("http://proxy.invalid", {
        timeoutMs: 5_000,
        maxRetries: 0,
        fetch: async () => {
          throw new TypeError("fetch failed");
        },
      });
      const hanging = new PoolSwitchProxyClient("http://proxy.invalid", { timeoutMs: 30, fetch: hangingFetch });

      await sleep(10);
      const before = timers();
      await ok.get("/x", { signal });
      await ok.send("GET", "/x", { signal });
      await assert.rejects(proxyError.get("/x", { signal }), ProxyError);
      await assert.rejects(broken.get("/x", { signal }), ProxyConnectionError);
      await assert.rejects(hanging.get("/x", { signal }), ProxyTimeoutError);
      const aborting = new AbortController();
      const pending = hanging.get("/x", { signal: aborting.signal, timeoutMs: 5_000 });
      aborting.abort();
      await assert.rejects(pending, ProxyTimeoutError);
      assert.equal(timers(), before, "every timer was cleared");
      assert.equal(getEventListeners(signal, "abort").length, 0, "every listener was removed");
      assert.equal(getEventListeners(aborting.signal, "abort").length, 0);
    });

    test("a stream leaves no timer or listener behind, read to the end or left early", async () => {
      const signal = new AbortController().signal;
      const body = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
      const client = new PoolSwitchProxyClient("http://proxy.invalid", {
        timeoutMs: 5_000,
        fetch: async () => new Response(body, { headers: { "content-type": "text/event-stream" } }),
      });
      await sleep(10);
      const before = timers();
      const all = [];
      for await (const event of client.stream("GET", "/s", { signal })) {
        all.push(event.data);
      }
      assert.deepEqual(all, ["1", "2", "3"]);
      for await (const event of client.stream("GET", "/s", { signal })) {
        assert.equal(event.data, "1");
        break;
      }
      const unread = client.stream("GET", "/s", { signal });
      await unread.open();
      await unread.close();
      assert.equal(timers(), before);
      assert.equal(getEventListeners(signal, "abort").length, 0);
    });
  });
});
