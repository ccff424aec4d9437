// The seed call, as CommonJS: one chat completion through the proxy, printed as JSON, with the
// key that served it.
//   node chat.cjs            (POOLSWITCH_URL defaults to http://127.0.0.1:8080)
const { PoolSwitchProxyClient, PoolSwitchError } = require("poolswitch-node");

async function main() {
  const client = new PoolSwitchProxyClient(process.env.POOLSWITCH_URL ?? "http://127.0.0.1:8080", {
    timeoutMs: 30_000,
  });
  const response = await client.send("POST", "/v1/chat/completions", {
    json: { model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }] },
  });
  console.log(`status ${response.status}, key ${response.keyId}, attempts ${response.attempts}`);
  console.log(JSON.stringify(response.json(), null, 2));
}

main().catch((error) => {
  console.error(error instanceof PoolSwitchError ? `${error.name}: ${error.message}` : error);
  process.exitCode = 1;
});
