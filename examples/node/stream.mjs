// A streamed chat completion: print each piece of the answer as its server-sent event arrives.
//   node stream.mjs          (POOLSWITCH_URL defaults to http://127.0.0.1:8080)
import { PoolSwitchProxyClient } from "poolswitch-node";

const client = new PoolSwitchProxyClient(process.env.POOLSWITCH_URL ?? "http://127.0.0.1:8080");
const controller = new AbortController();
process.once("SIGINT", () => controller.abort()); // Ctrl-C ends the stream cleanly

const stream = client.stream("POST", "/v1/chat/completions", {
  json: { model: "gpt-4o-mini", stream: true, messages: [{ role: "user", content: "hello" }] },
  signal: controller.signal,
  timeoutMs: 60_000, // the longest silence allowed between two pieces
});

for await (const event of stream) {
  if (event.data === "[DONE]") {
    break;
  }
  const chunk = event.json();
  process.stdout.write(chunk.choices?.[0]?.delta?.content ?? "");
}
process.stdout.write(`\n(key ${stream.keyId}, attempts ${stream.attempts})\n`);
