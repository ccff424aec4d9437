// The embedded client's strategies and keys: the server's strategies.py / keys.py, table by table.
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { describe, test } from "node:test";

import { Key, KeyState, keysFromOptions } from "../dist/esm/embedded/keys.js";
import { STRATEGIES, weightedSchedule } from "../dist/esm/embedded/strategies.js";

const NONE = new Set();

function pool(weights, name, rng = () => 0) {
  const keys = weights.map((w, i) => new Key(`k${i}`, `secret-value-${i}`, w, "Bearer"));
  const states = keys.map((k) => new KeyState(k.id));
  return { keys, states, strategy: new STRATEGIES[name](keys, states, rng) };
}

describe("weightedSchedule", () => {
  // expected values are the server's weighted_schedule() on the same weights
  for (const [weights, expected] of [
    [[1, 1, 1], [0, 1, 2]],
    [[3, 1], [0, 0, 1, 0]],
    [[1, 2, 3], [2, 1, 0, 2, 1, 2]],
    [[2, 1, 1], [0, 1, 2, 0]],
    [[5, 3], [0, 1, 0, 0, 1, 0, 1, 0]],
  ]) {
    test(`${JSON.stringify(weights)} -> ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(weightedSchedule(weights), expected);
    });
  }
});

describe("strategies", () => {
  test("round_robin rotates, skipping parked and tried keys", () => {
    const { states, strategy } = pool([1, 1, 1], "round_robin");
    assert.deepEqual([0, 1, 2, 3].map(() => strategy.select(0, NONE)), [0, 1, 2, 0]);
    states[2].park(100, "rate_limited");
    assert.deepEqual([0, 1, 2].map(() => strategy.select(50, NONE)), [1, 0, 1]);
    assert.equal(strategy.select(50, new Set([0, 1])), null);
    assert.equal(strategy.select(100, new Set([0, 1])), 2, "back at its deadline");
  });

  test("least_used picks the fewest requests per weight, first on ties", () => {
    const { states, strategy } = pool([1, 2], "least_used");
    assert.equal(strategy.select(0, NONE), 0);
    states[0].totalRequests = 1;
    states[1].totalRequests = 1;
    assert.equal(strategy.select(0, NONE), 1);
    states[1].totalRequests = 3;
    assert.equal(strategy.select(0, NONE), 0);
    assert.equal(strategy.select(0, new Set([0])), 1);
  });

  test("random is weighted by the injected rng and falls back to a free key", () => {
    const draws = [0.1, 0.5, 0.9];
    let n = 0;
    const { states, strategy } = pool([1, 1, 2], "random", () => draws[n++ % draws.length]);
    // cumulative [1, 2, 4]: 0.1*4 -> 0, 0.5*4 -> 2 (bisect_right), 0.9*4 -> 2
    assert.deepEqual([0, 1, 2].map(() => strategy.select(0, NONE)), [0, 2, 2]);
    states[2].park(10, "rate_limited");
    states[0].park(10, "rate_limited");
    assert.equal(strategy.select(0, NONE), 1, "eight misses, then a choice among the free keys");
    assert.equal(strategy.select(0, new Set([1])), null);
  });

  test("quota_failover uses the heaviest key first, then option order", () => {
    const { states, strategy } = pool([1, 3, 1], "quota_failover");
    assert.equal(strategy.select(0, NONE), 1);
    assert.equal(strategy.select(0, NONE), 1);
    states[1].park(60, "quota_exhausted");
    assert.equal(strategy.select(0, NONE), 0);
    assert.equal(strategy.select(0, new Set([0])), 2);
  });
});

describe("KeyState", () => {
  test("park keeps the later deadline and never touches a disabled key", () => {
    const s = new KeyState("a");
    s.park(100, "rate_limited", "retry-after");
    s.park(50, "quota_exhausted");
    assert.deepEqual([s.availableAt, s.reason, s.source], [100, "rate_limited", "retry-after"]);
    assert.equal(s.state(99), "cooling_down");
    assert.equal(s.cooldownUntil(99), 100);
    assert.equal(s.state(100), "available");
    s.disable("key_invalid", "confirmed: verify_path");
    s.park(1e12, "rate_limited");
    assert.equal(s.availableAt, Infinity);
    assert.equal(s.state(0), "disabled");
    assert.equal(s.cooldownUntil(0), null);
    s.restore();
    assert.deepEqual([s.availableAt, s.disabled, s.reason, s.strikes], [0, false, null, 0]);
  });

  // (strikes before, reason before, parked?, seconds, cap) -> (seconds, strikes after)
  for (const [strikes, before, parked, seconds, cap, expected, after] of [
    [0, null, false, 60, 3600, 60, 1],
    [1, "rate_limited", false, 60, 3600, 120, 2],
    [2, "rate_limited", false, 60, 3600, 240, 3],
    [6, "rate_limited", false, 60, 3600, 3600, 7],
    [2, "quota_exhausted", false, 60, 3600, 60, 3],
    [2, "rate_limited", true, 60, 3600, 60, 2],
    [3, "rate_limited", false, 600, 300, 600, 4],
  ]) {
    test(`escalated: strikes ${strikes}, ${before}, parked ${parked} -> ${expected}s`, () => {
      const s = new KeyState("a");
      s.strikes = strikes;
      s.reason = before;
      s.availableAt = parked ? 1000 : 0;
      assert.equal(s.escalated(seconds, "rate_limited", cap, 500), expected);
      assert.equal(s.strikes, after);
    });
  }

  test("succeeded clears strikes and the error run", () => {
    const s = new KeyState("a");
    s.strikes = 3;
    s.consecutiveErrors = 2;
    s.succeeded();
    assert.deepEqual([s.strikes, s.consecutiveErrors], [0, 0]);
  });
});

describe("keys from options", () => {
  test("plain strings get ids key-1, key-2, never from the value", () => {
    const keys = keysFromOptions(["sk-first-secret", { id: "named", value: "sk-second-secret", weight: 2 }, "sk-third"], "Bearer");
    assert.deepEqual(keys.map((k) => k.id), ["key-1", "named", "key-3"]);
    assert.deepEqual(keys.map((k) => k.weight), [1, 2, 1]);
    assert.equal(keys[0].authValue(), "Bearer sk-first-secret");
    assert.equal(keysFromOptions(["raw-value"], null)[0].authValue(), "raw-value");
  });

  test("a key's value is in no string, JSON or inspect output", () => {
    const [key] = keysFromOptions([{ id: "k1", value: "sk-very-secret-value" }], "Bearer");
    for (const shown of [String(key), JSON.stringify(key), JSON.stringify({ key }), inspect(key), inspect({ key }, { depth: 5, showHidden: true })]) {
      assert.ok(!shown.includes("sk-very-secret-value"), shown);
      assert.ok(shown.includes("k1"), shown);
    }
    assert.equal(JSON.stringify(key), '"k1"');
  });

  for (const [keys, message] of [
    [[], /^keys must be a non-empty array/],
    ["sk-x", /^keys must be a non-empty array/],
    [[{ id: "bad id", value: "sk-a" }], /^keys\[0\]\.id: must be 1-64 characters/],
    [[{ id: "a", value: "" }], /^keys\[0\]\.value \(key a\): must be a non-empty string/],
    [[{ id: "a", value: "sk has space" }], /^keys\[0\]\.value \(key a\): must not contain whitespace/],
    [[{ id: "a", value: "sk-a", weight: 0 }], /^keys\[0\]\.weight \(key a\): must be an integer from 1 to 1000/],
    [[{ id: "a", value: "sk-a" }, { id: "a", value: "sk-b" }], /^keys\[1\]\.id: duplicate id \(also keys\[0\]\)/],
    [["sk-same-value", "sk-same-value"], /^keys\[1\]\.value \(key key-2\): same value as keys\[0\]/],
    [[{ id: "a", value: "sk-a", secret: "x" }], /^keys\[0\]\.secret: unknown field/],
  ]) {
    test(`refused: ${message}`, () => {
      assert.throws(
        () => keysFromOptions(keys, "Bearer"),
        (error) => {
          assert.ok(error instanceof TypeError);
          assert.match(error.message, message);
          assert.ok(!/sk-(same|has|a\b|b\b)/.test(error.message), "no value in the message");
          return true;
        },
      );
    });
  }
});
