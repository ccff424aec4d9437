// Test support: a local HTTP server on port 0, and, for the packed-tarball test only, the shared
// fake upstream and the real proxy (`$POOLSWITCH_PYTHON -m poolswitch start`), all with bounded
// waits and killed at the end. Behaviour across the SDK/proxy boundary is conformance's.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const SDK_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const REPO_ROOT = resolve(SDK_ROOT, "..");
export const PYTHON = process.env.POOLSWITCH_PYTHON || "python3";
export const FAKE_UPSTREAM = ["-m", "poolswitch_testing.fake_upstream"];
export const TEST_KEYS = { "sk-test-a": "a", "sk-test-b": "b" };

const children = new Set();
process.on("exit", () => {
  for (const child of children) {
    child.kill("SIGKILL");
  }
});

/** Resolve `promise`, or reject after `ms` with `what` in the message. */
export async function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function sleep(ms) {
  return new Promise((done) => setTimeout(done, ms));
}

/** A local HTTP server on 127.0.0.1:0; `close()` also destroys open connections. */
export async function localServer(handler) {
  const sockets = new Set();
  const server = http.createServer(handler);
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.listen(0, "127.0.0.1");
  await within(5_000, "local server listen", once(server, "listening"));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    async close() {
      for (const socket of sockets) {
        socket.destroy();
      }
      await within(5_000, "local server close", new Promise((done) => server.close(() => done())));
    },
  };
}

/** A port nothing listens on (just freed). */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await within(5_000, "free port", once(server, "listening"));
  const { port } = server.address();
  await new Promise((done) => server.close(() => done()));
  return port;
}

function track(child, name) {
  children.add(child);
  let output = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (text) => {
    output = (output + text).slice(-8_000);
  });
  child.on("exit", () => children.delete(child));
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) {
        return;
      }
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      try {
        await within(8_000, `${name} exit`, exited);
      } catch {
        child.kill("SIGKILL");
        await within(5_000, `${name} kill`, exited);
      }
    },
  };
}

/** Start the fake upstream (`python -m poolswitch_testing.fake_upstream`); returns its url, a scripting API and `stop()`. */
export async function startFake(keys = TEST_KEYS) {
  const child = spawn(PYTHON, [...FAKE_UPSTREAM, "--keys", JSON.stringify(keys), "--port", "0"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc = track(child, "fake upstream");
  child.stdout.setEncoding("utf8");
  let line = "";
  const url = await within(
    20_000,
    "fake upstream start",
    new Promise((done, fail) => {
      child.stdout.on("data", (text) => {
        line += text;
        if (line.includes("\n")) {
          done(JSON.parse(line.split("\n")[0]).url);
        }
      });
      child.on("exit", (code) => fail(new Error(`fake upstream exited ${code}: ${proc.output()}`)));
      child.on("error", fail);
    }),
  ).catch(async (error) => {
    await proc.stop();
    throw error;
  });
  const control = async (method, path, body) => {
    const response = await fetch(`${url}/__fake/${path}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) {
      throw new Error(`fake ${path}: ${response.status} ${await response.text()}`);
    }
    return response.status === 204 ? null : response.json();
  };
  return {
    url,
    script: (scripts) => control("PUT", "script", scripts),
    attempts: () => control("GET", "attempts"),
    reset: () => control("POST", "reset"),
    stop: proc.stop,
  };
}

/**
 * Start the real proxy with `config` (an object, written as YAML's JSON subset) or a config file;
 * resolves once `GET /health` answers 200.
 */
export async function startProxy({ config, configFile, env = {} }) {
  const dir = mkdtempSync(join(tmpdir(), "poolswitch-node-proxy-"));
  const file = configFile ?? join(dir, "poolswitch.yaml");
  if (configFile === undefined) {
    writeFileSync(file, JSON.stringify({ storage: { backend: "memory" }, ...config }, null, 2));
  }
  let lastError;
  for (let tryNumber = 0; tryNumber < 3; tryNumber += 1) {
    const port = await freePort();
    const child = spawn(
      PYTHON,
      ["-m", "poolswitch", "start", "--config", file, "--port", String(port), "--log-level", "warning"],
      { stdio: ["ignore", "ignore", "pipe"], env: childEnv(env) },
    );
    const proc = track(child, "proxy");
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitHealthy(url, child, proc);
      return {
        url,
        port,
        output: proc.output,
        async stop() {
          await proc.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      lastError = error;
      await proc.stop();
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

/** process.env plus `extra`; an `undefined` value removes the variable. */
function childEnv(extra) {
  const env = { ...process.env, ...extra };
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) {
      delete env[name];
    }
  }
  return env;
}

async function waitHealthy(url, child, proc) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`proxy exited ${child.exitCode}: ${proc.output()}`);
    }
    try {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      if (response.status === 200) {
        return;
      }
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`proxy at ${url} not healthy within 20 s: ${proc.output()}`);
}
