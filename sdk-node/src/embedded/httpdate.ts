/**
 * HTTP-dates as the server reads them: Python's `email.utils.parsedate_to_datetime`, its
 * leniency included (RFC 850 and asctime forms, a missing weekday, two-digit years, named US
 * zones, `-0000` as UTC), and its refusals (Python's `datetime` and `timezone` limits).
 */

import { civilSeconds } from "./calendar.js";
import { isDigit, pyInt, split } from "./pytext.js";

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
