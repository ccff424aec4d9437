// The seed call, as an ES module: one chat completion through the proxy, printed as JSON.
//   node chat.mjs            (POOLSWITCH_URL defaults to http://127.0.0.1:8080)
import { PoolSwitchProxyClient, ProxyError, UpstreamError } from "poolswitch-node";

const client = new PoolSwitchProxyClient(process.env.POOLSWITCH_URL ?? "http://127.0.0.1:8080");

try {
  const result = await client.post("/v1/chat/completions", {
    json: { model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }] },
  });
  console.log(JSON.stringify(result, null, 2));
} catch (error) {
  if (error instanceof ProxyError) {
    // The proxy's own answer, e.g. no_available_keys: every key is cooling down.
    console.error(`proxy: ${error.code} (${error.status}), retry after ${error.retryAfter ?? "?"} s`);
  } else if (error instanceof UpstreamError) {
    // The upstream's answer, relayed: say a 429 from the last key tried.
    console.error(`upstream: ${error.status} from key ${error.keyId} after ${error.attempts} attempt(s)`);
  } else {
    console.error(String(error)); // ProxyConnectionError, ProxyTimeoutError
  }
  process.exitCode = 1;
}
