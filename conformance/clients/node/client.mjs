// The conformance client for the Node SDK (poolswitch-node): every call through its methods.
//
// Reads one JSON request per line on stdin, answers one JSON line per request on stdout
// (conformance/README.md, "The client protocol"). Uses only the SDK (built: sdk-node/dist),
// JSON and stdio. The request's `client` options pick the SDK client (one per option set).
// A line with `embedded` is for the embedded client (`--sdk embedded-node`): the same calls go
// through `PoolSwitchClient`, built once per case from the line's pool settings (snake_case,
// as the proxy's config spells them, turned into its camelCase options).
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

import {
  PoolSwitchClient,
  PoolSwitchProxyClient,
  ProxyConnectionError,
  ProxyError,
  ProxyTimeoutError,
  UpstreamError,
} from "../../../sdk-node/dist/esm/index.js";

const clients = new Map();

const camel = (name) => name.replace(/_([a-z])/g, (_, letter) => letter.toUpperCase());

// An `on_status` rule of the config (`action: "cooldown 30"`) as the embedded option.
function rule({ action, ...rest }) {
  const [name, seconds] = action.trim().split(/\s+/);
  return seconds === undefined ? { ...rest, action: name } : { ...rest, action: name, seconds: Number(seconds) };
}

// The embedded client of a case: built on its first line, kept for the rest of the case.
let embedded = { id: null, client: null };
function embeddedFor({ id, settings }) {
  if (embedded.id !== id) {
    const options = {};
    for (const [name, value] of Object.entries(settings)) {
      options[camel(name)] = name === "on_status" ? value.map(rule) : value;
    }
    embedded = { id, client: new PoolSwitchClient(options) };
  }
  return embedded.client;
}

// The SDK client for this request: `client.max_retries` (default 0: the proxy alone answers),
// `client.timeout` (seconds; default the request's `timeout`), `client.pool`, `client.token`.
function clientFor(request) {
  if (request.embedded !== undefined) return embeddedFor(request.embedded);
  const { max_retries = 0, timeout, pool, token = request.token } = request.client ?? {};
  const options = { maxRetries: max_retries, timeoutMs: (timeout ?? request.timeout) * 1000 };
  if (pool !== undefined) options.pool = pool;
  if (token) options.token = token;
  const id = JSON.stringify([request.proxy_url, options]);
  if (!clients.has(id)) clients.set(id, new PoolSwitchProxyClient(request.proxy_url, options));
  return clients.get(id);
}

function headersOf(headers) {
  const out = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

// An SDK error as the result: a rejected answer keeps its status, headers and body (raw bytes
// when the SDK kept the whole answer), with the error as `{code, status, retry_after}`.
function failure(error) {
  const fail = (code, status = null, retry_after = null) => ({ code, status, retry_after });
  if (error instanceof ProxyError || error instanceof UpstreamError) {
    const { status, headers, response } = error;
    const proxy = error instanceof ProxyError;
    const problem = proxy ? fail(error.code, status, error.retryAfter) : fail(null, status);
    const parsed = typeof error.body === "string" ? { text: error.body } : { json: error.body };
    const body = response ? { body_b64: Buffer.from(response.bytes()).toString("base64") } : proxy ? {} : parsed;
    return { status, headers: headersOf(headers), ...body, error: problem };
  }
  const none = { status: null, headers: {} };
  if (error instanceof ProxyTimeoutError) return { ...none, error: fail("timeout") };
  if (error instanceof ProxyConnectionError) return { ...none, error: fail("connection") };
  throw error; // anything else is a harness error
}

async function call(request) {
  const client = clientFor(request);
  const options = { headers: request.headers ?? {} };
  if (request.embedded !== undefined) options.timeoutMs = (request.client?.timeout ?? request.timeout) * 1000;
  const { json, text, body_b64: raw } = request;
  if (json !== undefined) options.json = json;
  else if (text !== undefined) options.body = text;
  else if (raw !== undefined) options.body = new Uint8Array(Buffer.from(raw, "base64"));
  const started = performance.now();
  const events = [];
  let opened;
  try {
    switch (request.call) {
      case "health":
      case "status":
        return { status: 200, headers: {}, json: await client[request.call](), error: null };
      case "metrics":
        return { status: 200, headers: {}, text: await client.metrics(), error: null };
      case "request": {
        const response = await client.send(request.method, request.path, options);
        const body_b64 = Buffer.from(response.bytes()).toString("base64"); // the runner reads it
        return { status: response.status, headers: headersOf(response.headers), body_b64, error: null };
      }
      default: {
        const stream = client.stream(request.method, request.path, options);
        opened = await stream.open();
        for await (const event of stream) {
          const at = (performance.now() - started) / 1000;
          events.push({ event: event.event, data: event.data, id: event.id, at });
        }
        return { status: opened.status, headers: headersOf(opened.headers), events, error: null };
      }
    }
  } catch (error) {
    const result = failure(error);
    if (request.call !== "stream") return result;
    if (opened === undefined) return { ...result, events };
    return { status: opened.status, headers: headersOf(opened.headers), events, error: result.error };
  }
}

export async function run(stdin, stdout, stderr) {
  const lines = createInterface({ input: stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === "") continue;
    let id = null;
    let answer;
    try {
      const request = JSON.parse(line);
      id = request.id;
      answer = { id, result: await call(request) };
    } catch (error) {
      stderr.write(`node client: ${error?.stack ?? error}\n`);
      answer = { id, harness_error: `${error?.name}: ${error?.message}` };
    }
    stdout.write(`${JSON.stringify(answer)}\n`);
  }
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await run(process.stdin, process.stdout, process.stderr);
}
