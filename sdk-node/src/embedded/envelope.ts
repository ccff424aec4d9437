/**
 * The answers the pool makes itself, byte for byte as the proxy draws them (the server's
 * `envelope.py`, `gateway.py` `_answer_error`): `x-poolswitch-error: <code>`, the retry hint and
 * an OpenAI-style body, thrown as the SDK's `ProxyError` with that answer as `error.response`.
 *
 * @module
 */

import { errorFromResponse, type ProxyError } from "../errors.js";
import { PoolSwitchResponse } from "../response.js";
import { retryHeaders } from "./hints.js";

/** The pool-made errors and their statuses (the server's `errors.py`). */
export const STATUSES = {
  no_available_keys: 429,
  upstream_unreachable: 502,
  upstream_timeout: 504,
  upstream_unavailable: 503,
  bad_request: 400,
} as const;

export type PoolErrorCode = keyof typeof STATUSES;

/** A number as Python's `json.dumps` writes it (`float` values keep their `.0`). */
function pyNumber(value: number, float: boolean): string {
  const text = String(value);
  return float && Number.isInteger(value) ? `${text}.0` : text;
}

/** A string as Python's `json.dumps` writes it (non-ASCII escaped as `\uXXXX`). */
function pyString(value: string): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A fresh request id as the proxy makes one: 16 lowercase hex digits (the server's `requestid.py`). */
export function newRequestId(): string {
  let id = "";
  for (let i = 0; i < 4; i++) {
    id += Math.floor(Math.random() * 0x10000)
      .toString(16)
      .padStart(4, "0");
  }
  return id;
}

/**
 * The body of the envelope: `{"error": {"type": "poolswitch_error", "code", "message",
 * "retry_after", "request_id"}}` with Python's separators. `floatWait`: the wait is a float in
 * the proxy (`upstream_unavailable`), else an int.
 */
export function envelopeBody(
  code: string,
  message: string,
  retryAfter: number | null,
  floatWait = false,
  requestId = newRequestId(),
): string {
  const wait = retryAfter === null ? "null" : pyNumber(retryAfter, floatWait);
  return (
    `{"error": {"type": "poolswitch_error", "code": ${pyString(code)}, ` +
    `"message": ${pyString(message)}, "retry_after": ${wait}, "request_id": ${pyString(requestId)}}}`
  );
}

const encoder = new TextEncoder();

/**
 * The `ProxyError` of a pool-made answer, with the answer the proxy would send: status,
 * content-type, content-length, `x-poolswitch-error`, the request id (`x-request-id` and
 * `x-poolswitch-request-id`, also in the body), the retry hint, `x-poolswitch-attempts`
 * (when attempts were made) and the envelope body.
 */
export function poolError(code: PoolErrorCode, message: string, retryAfter: number | null, attempts: number): ProxyError {
  const requestId = newRequestId();
  const body = encoder.encode(envelopeBody(code, message, retryAfter, code === "upstream_unavailable", requestId));
  const headers = new Headers();
  headers.append("content-type", "application/json");
  headers.append("content-length", String(body.length));
  headers.append("x-poolswitch-error", code);
  headers.append("x-request-id", requestId);
  headers.append("x-poolswitch-request-id", requestId);
  for (const [name, value] of retryHeaders(code, retryAfter)) {
    headers.append(name, value);
  }
  if (attempts) {
    headers.append("x-poolswitch-attempts", String(attempts));
  }
  return errorFromResponse(new PoolSwitchResponse(STATUSES[code], headers, body)) as ProxyError;
}
