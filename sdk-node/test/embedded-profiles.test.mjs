// The embedded provider rules (src/embedded/profiles.ts): the build embeds the server's
// providers.json unchanged; the rules are checked at load; the profile helpers (detection,
// verify path and headers); and the Python readings the classifier relies on (pytext, pyjson).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  PROFILES,
  createClassifier,
  detectProvider,
  remainingQuotaHeaders,
  verifyHeaders,
  verifyPath,
} from "../dist/esm/embedded/classifier.js";
import { PROVIDERS_DOCUMENT, ProfileError, RULES, parseRules } from "../dist/esm/embedded/profiles.js";
import { serverHeaders, surrogateEscape } from "../dist/esm/embedded/facts.js";
import { PyInt, loads, truthy } from "../dist/esm/embedded/pyjson.js";
import { pyFloat, pyInt, pyRegex, split, strip } from "../dist/esm/embedded/pytext.js";

const SOURCE = fileURLToPath(new URL("../../server/src/poolswitch/profiles/providers.json", import.meta.url));
const source = () => JSON.parse(readFileSync(SOURCE, "utf8"));

describe("the embedded data", () => {
  test("equals the server's providers.json", () => {
    assert.deepEqual(PROVIDERS_DOCUMENT, source());
  });
  test("is read into typed rules", () => {
    assert.deepEqual(PROFILES, Object.keys(source().profiles));
    assert.equal(RULES.bodyBytes, source().limits.body_bytes);
    assert.deepEqual(remainingQuotaHeaders, source().remaining_quota_headers);
    assert.equal(RULES.statusKinds.get(429), "rate");
    assert.equal(RULES.profiles.get("openai").markers.get("insufficient_quota"), "quota"); // common
    assert.equal(RULES.profiles.get("openai").markers.get("slow_down"), "overloaded"); // its own
    assert.equal(RULES.profiles.get("generic").markers.has("slow_down"), false);
  });
  const broken = [
    ["an unknown kind", (d) => (d.markers.insufficient_quota = "quotas"), /markers\.insufficient_quota: unknown kind "quotas"/],
    ["an unknown outcome", (d) => (d.kinds.rate.outcome = "slow"), /kinds\.rate\.outcome: unknown outcome/],
    ["an unknown format", (d) => (d.resets.headers[0].format = "fortnights"), /resets\.headers\[0\]\.format/],
    ["a phrase's format for a body field", (d) => (d.resets.body_fields[0].format = "date_utc"), /resets\.body_fields\[0\]\.format: unknown format "date_utc"/],
    ["a missing table", (d) => delete d.event_status, /event_status: missing/],
    ["a status that is not one", (d) => (d.status_kinds["4x9"] = "rate"), /status_kinds\.4x9: must be an HTTP status/],
    ["a pattern this client cannot read", (d) => (d.resets.prose[0].pattern = "(?i)retry"), /resets\.prose\[0\]\.pattern/],
    ["a kind the code names", (d) => delete d.kinds.error, /the kind "error" is missing/],
  ];
  for (const [what, change, message] of broken) {
    test(`refuses ${what}, naming the place`, () => {
      const doc = source();
      change(doc);
      assert.throws(() => parseRules(doc), (error) => error instanceof ProfileError && message.test(error.message));
    });
  }
});

describe("detectProvider", () => {
  const cases = [
    ["https://api.openai.com", "openai"],
    ["https://api.openai.com/v1", "openai"],
    ["api.openai.com", "openai"],
    ["API.OPENAI.COM.", "openai"],
    ["  https://api.groq.com  ", "openai"],
    ["api.mistral.ai:443", "openai"],
    ["https://my-resource.openai.azure.com/openai", "openai"],
    ["http://user@api.anthropic.com:443/v1", "anthropic"],
    ["https://generativelanguage.googleapis.com/v1beta", "gemini"],
    ["https://api.openai.com.evil.com", "generic"],
    ["https://api.anthropic.com@evil.com", "generic"],
    ["http://[api.openai.com]/", "generic"],
    ["http://[::1", "generic"],
    ["http://localhost:9999", "generic"],
    ["", "generic"],
  ];
  for (const [url, profile] of cases) {
    test(JSON.stringify(url), () => assert.equal(detectProvider(url), profile));
  }
  test("createClassifier resolves auto, and refuses an unknown profile", () => {
    const base = { upstreamBaseUrl: "https://api.anthropic.com", cooldownSeconds: 60 };
    assert.equal(createClassifier({ ...base, provider: "auto" }).profile, "anthropic");
    assert.equal(createClassifier({ ...base, provider: "gemini" }).profile, "gemini");
    assert.throws(() => createClassifier({ ...base, provider: "cohere" }), /unknown provider profile "cohere"/);
  });
});

describe("verifyPath and verifyHeaders", () => {
  test("the profile's path, not doubled when the base URL ends in its first segment", () => {
    assert.equal(verifyPath("openai", "https://api.openai.com"), "/v1/models");
    assert.equal(verifyPath("openai", "https://api.openai.com/v1"), "/models");
    assert.equal(verifyPath("openai", "https://api.openai.com/v1/"), "/models");
    assert.equal(verifyPath("anthropic", "https://api.anthropic.com/v1"), "/models");
    assert.equal(verifyPath("gemini", "https://generativelanguage.googleapis.com"), "/v1beta/models");
    assert.equal(verifyPath("gemini", "https://generativelanguage.googleapis.com/v1beta"), "/models");
    assert.equal(verifyPath("openai", "https://proxy.example/openai/v10"), "/v1/models");
    assert.equal(verifyPath("generic", "https://api.openai.com"), null);
    assert.equal(verifyPath("nobody", "https://api.openai.com"), null);
  });
  test("the headers a verification carries", () => {
    assert.deepEqual(verifyHeaders("anthropic"), { "anthropic-version": "2023-06-01" });
    assert.deepEqual(verifyHeaders("openai"), {});
    assert.deepEqual(verifyHeaders("nobody"), {});
  });
});

describe("Python's text readings (pytext)", () => {
  test("strip and split use Python's whitespace", () => {
    assert.equal(strip("\x1c\x85 a \u3000"), "a");
    assert.equal(strip("\ufeffa"), "\ufeffa"); // not whitespace to Python
    assert.deepEqual(split(" a\x1fb  c "), ["a", "b", "c"]);
    assert.deepEqual(split("   "), []);
  });
  test("float() and int()", () => {
    assert.equal(pyFloat(" 1_000.5 "), 1000.5);
    assert.equal(pyFloat("٣.٥"), 3.5);
    assert.equal(pyFloat("-Infinity"), -Infinity);
    assert.ok(Number.isNaN(pyFloat("nan")));
    for (const bad of ["0x10", "", "1__0", "_1", "1_", "1e", "--1", "1 2"]) {
      assert.equal(pyFloat(bad), null, bad);
    }
    assert.equal(pyInt("+007"), 7n);
    assert.equal(pyInt("1.0"), null);
    assert.equal(pyInt("9".repeat(4301)), null); // Python's limit on integer digits
  });
  test("regular expressions: Python's \\d, \\s, \\b, . and $", () => {
    assert.ok(pyRegex("^\\d+$").test("١٢٣"));
    assert.ok(pyRegex("a\\sb").test("a\x85b"));
    assert.ok(!pyRegex("a\\sb").test("a\ufeffb"));
    assert.ok(pyRegex("\\blimit: 0(?![\\d.])").test("x, limit: 0, y"));
    assert.ok(!pyRegex("\\blimit: 0(?![\\d.])").test("x, limit: 0.5"));
    assert.ok(!pyRegex("\\blimit").test("élimit")); // é is a word character to Python
    assert.ok(pyRegex("a.b").test("a\rb") && !pyRegex("a.b").test("a\nb"));
    assert.ok(pyRegex("a$").test("a\n"));
    assert.ok(pyRegex("(?P<n>x)(?P=n)").test("xx"));
    assert.ok(pyRegex("a{,2}b").test("aab"));
    assert.ok(pyRegex("a{b").test("a{b"));
    assert.throws(() => pyRegex("(?i)a"), /not supported/);
    assert.throws(() => pyRegex("a*+"), /not supported/);
  });
});

describe("headers as the server's aiohttp reads them", () => {
  const latin1 = (bytes) => Buffer.from(bytes).toString("latin1"); // what fetch gives
  test("UTF-8 values decoded, other bytes kept as lone surrogates", () => {
    assert.equal(surrogateEscape(latin1([0x33, 0x30])), "30");
    assert.equal(surrogateEscape(latin1([0xd9, 0xa3, 0xd9, 0xa0])), "٣٠");
    assert.equal(surrogateEscape(latin1([0x33, 0x30, 0xa0])), "30\udca0"); // not "30\xa0" (a space to Python)
    assert.equal(surrogateEscape(latin1([0xe2, 0x82, 0x41])), "\udce2\udc82A");
    assert.equal(surrogateEscape(latin1([0xed, 0xa0, 0x80])), "\udced\udca0\udc80"); // no surrogates in UTF-8
  });
  test("the classifier reads them so", () => {
    const headers = new Headers({ "retry-after": latin1([0xd9, 0xa3, 0xd9, 0xa0]), "x-other": "plain" });
    const lookup = serverHeaders(headers);
    assert.equal(lookup.get("Retry-After"), "٣٠");
    assert.equal(lookup.get("x-other"), "plain");
    const classifier = createClassifier({ provider: "generic", upstreamBaseUrl: "", cooldownSeconds: 3600 });
    assert.equal(classifier.classify(429, headers, new Uint8Array(), 0).cooldown, 30);
    const nbsp = new Headers({ "retry-after": latin1([0x33, 0x30, 0xa0]) });
    assert.equal(classifier.classify(429, nbsp, new Uint8Array(), 0).source, "default");
  });
});

describe("JSON as Python reads it (pyjson)", () => {
  test("NaN and Infinity; integers apart from floats", () => {
    const doc = loads('{"a": NaN, "b": -Infinity, "c": 429, "d": 429.0, "e": 4.29e2, "f": -0}');
    assert.ok(Number.isNaN(doc.get("a")));
    assert.equal(doc.get("b"), -Infinity);
    assert.deepEqual(doc.get("c"), new PyInt(429n));
    assert.equal(doc.get("d"), 429);
    assert.equal(doc.get("e"), 429);
    assert.deepEqual(doc.get("f"), new PyInt(0n));
  });
  test("keys in document order; a duplicate keeps its place and its last value", () => {
    const doc = loads('{"b": 1, "2": 2, "a": 3, "b": 4}');
    assert.deepEqual([...doc.keys()], ["b", "2", "a"]);
    assert.deepEqual(doc.get("b"), new PyInt(4n));
  });
  test("what Python refuses", () => {
    for (const bad of ["\ufeff{}", "{,}", "[1,]", "01", "1.", '"a\tb"', "nul", "{'a': 1}", "1 2", "", "[" + "1".repeat(4301) + "]"]) {
      assert.equal(loads(bad), undefined, JSON.stringify(bad.slice(0, 20)));
    }
    assert.notEqual(loads("[" + "1".repeat(4300) + "]"), undefined);
  });
  test("nesting deeper than Python's recursion allows", () => {
    assert.notEqual(loads("[".repeat(991) + "]".repeat(991)), undefined);
    assert.equal(loads("[".repeat(992) + "]".repeat(992)), undefined);
    assert.equal(loads("[".repeat(100000) + "]".repeat(100000)), undefined);
  });
  test("Python's truth", () => {
    assert.deepEqual(
      [null, false, 0, new PyInt(0n), "", [], new Map(), Number.NaN, "x", [0], new PyInt(2n)].map(truthy),
      [false, false, false, false, false, false, false, true, true, true, true],
    );
  });
});
