/**
 * The provider profiles as data: the server's `providers.json`, embedded at build time
 * (scripts/profiles.mjs writes profiles.data.ts), read once and checked here, as the server's
 * `poolswitch.profiles` does. Every table of the classifier and the reset parsers comes from
 * it; the code owns only the formats and the arithmetic. A mistyped rule fails at import with
 * the place named.
 */

import type { Outcome } from "./verdict.js";
import { PROVIDERS_JSON } from "./profiles.data.js";
import { pyRegex } from "./pytext.js";

/** The outcomes a kind may name (success, network_error and timeout are never read from data). */
export const OUTCOMES: readonly Outcome[] = [
  "rate_limited",
  "quota_exhausted",
  "key_invalid",
  "upstream_overloaded",
  "upstream_error",
  "client_error",
];

/** The reset formats a parser exists for (resets.ts). */
export const FORMATS = ["retry_after", "millis", "epoch", "duration", "rfc3339", "date_utc"] as const;
export type Format = (typeof FORMATS)[number];
/** The formats of a header's or a body field's value (`date_utc` reads a phrase: prose only). */
const VALUE_FORMATS = new Set<string>(FORMATS.filter((f) => f !== "date_utc"));


export interface Deadline {
  /** `month_start`: 00:00 on the 1st of next month; `midnight`: the next one; in `zone`. */
  readonly until: "month_start" | "midnight";
  readonly zone: string;
  /** Where the time zone database lacks `zone`. */
  readonly fallbackUtcOffsetHours: number | null;
  readonly source: string;
}

export interface Kind {
  readonly name: string;
  readonly outcome: Outcome;
  readonly deadline: Deadline | null;
  /** Park at least cooldown_seconds (Gemini "limit: 0"). */
  readonly atLeastCooldownSeconds: boolean;
  /** The cooldown's source, whatever signal set it. */
  readonly source: string | null;
}

export interface Profile {
  readonly name: string;
  readonly hosts: readonly string[];
  readonly hostSuffixes: readonly string[];
  /** identifier -> kind: the common ones, then the profile's own (in the server's order). */
  readonly markers: ReadonlyMap<string, string>;
  /** (lower-cased text, kind), checked first. */
  readonly phrases: readonly (readonly [string, string])[];
  readonly verifyPath: string | null;
  readonly verifyHeaders: readonly (readonly [string, string])[];
}

export interface Refinement {
  readonly kind: string;
  readonly quotaValue: string | null;
  readonly textPattern: RegExp | null;
  readonly quotaIdContains: string | null;
}

export interface Signal {
  readonly name: string;
  readonly format: Format;
  readonly dimension: string | null;
  readonly remaining: string | null;
  readonly source: string | null;
}

export interface Rules {
  readonly version: number;
  readonly bodyBytes: number;
  readonly maxResetSeconds: number;
  readonly defaultRateLimitCooldown: number;
  readonly kinds: ReadonlyMap<string, Kind>;
  readonly statusKinds: ReadonlyMap<number, string>;
  readonly identifierFields: readonly string[];
  readonly profiles: ReadonlyMap<string, Profile>;
  readonly refineFields: ReadonlySet<string>;
  readonly refineQuotaIds: boolean;
  readonly refinements: readonly Refinement[];
  readonly eventStatus: ReadonlyMap<string, number>;
  readonly headerSignals: readonly Signal[];
  readonly windows: readonly Signal[];
  readonly dimensionTypes: ReadonlySet<string>;
  readonly bodyFields: readonly Signal[];
  readonly factFields: readonly string[];
  readonly prose: readonly (readonly [RegExp, Format])[];
  /** unit -> seconds, in the data's order. */
  readonly durationUnits: ReadonlyMap<string, number>;
  readonly remainingQuotaHeaders: readonly string[];
}

export class ProfileError extends Error {
  override name = "ProfileError";
}

/** Typed access to the document that names the place of every problem. */
class Reader {
  constructor(
    readonly doc: unknown,
    readonly where: string,
  ) {}

  fail(problem: string): ProfileError {
    return new ProfileError(`providers.json: ${this.where}: ${problem}`);
  }

  private at(name: string): string {
    return this.where ? `${this.where}.${name}` : name;
  }

  private object(): Record<string, unknown> {
    if (typeof this.doc !== "object" || this.doc === null || Array.isArray(this.doc)) {
      throw this.fail("must be an object");
    }
    return this.doc as Record<string, unknown>;
  }

  get(name: string, optional = false): Reader {
    const doc = this.object();
    if (!Object.prototype.hasOwnProperty.call(doc, name)) {
      if (!optional) {
        throw new Reader(null, this.at(name)).fail("missing");
      }
      return new Reader(null, this.at(name));
    }
    return new Reader(doc[name], this.at(name));
  }

  /** The members, `$comment`s left out, in document order (integer-like keys are read as
   * the server reads them: see statusKinds). */
  items(): [string, Reader][] {
    return Object.entries(this.object())
      .filter(([k]) => !k.startsWith("$"))
      .map(([k, v]) => [k, new Reader(v, this.at(k))]);
  }

  each(): Reader[] {
    if (!Array.isArray(this.doc)) {
      throw this.fail("must be a list");
    }
    return this.doc.map((v, i) => new Reader(v, `${this.where}[${i}]`));
  }

  text(): string {
    if (typeof this.doc !== "string" || !this.doc) {
      throw this.fail("must be a non-empty string");
    }
    return this.doc;
  }

  maybeText(): string | null {
    return this.doc === null || this.doc === undefined ? null : this.text();
  }

  number(): number {
    if (typeof this.doc !== "number") {
      throw this.fail("must be a number");
    }
    return this.doc;
  }

  integer(): number {
    if (typeof this.doc !== "number" || !Number.isInteger(this.doc)) {
      throw this.fail("must be an integer");
    }
    return this.doc;
  }

  flag(fallback?: boolean): boolean {
    if (this.doc === null && fallback !== undefined) {
      return fallback;
    }
    if (typeof this.doc !== "boolean") {
      throw this.fail("must be true or false");
    }
    return this.doc;
  }

  texts(): string[] {
    return this.each().map((item) => item.text());
  }

  pattern(): RegExp {
    try {
      return pyRegex(this.text());
    } catch (error) {
      throw this.fail(`not a regular expression this client reads: ${(error as Error).message}`);
    }
  }

  oneOf<T extends string>(known: ReadonlySet<string> | ReadonlyMap<string, unknown>, what: string): T {
    const value = this.text();
    if (!known.has(value)) {
      throw this.fail(`unknown ${what} ${JSON.stringify(value)}`);
    }
    return value as T;
  }
}

function readKinds(doc: Reader): Map<string, Kind> {
  const kinds = new Map<string, Kind>();
  for (const [name, kind] of doc.items()) {
    let deadline: Deadline | null = null;
    const spec = kind.get("deadline", true);
    if (spec.doc !== null) {
      const offset = spec.get("fallback_utc_offset_hours", true);
      deadline = {
        until: spec.get("until").oneOf(new Set(["month_start", "midnight"]), "deadline"),
        zone: spec.get("zone").text(),
        fallbackUtcOffsetHours: offset.doc === null ? null : offset.number(),
        source: spec.get("source").text(),
      };
    }
    kinds.set(name, {
      name,
      outcome: kind.get("outcome").oneOf(new Set(OUTCOMES), "outcome"),
      deadline,
      atLeastCooldownSeconds: kind.get("at_least_cooldown_seconds", true).flag(false),
      source: kind.get("source", true).maybeText(),
    });
  }
  return kinds;
}

function readSignal(doc: Reader, nameField = "name"): Signal {
  return {
    name: doc.get(nameField).text(),
    format: doc.get("format").oneOf<Format>(VALUE_FORMATS, "format"),
    dimension: doc.get("dimension", true).maybeText(),
    remaining: doc.get("remaining", true).maybeText(),
    source: doc.get("source", true).maybeText(),
  };
}

/** The rules of a providers.json document (already parsed); ProfileError names what is wrong. */
export function parseRules(document: unknown): Rules {
  const root = new Reader(document, "");
  const kinds = readKinds(root.get("kinds"));
  const common = root.get("markers").items().map(([k, v]) => [k, v.oneOf<string>(kinds, "kind")] as const);
  const profiles = new Map<string, Profile>();
  for (const [name, doc] of root.get("profiles").items()) {
    const verify = doc.get("verify");
    const markers = new Map<string, string>(common);
    for (const [k, v] of doc.get("markers").items()) {
      markers.set(k, v.oneOf(kinds, "kind"));
    }
    profiles.set(name, {
      name,
      hosts: doc.get("hosts").texts(),
      hostSuffixes: doc.get("host_suffixes").texts(),
      markers,
      phrases: doc
        .get("phrases")
        .each()
        .map((p) => [p.get("text").text().toLowerCase(), p.get("kind").oneOf<string>(kinds, "kind")] as const),
      verifyPath: verify.get("path").maybeText(),
      verifyHeaders: verify.get("headers").items().map(([k, v]) => [k, v.text()] as const),
    });
  }
  const refine = root.get("refine_rate");
  const refinements = refine.get("rules").each().map((rule) => ({
    kind: rule.get("kind").oneOf<string>(kinds, "kind"),
    quotaValue: rule.get("quota_value", true).maybeText(),
    textPattern: rule.get("text_pattern", true).doc === null ? null : rule.get("text_pattern").pattern(),
    quotaIdContains: rule.get("quota_id_contains", true).maybeText(),
  }));
  const statusKinds = new Map<number, string>();
  for (const [status, kind] of root.get("status_kinds").items()) {
    if (!/^[0-9]+$/.test(status)) {
      throw kind.fail("must be an HTTP status");
    }
    statusKinds.set(Number(status), kind.oneOf(kinds, "kind"));
  }
  const resets = root.get("resets");
  const limits = root.get("limits");
  const eventStatus = new Map<string, number>();
  for (const [k, v] of root.get("event_status").items()) {
    eventStatus.set(k, v.integer());
  }
  const units = new Map<string, number>();
  for (const [unit, value] of resets.get("duration_units").items()) {
    units.set(unit, value.number());
  }
  for (const needed of ["rate", "overloaded", "error", "client"]) {
    if (!kinds.has(needed)) {
      throw root.get("kinds").fail(`the kind ${JSON.stringify(needed)} is missing (the classifier names it)`);
    }
  }
  return {
    version: root.get("version").integer(),
    bodyBytes: limits.get("body_bytes").integer(),
    maxResetSeconds: limits.get("max_reset_seconds").number(),
    defaultRateLimitCooldown: limits.get("default_rate_limit_cooldown").number(),
    kinds,
    statusKinds,
    identifierFields: root.get("identifier_fields").texts(),
    profiles,
    refineFields: new Set(refine.get("when_fields").texts()),
    refineQuotaIds: refine.get("when_quota_ids").flag(),
    refinements,
    eventStatus,
    headerSignals: resets.get("headers").each().map((s) => readSignal(s)),
    windows: resets.get("windows").each().map((s) => readSignal(s)),
    dimensionTypes: new Set(resets.get("dimension_types").texts()),
    bodyFields: resets.get("body_fields").each().map((s) => readSignal(s, "field")),
    factFields: resets.get("fact_fields").texts(),
    prose: resets
      .get("prose")
      .each()
      .map((p) => [p.get("pattern").pattern(), p.get("format").oneOf<Format>(new Set(FORMATS), "format")] as const),
    durationUnits: units,
    remainingQuotaHeaders: root.get("remaining_quota_headers").texts(),
  };
}

/** The embedded rules (the server's providers.json at build time). */
export const RULES: Rules = parseRules(PROVIDERS_JSON);

/** The raw embedded document, as the server's file holds it. */
export const PROVIDERS_DOCUMENT: unknown = PROVIDERS_JSON;
