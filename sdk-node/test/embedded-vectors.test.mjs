// The shared classifier vectors (conformance/vectors/classifier.json), every one through the
// embedded client's classifier: the same (provider, status, headers, body, now) must give the
// same verdict as the server's classifier.py. One test per vector, named by it.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { createClassifier, detectProvider } from "../dist/esm/embedded/classifier.js";

const FILE = fileURLToPath(new URL("../../conformance/vectors/classifier.json", import.meta.url));
const DEFAULT_COOLDOWN = 3600;
const TOLERANCE = 1e-6;

function bytes(vector, field) {
  if (vector[`${field}_b64`] !== undefined) {
    return new Uint8Array(Buffer.from(vector[`${field}_b64`], "base64"));
  }
  return new TextEncoder().encode(vector[field] ?? "");
}

// A vector's headers are text as the server reads them; on the wire they are UTF-8, and fetch
// gives each byte as one character (ISO-8859-1).
function wire(text) {
  return Buffer.from(text, "utf8").toString("latin1");
}

function headersOf(vector) {
  const headers = new Headers();
  for (const [name, value] of Object.entries(vector.headers ?? {})) {
    headers.append(wire(name), wire(value));
  }
  return headers;
}

function classifierOf(vector) {
  const config = vector.config ?? {};
  return createClassifier({
    provider: vector.provider,
    upstreamBaseUrl: vector.url ?? "",
    cooldownSeconds: config.cooldown_seconds ?? DEFAULT_COOLDOWN,
    onStatus: (config.on_status ?? []).map((rule) => ({
      status: rule.status,
      action: rule.action,
      match: rule.match ?? null,
      seconds: rule.seconds ?? null,
    })),
  });
}

function same(actual, expected) {
  if (expected === null) {
    assert.equal(actual, null, "expected no verdict (the event is content)");
    return;
  }
  assert.notEqual(actual, null, "expected a verdict, got none");
  const { cooldown, ...rest } = expected;
  const got = {};
  for (const field of Object.keys(rest)) {
    got[field] = actual[field];
  }
  assert.deepEqual(got, rest);
  if (cooldown === null || cooldown === undefined) {
    assert.equal(actual.cooldown, null, "expected no cooldown");
  } else {
    assert.equal(typeof actual.cooldown, "number", `expected a cooldown of ${cooldown}`);
    assert.ok(
      Math.abs(actual.cooldown - cooldown) <= TOLERANCE,
      `cooldown ${actual.cooldown}, expected ${cooldown}`,
    );
  }
}

function run(vector) {
  switch (vector.kind) {
    case "detect":
      assert.deepEqual({ profile: detectProvider(vector.url) }, vector.expect);
      return;
    case "classify":
      same(
        classifierOf(vector).classify(vector.status, headersOf(vector), bytes(vector, "body"), vector.now),
        vector.expect,
      );
      return;
    case "stream_start":
      same(
        classifierOf(vector).classifyStreamStart(bytes(vector, "event"), headersOf(vector), vector.now),
        vector.expect,
      );
      return;
    default:
      assert.fail(`unknown vector kind ${JSON.stringify(vector.kind)}`);
  }
}

if (!existsSync(FILE)) {
  test("the shared classifier vectors", () => {
    assert.fail(`${FILE} is missing: the classifier vectors are conformance/vectors/classifier.json`);
  });
} else {
  const { vectors } = JSON.parse(readFileSync(FILE, "utf8"));
  test("the shared classifier vectors are there", () => {
    assert.ok(Array.isArray(vectors) && vectors.length > 0, "no vectors in the file");
    const names = vectors.map((v) => v.name);
    assert.equal(new Set(names).size, names.length, "vector names are not unique");
  });
  for (const vector of vectors) {
    test(vector.name, () => run(vector));
  }
}
