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
import { asciiDigits, isDigit, pyFloat, pyInt, split, strip } from "./pytext.js";

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

const RFC3339 = /^(\p{Nd}{4})-(\p{Nd}\p{Nd})-(\p{Nd}\p{Nd})[Tt ](\p{Nd}\p{Nd}):(\p{Nd}\p{Nd}):(\p{Nd}\p{Nd})(?:\.(\p{Nd}+))?(?:([Zz])|([+-])(\p{Nd}\p{Nd}):(\p{Nd}\p{Nd}))$/u;

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

// --- date arithmetic -------------------------------------------------------------------------

function isLeap(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

function daysInMonth(year: number, month: number): number {
  return [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
}

/** Days from 1970-01-01 to a proleptic Gregorian date. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Unix seconds of a UTC civil time, or null where Python's `datetime()` refuses it. */
export function civilSeconds(
  year: number,
  month: number,
  day: number,
  hour = 0,
  minute = 0,
  second = 0,
): number | null {
  if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    return null;
  }
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) {
    return null;
  }
  return daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

const formatters = new Map<string, Intl.DateTimeFormat | null>();

function formatter(zone: string): Intl.DateTimeFormat | null {
  if (!formatters.has(zone)) {
    let made: Intl.DateTimeFormat | null = null;
    try {
      made = new Intl.DateTimeFormat("en-US", {
        timeZone: zone,
        hourCycle: "h23",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        second: "numeric",
        era: "short",
      });
    } catch {
      made = null; // not in this runtime's time zone database
    }
    formatters.set(zone, made);
  }
  return formatters.get(zone) ?? null;
}

/** A zone: an IANA name read through Intl, else a fixed offset. */
export type Zone = { readonly format: Intl.DateTimeFormat } | { readonly offsetSeconds: number };

export function zone(name: string, fallbackUtcOffsetHours: number | null): Zone {
  const format = formatter(name);
  if (format !== null) {
    return { format };
  }
  return { offsetSeconds: (fallbackUtcOffsetHours ?? 0) * 3600 };
}

/** The local civil time in `z` at Unix second `t` (whole seconds), as seconds of a UTC clock. */
function wall(z: Zone, t: number): number {
  if ("offsetSeconds" in z) {
    return t + z.offsetSeconds;
  }
  const parts: Record<string, string> = {};
  for (const part of z.format.formatToParts(new Date(Math.floor(t) * 1000))) {
    parts[part.type] = part.value;
  }
  const year = Number(parts.year) * (parts.era === "BC" || parts.era === "B" ? -1 : 1);
  return (
    daysFromCivil(year, Number(parts.month), Number(parts.day)) * 86400 +
    Number(parts.hour) * 3600 +
    Number(parts.minute) * 60 +
    Number(parts.second)
  );
}

function offsetAt(z: Zone, t: number): number {
  return wall(z, t) - Math.floor(t);
}

/** The Unix second of a local civil time in `z`; where it is ambiguous or skipped, read with
 * the offset in force before the transition (Python's fold=0). */
function fromWall(z: Zone, local: number): number {
  if ("offsetSeconds" in z) {
    return local - z.offsetSeconds;
  }
  const before = offsetAt(z, local - 86400);
  const after = offsetAt(z, local + 86400);
  const valid = [before, after].filter((o) => offsetAt(z, local - o) === o);
  if (valid.length === 0) {
    return local - before; // skipped: the offset before the gap
  }
  return local - Math.max(...valid); // ambiguous: the earlier instant
}

/** The local date in `z` at Unix time `now`. */
function localDate(z: Zone, now: number): [number, number, number] {
  const days = Math.floor(wall(z, Math.floor(now)) / 86400);
  const date = new Date(days * 86400 * 1000);
  return [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
}

/** Seconds until 00:00 on the 1st of next month in `z` (Anthropic's spend limits: UTC). */
export function untilMonthStart(now: number, z: Zone = { offsetSeconds: 0 }): number {
  const [year, month] = localDate(z, now);
  const [y, m] = month === 12 ? [year + 1, 1] : [year, month + 1];
  return fromWall(z, daysFromCivil(y, m, 1) * 86400) - now;
}

/** Seconds until the next midnight in `z` (Gemini's daily quotas: midnight Pacific). */
export function untilMidnight(now: number, z: Zone): number {
  const [year, month, day] = localDate(z, now);
  return fromWall(z, (daysFromCivil(year, month, day) + 1) * 86400) - now;
}

// --- HTTP dates, as Python's email.utils.parsedate_to_datetime reads them -------------------

const MONTHS = [
  "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
  "january", "february", "march", "april", "may", "june", "july", "august", "september",
  "october", "november", "december",
];
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const ZONES: Readonly<Record<string, number>> = {
  UT: 0, UTC: 0, GMT: 0, Z: 0, AST: -400, ADT: -300, EST: -500, EDT: -400,
  CST: -600, CDT: -500, MST: -700, MDT: -600, PST: -800, PDT: -700,
};

function int(text: string): number {
  const n = pyInt(text);
  if (n === null) {
    throw new RangeError("not an integer");
  }
  return Number(n);
}

/** Python's floor division and modulo (for a negative offset). */
function pyDivMod(a: number, b: number): [number, number] {
  const q = Math.floor(a / b);
  return [q, a - q * b];
}

/** `email.utils.parsedate_to_datetime(value).timestamp()` (naive = UTC), or null where it
 * raises. */
export function parseHttpDate(value: string): number | null {
  try {
    return httpDate(value);
  } catch {
    return null;
  }
}

function httpDate(value: string): number | null {
  if (!value) {
    return null;
  }
  let data = split(value);
  if (data.length === 0) {
    return null;
  }
  const first = data[0] as string;
  if (first.endsWith(",") || DAYS.includes(first.toLowerCase())) {
    data.shift();
  } else {
    const i = first.lastIndexOf(",");
    if (i >= 0) {
      data[0] = first.slice(i + 1);
    }
  }
  if (data.length === 3) {
    const stuff = (data[0] as string).split("-");
    if (stuff.length === 3) {
      data = [...stuff, ...data.slice(1)];
    }
  }
  if (data.length === 4) {
    const s = data[3] as string;
    let i = s.indexOf("+");
    if (i === -1) {
      i = s.indexOf("-");
    }
    if (i > 0) {
      data = [...data.slice(0, 3), s.slice(0, i), s.slice(i)];
    } else {
      data.push("");
    }
  }
  if (data.length < 5) {
    return null;
  }
  let [dd, mm, yy, tm, tz] = data.slice(0, 5) as [string, string, string, string, string];
  if (!(dd && mm && yy)) {
    return null;
  }
  mm = mm.toLowerCase();
  if (!MONTHS.includes(mm)) {
    [dd, mm] = [mm, dd.toLowerCase()];
    if (!MONTHS.includes(mm)) {
      return null;
    }
  }
  let month = MONTHS.indexOf(mm) + 1;
  if (month > 12) {
    month -= 12;
  }
  if (dd.endsWith(",")) {
    dd = dd.slice(0, -1);
  }
  if (yy.indexOf(":") > 0) {
    [yy, tm] = [tm, yy];
  }
  if (yy.endsWith(",")) {
    yy = yy.slice(0, -1);
    if (!yy) {
      return null;
    }
  }
  if (!isDigit(String.fromCodePoint(yy.codePointAt(0) ?? 0))) {
    [yy, tz] = [tz, yy];
  }
  if (tm.endsWith(",")) {
    tm = tm.slice(0, -1);
  }
  let parts = tm.split(":");
  let thh: string;
  let tmm: string;
  let tss: string;
  if (parts.length === 2) {
    [thh, tmm] = parts as [string, string];
    tss = "0";
  } else if (parts.length === 3) {
    [thh, tmm, tss] = parts as [string, string, string];
  } else if (parts.length === 1 && (parts[0] as string).includes(".")) {
    parts = (parts[0] as string).split(".");
    if (parts.length === 2) {
      [thh, tmm] = parts as [string, string];
      tss = "0";
    } else if (parts.length === 3) {
      [thh, tmm, tss] = parts as [string, string, string];
    } else {
      return null;
    }
  } else {
    return null;
  }
  let year: number;
  let day: number;
  let hour: number;
  let minute: number;
  let second: number;
  try {
    [year, day, hour, minute, second] = [int(yy), int(dd), int(thh), int(tmm), int(tss)];
  } catch {
    return null;
  }
  if (year < 100) {
    year += year > 68 ? 1900 : 2000;
  }
  let offset: number | null = null;
  tz = tz.toUpperCase();
  if (ZONES[tz] !== undefined) {
    offset = ZONES[tz] as number;
  } else {
    const n = pyInt(tz);
    if (n !== null) {
      offset = Number(n);
    }
    if (offset === 0 && tz.startsWith("-")) {
      offset = null;
    }
  }
  if (offset) {
    const sign = offset < 0 ? -1 : 1;
    const [hours, minutes] = pyDivMod(Math.abs(offset), 100);
    offset = sign * (hours * 3600 + minutes * 60);
    if (Math.abs(offset) >= 86400) {
      return null; // Python's timezone() refuses it
    }
  }
  const stamp = civilSeconds(year, month, day, hour, minute, second);
  if (stamp === null) {
    return null;
  }
  return stamp - (offset ?? 0);
}
