// Micro-benchmark: the embedded PoolSwitchClient's own cost per request, against plain fetch to
// the same local upstream. The upstream runs in a child process (this file with --upstream), so
// its work is not counted on the client's thread. Each round: POST a small JSON body, read and
// parse the JSON answer; wall time and this process's CPU time per request (the CPU figure is
// the steadier one on a shared machine); N sequential requests, then N at concurrency 16, alternating client and
// fetch in repeated rounds (the best round counts). Bounded: starts no new round after 25 s (30-45 s in all here).
//   npm run bench                 (needs `npm run build` first)
//   BENCH_N=2000 npm run bench    (requests per round, default 2000)
import { fork } from "node:child_process";
import http from "node:http";
import { performance } from "node:perf_hooks";

if (process.argv.includes("--upstream")) {
  const body = JSON.stringify({ id: "chatcmpl-1", object: "chat.completion", choices: [{ message: { role: "assistant", content: "hi" } }] });
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body), "x-ratelimit-remaining-requests": "999" });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1", () => process.send({ port: server.address().port }));
  process.on("disconnect", () => process.exit(0));
} else {
  await main();
}

async function main() {
  const { PoolSwitchClient } = await import("../dist/esm/index.js");
  const N = Number(process.env.BENCH_N ?? 2000);
  const CONCURRENCY = 16;
  const ROUNDS = 3;
  const BUDGET_MS = 25_000; // no new round after this; the whole run stays well under 60 s
  const child = fork(new URL(import.meta.url).pathname, ["--upstream"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const { port } = await new Promise((done, fail) => {
    child.once("message", done);
    child.once("exit", (code) => fail(new Error(`upstream exited ${code}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  const payload = { model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }] };
  const client = new PoolSwitchClient({
    upstreamBaseUrl: base,
    keys: [{ id: "k1", value: "sk-bench-one-0000000000" }, { id: "k2", value: "sk-bench-two-0000000000" }],
  });
  const viaClient = () => client.post("/v1/chat/completions", { json: payload });
  const viaFetch = async () => {
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer sk-bench-one-0000000000", "content-type": "application/json" },
      body: JSON.stringify(payload),
    });
    if (!res.ok) throw new Error(`status ${res.status}`);
    return res.json();
  };

  async function run(call, n, concurrency) {
    let next = 0;
    const cpu = process.cpuUsage();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next += 1;
          await call();
        }
      }),
    );
    const wall = ((performance.now() - started) * 1000) / n; // µs per request
    const used = process.cpuUsage(cpu);
    return { wall, cpu: (used.user + used.system) / n }; // this process's CPU µs per request
  }

  const best = (a, b) => ({ wall: Math.min(a.wall, b.wall), cpu: Math.min(a.cpu, b.cpu) });

  const startedAll = performance.now();
  await run(viaFetch, 500, 4); // warm-up: connections, JIT
  await run(viaClient, 500, 4);
  const results = [];
  for (const concurrency of [1, CONCURRENCY]) {
    let bestFetch = { wall: Infinity, cpu: Infinity };
    let bestClient = { wall: Infinity, cpu: Infinity };
    for (let round = 0; round < ROUNDS; round += 1) {
      if (round > 0 && performance.now() - startedAll > BUDGET_MS) break;
      bestFetch = best(bestFetch, await run(viaFetch, N, concurrency));
      bestClient = best(bestClient, await run(viaClient, N, concurrency));
    }
    results.push({ concurrency, bestFetch, bestClient });
  }
  child.disconnect();

  // The client's own cost alone: the same calls over an in-memory fetch (no socket, no noise).
  const answer = JSON.stringify({ id: "chatcmpl-1", object: "chat.completion", choices: [{ message: { role: "assistant", content: "hi" } }] });
  const memoryFetch = async () => new Response(answer, { status: 200, headers: { "content-type": "application/json" } });
  const inMemory = new PoolSwitchClient({ upstreamBaseUrl: base, keys: ["sk-bench-one-0000000000", "sk-bench-two-0000000000"], fetch: memoryFetch });
  const memoryDirect = async () => {
    const res = await memoryFetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer sk-bench-one-0000000000", "content-type": "application/json" },
      body: JSON.stringify(payload),
    });
    return res.json();
  };
  const memoryClient = () => inMemory.post("/v1/chat/completions", { json: payload });
  await run(memoryDirect, 5000, 1);
  await run(memoryClient, 5000, 1);
  let memory = { direct: Infinity, client: Infinity };
  for (let round = 0; round < ROUNDS; round += 1) {
    if (round > 0 && performance.now() - startedAll > BUDGET_MS + 15_000) break;
    memory = {
      direct: Math.min(memory.direct, (await run(memoryDirect, 10_000, 1)).cpu),
      client: Math.min(memory.client, (await run(memoryClient, 10_000, 1)).cpu),
    };
  }
  console.log(`node ${process.version}, ${N} requests per round, best of up to ${ROUNDS} rounds; upstream in a child process`);
  console.log("             wall µs/req (latency, concurrency 1; throughput, 16)   client-process CPU µs/req");
  console.log("concurrency     fetch   client  overhead  ratio                         fetch   client  overhead  ratio");
  const col = (x, w) => x.toFixed(1).padStart(w);
  for (const { concurrency, bestFetch: f, bestClient: c } of results) {
    console.log(
      `${String(concurrency).padStart(11)}  ${col(f.wall, 8)} ${col(c.wall, 8)} ${col(c.wall - f.wall, 9)} ${(c.wall / f.wall).toFixed(3).padStart(6)}` +
        `                      ${col(f.cpu, 8)} ${col(c.cpu, 8)} ${col(c.cpu - f.cpu, 9)} ${(c.cpu / f.cpu).toFixed(3).padStart(6)}`,
    );
  }
  console.log(
    `in-memory fetch (the client's own work alone), CPU µs/req: fetch ${memory.direct.toFixed(1)}, client ${memory.client.toFixed(1)}, overhead ${(memory.client - memory.direct).toFixed(1)}`,
  );
  const status = client.status();
  const served = status.keys.map((k) => `${k.id} ${k.successes}`).join(", ");
  console.log(`keys served: ${served} (round_robin); total ${((performance.now() - startedAll) / 1000).toFixed(1)} s`);
}
