// The embedded client's pure rules, table by table: the retry plan (retry.py), the outage guard
// (guard.py), judge() and the Verifier (verify.py), the pool's record/escalation (pool.py), the
// retry hints (hints.py) and the envelope (envelope.py).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { envelopeBody, poolError } from "../dist/esm/embedded/envelope.js";
import { OutageGuard } from "../dist/esm/embedded/guard.js";
import { retryHint } from "../dist/esm/embedded/hints.js";
import { Key } from "../dist/esm/embedded/keys.js";
import { afterAttempt, backoff, giveUp, mayRetry, mayReuse, whenNoKey } from "../dist/esm/embedded/plan.js";
import { formatG, Pool } from "../dist/esm/embedded/pool.js";
import { Redactor, wireForms } from "../dist/esm/embedded/redact.js";
import { Confirming, judge, reading, Verifier } from "../dist/esm/embedded/verify.js";
import { KEY_INVALID, NETWORK_ERROR, TIMEOUT, UPSTREAM_ERROR, UPSTREAM_OVERLOADED, verdict } from "../dist/esm/embedded/verdict.js";
import { ProxyError } from "../dist/esm/index.js";

const RATE = verdict("rate_limited", { failover: true, cooldown: 30, source: "retry-after" });
const QUOTA = verdict("quota_exhausted", { failover: true, cooldown: 3600, source: "cooldown_seconds" });
const CLIENT = verdict("client_error");
const RETRY_RULE = verdict("upstream_error", { failover: true, backoff: true, source: "on_status[0]" });

describe("retry plan", () => {
  // verdict, attempts, retryAttempts, method, sent, retryNonIdempotent -> mayRetry
  for (const [name, v, attempts, max, method, sent, nonIdem, expected] of [
    ["rate limit, attempts left", RATE, 1, 3, "POST", true, false, true],
    ["attempts used up", RATE, 3, 3, "GET", true, false, false],
    ["client error never", CLIENT, 1, 3, "GET", true, false, false],
    ["timeout on a sent POST", TIMEOUT, 1, 3, "POST", true, false, false],
    ["timeout on a sent POST, retryNonIdempotent", TIMEOUT, 1, 3, "POST", true, true, true],
    ["timeout on a GET", TIMEOUT, 1, 3, "GET", true, false, true],
    ["connect failure on a POST (not sent)", NETWORK_ERROR, 1, 3, "POST", false, false, true],
    ["reset after a PATCH was sent", NETWORK_ERROR, 1, 3, "PATCH", true, false, false],
    ["reset after a PUT was sent", NETWORK_ERROR, 1, 3, "PUT", true, false, true],
  ]) {
    test(`mayRetry: ${name}`, () => {
      assert.equal(mayRetry(v, attempts, max, { method, sent, retryNonIdempotent: nonIdem }), expected);
    });
  }

  test("mayReuse: only failures that are not the key's fault", () => {
    assert.deepEqual(
      [RATE, QUOTA, KEY_INVALID, UPSTREAM_ERROR, UPSTREAM_OVERLOADED, TIMEOUT, NETWORK_ERROR, CLIENT, RETRY_RULE].map(mayReuse),
      [false, false, false, true, true, true, true, false, true],
    );
  });

  test("backoff is full jitter of min(2, 0.1 * 2**round)", () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 10].map((r) => backoff(r, 1)), [0.1, 0.2, 0.4, 0.8, 1.6, 2, 2]);
    assert.equal(backoff(3, 0.5), 0.4);
    assert.equal(backoff(3, 0), 0);
  });

  test("giveUp: relay an answer, else the error naming why", () => {
    assert.equal(giveUp(RATE, true).action, "relay");
    assert.equal(giveUp(null, false).error, "no_available_keys");
    assert.equal(giveUp(TIMEOUT, false).error, "upstream_timeout");
    assert.equal(giveUp(NETWORK_ERROR, false).error, "upstream_unreachable");
  });

  const facts = { answered: true, attempts: 1, retryAttempts: 3, method: "GET", sent: true, retryNonIdempotent: false, now: 0, deadline: 10 };
  for (const [name, v, extra, action, error] of [
    ["a rate limit tries the next key", RATE, {}, "try", null],
    ["past the deadline: relay", RATE, { now: 10 }, "relay", null],
    ["a client error is relayed", CLIENT, {}, "relay", null],
    ["the last attempt timed out", TIMEOUT, { attempts: 3, answered: false }, "fail", "upstream_timeout"],
    ["the last attempt could not connect", NETWORK_ERROR, { attempts: 3, answered: false }, "fail", "upstream_unreachable"],
  ]) {
    test(`afterAttempt: ${name}`, () => {
      const step = afterAttempt(v, { ...facts, ...extra });
      assert.equal(step.action, action);
      assert.equal(step.error, error);
    });
  }

  const none = { last: null, answered: false, tried: false, attempts: 0, retryAttempts: 3, rounds: 0, now: 0, deadline: 600, queueDeadline: 0, returnsIn: null, jitter: 0.5 };
  for (const [name, extra, action, delay, error] of [
    ["no key at all, no queue: no_available_keys", {}, "fail", 0, "no_available_keys"],
    ["a key returns within the queue timeout: queue", { queueDeadline: 30, returnsIn: 12 }, "queue", 12.005, null],
    ["a key returns after the queue timeout", { queueDeadline: 30, returnsIn: 40 }, "fail", 0, "no_available_keys"],
    ["5xx on every key: backoff round 0", { last: UPSTREAM_ERROR, answered: true, tried: true, attempts: 2 }, "backoff", 0.05, null],
    ["5xx, round 2", { last: UPSTREAM_ERROR, answered: true, tried: true, attempts: 2, rounds: 2 }, "backoff", 0.2, null],
    ["5xx, attempts used up: relay", { last: UPSTREAM_ERROR, answered: true, tried: true, attempts: 3 }, "relay", 0, null],
    ["5xx, the backoff passes the deadline", { last: UPSTREAM_ERROR, answered: true, tried: true, attempts: 1, now: 599.99 }, "relay", 0, null],
    ["rate limits on every key: relay the last", { last: RATE, answered: true, tried: true, attempts: 2 }, "relay", 0, null],
    ["timeouts on every key: upstream_timeout", { last: TIMEOUT, answered: false, tried: true, attempts: 3 }, "fail", 0, "upstream_timeout"],
  ]) {
    test(`whenNoKey: ${name}`, () => {
      const step = whenNoKey({ ...none, ...extra });
      assert.equal(step.action, action);
      assert.ok(Math.abs(step.delay - delay) < 1e-9, `delay ${step.delay}`);
      assert.equal(step.error, error);
    });
  }
});

describe("outage guard", () => {
  test("trips on a majority of keys failing alike, holds one probe at a time, clears on success", () => {
    let now = 100;
    const guard = new OutageGuard(4, () => now);
    assert.equal(guard.threshold, 3);
    guard.failure(0, UPSTREAM_ERROR);
    guard.failure(1, UPSTREAM_OVERLOADED);
    assert.equal(guard.tripped, false);
    guard.failure(1, TIMEOUT);
    assert.equal(guard.tripped, false, "three failures but two keys");
    guard.failure(2, NETWORK_ERROR);
    assert.equal(guard.trippedKind, "upstream");
    assert.equal(guard.since, 100);
    assert.equal(guard.holds, true);
    assert.equal(guard.admit(), true, "the probe");
    assert.equal(guard.admit(), false, "one at a time");
    guard.probeDone();
    assert.equal(guard.admit(), false, "at most one per probe interval");
    assert.equal(guard.retryAfter(), 0.5);
    now += 0.5;
    assert.equal(guard.admit(), true);
    guard.success();
    assert.deepEqual([guard.tripped, guard.recoveries], [false, 1]);
  });

  test("key faults do not count; rate limits trip without holding; old failures expire", () => {
    let now = 0;
    const guard = new OutageGuard(3, () => now);
    for (const key of [0, 1, 2]) {
      guard.failure(key, QUOTA);
      guard.failure(key, KEY_INVALID);
      guard.failure(key, CLIENT);
    }
    assert.equal(guard.tripped, false);
    guard.failure(0, RATE);
    now = 11;
    guard.failure(1, RATE);
    guard.failure(1, RATE);
    assert.equal(guard.tripped, false, "the first one left the 10 s window");
    guard.failure(2, RATE);
    assert.equal(guard.trippedKind, "rate_limited");
    assert.equal(guard.holds, false);
    assert.equal(guard.admit(), true);
    guard.reset();
    assert.equal(guard.tripped, false);
  });

  test("an onStatus retry rule (backoff) counts as the upstream's fault", () => {
    const guard = new OutageGuard(1, () => 0);
    guard.failure(0, RETRY_RULE);
    guard.failure(0, RETRY_RULE);
    guard.failure(0, RETRY_RULE);
    assert.equal(guard.trippedKind, "upstream");
  });
});

describe("verify", () => {
  // known, disabledOne, isVerifyRequest, canVerify, failedElsewhere -> judgement
  for (const [known, disabledOne, isVerify, canVerify, elsewhere, expected] of [
    ["valid", true, true, true, true, "relay"],
    [null, true, true, true, true, "fail_over"],
    [null, false, true, false, false, "disable"],
    ["invalid", false, false, true, false, "disable"],
    [null, false, false, true, false, "verify"],
    ["unknown", false, false, true, false, "fail_over"],
    ["unknown", false, false, true, true, "disable"],
    [null, false, false, false, true, "disable"],
    [null, false, false, false, false, "fail_over"],
  ]) {
    test(`judge(${known}, disabledOne ${disabledOne}, verify request ${isVerify}, can verify ${canVerify}, elsewhere ${elsewhere}) = ${expected}`, () => {
      assert.equal(judge({ known, disabledOne, isVerifyRequest: isVerify, canVerify, failedElsewhere: elsewhere }), expected);
    });
  }

  test("reading: success, rate limit and quota mean valid; key_invalid invalid; others unknown", () => {
    assert.deepEqual(
      ["success", "rate_limited", "quota_exhausted", "key_invalid", "upstream_error", "timeout", "client_error"].map(reading),
      ["valid", "valid", "valid", "invalid", "unknown", "unknown", "unknown"],
    );
  });

  test("one verification in flight per key, cached 30 s (valid) or 5 s (unknown)", async () => {
    let now = 0;
    const verifier = new Verifier("/v1/models", () => now);
    let runs = 0;
    let release;
    const run = () => {
      runs += 1;
      return new Promise((done) => (release = done));
    };
    const both = Promise.all([verifier.verify(0, run), verifier.verify(0, run)]);
    release("valid");
    assert.deepEqual(await both, ["valid", "valid"]);
    assert.equal(runs, 1);
    now = 29.9;
    assert.equal(verifier.known(0), "valid");
    now = 30;
    assert.equal(verifier.known(0), null);
    assert.equal(await verifier.verify(1, async () => "unknown"), "unknown");
    now = 34.9;
    assert.equal(verifier.known(1), "unknown");
    now = 35;
    assert.equal(verifier.known(1), null);
    assert.equal(await verifier.verify(2, async () => "invalid"), "invalid");
    assert.equal(verifier.known(2), null, "an invalid key is not cached: it is disabled");
  });

  test("failedElsewhere: another path, within 600 s, no success since", () => {
    let now = 0;
    const verifier = new Verifier(null, () => now);
    verifier.suspect(0, "/v1/a", 5);
    assert.equal(verifier.failedElsewhere(0, "/v1/a", 5), false, "same path");
    assert.equal(verifier.failedElsewhere(0, "/v1/b", 6), false, "a success since");
    assert.equal(verifier.failedElsewhere(0, "/v1/b", 5), true);
    now = 600;
    assert.equal(verifier.failedElsewhere(0, "/v1/b", 5), false, "too long ago");
  });

  test("confirm: verification says invalid -> disable; valid -> relay; peer success confirms a suspect", async () => {
    const verifier = new Verifier("/v1/models", () => 0);
    const facts = (confirming, result) => ({ method: "POST", path: "/v1/chat", successes: 0, confirming, run: async () => result });
    const c1 = new Confirming();
    const disabled = await verifier.confirm(0, KEY_INVALID, facts(c1, "invalid"));
    assert.deepEqual([disabled.disable, disabled.confirm, disabled.source, c1.disabled], [true, false, "confirmed: verify_path", true]);
    const relayed = await verifier.confirm(1, KEY_INVALID, facts(new Confirming(), "valid"));
    assert.deepEqual([relayed.failover, relayed.disable, relayed.source], [false, false, "verified"]);
    const c3 = new Confirming();
    const unconfirmed = await verifier.confirm(2, KEY_INVALID, facts(c3, "unknown"));
    assert.deepEqual([unconfirmed.failover, unconfirmed.disable, unconfirmed.source], [true, false, "unconfirmed"]);
    assert.equal(verifier.confirmedByPeer(c3), 2);
    assert.equal(verifier.confirmedByPeer(c3), null, "a request disables at most one key");
  });
});

describe("pool", () => {
  function makePool(n = 3, clock = () => 1000) {
    const keys = Array.from({ length: n }, (_, i) => new Key(`k${i}`, `sk-secret-${i}`, 1, "Bearer"));
    return new Pool(keys, { strategy: "round_robin", cooldownSeconds: 3600, clock, rng: () => 0 });
  }

  test("a rate limit parks for its cooldown; the same failure after returning doubles it", () => {
    let now = 1000;
    const pool = makePool(3, () => now);
    pool.record(0, RATE, { failover: true });
    const s = pool.states[0];
    assert.deepEqual([s.availableAt, s.reason, s.source, s.errors, s.failovers], [1030, "rate_limited", "retry-after", 1, 1]);
    now = 1030;
    pool.record(0, RATE);
    assert.equal(s.availableAt, 1090);
    assert.equal(s.source, "retry-after, x2 (failed again after returning)");
    now = 1090;
    pool.record(0, RATE);
    assert.equal(s.source, "retry-after, x4 (failed again after returning)");
    pool.record(0, verdict("success"), { remainingQuota: 41 });
    assert.deepEqual([s.strikes, s.estimatedRemainingQuota], [0, 41]);
  });

  test("three consecutive 5xx park a key for 30 s only while other keys answer", () => {
    let now = 1000;
    const pool = makePool(3, () => now);
    for (let n = 0; n < 3; n += 1) {
      pool.record(0, UPSTREAM_ERROR);
    }
    assert.equal(pool.states[0].availableAt, 0, "no other key answered in between: the upstream's fault");
    pool.record(1, verdict("success"));
    pool.record(0, UPSTREAM_ERROR);
    pool.record(0, UPSTREAM_ERROR);
    pool.record(0, UPSTREAM_ERROR);
    assert.equal(pool.states[0].availableAt, 1030);
    assert.equal(pool.states[0].source, "3 consecutive 5xx");
    assert.equal(pool.retryAfter(), 0, "other keys are available now");
    assert.deepEqual(pool.counts(), [2, 3]);
  });

  test("disable, confirmedInvalid, enable, and the snapshot", () => {
    const pool = makePool(2);
    assert.equal(pool.disable("k0"), true);
    assert.equal(pool.disable("nope"), false);
    pool.confirmedInvalid(1, "confirmed: another key succeeded");
    assert.equal(pool.retryAfter(), null, "no key will return by itself");
    const [a, b] = pool.snapshot();
    assert.deepEqual([a.state, a.reason, a.source], ["disabled", "disabled_by_operator", "admin"]);
    assert.deepEqual([b.state, b.reason, b.source, b.cooldownUntil], ["disabled", "key_invalid", "confirmed: another key succeeded", null]);
    assert.equal(pool.enable("k1"), true);
    assert.equal(pool.snapshot()[1].state, "available");
    assert.equal(pool.select(), 1);
    assert.equal(pool.states[1].totalRequests, 1);
    assert.equal(pool.states[1].lastUsedAt, 1000);
  });

  test("formatG writes numbers as Python's format(x, 'g')", () => {
    assert.deepEqual([4, 2.5, 1234567, 0.0001, 16, 1.5].map(formatG), ["4", "2.5", "1.23457e+06", "0.0001", "16", "1.5"]);
  });
});

describe("hints and envelope", () => {
  for (const [code, wait, expected] of [
    ["no_available_keys", null, [null, false]],
    ["no_available_keys", 0.2, [1, true]],
    ["no_available_keys", 41.2, [42, true]],
    ["no_available_keys", 60, [60, true]],
    ["no_available_keys", 61, [null, false]],
    ["upstream_unavailable", 0.5, [1, true]],
    ["upstream_unavailable", null, [1, true]],
    ["overloaded", 120, [60, true]],
    ["caller_rate_limited", 90, [90, false]],
    ["upstream_timeout", null, [null, null]],
    ["upstream_unreachable", 5, [null, null]],
  ]) {
    test(`retryHint(${code}, ${wait}) = ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(retryHint(code, wait), expected);
    });
  }

  test("the envelope body is byte for byte Python's json.dumps", () => {
    assert.equal(
      envelopeBody("no_available_keys", "every key is cooling down or disabled; the first returns in 41.2s", 42, false, "0123456789abcdef"),
      '{"error": {"type": "poolswitch_error", "code": "no_available_keys", "message": "every key is cooling down or disabled; the first returns in 41.2s", "retry_after": 42, "request_id": "0123456789abcdef"}}',
    );
    assert.equal(envelopeBody("upstream_unavailable", "held", 1, true, "r"), '{"error": {"type": "poolswitch_error", "code": "upstream_unavailable", "message": "held", "retry_after": 1.0, "request_id": "r"}}');
    assert.equal(envelopeBody("upstream_timeout", "caf\u00e9", null, false, "r"), '{"error": {"type": "poolswitch_error", "code": "upstream_timeout", "message": "caf\\u00e9", "retry_after": null, "request_id": "r"}}');
    assert.match(JSON.parse(envelopeBody("bad_request", "no", null)).error.request_id, /^[0-9a-f]{16}$/);
  });

  test("poolError is the SDK's ProxyError with the proxy's answer", () => {
    const error = poolError("no_available_keys", "every key is cooling down or disabled; the first returns in 41.2s", 42, 3);
    assert.ok(error instanceof ProxyError);
    assert.deepEqual([error.code, error.status, error.retryAfter, error.attempts], ["no_available_keys", 429, 42, 3]);
    const r = error.response;
    assert.equal(r.status, 429);
    assert.deepEqual([...r.headers], [
      ["content-length", String(r.bytes().length)],
      ["content-type", "application/json"],
      ["retry-after", "42"],
      ["x-poolswitch-attempts", "3"],
      ["x-poolswitch-error", "no_available_keys"],
      ["x-poolswitch-request-id", error.requestId],
      ["x-request-id", error.requestId],
      ["x-should-retry", "true"],
    ]);
    assert.match(error.requestId, /^[0-9a-f]{16}$/);
    assert.equal(r.json().error.type, "poolswitch_error");
    assert.equal(r.json().error.request_id, error.requestId);
  });
});

describe("redactor", () => {
  test("every wire form of every key becomes its id", () => {
    const redactor = new Redactor([["sk-a/b+c", "first"], ["sk-other", "second"]]);
    assert.ok(wireForms("sk-a/b+c").has("sk-a%2Fb%2Bc"));
    assert.ok(wireForms("sk-a/b+c").has("sk-a%2fb%2bc"));
    assert.ok(wireForms("sk-a/b+c").has("sk-a\\/b+c"));
    const body = new TextEncoder().encode('{"error": "bad key sk-a/b+c, sk-a%2Fb%2Bc, sk-a\\/b+c; Bearer sk-other"}');
    assert.equal(new TextDecoder().decode(redactor.redact(body)), '{"error": "bad key first, first, first; Bearer second"}');
    const clean = new TextEncoder().encode("nothing here");
    assert.equal(redactor.redact(clean), clean);
    assert.equal(redactor.redactText("key=sk-other"), "key=second");
    assert.equal(String(redactor), "Redactor(7 forms)", "as the server's Redactor counts them");
  });
});
