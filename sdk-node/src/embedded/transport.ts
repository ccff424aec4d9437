/**
 * The upstream exchange over `fetch`: what the request loop needs beyond `fetch` itself — one
 * attempt's timer linked to the call's signal, reading a bounded body or a stream's first event,
 * and telling a failed connection (nothing sent) from a failure after sending. The caller's side
 * of a request (headers to drop, the query parameter the key replaces, paths that climb above the
 * base) is here too, as the server's `request.py` has it.
 *
 * @module
 */

const MAX_DELAY_MS = 2_147_483_647;

/** Headers that belong to one connection (RFC 9110 7.6.1): never forwarded, either way. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Where callers put their own credentials: never forwarded, wherever the pool key goes. */
export const CALLER_CREDENTIALS: ReadonlySet<string> = new Set(["authorization", "x-api-key", "x-goog-api-key", "x-poolswitch-token"]);

/** Every request header not forwarded upstream (the server's `dropped_headers`). */
export function droppedHeaders(authHeaderName: string): ReadonlySet<string> {
  return new Set([
    ...HOP_BY_HOP,
    ...CALLER_CREDENTIALS,
    "host",
    "content-length",
    "expect",
    "x-poolswitch-pool",
    authHeaderName.toLowerCase(),
  ]);
}

/** The target minus every `name=` parameter of its query (the caller's own key). */
export function withoutQueryParam(target: string, name: string): string {
  const at = target.indexOf("?");
  if (at < 0) {
    return target;
  }
  const prefix = `${name}=`;
  const kept = target
    .slice(at + 1)
    .split("&")
    .filter((p) => p !== name && !p.startsWith(prefix));
  return kept.length > 0 ? `${target.slice(0, at)}?${kept.join("&")}` : target.slice(0, at);
}

/** True when `..` segments (plain or percent-encoded) climb above the path's root. */
export function escapesBase(rawPath: string): boolean {
  if (!rawPath.includes(".") && !rawPath.includes("%") && !rawPath.includes("\\")) {
    return false;
  }
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    path = rawPath;
  }
  let depth = 0;
  for (const segment of path.replaceAll("\\", "/").split("/")) {
    if (segment === "..") {
      depth -= 1;
      if (depth < 0) {
        return true;
      }
    } else if (segment !== "" && segment !== ".") {
      depth += 1;
    }
  }
  return false;
}

/**
 * One attempt's cancellation: its own timer (the attempt timeout), and the call's signal (the
 * caller's abort or deadline) passed on. `timedOut` tells the two apart.
 */
export class Attempt {
  readonly controller = new AbortController();
  timedOut = false;
  readonly #outer: AbortSignal | undefined;
  readonly #onAbort = (): void => this.controller.abort(this.#outer?.reason);
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** `outer`: the call's signal, if it has one (none: no caller signal, no call timeout). */
  constructor(outer: AbortSignal | undefined, ms: number) {
    this.#outer = outer;
    if (outer?.aborted) {
      this.controller.abort(outer.reason);
      return;
    }
    outer?.addEventListener("abort", this.#onAbort, { once: true });
    this.#timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(new Error("the attempt timed out"));
    }, Math.min(Math.max(ms, 1), MAX_DELAY_MS));
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The answer is here and goes on as a stream: no attempt timer any longer (the call's signal still applies). */
  stopTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** The attempt is over: let go of the timer and the call's signal. */
  done(): void {
    this.stopTimer();
    this.#outer?.removeEventListener("abort", this.#onAbort);
  }
}

/** Error codes of a connection that was never made (so the request was never sent). */
const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_CONNECT",
  "CERT_HAS_EXPIRED",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** The `code` of a fetch failure (undici puts it on the `cause`), if any. */
export function errorCode(error: unknown): string | null {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== null && typeof current === "object"; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") {
      return code;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return null;
}

/** True when the connection could not be made: nothing was sent. */
export function isConnectError(error: unknown): boolean {
  const code = errorCode(error);
  return code !== null && CONNECT_CODES.has(code);
}

/** A short text for a transport failure, as the proxy's forwarder words it; never a URL or header. */
export function transportText(error: unknown, timedOut: boolean): string {
  if (timedOut) {
    return "upstream did not answer in time";
  }
  const code = errorCode(error) ?? "fetch failed";
  return isConnectError(error) ? `cannot connect to upstream: ${code}` : `upstream connection failed: ${code}`;
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) {
    return chunks[0]!;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** Up to `limit` bytes of a body, and whether that was all of it (the rest is cancelled). */
export async function readUpTo(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  limit: number,
): Promise<{ bytes: Uint8Array; complete: boolean }> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      return { bytes: concat(chunks, size), complete: true };
    }
    if (size + value.length > limit) {
      chunks.push(value.subarray(0, limit - size));
      size = limit;
      await reader.cancel().catch(() => undefined);
      return { bytes: concat(chunks, size), complete: false };
    }
    chunks.push(value);
    size += value.length;
  }
}

function hasBlankLine(data: Uint8Array, from: number): boolean {
  for (let i = Math.max(from - 3, 0); i + 1 < data.length; i += 1) {
    if (data[i] === 10 && data[i + 1] === 10) {
      return true;
    }
    if (data[i] === 13 && data[i + 1] === 10 && data[i + 2] === 13 && data[i + 3] === 10) {
      return true;
    }
  }
  return false;
}

/**
 * Read until the first server-sent event is complete (a blank line), the body ends or `limit`
 * bytes have come; returns all that was read (the reader stays open for the rest).
 */
export async function readEvent(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  limit: number,
): Promise<{ head: Uint8Array; ended: boolean }> {
  let data: Uint8Array = new Uint8Array(0);
  while (data.length < limit) {
    const { done, value } = await reader.read();
    if (done) {
      return { head: data, ended: true };
    }
    const from = data.length;
    data = from === 0 ? value : concat([data, value], from + value.length);
    if (hasBlankLine(data, from)) {
      break;
    }
  }
  return { head: data, ended: false };
}

/** `true` for a `text/event-stream` answer. */
export function isEventStream(headers: Headers): boolean {
  return (headers.get("content-type") ?? "").startsWith("text/event-stream");
}

/**
 * What the request loop needs of a call's cancellation: `CallScope` (a caller's signal, a call
 * timeout, a stream), or `NO_SCOPE` for a call with neither (one AbortController less per call).
 */
export interface Scope {
  readonly signal: AbortSignal | undefined;
  /** Why the call's signal fired, if it did. */
  readonly kind: string | undefined;
  sleep(ms: number): Promise<void>;
}

export const NO_SCOPE: Scope = Object.freeze({
  signal: undefined,
  kind: undefined,
  sleep: (ms: number) => new Promise<void>((done) => setTimeout(done, Math.min(ms, MAX_DELAY_MS))),
});
