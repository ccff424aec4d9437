// CommonJS smoke test of the embedded client: `require("poolswitch-node").PoolSwitchClient`
// fails over from a quota-exhausted key to a healthy one against a local upstream.
const assert = require("node:assert/strict");
const http = require("node:http");
const { after, before, describe, test } = require("node:test");

const { PoolSwitchClient, ProxyError, PoolSwitchError } = require("poolswitch-node");

let server;
let url;

describe("CommonJS require of PoolSwitchClient", () => {
  before(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        if (req.headers.authorization === "Bearer sk-cjs-exhausted") {
          res.writeHead(429, { "content-type": "application/json" });
          res.end('{"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"quota"}}');
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
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

  test("the CommonJS build has the embedded client", () => {
    assert.equal(typeof PoolSwitchClient, "function");
    assert.ok(require.resolve("poolswitch-node").endsWith("cjs/index.js"));
  });

  test("it fails over from CommonJS, and throws the CommonJS error classes", async () => {
    const client = new PoolSwitchClient({
      upstreamBaseUrl: url,
      keys: [{ id: "k1", value: "sk-cjs-exhausted" }, { id: "k2", value: "sk-cjs-healthy" }],
      strategy: "quota_failover",
    });
    const response = await client.send("POST", "/v1/chat/completions", { json: { model: "m" } });
    assert.deepEqual([response.keyId, response.attempts], ["k2", 2]);
    assert.equal(response.json().choices[0].message.content, "hi");
    client.disable("k2");
    const error = await client.get("/v1/models").catch((e) => e);
    assert.ok(error instanceof ProxyError && error instanceof PoolSwitchError);
    assert.equal(error.code, "no_available_keys");
  });
});
