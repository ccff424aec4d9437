/**
 * JSON as Python's `json.loads` reads it, for the classifier's walk of an error body.
 *
 * JSON.parse differs where the walk can tell: Python reads `NaN`, `Infinity` and `-Infinity`;
 * keeps an object's keys in document order (JavaScript puts integer-like keys first; a
 * duplicate key keeps its first place and its last value in both); tells an integer (`429`)
 * from a float (`429.0`, `4.29e2`); refuses an integer of more than 4300 digits; and gives up
 * (RecursionError) on a document nested deeper than its recursion limit allows.
 * Whitespace is JSON's four characters; a leading BOM is refused, as both do.
 */

import { MAX_INT_DIGITS } from "./pytext.js";

/** A JSON integer (Python `int`); JSON's other numbers are floats (`number`). */
export class PyInt {
  constructor(readonly value: bigint) {}
}

export type PyValue = null | boolean | string | number | PyInt | PyValue[] | PyObject;
export type PyObject = Map<string, PyValue>;

/** How deep Python's `json.loads` nests, called from the classifier (the default recursion
 * limit, 1000, less the frames below it; measured with CPython 3.11). */
export const MAX_DEPTH = 991;

class Refused extends Error {}

const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/y;
const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t",
};

/** `json.loads(text)`, or `undefined` where it raises (ValueError or RecursionError). */
export function loads(text: string, maxDepth: number = MAX_DEPTH): PyValue | undefined {
  let pos = 0;
  const refuse = (): never => {
    throw new Refused();
  };
  const skip = (): void => {
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
        pos += 1;
      } else {
        return;
      }
    }
  };
  const string = (): string => {
    pos += 1; // the opening quote
    let out = "";
    let start = pos;
    for (;;) {
      if (pos >= text.length) {
        refuse();
      }
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        out += text.slice(start, pos);
        pos += 1;
        return out;
      }
      if (c < 0x20) {
        refuse(); // strict: no control characters in strings
      }
      if (c !== 0x5c) {
        pos += 1;
        continue;
      }
      out += text.slice(start, pos);
      const e = text[pos + 1] ?? "";
      if (e === "u") {
        const hex = text.slice(pos + 2, pos + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
          refuse();
        }
        out += String.fromCharCode(parseInt(hex, 16));
        pos += 6;
      } else if (ESCAPES[e] !== undefined) {
        out += ESCAPES[e];
        pos += 2;
      } else {
        refuse();
      }
      start = pos;
    }
  };
  const value = (depth: number): PyValue => {
    const c = text[pos];
    if (c === '"') {
      return string();
    }
    if (c === "{" || c === "[") {
      if (depth >= maxDepth) {
        refuse();
      }
      return c === "{" ? object(depth + 1) : array(depth + 1);
    }
    for (const [word, meaning] of LITERALS) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return meaning;
      }
    }
    NUMBER.lastIndex = pos;
    const number = NUMBER.exec(text);
    if (number === null) {
      return refuse();
    }
    pos += number[0].length;
    if (number[1] === undefined && number[2] === undefined) {
      const digits = number[0].replace("-", "");
      if (digits.length > MAX_INT_DIGITS) {
        refuse();
      }
      return new PyInt(BigInt(number[0]));
    }
    return Number(number[0]);
  };
  const object = (depth: number): PyObject => {
    const out: PyObject = new Map();
    pos += 1;
    skip();
    if (text[pos] === "}") {
      pos += 1;
      return out;
    }
    for (;;) {
      if (text[pos] !== '"') {
        refuse();
      }
      const key = string();
      skip();
      if (text[pos] !== ":") {
        refuse();
      }
      pos += 1;
      skip();
      out.set(key, value(depth));
      skip();
      const next = text[pos];
      pos += 1;
      if (next === "}") {
        return out;
      }
      if (next !== ",") {
        refuse();
      }
      skip();
    }
  };
  const array = (depth: number): PyValue[] => {
    const out: PyValue[] = [];
    pos += 1;
    skip();
    if (text[pos] === "]") {
      pos += 1;
      return out;
    }
    for (;;) {
      out.push(value(depth));
      skip();
      const next = text[pos];
      pos += 1;
      if (next === "]") {
        return out;
      }
      if (next !== ",") {
        refuse();
      }
      skip();
    }
  };
  try {
    skip();
    const doc = value(0);
    skip();
    return pos === text.length ? doc : undefined;
  } catch (error) {
    if (error instanceof Refused || error instanceof RangeError) {
      return undefined;
    }
    throw error;
  }
}

const LITERALS: readonly (readonly [string, PyValue])[] = [
  ["null", null],
  ["true", true],
  ["false", false],
  ["NaN", Number.NaN],
  ["Infinity", Infinity],
  ["-Infinity", -Infinity],
];

export function isObject(value: PyValue | undefined): value is PyObject {
  return value instanceof Map;
}

/** Python's truth of a JSON value (`bool(v)`): NaN is true, 0, "", [] and {} are false. */
export function truthy(value: PyValue | undefined): boolean {
  if (value === undefined || value === null) {
    return false;
  }
  if (value instanceof PyInt) {
    return value.value !== 0n;
  }
  if (value instanceof Map) {
    return value.size > 0;
  }
  if (Array.isArray(value)) {
    return value.length > 0;
  }
  if (typeof value === "number") {
    return value !== 0;
  }
  return Boolean(value);
}

/** Python's `str(v)` of a JSON scalar that the classifier compares as text. */
export function pyStr(value: PyValue): string {
  if (value instanceof PyInt) {
    return value.value.toString();
  }
  if (typeof value === "boolean") {
    return value ? "True" : "False";
  }
  return String(value);
}
