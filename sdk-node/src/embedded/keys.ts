/**
 * Keys and their state: the embedded twin of the server's `keys.py`.
 *
 * A `Key` is what the options say about one key: its id, weight and the value that carries its
 * secret (never shown: not in `String()`, `util.inspect`, `JSON.stringify`). A `KeyState` is what
 * the pool has learned about it. `KeyState` methods are the only state transitions; they do no
 * I/O and take the time (Unix seconds) as an argument.
 *
 * @module
 */

export const AVAILABLE = "available";
export const COOLING_DOWN = "cooling_down";
export const DISABLED = "disabled";

/** A key's state in `status()`. */
export type KeyStateName = typeof AVAILABLE | typeof COOLING_DOWN | typeof DISABLED;

/** A key as the options give it: `{ id, value, weight? }`, or the value alone (ids `key-1`, ...). */
export type KeyOption = string | { readonly id: string; readonly value: string; readonly weight?: number };

const INSPECT = Symbol.for("nodejs.util.inspect.custom");

/** A configured key. The value is kept in a private field and only the request loop reads it. */
export class Key {
  readonly id: string;
  readonly weight: number;
  readonly #value: string;
  readonly #authValue: string;

  /** `authScheme`: the word before the value in the auth header (`null`: the raw value). */
  constructor(id: string, value: string, weight: number, authScheme: string | null) {
    this.id = id;
    this.weight = weight;
    this.#value = value;
    this.#authValue = authScheme ? `${authScheme} ${value}` : value;
  }

  /** The bare secret (for the query parameter and the redactor). @internal */
  secret(): string {
    return this.#value;
  }

  /** The full auth header value (`Bearer <value>`). @internal */
  authValue(): string {
    return this.#authValue;
  }

  toString(): string {
    return `Key(id=${JSON.stringify(this.id)})`;
  }

  toJSON(): string {
    return this.id;
  }

  [INSPECT](): string {
    return this.toString();
  }
}

/**
 * Mutable state of one key, updated in place by the pool (one event loop: no locks).
 *
 * `availableAt` folds the state into one number compared on the hot path: 0 when available, the
 * cooldown deadline (Unix seconds) when cooling down, `Infinity` when disabled.
 */
export class KeyState {
  readonly keyId: string;
  availableAt = 0;
  disabled = false;
  reason: string | null = null;
  source: string | null = null;
  strikes = 0;
  /** 5xx or timeouts in a row (see `Pool.record`). */
  consecutiveErrors = 0;
  /** The outage guard's recoveries when that run began. */
  streakMark = 0;
  totalRequests = 0;
  successes = 0;
  errors = 0;
  failovers = 0;
  estimatedRemainingQuota: number | null = null;
  lastUsedAt: number | null = null;

  constructor(keyId: string) {
    this.keyId = keyId;
  }

  state(now: number): KeyStateName {
    if (this.disabled) {
      return DISABLED;
    }
    return this.availableAt > now ? COOLING_DOWN : AVAILABLE;
  }

  cooldownUntil(now: number): number | null {
    return !this.disabled && this.availableAt > now ? this.availableAt : null;
  }

  /** Cool down until `until`; an existing later deadline wins. */
  park(until: number, reason: string, source: string | null = null): void {
    if (!this.disabled && until >= this.availableAt) {
      this.availableAt = until;
      this.reason = reason;
      this.source = source;
    }
  }

  /**
   * How long to park for `reason`: doubled for each time the key failed the same way again after
   * returning, since its last success (capped at `cap`, never below the provider's `seconds`). A
   * late answer while still parked is no new failure.
   */
  escalated(seconds: number, reason: string, cap: number, now: number): number {
    if (this.availableAt > now) {
      return seconds;
    }
    if (this.reason === reason && this.strikes) {
      const longer = Math.min(seconds * 2 ** this.strikes, cap);
      seconds = Math.max(seconds, longer);
    }
    this.strikes += 1;
    return seconds;
  }

  succeeded(): void {
    this.strikes = 0;
    this.consecutiveErrors = 0;
  }

  disable(reason: string, source: string | null = null): void {
    this.disabled = true;
    this.availableAt = Infinity;
    this.reason = reason;
    this.source = source;
  }

  /** Back in service: no cooldown, not disabled, no strikes. */
  restore(): void {
    this.disabled = false;
    this.availableAt = 0;
    this.reason = null;
    this.source = null;
    this.strikes = 0;
    this.consecutiveErrors = 0;
  }
}

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/**
 * The keys of the options, checked: ids 1-64 letters, digits, `. _ : -` and unique; values
 * non-empty, without whitespace or control characters, unique; weights integers 1..1000. A plain
 * string is a value whose id is `key-<n>` (its place, from 1). Messages name the key by its place
 * and id, never its value.
 */
export function keysFromOptions(given: unknown, authScheme: string | null): Key[] {
  if (!Array.isArray(given) || given.length === 0) {
    throw new TypeError("keys must be a non-empty array of key values or { id, value, weight? } objects");
  }
  const ids = new Map<string, number>();
  const values = new Map<string, number>();
  return given.map((item: unknown, i) => {
    const at = `keys[${i}]`;
    let id: unknown;
    let value: unknown;
    let weight: unknown = 1;
    if (typeof item === "string") {
      id = `key-${i + 1}`;
      value = item;
    } else if (typeof item === "object" && item !== null && !Array.isArray(item)) {
      const record = item as Record<string, unknown>;
      for (const name of Object.keys(record)) {
        if (name !== "id" && name !== "value" && name !== "weight") {
          throw new TypeError(`${at}.${name}: unknown field (id, value, weight)`);
        }
      }
      ({ id, value } = record);
      weight = record["weight"] ?? 1;
    } else {
      throw new TypeError(`${at}: must be a key value or an { id, value, weight? } object`);
    }
    if (typeof id !== "string" || !KEY_ID.test(id)) {
      throw new TypeError(`${at}.id: must be 1-64 characters of letters, digits, . _ : -`);
    }
    if (typeof value !== "string" || value === "") {
      throw new TypeError(`${at}.value (key ${id}): must be a non-empty string`);
    }
    if (/[\s\x00-\x1f\x7f]/.test(value)) {
      throw new TypeError(`${at}.value (key ${id}): must not contain whitespace or control characters`);
    }
    if (typeof weight !== "number" || !Number.isInteger(weight) || weight < 1 || weight > 1000) {
      throw new TypeError(`${at}.weight (key ${id}): must be an integer from 1 to 1000`);
    }
    const sameId = ids.get(id);
    if (sameId !== undefined) {
      throw new TypeError(`${at}.id: duplicate id (also keys[${sameId}])`);
    }
    const sameValue = values.get(value);
    if (sameValue !== undefined) {
      throw new TypeError(`${at}.value (key ${id}): same value as keys[${sameValue}]`);
    }
    ids.set(id, i);
    values.set(value, i);
    return new Key(id, value, weight, authScheme);
  });
}
