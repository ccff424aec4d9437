/**
 * What an answer's head says, for the classifier's tables (classifier.py `_read`, `_facts`,
 * `_collect`, `_sse_event`): the body decoded (bounded) and read as UTF-8 with replacement, as
 * Python's JSON where it is JSON (pyjson.ts), else searched for the quoted fields; the
 * identifiers most specific first; the headers as the server's httpx reads them.
 */

import { decode, DecodeError } from "./decoding.js";
import { RULES } from "./profiles.js";
import { isObject, loads, MAX_DEPTH, PyInt, truthy, type PyValue } from "./pyjson.js";
import { SPACE, strip } from "./pytext.js";
import type { HeaderLookup } from "./resets.js";

const BODY_LIMIT = RULES.bodyBytes;

// Field names the code reads for their meaning (OpenAI's `type` names the exhausted dimension;
// Gemini's `code` is the HTTP status, its QuotaFailure violations have quotaId and quotaValue).
const TYPE = "type";
const CODE = "code";
const QUOTA_ID = "quotaId";
const QUOTA_VALUE = "quotaValue";

const WANTED = new Set([...RULES.identifierFields, ...RULES.factFields, ...RULES.bodyFields.map((f) => f.name)]);
const QUOTED = new RegExp(
  `"(${[...WANTED].map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})"[${SPACE}]*:[${SPACE}]*"([^"\\\\]{0,200})"`,
  "gu",
);
const LINES = /\r\n|\r|\n/;
const UTF8 = new TextDecoder("utf-8", { ignoreBOM: true });

export interface Facts {
  /** The body's head, lower-cased: phrases and rule matches. */
  readonly text: string;
  /** Error identifiers, lower-cased, most specific first. */
  readonly fields: readonly string[];
  /** OpenAI/Groq `type`: a dimension ("requests" or "tokens"). */
  readonly dimension: string | null;
  /** Gemini QuotaFailure violations, lower-cased. */
  readonly quotaIds: readonly string[];
  readonly quotaValues: readonly PyValue[];
  /** Each body field's string values (resets.body_fields, in order). */
  readonly bodyValues: readonly (readonly string[])[];
  /** A numeric `code` that is an HTTP status (Gemini). */
  readonly httpCode: number | null;
}

export const NOTHING: Facts = {
  text: "",
  fields: [],
  dimension: null,
  quotaIds: [],
  quotaValues: [],
  bodyValues: RULES.bodyFields.map(() => []),
  httpCode: null,
};

/** The headers as the server reads them: aiohttp decodes each value as UTF-8, a byte that is
 * not part of a valid sequence kept as a lone surrogate (Python's surrogateescape); fetch gives
 * each byte as one character (ISO-8859-1). */
export function serverHeaders(headers: Headers): HeaderLookup {
  let read: Map<string, string> | null = null;
  for (const [name, value] of headers) {
    if (!ASCII.test(value)) {
      read ??= new Map([...headers]);
      read.set(name, surrogateEscape(value));
    }
  }
  const decoded = read;
  return decoded === null ? headers : { get: (name) => decoded.get(name.toLowerCase()) ?? null };
}

const ASCII = /^[\x00-\x7f]*$/;

/** Bytes (one character each) as Python's `bytes.decode("utf-8", "surrogateescape")`. */
export function surrogateEscape(text: string): string {
  const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i += 1;
      continue;
    }
    const [size, least] = b >= 0xc2 && b <= 0xdf ? [2, 0x80] : b >= 0xe0 && b <= 0xef ? [3, 0x800] : b >= 0xf0 && b <= 0xf4 ? [4, 0x10000] : [0, 0];
    let code = size === 2 ? b & 0x1f : size === 3 ? b & 0x0f : b & 0x07;
    let valid = size > 0 && i + size <= bytes.length;
    for (let k = 1; valid && k < size; k += 1) {
      const next = bytes[i + k] as number;
      valid = (next & 0xc0) === 0x80;
      code = (code << 6) | (next & 0x3f);
    }
    if (valid && code >= least && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff)) {
      out += String.fromCodePoint(code);
      i += size;
    } else {
      out += String.fromCharCode(0xdc00 + b); // not UTF-8: the byte, escaped
      i += 1;
    }
  }
  return out;
}

// --- the body's facts ------------------------------------------------------------------------

export function read(body: Uint8Array, encoding: string | null): Facts {
  const magic = body[0] === 0x1f && body[1] === 0x8b;
  let bytes = body;
  if ((encoding !== null && encoding !== "" && encoding !== "identity") || magic) {
    try {
      bytes = decode(body, magic && !encoding ? "gzip" : encoding, BODY_LIMIT).body;
    } catch (error) {
      if (error instanceof DecodeError) {
        return NOTHING;
      }
      throw error;
    }
  }
  const text = UTF8.decode(bytes.subarray(0, BODY_LIMIT));
  return facts(text, loads(text, MAX_DEPTH));
}

type Values = Map<string, PyValue[]>;

function push(into: Values, key: string, value: PyValue): void {
  const list = into.get(key);
  if (list === undefined) {
    into.set(key, [value]);
  } else {
    list.push(value);
  }
}

/** The wanted fields anywhere in a JSON document, depth first (strings and integers, booleans
 * among them, as Python's `isinstance(v, (str, int))`). */
function collect(doc: PyValue, into: Values): void {
  const stack: PyValue[] = [doc];
  while (stack.length > 0) {
    const node = stack.pop() as PyValue;
    if (isObject(node)) {
      const children: PyValue[] = [];
      for (const [key, value] of node) {
        if (WANTED.has(key) && (typeof value === "string" || typeof value === "boolean" || value instanceof PyInt)) {
          push(into, key, value);
        } else if (isObject(value) || Array.isArray(value)) {
          children.push(value);
        }
      }
      for (let i = children.length - 1; i >= 0; i -= 1) {
        stack.push(children[i] as PyValue);
      }
    } else if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i -= 1) {
        stack.push(node[i] as PyValue);
      }
    }
  }
}

export function facts(text: string, doc: PyValue | undefined): Facts {
  const values: Values = new Map();
  if (doc !== undefined && (isObject(doc) || Array.isArray(doc))) {
    collect(doc, values);
  } else {
    QUOTED.lastIndex = 0;
    for (const match of text.matchAll(QUOTED)) {
      push(values, match[1] as string, match[2] as string);
    }
  }
  const strings = (key: string): string[] =>
    (values.get(key) ?? []).filter((v): v is string => typeof v === "string").map((v) => v.toLowerCase());
  const codes = (values.get(CODE) ?? []).filter(
    (v): v is PyInt => v instanceof PyInt && v.value >= 400n && v.value <= 599n,
  );
  return {
    text: text.toLowerCase(),
    fields: RULES.identifierFields.flatMap(strings),
    dimension: strings(TYPE).find((t) => RULES.dimensionTypes.has(t)) ?? null,
    quotaIds: strings(QUOTA_ID),
    quotaValues: values.get(QUOTA_VALUE) ?? [],
    bodyValues: RULES.bodyFields.map((f) => (values.get(f.name) ?? []).filter((v): v is string => typeof v === "string")),
    httpCode: codes.length > 0 ? Number((codes[0] as PyInt).value) : null,
  };
}

/** The `event` name and the joined `data` lines of one SSE event block. */
export function sseEvent(block: Uint8Array): [string, string] {
  let event = "";
  const data: string[] = [];
  for (const line of UTF8.decode(block).split(LINES)) {
    if (!line) {
      if (event || data.length > 0) {
        break;
      }
      continue;
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    value = value.startsWith(" ") ? value.slice(1) : value;
    if (name === "event") {
      event = strip(value);
    } else if (name === "data") {
      data.push(value);
    }
  }
  return [event, data.join("\n")];
}

export function carriesError(doc: PyValue | undefined): boolean {
  let node = doc;
  if (Array.isArray(node) && node.length > 0) {
    node = node[0];
  }
  return isObject(node) && truthy(node.get("error"));
}
