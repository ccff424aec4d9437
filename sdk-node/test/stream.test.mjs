// client.stream(): events as they arrive, errors before the stream, idle timeout, abort, close.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  PoolSwitchError,
  PoolSwitchProxyClient,
  PoolSwitchStream,
  ProxyConnectionError,
  ProxyError,
  ProxyTimeoutError,
  UpstreamError,
} from "poolswitch-node";

import { localServer, sleep, within } from "./support/harness.mjs";

const SSE = { "content-type": "text/event-stream", "x-poolswitch-key-id": "b", "x-poolswitch-attempts": "2" };

let server;
let routes; // path -> handler(req, res)

describe("streaming", () => {
  before(async () => {
    routes = {};
    server = await localServer((req, res) => {
      req.resume();
      const handler = routes[req.url.split("?")[0]];
      if (handler) {
        handler(req, res);
      } else {
        res.writeHead(404).end();
      }
    });
  });

  after(async () => {
    await server?.close();
  });

  function deferred() {
    let resolve;
    const promise = new Promise((done) => {
      resolve = done;
    });
    return { promise, resolve };
  }

  describe("stream()", () => {
    test("yields each event as it arrives: the server waits for the client to see event 1", async () => {
      const clientSawFirst = deferred();
      routes["/lockstep"] = async (req, res) => {
        res.writeHead(200, SSE);
        res.write("data: first\n\n");
        await within(5_000, "client saw the first event", clientSawFirst.promise);
        res.end("data: second\n\n");
      };
      const client = new PoolSwitchProxyClient(server.url);
      const stream = client.stream("POST", "/lockstep", { json: { stream: true } });
      assert.ok(stream instanceof PoolSwitchStream);
      const seen = [];
      await within(
        10_000,
        "lockstep stream",
        (async () => {
          for await (const event of stream) {
            seen.push(event.data);
            clientSawFirst.resolve();
          }
        })(),
      );
      assert.deepEqual(seen, ["first", "second"]);
      assert.equal(stream.keyId, "b");
      assert.equal(stream.attempts, 2);
      assert.equal(stream.info.status, 200);
    });

    test("sends accept: text/event-stream and the JSON body; open() gives the headers first", async () => {
      let request;
      routes["/echo"] = (req, res) => {
        const chunks = [];
        req.on("data", (c) => chunks.push(c));
        req.on("end", () => {
          request = { accept: req.headers.accept, body: Buffer.concat(chunks).toString(), method: req.method };
          res.writeHead(200, SSE);
          res.end("event: done\ndata: {\"n\":1}\nid: 9\n\n");
        });
      };
      const client = new PoolSwitchProxyClient(server.url);
      const stream = client.stream("post", "/echo", { json: { stream: true } });
      assert.equal(stream.info, undefined);
      const info = await stream.open();
      assert.equal(info.keyId, "b");
      assert.equal(info.headers.get("content-type"), "text/event-stream");
      const events = [];
      for await (const event of stream) {
        events.push(event);
      }
      assert.deepEqual(request, { accept: "text/event-stream", body: '{"stream":true}', method: "POST" });
      assert.equal(events.length, 1);
      assert.equal(events[0].event, "done");
      assert.equal(events[0].id, "9");
      assert.deepEqual(events[0].json(), { n: 1 });
    });

    test("UTF-8 characters split across network pieces are decoded whole", async () => {
      const bytes = Buffer.from("data: héllo 🎉 wörld\r\n\r\n");
      routes["/utf8"] = async (req, res) => {
        res.writeHead(200, SSE);
        for (const piece of [bytes.subarray(0, 8), bytes.subarray(8, 15), bytes.subarray(15)]) {
          res.write(piece);
          await sleep(20);
        }
        res.end();
      };
      const client = new PoolSwitchProxyClient(server.url);
      const data = [];
      for await (const event of client.stream("GET", "/utf8")) {
        data.push(event.data);
      }
      assert.deepEqual(data, ["héllo 🎉 wörld"]);
    });

    test("a non-2xx answer throws its mapped error from the first step", async () => {
      routes["/no-keys"] = (req, res) => {
        res.writeHead(503, { "content-type": "application/json", "x-poolswitch-error": "no_available_keys", "retry-after": "30" });
        res.end('{"error":{"type":"poolswitch_error","code":"no_available_keys","message":"parked","retry_after":30}}');
      };
      routes["/bad"] = (req, res) => {
        res.writeHead(400, { "content-type": "application/json", "x-poolswitch-key-id": "a", "x-poolswitch-attempts": "1" });
        res.end('{"error":{"message":"bad"}}');
      };
      const client = new PoolSwitchProxyClient(server.url, { maxRetries: 0 });
      await assert.rejects(
        async () => {
          for await (const event of client.stream("POST", "/no-keys")) {
            assert.fail(`unexpected ${event.data}`);
          }
        },
        (error) => error instanceof ProxyError && error.code === "no_available_keys" && error.retryAfter === 30,
      );
      await assert.rejects(client.stream("POST", "/bad").open(), (error) => error instanceof UpstreamError && error.keyId === "a");
    });

    test("a 2xx answer that is not an event stream is refused", async () => {
      routes["/json"] = (req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
      };
      const client = new PoolSwitchProxyClient(server.url);
      await assert.rejects(client.stream("GET", "/json").open(), (error) => {
        assert.ok(error instanceof PoolSwitchError);
        assert.match(error.message, /application\/json, not an event stream/);
        return true;
      });
    });

    test("timeoutMs bounds each silence, not the whole stream", async () => {
      routes["/steady"] = async (req, res) => {
        res.writeHead(200, SSE);
        for (let i = 0; i < 4; i += 1) {
          res.write(`data: ${i}\n\n`);
          await sleep(120);
        }
        res.end();
      };
      routes["/stall"] = (req, res) => {
        res.writeHead(200, SSE);
        res.write("data: only\n\n");
      };
      const client = new PoolSwitchProxyClient(server.url, { timeoutMs: 400 });
      const steady = [];
      for await (const event of client.stream("GET", "/steady")) {
        steady.push(event.data);
      }
      assert.deepEqual(steady, ["0", "1", "2", "3"]);

      const stalled = [];
      const error = await (async () => {
        for await (const event of client.stream("GET", "/stall", { timeoutMs: 150 })) {
          stalled.push(event.data);
        }
      })().catch((e) => e);
      assert.deepEqual(stalled, ["only"]);
      assert.ok(error instanceof ProxyTimeoutError, String(error));
      assert.equal(error.timeoutMs, 150);
      assert.equal(error.aborted, false);
    });

    test("the consumer's own slowness is not a timeout", async () => {
      routes["/quick"] = (req, res) => {
        res.writeHead(200, SSE);
        res.end("data: 1\n\ndata: 2\n\n");
      };
      const client = new PoolSwitchProxyClient(server.url, { timeoutMs: 100 });
      const seen = [];
      for await (const event of client.stream("GET", "/quick")) {
        seen.push(event.data);
        await sleep(200);
      }
      assert.deepEqual(seen, ["1", "2"]);
    });

    test("the caller's signal aborts a stream mid-way", async () => {
      const closed = deferred();
      routes["/endless"] = (req, res) => {
        res.writeHead(200, SSE);
        const timer = setInterval(() => res.write("data: tick\n\n"), 20);
        res.on("close", () => {
          clearInterval(timer);
          closed.resolve();
        });
      };
      const client = new PoolSwitchProxyClient(server.url);
      const controller = new AbortController();
      let count = 0;
      const error = await (async () => {
        for await (const event of client.stream("GET", "/endless", { signal: controller.signal })) {
          count += 1;
          if (count === 2) {
            controller.abort();
          }
          assert.equal(event.data, "tick");
        }
      })().catch((e) => e);
      assert.ok(error instanceof ProxyTimeoutError, String(error));
      assert.equal(error.aborted, true);
      await within(5_000, "server saw the connection close", closed.promise);
    });

    test("break closes the connection; close() works before, during and after", async () => {
      const closed = deferred();
      routes["/forever"] = (req, res) => {
        res.writeHead(200, SSE);
        const timer = setInterval(() => res.write("data: more\n\n"), 20);
        res.on("close", () => {
          clearInterval(timer);
          closed.resolve();
        });
      };
      const client = new PoolSwitchProxyClient(server.url);
      for await (const event of client.stream("GET", "/forever")) {
        assert.equal(event.data, "more");
        break;
      }
      await within(5_000, "server saw the connection close", closed.promise);

      const never = client.stream("GET", "/forever");
      await never.close();
      await assert.rejects(never.open(), /closed/);

      const during = client.stream("GET", "/forever");
      const got = [];
      for await (const event of during) {
        got.push(event.data);
        if (got.length === 1) {
          await during.close();
        }
      }
      assert.deepEqual(got, ["more"]);
    });

    test("a stream cut by the proxy is a ProxyConnectionError", async () => {
      routes["/cut"] = async (req, res) => {
        res.writeHead(200, SSE);
        res.write("data: partial\n\n");
        await sleep(50);
        res.socket.destroy();
      };
      const client = new PoolSwitchProxyClient(server.url);
      const seen = [];
      const error = await (async () => {
        for await (const event of client.stream("GET", "/cut")) {
          seen.push(event.data);
        }
      })().catch((e) => e);
      assert.deepEqual(seen, ["partial"]);
      assert.ok(error instanceof ProxyConnectionError, String(error));
    });

    test("a stream can be iterated once", async () => {
      routes["/once"] = (req, res) => {
        res.writeHead(200, SSE);
        res.end("data: x\n\n");
      };
      const stream = new PoolSwitchProxyClient(server.url).stream("GET", "/once");
      for await (const event of stream) {
        assert.equal(event.data, "x");
      }
      assert.throws(() => stream[Symbol.asyncIterator](), PoolSwitchError);
    });
  });
});
