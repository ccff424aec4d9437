/**
 * Key values out of every relayed error answer (the server's `redact.py`): every form a key
 * value takes on the wire — raw, percent-encoded (as `quote`, `quote(safe="")` and `quote_plus`
 * write it, upper- or lower-case hex), JSON-escaped (`\/`) — is replaced by the key's id, so
 * `Bearer <value>` comes out as `Bearer <id>` and `key=<value>` as `key=<id>`. Pure.
 *
 * @module
 */

/** The headers about a body's bytes: dropped when those bytes change (decoded, redacted). */
export const DESCRIBES_BYTES: ReadonlySet<string> = new Set([
  "content-encoding",
  "content-length",
  "etag",
  "content-md5",
  "digest",
  "content-digest",
  "repr-digest",
]);

const UNRESERVED = /[A-Za-z0-9_.~-]/;

/** Percent-encode the UTF-8 bytes of `value`, leaving unreserved characters and `safe`. */
function percent(value: string, safe: string, plus: boolean): string {
  let out = "";
  for (const byte of new TextEncoder().encode(value)) {
    const c = String.fromCharCode(byte);
    if (byte < 0x80 && (UNRESERVED.test(c) || safe.includes(c))) {
      out += c;
    } else if (plus && c === " ") {
      out += "+";
    } else {
      out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    }
  }
  return out;
}

/** Every form `value` may take on the wire (raw, percent-encoded, JSON-escaped). */
export function wireForms(value: string): Set<string> {
  const encoded = [percent(value, "", false), percent(value, "/", false), percent(value, "", true), percent(value, "/", true)];
  const lower = encoded.map((form) => form.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()));
  return new Set([value, value.replaceAll("/", "\\/"), ...encoded, ...lower]);
}

const ASCII = /^[\x00-\x7f]*$/;

/** "binary" text: one char per byte, so that replacing works on the bytes exactly. */
function binary(text: string): string {
  return Buffer.from(text, "utf8").toString("latin1");
}

export class Redactor {
  /** [form as binary text, id as binary text], longest form first. */
  readonly #forms: [string, string][];
  /** No text shorter than the shortest form can hold one. */
  readonly #shortest: number;

  /** `secrets`: [key value, key id] pairs. */
  constructor(secrets: Iterable<readonly [string, string]>) {
    const ids = new Map<string, string>();
    for (const [value, id] of secrets) {
      for (const form of wireForms(value)) {
        const bytes = binary(form);
        if (!ids.has(bytes)) {
          ids.set(bytes, binary(id));
        }
      }
    }
    this.#forms = [...ids].sort((a, b) => b[0].length - a[0].length);
    this.#shortest = Math.min(...this.#forms.map(([form]) => form.length));
  }

  /** `data` with every key form replaced by its id (the same array when none is in it). */
  redact(data: Uint8Array): Uint8Array {
    const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("latin1");
    const out = this.#replace(text);
    return out === text ? data : new Uint8Array(Buffer.from(out, "latin1"));
  }

  /** The same for text (a message, a header value). */
  redactText(text: string): string {
    if (text.length < this.#shortest) {
      return text;
    }
    const bytes = ASCII.test(text) ? text : binary(text);
    const out = this.#replace(bytes);
    return out === bytes ? text : Buffer.from(out, "latin1").toString("utf8");
  }

  #replace(text: string): string {
    for (const [form, id] of this.#forms) {
      if (text.includes(form)) {
        text = text.split(form).join(id);
      }
    }
    return text;
  }

  toString(): string {
    return `Redactor(${this.#forms.length} forms)`;
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }
}
