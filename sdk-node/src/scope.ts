/**
 * `CallScope`: one call's cancellation. Links the caller's `AbortSignal` and the call's timer into
 * one signal, remembers which of them fired, and lets go of both in `dispose()` (always called
 * from a `finally`).
 *
 * @module
 */

import { ProxyConnectionError, ProxyTimeoutError, PoolSwitchError } from "./errors.js";

const MAX_DELAY_MS = 2_147_483_647;

/** Why a scope's signal fired. */
export type AbortKind = "caller" | "timeout" | "closed";

/** @internal */
export class CallScope {
  readonly #controller = new AbortController();
  readonly #caller: AbortSignal | undefined;
  readonly #onCallerAbort = (): void => this.#abort("caller");
  #timer: ReturnType<typeof setTimeout> | undefined;
  #deadline = Infinity;
  #kind: AbortKind | undefined;
  /** The timeout currently armed (for messages). */
  #armedMs: number | null = null;

  constructor(caller: AbortSignal | undefined, timeoutMs: number) {
    this.#caller = caller;
    if (caller?.aborted) {
      this.#abort("caller");
    } else {
      caller?.addEventListener("abort", this.#onCallerAbort, { once: true });
      this.arm(timeoutMs);
    }
  }

  /** The signal to hand to `fetch` and to waits. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Why the signal fired, if it did. */
  get kind(): AbortKind | undefined {
    return this.#kind;
  }

  /** Milliseconds left before the armed timer fires. */
  remaining(): number {
    return Math.max(0, this.#deadline - Date.now());
  }

  /** `true` when a wait of `ms` would end before the armed timer fires (always, with none). */
  fits(ms: number): boolean {
    return ms < this.remaining();
  }

  /**
   * (Re)start the timer: abort with kind `timeout` after `ms` unless disarmed or re-armed;
   * `0` arms none (no deadline).
   */
  arm(ms: number): void {
    this.disarm();
    if (this.#kind !== undefined || ms === 0) {
      return;
    }
    this.#armedMs = ms;
    this.#deadline = Date.now() + ms;
    // setTimeout fires at once past 2^31-1 ms (~24.8 days): cap the delay there.
    this.#timer = setTimeout(() => this.#abort("timeout"), Math.min(ms, MAX_DELAY_MS));
  }

  /** Stop the timer (a stream waiting on its consumer is not idle). */
  disarm(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#deadline = Infinity;
  }

  /** Abort the call because its consumer is done with it (say, a `break` out of a stream). */
  close(): void {
    this.#abort("closed");
  }

  /** Release the timer and the listener on the caller's signal. Safe to call more than once. */
  dispose(): void {
    this.disarm();
    this.#caller?.removeEventListener("abort", this.#onCallerAbort);
  }

  /** Wait `ms`, or reject (with the signal's reason) as soon as the scope aborts. */
  sleep(ms: number): Promise<void> {
    const signal = this.signal;
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      const timer = setTimeout(
        () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
        Math.min(ms, MAX_DELAY_MS),
      );
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * The error to throw for `error`, caught while this scope was in force: a timeout or abort when
   * the signal fired, a `PoolSwitchError` as it is, anything else a broken connection.
   */
  failure(error: unknown, what: string): PoolSwitchError {
    if (this.#kind === "caller") {
      return new ProxyTimeoutError(`${what} was aborted`, {
        timeoutMs: null,
        aborted: true,
        cause: this.#caller?.reason,
      });
    }
    if (this.#kind === "timeout") {
      return new ProxyTimeoutError(`${what} timed out after ${this.#armedMs} ms`, {
        timeoutMs: this.#armedMs,
        aborted: false,
      });
    }
    if (error instanceof PoolSwitchError) {
      return error;
    }
    return new ProxyConnectionError(`${what} failed: ${describe(error)}`, { cause: error });
  }

  #abort(kind: AbortKind): void {
    if (this.#kind !== undefined) {
      return;
    }
    this.#kind = kind;
    this.dispose();
    const what = { caller: "aborted", timeout: "timed out", closed: "closed" }[kind];
    this.#controller.abort(new PoolSwitchError(`the call was ${what}`));
  }
}

/** A short text for a network error: undici's `fetch failed` says little, its cause says more. */
export function describe(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth += 1) {
    if (current instanceof Error) {
      const code = (current as { code?: unknown }).code;
      const named = typeof code === "string" && !current.message.includes(code);
      parts.push(named ? `${current.message} (${code})` : current.message);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.filter((part) => part !== "").join(": ") || "unknown error";
}
