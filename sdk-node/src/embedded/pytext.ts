/**
 * Python's reading of text, where the server's rules depend on it: what `str.strip()`,
 * `str.split()`, `float()` and `int()` accept, and Python `re` patterns (providers.json holds
 * them) as JavaScript regular expressions with Python's meaning of `\d`, `\s`, `\w`, `\b`, `.`
 * and `$`. Pure; used by the classifier, the reset parsers and the JSON reader.
 *
 * Python's character classes follow the Unicode database of its version (3.11: Unicode 14);
 * these follow the one of Node's ICU, so they differ only for characters assigned since.
 */

/** Python's whitespace (`str.isspace()`, re `\s`): JS `\s` without U+FEFF, plus U+001C-U+001F
 * and U+0085. */
export const SPACE = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const WORD = "\\p{L}\\p{N}_";
const IS_SPACE = new RegExp(`^[${SPACE}]$`, "u");
const LEADING = new RegExp(`^[${SPACE}]+`, "u");
const TRAILING = new RegExp(`[${SPACE}]+$`, "u");
const SPLIT = new RegExp(`[${SPACE}]+`, "u");
const DECIMAL = /\p{Nd}/gu;
const IS_DECIMAL = /^\p{Nd}$/u;

export function isSpace(char: string): boolean {
  return IS_SPACE.test(char);
}

/** `str.strip()` */
export function strip(text: string): string {
  return text.replace(LEADING, "").replace(TRAILING, "");
}

/** `str.split()` (no argument) */
export function split(text: string): string[] {
  const trimmed = strip(text);
  return trimmed ? trimmed.split(SPLIT) : [];
}

/** The first `count` code points of `text` (Python's `text[:count]`). */
export function head(text: string, count: number): string {
  if (text.length <= count) {
    return text;
  }
  let end = 0;
  for (let seen = 0; seen < count && end < text.length; seen += 1) {
    end += (text.codePointAt(end) ?? 0) > 0xffff ? 2 : 1;
  }
  return text.slice(0, end);
}

const digitValues = new Map<number, number>();

/** The value of a Unicode decimal digit: decimal digits come in runs of ten, 0 to 9. */
function digitValue(code: number): number {
  let value = digitValues.get(code);
  if (value === undefined) {
    let start = code;
    while (start > 0 && IS_DECIMAL.test(String.fromCodePoint(start - 1))) {
      start -= 1;
    }
    value = (code - start) % 10;
    digitValues.set(code, value);
  }
  return value;
}

/** Every Unicode decimal digit as its ASCII digit (as Python's `int()` and `float()` read them). */
export function asciiDigits(text: string): string {
  return text.replace(DECIMAL, (d) => (d >= "0" && d <= "9" ? d : String(digitValue(d.codePointAt(0) ?? 0))));
}

/** `str.isdigit()` of one character: decimal digits and the other digits (superscripts,
 * circled digits...), which `int()` refuses. */
export function isDigit(char: string): boolean {
  if (IS_DECIMAL.test(char)) {
    return true;
  }
  const c = char.codePointAt(0) ?? 0;
  return OTHER_DIGITS.some(([from, to]) => c >= from && c <= to);
}

const OTHER_DIGITS: readonly (readonly [number, number])[] = [
  [0xb2, 0xb3], [0xb9, 0xb9], [0x1369, 0x1371], [0x19da, 0x19da], [0x2070, 0x2070],
  [0x2074, 0x2079], [0x2080, 0x2089], [0x2460, 0x2468], [0x2474, 0x247c], [0x2488, 0x2490],
  [0x24ea, 0x24ea], [0x24f5, 0x24fd], [0x24ff, 0x24ff], [0x2776, 0x277e], [0x2780, 0x2788],
  [0x278a, 0x2792], [0x10a40, 0x10a43], [0x10e60, 0x10e68], [0x11052, 0x1105a], [0x1f100, 0x1f10a],
];

const FLOAT = /^[+-]?(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)(?:[eE][+-]?[0-9](?:_?[0-9])*)?$/;
const SPECIAL = /^([+-]?)(inf|infinity|nan)$/i;
const INT = /^[+-]?[0-9](?:_?[0-9])*$/;
/** Python refuses to read an integer of more digits (sys.int_info.default_max_str_digits). */
export const MAX_INT_DIGITS = 4300;

/** Python's `float(text)`, or null where it raises ValueError. */
export function pyFloat(text: string): number | null {
  const value = asciiDigits(strip(text));
  if (FLOAT.test(value)) {
    return Number(value.replace(/_/g, ""));
  }
  const special = SPECIAL.exec(value);
  if (special === null) {
    return null;
  }
  if ((special[2] ?? "").toLowerCase() === "nan") {
    return Number.NaN;
  }
  return special[1] === "-" ? -Infinity : Infinity;
}

/** Python's `int(text)`, or null where it raises ValueError. */
export function pyInt(text: string): bigint | null {
  const value = asciiDigits(strip(text));
  if (!INT.test(value)) {
    return null;
  }
  const digits = value.replace(/[+_-]/g, "");
  return digits.length > MAX_INT_DIGITS ? null : BigInt(value.replace(/_/g, ""));
}

/** Python's `\b`, with Python's (Unicode) word characters. */
const BOUNDARY = `(?:(?<=[${WORD}])(?![${WORD}])|(?<![${WORD}])(?=[${WORD}]))`;
const NOT_BOUNDARY = `(?:(?<=[${WORD}])(?=[${WORD}])|(?<![${WORD}])(?![${WORD}]))`;
const OUTSIDE: Readonly<Record<string, string>> = {
  d: "\\p{Nd}",
  D: "\\P{Nd}",
  s: `[${SPACE}]`,
  S: `[^${SPACE}]`,
  w: `[${WORD}]`,
  W: `[^${WORD}]`,
  b: BOUNDARY,
  B: NOT_BOUNDARY,
  A: "^",
  Z: "$",
};
const INSIDE: Readonly<Record<string, string>> = { d: "\\p{Nd}", s: SPACE, w: WORD, b: "\\x08" };
const CONTROL: Readonly<Record<string, string>> = { n: "\\n", t: "\\t", r: "\\r", f: "\\f", v: "\\v", a: "\\x07" };

/** A Python `re` pattern (no flags) as a JavaScript RegExp with the same matches. Throws for a
 * construct this does not translate (the data must then be changed, or this function). */
export function pyRegex(pattern: string, flags = ""): RegExp {
  let out = "";
  let inClass = false;
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`pattern ${JSON.stringify(pattern)}: ${what} is not supported`);
  };
  while (i < pattern.length) {
    const c = pattern[i] ?? "";
    if (c === "\\") {
      const n = pattern[i + 1];
      if (n === undefined) {
        fail("a trailing backslash");
      }
      const e = n as string;
      i += 2;
      if (e === "x" || e === "u" || e === "U") {
        const size = e === "x" ? 2 : e === "u" ? 4 : 8;
        const hex = pattern.slice(i, i + size);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== size) {
          fail(`the escape \\${e}${hex}`);
        }
        out += `\\u{${hex}}`;
        i += size;
      } else if (CONTROL[e] !== undefined) {
        out += CONTROL[e];
      } else if (inClass ? INSIDE[e] !== undefined : OUTSIDE[e] !== undefined) {
        out += inClass ? INSIDE[e] : OUTSIDE[e];
      } else if (!inClass && /[1-9]/.test(e)) {
        out += `\\${e}`;
      } else if (/[0-9A-Za-z]/.test(e)) {
        fail(`the escape \\${e}`);
      } else {
        out += `\\u{${(e.codePointAt(0) ?? 0).toString(16)}}`;
      }
      continue;
    }
    if (inClass) {
      if (c === "]") {
        inClass = false;
      } else if (c === "[") {
        out += "\\[";
        i += 1;
        continue;
      }
      out += c;
      i += 1;
      continue;
    }
    if (c === "[") {
      inClass = true;
      out += "[";
      i += 1;
      if (pattern[i] === "^") {
        out += "^";
        i += 1;
      }
      if (pattern[i] === "]") {
        out += "\\]";
        i += 1;
      }
      continue;
    }
    if (c === "(" && pattern[i + 1] === "?") {
      const rest = pattern.slice(i);
      const named = /^\(\?P<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest);
      const backref = /^\(\?P=([A-Za-z_][A-Za-z0-9_]*)\)/.exec(rest);
      if (named) {
        out += `(?<${named[1]}>`;
        i += named[0].length;
      } else if (backref) {
        out += `\\k<${backref[1]}>`;
        i += backref[0].length;
      } else if (/^\(\?(?::|=|!|<=|<!)/.test(rest)) {
        const open = /^\(\?(?::|=|!|<=|<!)/.exec(rest)?.[0] ?? "";
        out += open;
        i += open.length;
      } else {
        fail(`the group ${rest.slice(0, 4)}`);
      }
      continue;
    }
    if (c === "{") {
      const quantifier = /^\{([0-9]*)(,([0-9]*))?\}/.exec(pattern.slice(i));
      if (quantifier && (quantifier[1] || quantifier[2] !== undefined)) {
        const [, low, comma, high] = quantifier;
        out += comma === undefined ? `{${low}}` : `{${low || "0"},${high ?? ""}}`;
        i += quantifier[0].length;
        if (/^[+]/.test(pattern.slice(i))) {
          fail("a possessive quantifier");
        }
        continue;
      }
      out += "\\{";
      i += 1;
      continue;
    }
    if ((c === "*" || c === "+" || c === "?") && pattern[i + 1] === "+") {
      fail("a possessive quantifier");
    }
    out += c === "." ? "[^\\n]" : c === "$" ? "(?=\\n?$)" : c === "}" ? "\\}" : c;
    i += 1;
  }
  if (inClass) {
    fail("an unterminated class");
  }
  return new RegExp(out, `u${flags}`);
}
