/**
 * The answers of the request loop, as the proxy sends them (the server's `proxy.py` `_relay`,
 * `_answer`, `_stream`): the upstream's headers minus hop-by-hop ones, key values redacted, plus
 * `x-poolswitch-key-id` and `x-poolswitch-attempts`; a held error answer decoded and redacted with
 * a `content-length` of its own; a 2xx event stream as its held-back first event, then the rest.
 *
 * @module
 */

import { errorFromResponse, type UpstreamError } from "../errors.js";
import { ATTEMPTS_HEADER, KEY_ID_HEADER, PoolSwitchResponse } from "../response.js";
import type { Redactor } from "./redact.js";
import { DESCRIBES_BYTES } from "./redact.js";
import { HOP_BY_HOP, type Attempt } from "./transport.js";

/** A 2xx answer (or an event stream whose first event was an error, relayed as the proxy does). */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  /** With `whole`: the body. */
  readonly bytes: Uint8Array | null;
  /** Without `whole`: the body as it arrives. */
  readonly stream: ReadableStream<Uint8Array> | null;
}

export interface Held {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Uint8Array;
  readonly key: number;
}

/** The answer's headers: the upstream's (minus hop-by-hop, key values redacted) + the pool's. */
export function responseHeaders(source: Headers, redactor: Redactor, keyId: string, attempts: number, dropBytes: boolean): Headers {
  const headers = new Headers();
  const listed = source.get("connection");
  const named = listed === null ? null : new Set(listed.split(",").map((t) => t.trim().toLowerCase()));
  source.forEach((value, name) => {
    if (HOP_BY_HOP.has(name) || named?.has(name) || (dropBytes && DESCRIBES_BYTES.has(name))) {
      return;
    }
    headers.append(name, redactor.redactText(value));
  });
  headers.set(KEY_ID_HEADER, keyId);
  headers.set(ATTEMPTS_HEADER, String(attempts));
  return headers;
}

/**
 * The last upstream answer, decoded and redacted: thrown as UpstreamError (a 2xx event stream
 * that began with an error is returned, as the proxy relays it).
 */
export function relayHeld(held: Held, redactor: Redactor, keyId: string, attempts: number, whole: boolean): Answer {
  const body = redactor.redact(held.body);
  const headers = responseHeaders(held.headers, redactor, keyId, attempts, true);
  headers.set("content-length", String(body.length));
  if (held.status >= 400) {
    throw errorFromResponse(new PoolSwitchResponse(held.status, headers, body)) as UpstreamError;
  }
  if (whole) {
    return { status: held.status, headers, bytes: body, stream: null };
  }
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(body);
      controller.close();
    },
  });
  return { status: held.status, headers, bytes: null, stream };
}

/**
 * A 2xx event stream: the held-back first event, then the rest as it arrives. `onCut`: the
 * upstream failed mid-way (too late to fail over; not called when the caller closed it).
 */
export function relayStream(
  head: Uint8Array,
  reader: ReadableStreamDefaultReader<Uint8Array> | null,
  attempt: Attempt,
  onCut: () => void,
): ReadableStream<Uint8Array> {
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (head.length > 0) {
        controller.enqueue(head);
      }
      if (reader === null) {
        attempt.done();
        controller.close();
      }
    },
    async pull(controller) {
      if (reader === null) {
        return;
      }
      try {
        const { done, value } = await reader.read();
        if (done) {
          attempt.done();
          controller.close();
        } else {
          controller.enqueue(value);
        }
      } catch (error) {
        attempt.done();
        if (!cancelled && !attempt.signal.aborted) {
          onCut();
        }
        controller.error(error);
      }
    },
    async cancel(reason) {
      cancelled = true;
      attempt.done();
      await reader?.cancel(reason).catch(() => undefined);
    },
  });
}
