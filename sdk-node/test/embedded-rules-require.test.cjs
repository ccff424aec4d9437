// CommonJS smoke test of the embedded rules: the CJS build of the classifier loads with
// require, carries the provider data inside it, and classifies.
const assert = require("node:assert/strict");
const path = require("node:path");
const { test } = require("node:test");

const dist = path.join(__dirname, "..", "dist", "cjs", "embedded");
const { createClassifier, detectProvider, PROFILES } = require(path.join(dist, "classifier.js"));
const { PROVIDERS_DOCUMENT } = require(path.join(dist, "profiles.js"));

test("require() of the CJS classifier", () => {
  assert.deepEqual(PROFILES, ["openai", "anthropic", "gemini", "generic"]);
  assert.equal(typeof PROVIDERS_DOCUMENT, "object");
  assert.equal(detectProvider("https://api.anthropic.com"), "anthropic");
  const classifier = createClassifier({ provider: "auto", upstreamBaseUrl: "https://api.openai.com/v1", cooldownSeconds: 3600 });
  const body = new TextEncoder().encode('{"error":{"code":"rate_limit_exceeded","type":"requests"}}');
  const headers = new Headers({ "x-ratelimit-reset-requests": "6m0s", "x-ratelimit-reset-tokens": "1s" });
  const verdict = classifier.classify(429, headers, body, 0);
  assert.equal(verdict.outcome, "rate_limited");
  assert.equal(verdict.cooldown, 360);
  assert.equal(verdict.source, "x-ratelimit-reset-requests");
});
