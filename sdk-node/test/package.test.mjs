// The packed tarball, installed into an empty folder: what it ships, the seed call with require
// and with import, `tsc --noEmit` of a consumer (node16 resolution, both module systems), and the
// examples in examples/node against the proxy running poolswitch.example.yaml.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

import { REPO_ROOT, SDK_ROOT, startFake, startProxy } from "./support/harness.mjs";

const run = promisify(execFile);
const TSC = join(SDK_ROOT, "node_modules", "typescript", "bin", "tsc");
const EXAMPLES = join(REPO_ROOT, "examples", "node");
const EXAMPLE_KEYS = { "sk-example-primary": "primary", "sk-example-backup": "backup" };

/** The seed snippet of the issue, verbatim. */
const SEED_REQUIRE = `const { PoolSwitchProxyClient } = require("poolswitch-node");
const client = new PoolSwitchProxyClient("http://127.0.0.1:8080");
const result = await client.post("/v1/chat/completions", { json: { model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }] } });`;
/** Its ES module twin. */
const SEED_IMPORT = SEED_REQUIRE.replace(
  'const { PoolSwitchProxyClient } = require("poolswitch-node");',
  'import { PoolSwitchProxyClient } from "poolswitch-node";',
);

/** npm_* variables a child may keep: where npm caches and reads its settings. */
const KEEP = new Set(["npm_config_cache", "npm_config_userconfig", "npm_config_globalconfig"]);

/** The environment for child processes, without the npm_* variables `npm test` sets (a child
 * npm would otherwise act on this package rather than on the temporary folder). */
function cleanEnv(extra = {}) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => (!/^npm_/i.test(name) || KEEP.has(name.toLowerCase())) && name !== "INIT_CWD",
    ),
  );
  return { ...env, ...extra };
}

async function node(cwd, args, env = {}) {
  return run(process.execPath, args, { cwd, env: cleanEnv(env), timeout: 30_000 });
}

let work;
let consumer;
let packed;
let fake;
let proxy;

describe("package", () => {
  before(async () => {
    assert.ok(existsSync(join(SDK_ROOT, "dist", "esm", "index.js")), "run `npm run build` first");
    work = mkdtempSync(join(tmpdir(), "poolswitch-node-pack-"));
    consumer = join(work, "consumer");
    mkdirSync(consumer);
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const flags = ["--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"];
    const [{ stdout }, started] = await Promise.all([
      run(npm, ["pack", "--json", "--pack-destination", work, ...flags], {
        cwd: SDK_ROOT,
        env: cleanEnv(),
        timeout: 60_000,
      }),
      (async () => {
        fake = await startFake(EXAMPLE_KEYS);
        // The example config as shipped; the environment points it at the fake upstream.
        return startProxy({
          configFile: join(REPO_ROOT, "poolswitch.example.yaml"),
          env: { POOLSWITCH_UPSTREAM_BASE_URL: fake.url, OPENAI_API_KEY_1: undefined },
        });
      })(),
    ]);
    proxy = started;
    packed = JSON.parse(stdout)[0];
    writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true }));
    // Zero dependencies: installing the tarball needs no network.
    await run(npm, ["install", "--offline", "--no-package-lock", ...flags, join(work, packed.filename)], {
      cwd: consumer,
      env: cleanEnv(),
      timeout: 60_000,
    });
  });

  after(async () => {
    await fake?.stop();
    await proxy?.stop();
    if (work) {
      rmSync(work, { recursive: true, force: true });
    }
  });

  describe("the packed tarball", { timeout: 120_000 }, () => {
    test("ships only the build, the README and package.json", () => {
      const files = packed.files.map((file) => file.path).sort();
      for (const required of [
        "README.md",
        "package.json",
        "dist/esm/index.js",
        "dist/esm/index.d.ts",
        "dist/esm/package.json",
        "dist/cjs/index.js",
        "dist/cjs/index.d.ts",
        "dist/cjs/package.json",
      ]) {
        assert.ok(files.includes(required), `${required} is shipped`);
      }
      const stray = files.filter((file) => !(file.startsWith("dist/") || ["README.md", "package.json", "LICENSE"].includes(file)));
      assert.deepEqual(stray, []);
      const installed = readdirSync(join(consumer, "node_modules", "poolswitch-node")).sort();
      assert.deepEqual(installed, ["README.md", "dist", "package.json"]);
      assert.equal(existsSync(join(consumer, "node_modules", ".bin")), false, "no dependencies came along");
    });

    test("the seed snippet runs with require (CommonJS)", async () => {
      // CommonJS has no top-level await: the snippet goes, line for line, inside an async function.
      const script = `(async () => {\n${SEED_REQUIRE.replace("http://127.0.0.1:8080", proxy.url)}\nconsole.log(JSON.stringify(result));\n})().catch((error) => { console.error(error); process.exit(1); });\n`;
      writeFileSync(join(consumer, "seed.cjs"), script);
      const { stdout } = await node(consumer, ["seed.cjs"]);
      const result = JSON.parse(stdout);
      assert.equal(result.object, "chat.completion");
    });

    test("its ES module twin runs with import", async () => {
      writeFileSync(
        join(consumer, "seed.mjs"),
        `${SEED_IMPORT.replace("http://127.0.0.1:8080", proxy.url)}\nconsole.log(JSON.stringify(result));\n`,
      );
      const { stdout } = await node(consumer, ["seed.mjs"]);
      assert.equal(JSON.parse(stdout).object, "chat.completion");
    });

    test("tsc --noEmit passes on a consumer using the types, with import and with require", async () => {
      writeFileSync(
        join(consumer, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            lib: ["ES2022"],
            module: "node16",
            moduleResolution: "node16",
            strict: true,
            noEmit: true,
            types: ["node"],
            typeRoots: [join(SDK_ROOT, "node_modules", "@types")],
          },
          files: ["consumer.mts", "consumer.cts"],
        }),
      );
      writeFileSync(join(consumer, "consumer.mts"), consumerSource("esm"));
      writeFileSync(join(consumer, "consumer.cts"), consumerSource("cjs"));
      const result = await node(consumer, [TSC, "-p", "tsconfig.json", "--explainFiles"]).catch((error) => error);
      assert.equal(result.code ?? 0, 0, `tsc failed:\n${result.stdout}${result.stderr}`);
      const explained = result.stdout.replaceAll("\\", "/");
      assert.match(explained, /node_modules\/poolswitch-node\/dist\/esm\/index\.d\.ts/);
      assert.match(explained, /node_modules\/poolswitch-node\/dist\/cjs\/index\.d\.ts/);
    });

    test("examples/node run against the example config", async () => {
      for (const file of readdirSync(EXAMPLES).filter((name) => /\.(mjs|cjs)$/.test(name))) {
        copyFileSync(join(EXAMPLES, file), join(consumer, file));
      }
      const env = { POOLSWITCH_URL: proxy.url };
      const chat = await node(consumer, ["chat.mjs"], env);
      assert.equal(JSON.parse(chat.stdout).object, "chat.completion");
      const cjs = await node(consumer, ["chat.cjs"], env);
      assert.match(cjs.stdout, /^status 200, key (primary|backup), attempts 1$/m);
      await fake.script({
        primary: [{ kind: "sse", interval: 0.01 }],
        backup: [{ kind: "sse", interval: 0.01 }],
      });
      const stream = await node(consumer, ["stream.mjs"], env);
      assert.match(stream.stdout, /^Hello world\n\(key (primary|backup), attempts 1\)$/m);
    });

    test("examples/node/embedded.mjs fails over offline, from the packed tarball", async () => {
      copyFileSync(join(EXAMPLES, "embedded.mjs"), join(consumer, "embedded.mjs"));
      const { stdout } = await node(consumer, ["embedded.mjs"], { UPSTREAM_URL: "" });
      assert.match(stdout, /^answer: Hello from the healthy key \(key k2, attempts 2\)$/m);
      assert.match(stdout, /^stream: Hello world \(key k2, attempts 1\)$/m);
      assert.match(stdout, /^status: k1 cooling_down \(quota_exhausted\), k2 available$/m);
    });

    test("the embedded snippet runs with require (CommonJS) against a local upstream", async () => {
      const script = `const http = require("node:http");
const { PoolSwitchClient } = require("poolswitch-node");
const server = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    const spent = req.headers.authorization === "Bearer sk-spent";
    res.writeHead(spent ? 429 : 200, { "content-type": "application/json" });
    res.end(spent ? '{"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"quota"}}' : '{"object":"chat.completion"}');
  });
});
server.listen(0, "127.0.0.1", async () => {
  const client = new PoolSwitchClient({
    upstreamBaseUrl: "http://127.0.0.1:" + server.address().port,
    keys: [{ id: "k1", value: "sk-spent" }, { id: "k2", value: "sk-fine" }],
    strategy: "quota_failover", retryAttempts: 3, cooldownSeconds: 3600,
  });
  const result = await client.post("/v1/chat/completions", { json: { model: "gpt-4o-mini", messages: [] } });
  console.log(JSON.stringify({ result, keys: client.status().keys.map((k) => k.state) }));
  server.close();
});
`;
      writeFileSync(join(consumer, "embedded-seed.cjs"), script);
      const { stdout } = await node(consumer, ["embedded-seed.cjs"]);
      assert.deepEqual(JSON.parse(stdout), { result: { object: "chat.completion" }, keys: ["cooling_down", "available"] });
    });
  });
});

/** A TypeScript consumer; `@ts-expect-error` lines prove the types are not `any`. */
function consumerSource(kind) {
  return `import { PoolSwitchClient, PoolSwitchProxyClient, PoolSwitchError, ProxyError, ProxyErrorCode, UpstreamError, ProxyTimeoutError } from "poolswitch-node";
import type { ServerSentEvent, StatusDocument, ClientOptions, PoolSwitchClientOptions, PoolSwitchResponse, HealthDocument } from "poolswitch-node";
${kind === "cjs" ? 'import poolswitch = require("poolswitch-node");\nconst viaRequire: typeof PoolSwitchProxyClient = poolswitch.PoolSwitchProxyClient;\nvoid viaRequire;\n' : ""}
interface Chat { choices: { message: { content: string } }[] }

const options: ClientOptions = { token: "t", pool: "openai", timeoutMs: 5_000, maxRetries: 1, headers: { "x-a": "b" }, random: Math.random };
const client = new PoolSwitchProxyClient("http://127.0.0.1:8080", options);

export async function main(signal: AbortSignal): Promise<string> {
  const chat = await client.post<Chat>("/v1/chat/completions", { json: { model: "m" }, signal, timeoutMs: 1_000 });
  const text: string = chat.choices[0]!.message.content;
  const untyped: unknown = await client.get("/v1/models", { query: { limit: 2 } });
  void untyped;
  const response: PoolSwitchResponse = await client.send("GET", "/v1/models", { pool: null, timeoutMs: 0 });
  const keyId: string | null = response.keyId;
  const attempts: number | null = response.attempts;
  const body = response.json<{ data: unknown[] }>();
  void [keyId, attempts, body.data, response.text(), response.status, response.headers.get("x")];
  const status: StatusDocument = await client.status();
  const health: HealthDocument = await client.health();
  const pool = status.pools[0]!;
  const degraded: boolean = health.status === "degraded" && pool.keys[0]?.state === "cooling_down" && pool.outage?.kind === "upstream";
  const caller = status.callers[0]!;
  const limits: [string[] | null, number | null, number | null, number] = [caller.pools, caller.rpm, caller.max_concurrency, caller.in_flight];
  const perPool: number = health.pools[0]!.keys_available;
  void [limits, perPool, status.keys?.length];
  const metrics: string = await client.metrics();
  void [degraded, metrics];
  for await (const event of client.stream("POST", "/v1/chat/completions", { json: { stream: true } })) {
    const e: ServerSentEvent = event;
    const name: string = e.event;
    const id: string | null = e.id;
    const data = e.json<{ n: number }>();
    void [name, id, data.n];
  }
  try {
    await client.delete("/x");
  } catch (error) {
    if (error instanceof ProxyError) {
      const code: string = error.code;
      const limited: boolean = error.code === ProxyErrorCode.CallerRateLimited || error.code === "no_such_pool";
      void limited;
      const retryAfter: number | null = error.retryAfter;
      void [code, retryAfter, error.status];
    } else if (error instanceof UpstreamError) {
      const upstream: [number, unknown, string | null, number | null] = [error.status, error.body, error.keyId, error.attempts];
      void upstream;
    } else if (error instanceof ProxyTimeoutError) {
      const aborted: boolean = error.aborted;
      void aborted;
    } else if (error instanceof PoolSwitchError) {
      const name: string = error.name;
      void name;
    }
  }
  const embeddedOptions: PoolSwitchClientOptions = { upstreamBaseUrl: "https://api.openai.com", keys: ["sk-1", { id: "k2", value: "sk-2", weight: 2 }], strategy: "quota_failover", authScheme: null, onStatus: [{ status: 429, action: "cooldown", seconds: 5 }] };
  const embedded = new PoolSwitchClient(embeddedOptions);
  const viaPool = await embedded.post<Chat>("/v1/chat/completions", { json: { model: "m" }, signal, timeoutMs: 1_000 });
  const poolStatus: StatusDocument = embedded.status();
  const poolHealth: HealthDocument = embedded.health();
  for await (const event of embedded.stream("/v1/chat/completions", { json: { stream: true } })) {
    const e: ServerSentEvent = event;
    void e;
  }
  void [viaPool.choices, poolStatus.keys, poolHealth.status];
  // @ts-expect-error strategies are a closed set
  new PoolSwitchClient({ upstreamBaseUrl: "https://x", keys: ["k"], strategy: "fastest" });
  // @ts-expect-error timeoutMs is a number
  new PoolSwitchProxyClient("http://x", { timeoutMs: "5" });
  // @ts-expect-error no such option
  await client.get("/x", { jsonBody: {} });
  // @ts-expect-error the status document is typed
  const wrong: number = status.strategy;
  // @ts-expect-error a pool's keys are typed
  const wrongKey: number = status.pools[0]!.keys[0]!.cooldown_source;
  // @ts-expect-error the codes are a closed set of constants
  void ProxyErrorCode.RateLimited;
  void [wrong, wrongKey];
  return text;
}
`;
}
