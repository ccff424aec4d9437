/**
 * `PoolSwitchResponse`: one answer from the proxy, read whole, with the PoolSwitch headers parsed.
 *
 * @module
 */

/** Header naming the key that produced a proxied answer. */
export const KEY_ID_HEADER = "x-poolswitch-key-id";
/** Header counting the upstream attempts made for a request (1 = no failover). */
export const ATTEMPTS_HEADER = "x-poolswitch-attempts";
/** Header carrying the code of an answer the proxy made itself. */
export const ERROR_HEADER = "x-poolswitch-error";

const decoder = new TextDecoder();

/**
 * An answer from the proxy, its body already read: `client.send()` resolves to a 2xx one, and a
 * `ProxyError` or `UpstreamError` keeps a non-2xx one as `error.response`.
 */
export class PoolSwitchResponse {
  /** The HTTP status. */
  readonly status: number;
  /** The response headers. */
  readonly headers: Headers;
  /** The key that produced this answer (`x-poolswitch-key-id`); `null` on the proxy's own answers. */
  readonly keyId: string | null;
  /** Upstream attempts for this request (`x-poolswitch-attempts`); `null` when absent. */
  readonly attempts: number | null;
  /** The code in `x-poolswitch-error` when the proxy made this answer itself, else `null`. */
  readonly proxyError: string | null;
  readonly #bytes: Uint8Array;

  /** Wraps an answer whose body was read whole (the client builds these; tests may too). */
  constructor(status: number, headers: Headers, bytes: Uint8Array) {
    this.status = status;
    this.headers = headers;
    this.keyId = headers.get(KEY_ID_HEADER);
    this.attempts = attemptsOf(headers);
    this.proxyError = headers.get(ERROR_HEADER);
    this.#bytes = bytes;
  }

  /** `true` for a 2xx status. */
  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** The body as UTF-8 text. */
  text(): string {
    return decoder.decode(this.#bytes);
  }

  /** The body parsed as JSON (throws a `SyntaxError` when it is not JSON). */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }

  /** A copy of the raw body bytes. */
  bytes(): Uint8Array {
    return this.#bytes.slice();
  }

  /**
   * The body as the methods like `client.post()` return it: parsed JSON when the content type is
   * JSON (`null` for an empty body), else the text. A JSON body that does not parse comes back as
   * text.
   */
  body(): unknown {
    const text = this.text();
    if (!isJson(this.headers.get("content-type"))) {
      return text;
    }
    if (text.trim() === "") {
      return null;
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
}

/** The `x-poolswitch-attempts` count, or `null` when absent or not a number. */
export function attemptsOf(headers: Headers): number | null {
  const value = headers.get(ATTEMPTS_HEADER);
  return value !== null && /^\d+$/.test(value.trim()) ? Number(value) : null;
}

function isJson(contentType: string | null): boolean {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || type.endsWith("+json");
}
