/**
 * What an upstream answer means for the key that gave it: the embedded client's twin of the
 * server's `classifier.py` `Outcome`, `Fault` and `Verdict` (same names, same values).
 *
 * The classifier (classifier.ts) turns an answer into a `Verdict`; the pool and the retry plan
 * act on it. Pure data: no I/O.
 */

export type Outcome =
  | "success"
  | "rate_limited"
  | "quota_exhausted"
  | "key_invalid"
  | "upstream_overloaded"
  | "upstream_error"
  | "client_error"
  | "network_error"
  | "timeout";

/** Whose fault an unsuccessful answer was (classifier.py `Fault`). */
export type Fault = "none" | "key" | "upstream" | "either" | "caller";

const FAULTS: Readonly<Record<Outcome, Fault>> = {
  success: "none",
  rate_limited: "key",
  quota_exhausted: "key",
  key_invalid: "key",
  upstream_overloaded: "upstream",
  upstream_error: "either",
  client_error: "caller",
  network_error: "upstream",
  timeout: "either",
};

export interface Verdict {
  readonly outcome: Outcome;
  /** The request moves on (another key, or the same after a backoff). */
  readonly failover: boolean;
  /** Park the key for this many seconds (null: don't). */
  readonly cooldown: number | null;
  /** Disable the key until it is enabled again. */
  readonly disable: boolean;
  /** Not the key's fault: wait (full jitter) first, don't penalise. */
  readonly backoff: boolean;
  /** Where `cooldown` came from, or which onStatus rule decided. */
  readonly source: string | null;
  /** `disable` only once the key is confirmed bad (verify.ts). */
  readonly confirm: boolean;
}

export function verdict(outcome: Outcome, fields: Partial<Omit<Verdict, "outcome">> = {}): Verdict {
  return Object.freeze({
    outcome,
    failover: false,
    cooldown: null,
    disable: false,
    backoff: false,
    source: null,
    confirm: false,
    ...fields,
  });
}

export const SUCCESS = verdict("success");
export const CLIENT_ERROR = verdict("client_error");
export const KEY_INVALID = verdict("key_invalid", { failover: true, disable: true, confirm: true });
export const UPSTREAM_OVERLOADED = verdict("upstream_overloaded", { failover: true, backoff: true });
export const UPSTREAM_ERROR = verdict("upstream_error", { failover: true });
export const NETWORK_ERROR = verdict("network_error", { failover: true });
export const TIMEOUT = verdict("timeout", { failover: true });

/** Whose fault it was; an onStatus `retry` rule (backoff) makes it the upstream's. */
export function faultOf(v: Verdict): Fault {
  return v.backoff ? "upstream" : FAULTS[v.outcome];
}

/** Was it the key's fault? (Then the key is never reused for this request.) */
export function isKeyFault(v: Verdict): boolean {
  return !v.backoff && FAULTS[v.outcome] === "key";
}

/** An `onStatus` override, as in the proxy's config (`on_status`). */
export interface StatusRule {
  readonly status: number;
  /** `retry` | `failover` | `cooldown` | `disable` | `relay` */
  readonly action: "retry" | "failover" | "cooldown" | "disable" | "relay";
  /** Only answers whose body's head contains this text (case-insensitive). */
  readonly match?: string | null;
  /** With `cooldown`: how long to park the key. */
  readonly seconds?: number | null;
}

/** Reads answers for one pool (classifier.ts makes it from the pool's options). */
export interface Classifier {
  /** openai | anthropic | gemini | generic (resolved, never "auto"). */
  readonly profile: string;
  /** `headers` as fetch gives them; `body` the answer's head (decoded or not: the
   * classifier undoes a Content-Encoding the headers still name); `now` Unix seconds. */
  classify(status: number, headers: Headers, body: Uint8Array, now: number): Verdict;
  /** The first event of a 2xx event stream: null when it is content, else its verdict. */
  classifyStreamStart(firstEvent: Uint8Array, headers: Headers, now: number): Verdict | null;
}
