/**
 * `PoolSwitchStream`: a server-sent event stream through the proxy, as an async iterable that
 * yields each event as soon as it arrives.
 *
 * @module
 */

import { PoolSwitchError } from "./errors.js";
import { attemptsOf, KEY_ID_HEADER } from "./response.js";
import type { CallScope } from "./scope.js";
import { SSEParser, type ServerSentEvent } from "./sse.js";

/** What is known of a stream once its response headers arrived. */
export interface StreamInfo {
  /** The HTTP status (always 2xx: other answers are thrown as errors). */
  readonly status: number;
  /** The response headers. */
  readonly headers: Headers;
  /** The key serving this stream (`x-poolswitch-key-id`). */
  readonly keyId: string | null;
  /** Upstream attempts made before the stream started (`x-poolswitch-attempts`). */
  readonly attempts: number | null;
}

/** A stream whose response headers arrived; the client's side of `PoolSwitchStream`. */
export interface OpenedStream {
  readonly response: Response;
  readonly scope: CallScope;
  /** Milliseconds the stream may stay silent before it times out. */
  readonly idleMs: number;
  /** `"POST http://host/path"`, for messages. */
  readonly what: string;
}

/**
 * A server-sent event stream through the proxy. Iterate it with `for await`; the request is sent
 * when iteration starts (or on `open()`). Errors the proxy or upstream answered instead of a
 * stream are thrown from the first step, as for `client.request()`. Leaving the loop early
 * (`break`, `return`, a throw) closes the connection.
 *
 * ```js
 * for await (const event of client.stream("POST", "/v1/chat/completions", { json })) {
 *   if (event.data === "[DONE]") break;
 *   process.stdout.write(event.json().choices[0].delta.content ?? "");
 * }
 * ```
 */
export class PoolSwitchStream implements AsyncIterable<ServerSentEvent> {
  readonly #opener: () => Promise<OpenedStream>;
  #opening: Promise<OpenedStream> | undefined;
  #info: StreamInfo | undefined;
  #iterated = false;
  #closed = false;

  /**
   * Made by `client.stream()`, not by hand.
   * @param opener sends the request and resolves once a 2xx event-stream answer has arrived.
   */
  constructor(opener: () => Promise<OpenedStream>) {
    this.#opener = opener;
  }

  /** Send the request (once) and wait for the response headers. */
  async open(): Promise<StreamInfo> {
    return this.#infoOf(await this.#open());
  }

  /** Status, headers, key id and attempts, once the response headers arrived; before, `undefined`. */
  get info(): StreamInfo | undefined {
    return this.#info;
  }

  /** The key serving this stream, once known. */
  get keyId(): string | null {
    return this.#info?.keyId ?? null;
  }

  /** Upstream attempts made before this stream started, once known. */
  get attempts(): number | null {
    return this.#info?.attempts ?? null;
  }

  /** Close the connection, whether or not it was opened or iterated. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#opening === undefined) {
      return;
    }
    try {
      const opened = await this.#opening;
      opened.scope.close();
      opened.scope.dispose();
      await opened.response.body?.cancel().catch(() => undefined);
    } catch {
      // it failed to open: nothing to close
    }
  }

  /** Iterate the events; a stream can be iterated once. */
  [Symbol.asyncIterator](): AsyncIterator<ServerSentEvent> {
    if (this.#iterated) {
      throw new PoolSwitchError("a PoolSwitchStream can be iterated only once");
    }
    this.#iterated = true;
    return this.#events();
  }

  #open(): Promise<OpenedStream> {
    if (this.#closed) {
      return Promise.reject(new PoolSwitchError("the stream was closed"));
    }
    this.#opening ??= this.#opener();
    return this.#opening;
  }

  #infoOf(opened: OpenedStream): StreamInfo {
    if (this.#info === undefined) {
      const { status, headers } = opened.response;
      this.#info = {
        status,
        headers,
        keyId: headers.get(KEY_ID_HEADER),
        attempts: attemptsOf(headers),
      };
    }
    return this.#info;
  }

  async *#events(): AsyncGenerator<ServerSentEvent, void, undefined> {
    const opened = await this.#open();
    this.#infoOf(opened);
    const { response, scope, idleMs, what } = opened;
    const body = response.body;
    if (body === null) {
      scope.dispose();
      return;
    }
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const parser = new SSEParser();
    let finished = false;
    try {
      for (;;) {
        scope.arm(idleMs);
        const chunk = await reader.read().then(undefined, (error: unknown) => {
          if (scope.kind === "closed") {
            return { done: true as const, value: undefined }; // close() was called: end quietly
          }
          throw scope.failure(error, `the stream of ${what}`);
        });
        scope.disarm(); // the time our consumer takes is not the proxy's silence
        if (chunk.done) {
          break;
        }
        yield* parser.push(decoder.decode(chunk.value, { stream: true }));
      }
      yield* parser.push(decoder.decode());
      parser.end();
      finished = true;
    } finally {
      scope.dispose();
      if (!finished) {
        scope.close();
        await reader.cancel().catch(() => undefined);
      }
      reader.releaseLock();
    }
  }
}
