/**
 * Read an upstream answer: (status, headers, body head) -> Verdict; the server's classifier.py,
 * with every table from the embedded providers.json (profiles.ts). Pure: no I/O, the time is
 * an argument, nothing throws whatever the upstream sends.
 *
 * How an answer is read (status >= 400; anything below is a success without looking further):
 * 1. `onStatus` rules, in order, first match wins (same status and, with `match`, that text in
 *    the body's head, case-insensitive). See `ruleVerdict`.
 * 2. The profile's phrases, anywhere in the body's head (lower-cased).
 * 3. Error identifiers (`identifier_fields`, most specific first) from the JSON body, looked up
 *    in the markers (the common ones and the profile's own). A body that is not JSON is
 *    searched for the same quoted fields; with none, for the snake_case identifiers themselves.
 *    A compressed body is decoded first (decoding.ts, bounded); one that cannot be, is empty.
 * 4. The status alone (`status_kinds`); on a 5xx only an "overloaded" identifier counts.
 * A rate limit becomes a quota when `refine_rate` says so; a kind's cooldown comes from the reset
 * signals (resets.ts) and its own `deadline`.
 */

import { carriesError, type Facts, facts, read, serverHeaders, sseEvent } from "./facts.js";
import { RULES, type Kind, type Profile } from "./profiles.js";
import { loads, MAX_DEPTH, pyStr } from "./pyjson.js";
import { head, strip } from "./pytext.js";
import {
  type HeaderLookup,
  headerSignals,
  longest,
  parseFormat,
  proseSignal,
  type Signal,
  untilMidnight,
  untilMonthStart,
  zone,
} from "./resets.js";
import {
  type Classifier,
  CLIENT_ERROR,
  KEY_INVALID,
  type Outcome,
  type StatusRule,
  SUCCESS,
  UPSTREAM_ERROR,
  UPSTREAM_OVERLOADED,
  type Verdict,
  verdict,
} from "./verdict.js";

/** The profiles a pool may name (besides "auto"), in the data's order. */
export const PROFILES: readonly string[] = [...RULES.profiles.keys()];

/** Headers whose value is what is left of a key's quota (the pool's estimate). */
export const remainingQuotaHeaders: readonly string[] = RULES.remainingQuotaHeaders;

export const DEFAULT_RATE_LIMIT_COOLDOWN = RULES.defaultRateLimitCooldown;
const BODY_LIMIT = RULES.bodyBytes;

export { serverHeaders } from "./facts.js";

/** The outcomes whose verdict takes nothing from the answer (classifier.py `_FIXED`); a rate
 * limit or a quota carries a cooldown. */
const FIXED: ReadonlyMap<string, Verdict> = new Map([
  ["key_invalid", KEY_INVALID],
  ["upstream_overloaded", UPSTREAM_OVERLOADED],
  ["upstream_error", UPSTREAM_ERROR],
  ["client_error", CLIENT_ERROR],
]);

// --- the provider ----------------------------------------------------------------------------

const SCHEME_CHARS = /^[A-Za-z0-9+\-.]+$/;

/** Python's `urlsplit(url)`: the netloc (null without `//`) and the path. Throws where Python
 * raises ValueError. */
function urlsplit(raw: string): { netloc: string | null; path: string } {
  let url = raw.replace(/^[\x00-\x20]+/, "").replace(/[\t\r\n]/g, "");
  const colon = url.indexOf(":");
  if (colon > 0 && /^[A-Za-z]/.test(url) && SCHEME_CHARS.test(url.slice(0, colon))) {
    url = url.slice(colon + 1);
  }
  let netloc: string | null = null;
  if (url.startsWith("//")) {
    const rest = url.slice(2);
    const end = rest.search(/[/?#]/);
    netloc = end < 0 ? rest : rest.slice(0, end);
    url = end < 0 ? "" : rest.slice(end);
    if (netloc.includes("[") !== netloc.includes("]")) {
      throw new RangeError("Invalid IPv6 URL");
    }
    if (/[^\x00-\x7f]/.test(netloc)) {
      const bare = netloc.replace(/[@:#?]/g, "");
      const normal = bare.normalize("NFKC");
      if (normal !== bare && /[/?#@:]/.test(normal)) {
        throw new RangeError("netloc contains invalid characters under NFKC normalization");
      }
    }
  }
  const cut = url.search(/[?#]/);
  return { netloc, path: cut < 0 ? url : url.slice(0, cut) };
}

function hostname(netloc: string): string {
  const at = netloc.lastIndexOf("@");
  const hostinfo = at < 0 ? netloc : netloc.slice(at + 1);
  const colon = hostinfo.indexOf(":");
  const host = colon < 0 ? hostinfo : hostinfo.slice(0, colon);
  const percent = host.indexOf("%");
  return percent < 0 ? host.toLowerCase() : host.slice(0, percent).toLowerCase() + host.slice(percent);
}

/** The profile for an upstream: by host, else "generic". */
export function detectProvider(upstreamBaseUrl: string): string {
  const url = strip(upstreamBaseUrl);
  let host: string;
  try {
    const { netloc } = urlsplit(url.includes("//") ? url : `//${url}`);
    if (netloc !== null && netloc.includes("[")) {
      return "generic"; // an IP literal (or not a valid one): no provider's host
    }
    host = netloc === null ? "" : hostname(netloc).replace(/\.+$/, "");
  } catch {
    return "generic";
  }
  for (const profile of RULES.profiles.values()) {
    if (profile.hosts.includes(host)) {
      return profile.name;
    }
  }
  for (const profile of RULES.profiles.values()) {
    if (profile.hostSuffixes.some((suffix) => host.endsWith(suffix))) {
      return profile.name;
    }
  }
  return "generic";
}

/** The profile's verify path (verify.py `default_path`), relative to the base URL: a base URL
 * that already ends in the path's first segment (`https://api.openai.com/v1`) does not get it
 * twice. null: the profile has none. */
export function verifyPath(profile: string, upstreamBaseUrl: string): string | null {
  const path = RULES.profiles.get(profile)?.verifyPath ?? null;
  if (path === null) {
    return null;
  }
  let base: string;
  try {
    base = urlsplit(upstreamBaseUrl).path.replace(/\/+$/, "");
  } catch {
    base = "";
  }
  const slash = path.indexOf("/", 1);
  const [first, rest] = slash < 0 ? [path.slice(1), ""] : [path.slice(1, slash), path.slice(slash + 1)];
  return base.endsWith(`/${first}`) ? `/${rest}` : path;
}

/** Headers a verification request carries for the profile (`anthropic-version`...). */
export function verifyHeaders(profile: string): Record<string, string> {
  return Object.fromEntries(RULES.profiles.get(profile)?.verifyHeaders ?? []);
}

// --- the verdict -----------------------------------------------------------------------------

/** An onStatus rule's verdict (classifier.py `_rule_verdict`). A rule changes what happens, not
 * what it is called: the outcome stays the profile's, except that a client error the rule moves
 * on is counted as an upstream_error, a `cooldown` of anything but a rate limit or quota as
 * rate_limited, and a `disable` as key_invalid. `source` names the rule; null: not an action
 * (the rule is skipped). */
export function ruleVerdict(i: number, rule: StatusRule, outcome: Outcome): Verdict | null {
  const source = `on_status[${i}]`;
  const moved: Outcome = outcome === "client_error" ? "upstream_error" : outcome;
  switch (rule.action) {
    case "retry":
      return verdict(moved, { failover: true, backoff: true, source });
    case "failover":
      return verdict(moved, { failover: true, source });
    case "cooldown": {
      const parked = outcome === "rate_limited" || outcome === "quota_exhausted" ? outcome : "rate_limited";
      const seconds = Math.max(rule.seconds == null || rule.seconds === 0 ? 0 : rule.seconds, 0);
      return verdict(parked, { failover: true, cooldown: seconds, source });
    }
    case "disable":
      return verdict("key_invalid", { failover: true, disable: true, source });
    case "relay":
      return verdict(outcome, { source });
    default:
      return null;
  }
}

class RulesClassifier implements Classifier {
  private readonly table: Profile;

  constructor(
    readonly profile: string,
    readonly cooldownSeconds: number,
    readonly rules: readonly StatusRule[],
  ) {
    const table = RULES.profiles.get(profile);
    if (table === undefined) {
      throw new Error(`unknown provider profile ${JSON.stringify(profile)}: one of ${PROFILES.join(", ")}`);
    }
    this.table = table;
  }

  classify(status: number, headers: Headers, body: Uint8Array, now: number): Verdict {
    if (status < 400) {
      return SUCCESS;
    }
    const lookup = serverHeaders(headers);
    return this.decide(status, lookup, read(body, lookup.get("content-encoding")), now);
  }

  classifyStreamStart(firstEvent: Uint8Array, headers: Headers, now: number): Verdict | null {
    const [event, data] = sseEvent(firstEvent);
    const text = head(data, BODY_LIMIT);
    // one frame fewer below json.loads than for an answer (measured: see pyjson.MAX_DEPTH)
    const doc = event === "error" || data.includes('"error"') ? loads(text, MAX_DEPTH + 1) : undefined;
    if (event !== "error" && !carriesError(doc)) {
      return null;
    }
    const found = facts(text, doc);
    let status = found.httpCode;
    if (status === null) {
      const field = found.fields.find((f) => RULES.eventStatus.has(f));
      status = field === undefined ? 500 : (RULES.eventStatus.get(field) as number);
    }
    return this.decide(status, serverHeaders(headers), found, now);
  }

  private decide(status: number, headers: HeaderLookup, found: Facts, now: number): Verdict {
    const kind = this.kind(status, found);
    for (const [i, rule] of this.rules.entries()) {
      if (rule.status === status && (rule.match == null || found.text.includes(rule.match.toLowerCase()))) {
        const decided = ruleVerdict(i, rule, kind.outcome);
        if (decided !== null) {
          return decided;
        }
      }
    }
    return this.verdict(kind, headers, found, now);
  }

  private kind(status: number, found: Facts): Kind {
    const marked = this.marker(found);
    let name: string;
    if (status >= 500) {
      name = marked === "overloaded" ? "overloaded" : (RULES.statusKinds.get(status) ?? "error");
    } else {
      name = marked ?? RULES.statusKinds.get(status) ?? "client";
    }
    if (
      name === "rate" &&
      ((RULES.refineQuotaIds && found.quotaIds.length > 0) || found.fields.some((f) => RULES.refineFields.has(f)))
    ) {
      for (const rule of RULES.refinements) {
        const holds =
          (rule.quotaValue !== null && found.quotaValues.some((v) => pyStr(v) === rule.quotaValue)) ||
          (rule.textPattern !== null && rule.textPattern.test(found.text)) ||
          (rule.quotaIdContains !== null && found.quotaIds.some((id) => id.includes(rule.quotaIdContains as string)));
        if (holds) {
          name = rule.kind;
          break;
        }
      }
    }
    return RULES.kinds.get(name) as Kind;
  }

  private marker(found: Facts): string | null {
    if (!found.text) {
      return null;
    }
    for (const [phrase, kind] of this.table.phrases) {
      if (found.text.includes(phrase)) {
        return kind;
      }
    }
    const markers = this.table.markers;
    for (const field of found.fields) {
      const kind = markers.get(field);
      if (kind !== undefined) {
        return kind;
      }
    }
    if (found.fields.length === 0) {
      // not even quoted fields: look for the identifiers themselves
      for (const [marker, kind] of markers) {
        if (marker.includes("_") && found.text.includes(marker)) {
          return kind;
        }
      }
    }
    return null;
  }

  private verdict(kind: Kind, headers: HeaderLookup, found: Facts, now: number): Verdict {
    const fixed = FIXED.get(kind.outcome);
    if (fixed !== undefined) {
      return fixed;
    }
    const signals: Signal[] = [];
    RULES.bodyFields.forEach((field, i) => {
      let best: number | null = null;
      for (const value of found.bodyValues[i] ?? []) {
        const seconds = parseFormat(field.format, value, now);
        if (seconds !== null && (best === null || seconds > best)) {
          best = seconds;
        }
      }
      if (best !== null) {
        signals.push([best, field.source ?? field.name]);
      }
    });
    if (kind.outcome === "rate_limited") {
      signals.push(...headerSignals(headers, now, { dimension: found.dimension }));
      let best = longest(signals) ?? proseSignal(found.text, now);
      if (best === null) {
        best = [Math.min(DEFAULT_RATE_LIMIT_COOLDOWN, this.cooldownSeconds), "default"];
      }
      return verdict("rate_limited", { failover: true, cooldown: best[0], source: best[1] });
    }
    signals.push(...headerSignals(headers, now, { windows: false }));
    const prose = signals.length > 0 ? null : proseSignal(found.text, now);
    const deadline = kind.deadline;
    if (deadline !== null) {
      const z = zone(deadline.zone, deadline.fallbackUtcOffsetHours);
      const seconds = deadline.until === "month_start" ? untilMonthStart(now, z) : untilMidnight(now, z);
      signals.unshift([seconds, deadline.source]);
    }
    let best = longest(prose ? [...signals, prose] : signals);
    if (kind.atLeastCooldownSeconds) {
      best = [Math.max(best ? best[0] : 0, this.cooldownSeconds), best ? best[1] : ""];
    } else if (best === null) {
      best = [this.cooldownSeconds, "cooldown_seconds"];
    }
    return verdict("quota_exhausted", { failover: true, cooldown: best[0], source: kind.source || best[1] });
  }
}

export interface ClassifierOptions {
  /** openai | anthropic | gemini | generic, or "auto": by `upstreamBaseUrl` (detectProvider). */
  readonly provider: string;
  readonly upstreamBaseUrl: string;
  readonly cooldownSeconds: number;
  readonly onStatus?: readonly StatusRule[];
}

/** The classifier of one pool. Throws for an unknown profile. */
export function createClassifier(options: ClassifierOptions): Classifier {
  const profile = options.provider === "auto" ? detectProvider(options.upstreamBaseUrl) : options.provider;
  return new RulesClassifier(profile, options.cooldownSeconds, [...(options.onStatus ?? [])]);
}
