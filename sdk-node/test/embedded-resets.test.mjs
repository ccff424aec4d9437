// The reset parsers of the embedded client (src/embedded/resets.ts): each format, the clamp,
// "longest wins, first on tie", the deadlines' date arithmetic. Table tests; expectations
// worked out from the calendar.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  MAX_RESET_SECONDS,
  clamp,
  headerSignals,
  longest,
  parseDateUtc,
  parseDuration,
  parseEpoch,
  parseHttpDate,
  parseMillis,
  parseRetryAfter,
  parseRfc3339,
  proseSignal,
  untilMidnight,
  untilMonthStart,
  zone,
} from "../dist/esm/embedded/resets.js";

const utc = (y, mo, d, h = 0, mi = 0, s = 0) => Date.UTC(y, mo - 1, d, h, mi, s) / 1000;
const NOW = utc(2026, 3, 15, 12, 34, 56);

function table(name, fn, rows) {
  describe(name, () => {
    for (const [input, expected] of rows) {
      test(JSON.stringify(input), () => {
        const got = fn(input);
        if (expected === null) {
          assert.equal(got, null);
        } else {
          assert.ok(got !== null && Math.abs(got - expected) < 1e-6, `${got} != ${expected}`);
        }
      });
    }
  });
}

table("parseDuration (Go durations, units from the data)", parseDuration, [
  ["12ms", 0.012],
  ["1s", 1],
  ["6m0s", 360],
  ["2m59.56s", 179.56],
  ["1h2m3.5s", 3723.5],
  ["3us", 3e-6],
  ["3µs", 3e-6],
  ["100ns", 1e-7],
  [" 7s ", 7],
  ["1.5", 1.5], // a bare number of seconds
  ["١٢s", 12], // Python's \d and float() read every decimal digit
  ["", null],
  ["abc", null],
  ["5 s", null],
  ["1m30", null],
  ["s", null],
  ["1.s", null],
  ["inf", null],
]);

table("parseRetryAfter: seconds", (v) => parseRetryAfter(v, NOW), [
  ["30", 30],
  [" 30 ", 30],
  ["0", 0],
  ["-5", 0],
  ["1.5", 1.5],
  ["1e3", 1000],
  ["1_000", 1000], // Python's float() takes underscores between digits
  ["+7", 7],
  [".5", 0.5],
  ["5.", 5],
  ["0x10", null], // Number() would say 16
  ["1__0", null],
  ["inf", null],
  ["nan", null],
  ["", null],
]);

table("parseRetryAfter: HTTP-dates, as Python's email.utils reads them", (v) => parseRetryAfter(v, NOW), [
  ["Sun, 15 Mar 2026 12:40:00 GMT", 304],
  ["Wed, 15 Mar 2026 12:40:00 GMT", 304], // the weekday is not checked
  ["Sunday, 15-Mar-26 12:40:00 GMT", 304], // RFC 850
  ["Sun Mar 15 12:40:00 2026", 304], // asctime
  ["15 Mar 2026 12:40 +0100", 0], // 11:40 UTC: in the past
  ["15 Mar 2026 13:40:00 +0100", 304],
  ["15 Mar 2026 05:40:00 PDT", 304],
  ["15 March 2026 12.40.00", 304],
  ["15 Mar 2026 12:40:00 -0000", 304], // no zone: UTC
  ["15 Mar 2026 12:40:00 +2400", null], // Python's timezone() refuses a day
  ["31 Feb 2026 12:00:00", null],
  ["15 Mar 2026 25:40:00", null],
  ["15 Mar 2026", null],
  ["garbage", null],
]);

test("parseHttpDate reads two-digit years as POSIX does", () => {
  assert.equal(parseHttpDate("1 Jan 68 00:00:00 GMT"), utc(2068, 1, 1));
  assert.equal(parseHttpDate("1 Jan 69 00:00:00 GMT"), utc(1969, 1, 1));
});

table("parseMillis", parseMillis, [
  ["1500", 1.5],
  ["0", 0],
  [" 250 ", 0.25],
  ["abc", null],
]);

table("parseEpoch: seconds from now below 1e9, epoch ms above 1e12", (v) => parseEpoch(v, NOW), [
  ["30", 30],
  ["999999999", 999999999],
  [String(NOW + 90), 90],
  [String(NOW - 90), -90], // clamped to 0 by the caller
  [String((NOW + 5) * 1000), 5],
  ["1000000000000", 1e12 - NOW], // not above 1e12: epoch seconds
  ["abc", null],
]);

table("parseRfc3339", (v) => parseRfc3339(v, NOW), [
  ["2026-03-15T12:40:00Z", 304],
  ["2026-03-15t12:40:00z", 304],
  ["2026-03-15 12:40:00Z", 304],
  ["2026-03-15T12:40:00.5Z", 304.5],
  ["2026-03-15T12:40:00.123456789Z", 304.123456789],
  ["2026-03-15T13:40:00+01:00", 304],
  ["2026-03-15T11:40:00-01:00", 304],
  ["2026-03-15T12:40:00+22:99", 304 - (22 * 60 + 99) * 60], // Python's timedelta takes 99 minutes
  ["2026-03-15T12:40:00+23:99", null], // ... but not a day
  ["2026-03-15T12:40:00+24:00", null],
  ["2026-13-15T12:40:00Z", null],
  ["2026-02-29T12:40:00Z", null],
  ["0000-01-01T00:00:00Z", null],
  ["2026-03-15T24:00:00Z", null],
  ["2026-03-15T12:40:00", null],
  ["２０２６-03-15T12:40:00Z", 304], // full-width digits are decimal digits to Python
]);

test("parseDateUtc: a prose date and optional time, as UTC", () => {
  assert.equal(parseDateUtc("2026-04-01", "00:00", NOW), utc(2026, 4, 1) - NOW);
  assert.equal(parseDateUtc("2026-04-01", undefined, NOW), utc(2026, 4, 1) - NOW);
  assert.equal(parseDateUtc("2026-03-16", "05:06:07", NOW), utc(2026, 3, 16, 5, 6, 7) - NOW);
  assert.equal(parseDateUtc("2026-02-30", "10:00", NOW), null);
});

test("clamp bounds every signal to [0, max_reset_seconds]", () => {
  assert.equal(MAX_RESET_SECONDS, 31 * 86400);
  assert.equal(clamp(-1), 0);
  assert.equal(clamp(5), 5);
  assert.equal(clamp(1e12), MAX_RESET_SECONDS);
  assert.equal(clamp(Infinity), MAX_RESET_SECONDS);
});

test("longest wins, the first on a tie, clamped", () => {
  assert.deepEqual(longest([[5, "a"], [9, "b"], [9, "c"], [1, "d"]]), [9, "b"]);
  assert.deepEqual(longest([[1e12, "a"], [1e13, "b"]]), [MAX_RESET_SECONDS, "a"]);
  assert.equal(longest([]), null);
});

describe("headerSignals", () => {
  const headers = new Headers({
    "retry-after": "20",
    "x-ratelimit-reset-requests": "10m",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-tokens": "2s",
    "x-ratelimit-remaining-tokens": "5",
  });
  test("an exhausted window counts, one with something left does not", () => {
    assert.deepEqual(headerSignals(headers, NOW), [
      [20, "retry-after"],
      [600, "x-ratelimit-reset-requests"],
    ]);
  });
  test("the dimension an error names keeps only its window", () => {
    assert.deepEqual(headerSignals(headers, NOW, { dimension: "tokens" }), [
      [20, "retry-after"],
      [2, "x-ratelimit-reset-tokens"],
    ]);
  });
  test("a quota leaves the windows out", () => {
    assert.deepEqual(headerSignals(headers, NOW, { windows: false }), [[20, "retry-after"]]);
  });
  test("an unreadable value is no signal; a negative one is 0", () => {
    const odd = new Headers({ "retry-after": "soon", "retry-after-ms": "-5" });
    assert.deepEqual(headerSignals(odd, NOW), [[0, "retry-after-ms"]]);
  });
});

test("proseSignal reads the data's patterns in order", () => {
  assert.deepEqual(proseSignal("please try again in 9.78s.", NOW), [9.78, "message"]);
  assert.deepEqual(proseSignal("please retry in 10h17m5.7s", NOW), [37025.7, "message"]);
  assert.deepEqual(proseSignal("you will regain access on 2026-04-01 at 00:00 utc.", NOW), [
    utc(2026, 4, 1) - NOW,
    "message",
  ]);
  assert.deepEqual(proseSignal("resets at 2026-03-16t05:06", NOW), [utc(2026, 3, 16, 5, 6) - NOW, "message"]);
  assert.deepEqual(proseSignal("try again in 99999999h", NOW), [MAX_RESET_SECONDS, "message"]);
  assert.equal(proseSignal("try again later", NOW), null);
});

describe("deadlines", () => {
  const pacific = zone("America/Los_Angeles", -8);
  test("next month in UTC", () => {
    assert.equal(untilMonthStart(NOW, zone("UTC", 0)), utc(2026, 4, 1) - NOW);
    assert.equal(untilMonthStart(utc(2026, 12, 31, 23, 59, 59) + 0.5, zone("UTC", 0)), 0.5);
    assert.equal(untilMonthStart(utc(2028, 2, 1), zone("UTC", 0)), 29 * 86400);
  });
  test("midnight Pacific: daylight time (UTC-7) and standard time (UTC-8)", () => {
    assert.equal(untilMidnight(NOW, pacific), utc(2026, 3, 16, 7) - NOW);
    assert.equal(untilMidnight(utc(2026, 1, 1, 7, 59, 59), pacific), 1);
    assert.equal(untilMidnight(utc(2026, 1, 1, 8), pacific), 86400);
  });
  test("midnight Pacific over the transitions", () => {
    // 2026-03-08: clocks go forward at 02:00 PST; the next midnight is 07:00 UTC on the 9th
    assert.equal(untilMidnight(utc(2026, 3, 8, 9, 59, 59), pacific), utc(2026, 3, 9, 7) - utc(2026, 3, 8, 9, 59, 59));
    // 2026-11-01: clocks go back at 02:00 PDT; from 04:00 PST the next midnight is 08:00 UTC
    assert.equal(untilMidnight(utc(2026, 11, 1, 12), pacific), 20 * 3600);
    assert.equal(untilMidnight(utc(2026, 11, 1, 6), pacific), 3600); // 23:00 PDT on the 31st
  });
  test("a zone the runtime does not know: the fixed fallback offset", () => {
    const fallback = zone("Nowhere/Atlantis", -8);
    assert.equal(untilMidnight(NOW, fallback), utc(2026, 3, 16, 8) - NOW);
  });
  test("a zone whose midnight is skipped: read with the offset before the gap (Python's fold=0)", () => {
    // America/Santiago springs forward at 24:00 on 2026-09-05 (00:00 -> 01:00, -04 -> -03)
    const santiago = zone("America/Santiago", null);
    const now = utc(2026, 9, 5, 12);
    assert.equal(untilMidnight(now, santiago), utc(2026, 9, 6, 4) - now);
  });
});
