/**
 * Reset signals: when a provider says a key may be used again, read into seconds from `now`
 * (the server's resets.py). Which headers, body fields and phrases count, in which format, is
 * data (profiles.ts, `resets`); the formats and the date arithmetic are here.
 *
 * Every parser takes the raw text (and `now`, Unix seconds, when the value is absolute) and
 * returns seconds from `now`, or null when it cannot read the value; none of them throws. A
 * signal is `[seconds, source]`. Every signal is clamped to [0, max_reset_seconds]; the longest
 * wins, the first on a tie.
 *
 *     retry_after   seconds or HTTP-date (RFC 9110; Python's email.utils reading)   30
 *     millis        milliseconds                                                    1500
 *     epoch         epoch seconds; < 1e9 seconds from now, > 1e12 epoch millis      1760000000
 *     duration      Go duration (units from the data), or bare seconds              2m59.56s
 *     rfc3339       RFC 3339 time, Z or +hh:mm, any fraction                        2026-08-21T12:40:59Z
 *     date_utc      a prose date and optional time (regex groups 1 and 2), as UTC   2026-04-01, 00:00
 */

import { type Format, RULES, type Signal as SignalRule } from "./profiles.js";
import { civilSeconds } from "./calendar.js";
import { parseHttpDate } from "./httpdate.js";
import { asciiDigits, pyFloat, strip } from "./pytext.js";

export { civilSeconds, untilMidnight, untilMonthStart, zone, type Zone } from "./calendar.js";
export { parseHttpDate } from "./httpdate.js";

export type Signal = readonly [seconds: number, source: string];

/** Headers by name, case-insensitive (a WHATWG `Headers` is one). */
export interface HeaderLookup {
  get(name: string): string | null;
}

export const MAX_RESET_SECONDS = RULES.maxResetSeconds;

/** Bound a reset to [0, max_reset_seconds]. */
export function clamp(seconds: number): number {
  return Math.min(Math.max(seconds, 0), MAX_RESET_SECONDS);
}

/** A finite number as Python's `float()` reads it, or null. */
function number(value: string): number | null {
  const n = pyFloat(value);
  return n !== null && Number.isFinite(n) ? n : null;
}

const UNITS = RULES.durationUnits;
const DURATION_PART = new RegExp(
  `(\\p{Nd}+(?:\\.\\p{Nd}+)?)(${[...UNITS.keys()]
    .sort((a, b) => b.length - a.length)
    .map((u) => u.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .join("|")})`,
  "gu",
);

/** Go-style durations (`12ms`, `6m0s`, `2m59.56s`); also a bare number of seconds. */
export function parseDuration(value: string): number | null {
  const text = strip(value);
  let total = 0;
  let pos = 0;
  DURATION_PART.lastIndex = 0;
  for (let match = DURATION_PART.exec(text); match !== null; match = DURATION_PART.exec(text)) {
    if (match.index !== pos) {
      return null;
    }
    total += Number(asciiDigits(match[1] ?? "")) * (UNITS.get(match[2] ?? "") ?? 0);
    pos = match.index + match[0].length;
  }
  if (pos === 0) {
    return text ? number(text) : null;
  }
  return pos === text.length ? total : null;
}

/** RFC 9110 Retry-After: delay-seconds or an HTTP-date; a date in the past is 0. */
export function parseRetryAfter(value: string, now: number): number | null {
  const seconds = number(value);
  if (seconds !== null) {
    return Math.max(seconds, 0);
  }
  const when = parseHttpDate(strip(value));
  return when === null ? null : Math.max(when - now, 0);
}

/** `retry-after-ms: 1500` -> 1.5 seconds. */
export function parseMillis(value: string): number | null {
  const millis = number(value);
  return millis === null ? null : millis / 1000;
}

const D2 = "\\p{Nd}\\p{Nd}";
const RFC3339 = new RegExp(
  `^(\\p{Nd}{4})-(${D2})-(${D2})[Tt ](${D2}):(${D2}):(${D2})(?:\\.(\\p{Nd}+))?(?:([Zz])|([+-])(${D2}):(${D2}))$`,
  "u",
);

/** An RFC 3339 time (`2026-08-21T12:40:59Z`, `...+02:00`, fractions), as seconds from now. */
export function parseRfc3339(value: string, now: number): number | null {
  const match = RFC3339.exec(strip(value));
  if (match === null) {
    return null;
  }
  const [year, month, day, hour, minute, second, tzH, tzM] = [1, 2, 3, 4, 5, 6, 10, 11].map((i) =>
    Number(asciiDigits(match[i] ?? "0")),
  ) as [number, number, number, number, number, number, number, number];
  const offsetMinutes = match[8] ? 0 : (tzH * 60 + tzM) * (match[9] === "-" ? -1 : 1);
  if (Math.abs(offsetMinutes) >= 24 * 60) {
    return null; // Python's timezone() refuses it
  }
  const stamp = civilSeconds(year, month, day, hour, minute, second);
  if (stamp === null) {
    return null;
  }
  const fraction = Number(`0.${asciiDigits(match[7] ?? "0")}`);
  return stamp - offsetMinutes * 60 + fraction - now;
}

/** Generic `x-ratelimit-reset`: epoch seconds (epoch milliseconds above 1e12, seconds from
 * now below 1e9). */
export function parseEpoch(value: string, now: number): number | null {
  const n = number(value);
  if (n === null) {
    return null;
  }
  if (n < 1e9) {
    return n;
  }
  return (n > 1e12 ? n / 1000 : n) - now;
}

/** A prose date (`2026-04-01`) and optional time (`00:00`, `00:00:00`), read as UTC. */
export function parseDateUtc(date: string, clock: string | undefined, now: number): number | null {
  const time = clock || "00:00";
  return parseRfc3339(`${date}T${time}${[...time].length === 5 ? ":00" : ""}Z`, now);
}

type Parser = (value: string, now: number) => number | null;

/** The parser of each header format that providers.json names (date_utc is prose only). */
export const PARSERS: Readonly<Record<Exclude<Format, "date_utc">, Parser>> = {
  retry_after: parseRetryAfter,
  millis: (value) => parseMillis(value),
  epoch: parseEpoch,
  duration: (value) => parseDuration(value),
  rfc3339: parseRfc3339,
};

/** Read `value` in `format`; null where it cannot be read. */
export function parseFormat(format: Format, value: string, now: number): number | null {
  return format === "date_utc" ? parseDateUtc(value, undefined, now) : PARSERS[format](value, now);
}

function hasLeft(value: string | null): boolean {
  const n = value === null ? null : number(value);
  return n !== null && n > 0;
}

/** Every reset signal in `headers`, clamped. `windows: false` leaves out the per-dimension
 * rate windows (they say nothing about a quota); `dimension` keeps only that window; without
 * one, a window whose `remaining` header says something is left is left out. */
export function headerSignals(
  headers: HeaderLookup,
  now: number,
  options: { windows?: boolean; dimension?: string | null } = {},
): Signal[] {
  const { windows = true, dimension = null } = options;
  const found: Signal[] = [];
  for (const signal of RULES.headerSignals) {
    add(found, headers, signal, now);
  }
  if (windows) {
    for (const signal of RULES.windows) {
      if (dimension !== null && signal.dimension !== dimension) {
        continue;
      }
      if (dimension === null && signal.remaining && hasLeft(headers.get(signal.remaining))) {
        continue;
      }
      add(found, headers, signal, now);
    }
  }
  return found;
}

function add(found: Signal[], headers: HeaderLookup, signal: SignalRule, now: number): void {
  const value = headers.get(signal.name);
  if (value !== null) {
    const seconds = parseFormat(signal.format, value, now);
    if (seconds !== null) {
      found.push([clamp(seconds), signal.name]);
    }
  }
}

/** The longest signal, clamped; the first one on a tie. */
export function longest(signals: Iterable<Signal>): Signal | null {
  let best: Signal | null = null;
  for (const [raw, source] of signals) {
    const seconds = clamp(raw);
    if (best === null || seconds > best[0]) {
      best = [seconds, source];
    }
  }
  return best;
}

/** Seconds until the headers say the key may be used again, and the header that said it. */
export function resetAfter(headers: HeaderLookup, now: number): Signal | null {
  return longest(headerSignals(headers, now));
}

/** A reset stated in an error message (lower-cased), by the data's prose patterns in order. */
export function proseSignal(text: string, now: number): Signal | null {
  for (const [pattern, format] of RULES.prose) {
    const found = pattern.exec(text);
    if (found === null) {
      continue;
    }
    const seconds =
      format === "date_utc"
        ? parseDateUtc(found[1] ?? "", found[2], now)
        : PARSERS[format](found[1] ?? "", now);
    if (seconds !== null) {
      return [clamp(seconds), "message"];
    }
  }
  return null;
}
