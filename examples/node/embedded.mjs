// The embedded client: the key pool inside this process, no proxy. Runs offline: a tiny fake
// OpenAI-style upstream starts below, where key k1 has run out of quota and k2 is healthy, so the
// first call fails over from k1 to k2, and k1 stays parked for the rest of the run.
//   node embedded.mjs        (UPSTREAM_URL=https://api.openai.com with real keys in
//                             OPENAI_KEY_1 / OPENAI_KEY_2 to use the real API instead)
import http from "node:http";

import { PoolSwitchClient } from "poolswitch-node";

let fake = null;
let upstreamBaseUrl = process.env.UPSTREAM_URL;
if (!upstreamBaseUrl) {
  process.env.OPENAI_KEY_1 ??= "sk-fake-exhausted-key";
  process.env.OPENAI_KEY_2 ??= "sk-fake-healthy-key";
  fake = await fakeUpstream({ [process.env.OPENAI_KEY_1]: "exhausted", [process.env.OPENAI_KEY_2]: "healthy" });
  upstreamBaseUrl = fake.url;
}

const client = new PoolSwitchClient({
  upstreamBaseUrl,
  keys: [{ id: "k1", value: process.env.OPENAI_KEY_1 }, { id: "k2", value: process.env.OPENAI_KEY_2 }],
  strategy: "quota_failover", // round_robin | least_used | random | quota_failover
  retryAttempts: 3,
  cooldownSeconds: 3600,
});

try {
  const messages = [{ role: "user", content: "hello" }];
  const response = await client.send("POST", "/v1/chat/completions", { json: { model: "gpt-4o-mini", messages } });
  const result = response.json();
  console.log(`answer: ${result.choices[0].message.content} (key ${response.keyId}, attempts ${response.attempts})`);

  let text = "";
  const stream = client.stream("/v1/chat/completions", { json: { model: "gpt-4o-mini", messages, stream: true } });
  for await (const event of stream) {
    if (event.data === "[DONE]") break;
    text += event.json().choices[0].delta.content ?? "";
  }
  console.log(`stream: ${text} (key ${stream.keyId}, attempts ${stream.attempts})`);

  const keys = client.status().keys; // the same per-key document as the proxy's /status
  console.log(`status: ${keys.map((k) => `${k.id} ${k.state}${k.reason ? ` (${k.reason})` : ""}`).join(", ")}`);
} finally {
  await fake?.close();
}

/** An OpenAI-style upstream on 127.0.0.1: "exhausted" keys answer 429 insufficient_quota. */
async function fakeUpstream(keys) {
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const kind = keys[(req.headers.authorization ?? "").replace(/^Bearer /, "")];
      if (kind !== "healthy") {
        const error = kind === "exhausted"
          ? { message: "You exceeded your current quota.", type: "insufficient_quota", code: "insufficient_quota" }
          : { message: "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key" };
        res.writeHead(kind === "exhausted" ? 429 : 401, { "content-type": "application/json" });
        res.end(JSON.stringify({ error }));
        return;
      }
      if (JSON.parse(body || "{}").stream) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        for (const piece of ["Hello", " world"]) {
          res.write(`data: ${JSON.stringify({ choices: [{ delta: { content: piece } }] })}\n\n`);
        }
        res.end("data: [DONE]\n\n");
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "chat.completion", choices: [{ message: { role: "assistant", content: "Hello from the healthy key" } }] }));
    });
  });
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((done) => { server.closeAllConnections?.(); server.close(done); }),
  };
}
