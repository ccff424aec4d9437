// CommonJS smoke test: `require("poolswitch-node")` loads the CJS build and the seed call works.
const assert = require("node:assert/strict");
const http = require("node:http");
const path = require("node:path");
const { after, before, describe, test } = require("node:test");

const poolswitch = require("poolswitch-node");
const { PoolSwitchProxyClient, PoolSwitchError, ProxyError, UpstreamError } = poolswitch;

let server;
let url;

describe("CommonJS require", () => {
  before(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        if (req.url === "/parked") {
          res.writeHead(503, { "content-type": "application/json", "x-poolswitch-error": "no_available_keys", "retry-after": "9" });
          res.end('{"error":{"type":"poolswitch_error","code":"no_available_keys","message":"parked","retry_after":9}}');
          return;
        }
        res.writeHead(200, { "content-type": "application/json", "x-poolswitch-key-id": "primary", "x-poolswitch-attempts": "1" });
        res.end('{"choices":[{"message":{"content":"hi"}}]}');
      });
    });
    await new Promise((done) => server.listen(0, "127.0.0.1", done));
    url = `http://127.0.0.1:${server.address().port}`;
  });

  after(async () => {
    server.closeAllConnections?.();
    await new Promise((done) => server.close(done));
  });

  test("require resolves to the CommonJS build", () => {
    const resolved = require.resolve("poolswitch-node");
    assert.equal(path.basename(path.dirname(resolved)), "cjs");
    assert.equal(typeof PoolSwitchProxyClient, "function");
    assert.equal(poolswitch.VERSION, require("../package.json").version);
  });

  test("the seed call works from CommonJS", async () => {
    const client = new PoolSwitchProxyClient(url);
    const result = await client.post("/v1/chat/completions", {
      json: { model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }] },
    });
    assert.equal(result.choices[0].message.content, "hi");
  });

  test("errors are the CommonJS classes", async () => {
    const client = new PoolSwitchProxyClient(url, { maxRetries: 0 });
    const error = await client.get("/parked").catch((e) => e);
    assert.ok(error instanceof ProxyError);
    assert.ok(error instanceof PoolSwitchError);
    assert.ok(!(error instanceof UpstreamError));
    assert.equal(error.name, "ProxyError");
    assert.equal(error.retryAfter, 9);
  });

  test("the ESM and CommonJS builds export the same names", async () => {
    const esm = await import("poolswitch-node");
    assert.deepEqual(Object.keys(poolswitch).sort(), Object.keys(esm).filter((k) => k !== "default").sort());
  });
});
