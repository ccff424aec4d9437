/**
 * Calendar arithmetic of the reset deadlines (the server's resets.py with `datetime` and
 * `zoneinfo`): proleptic Gregorian civil times, and local times in an IANA zone read through
 * Intl.DateTimeFormat (Node has full ICU), else a fixed offset. A local time that a transition
 * skips or repeats is read with the offset in force before it (Python's fold=0).
 */

function isLeap(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

function daysInMonth(year: number, month: number): number {
  return [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
}

/** Days from 1970-01-01 to a proleptic Gregorian date. */
export function daysFromCivil(year: number, month: number, day: number): number {
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
