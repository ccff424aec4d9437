// One call through an official Node SDK, with its default retry settings, against PoolSwitch.
// Usage: node call.mjs <openai|anthropic> <proxy url>
// Prints one JSON line: {"sdk", "version", "outcome": "success" | <error class>, "status", "elapsed"}.
// A 30 s request timeout is the only non-default option (a safety net; retries untouched).
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const version = (name) =>
  JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, import.meta.url))).version;
const [sdk, url] = process.argv.slice(2);
// any value without callers (the proxy replaces it with a pool key); a caller token with them
const apiKey = process.env.OFFICIAL_API_KEY || "sk-caller-placeholder";
const timeout = 30_000;

const calls = {
  openai: {
    version: version("openai"),
    run: () =>
      new OpenAI({ baseURL: `${url}/v1`, apiKey, timeout }).chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
      }),
  },
  anthropic: {
    version: version("@anthropic-ai/sdk"),
    run: () =>
      new Anthropic({ baseURL: url, apiKey, timeout }).messages.create({
        model: "claude-sonnet-4-5",
        max_tokens: 16,
        messages: [{ role: "user", content: "hi" }],
      }),
  },
};

const chosen = calls[sdk];
if (!chosen || !url) {
  console.error("usage: node call.mjs <openai|anthropic> <proxy url>");
  process.exit(2);
}
const started = performance.now();
let outcome = "success";
let status = 200;
try {
  await chosen.run();
} catch (err) {
  outcome = err?.constructor?.name ?? String(err);
  status = typeof err?.status === "number" ? err.status : null;
}
const elapsed = (performance.now() - started) / 1000;
console.log(JSON.stringify({ sdk, version: chosen.version, outcome, status, elapsed }));
