/**
 * Server-sent events: the `text/event-stream` format as the WHATWG HTML standard parses it
 * (LF, CR or CRLF line ends, `:` comments, multi-line `data`, `event`, `id`, `retry`), fed piece by piece
 * so each event is delivered as soon as its blank line arrives.
 *
 * @module
 */

/** One server-sent event. */
export interface ServerSentEvent {
  /** The event type: the `event:` field, `"message"` when the event has none. */
  readonly event: string;
  /** The `data:` lines joined with `"\n"`. */
  readonly data: string;
  /** The last event id the stream set with `id:` (it carries over to later events), else `null`. */
  readonly id: string | null;
  /** The event's `retry:` field (the server's reconnection delay in milliseconds), else `null`. */
  readonly retry: number | null;
  /** `data` parsed as JSON (throws a `SyntaxError` when it is not JSON, such as `[DONE]`). */
  json<T = unknown>(): T;
}

class Event implements ServerSentEvent {
  constructor(
    readonly event: string,
    readonly data: string,
    readonly id: string | null,
    readonly retry: number | null,
  ) {}

  json<T = unknown>(): T {
    return JSON.parse(this.data) as T;
  }
}

/**
 * Incremental `text/event-stream` parser: `push()` decoded text as it arrives and get back the
 * events it completed; `end()` at the end of the stream.
 */
export class SSEParser {
  #buffer = "";
  #skipLF = false;
  #started = false;
  #type = "";
  #data: string[] = [];
  #lastId = "";
  #retry: number | null = null;

  /** Feed the next piece of text; returns the events it completed, in order. */
  push(text: string): ServerSentEvent[] {
    if (this.#skipLF && text !== "") {
      this.#skipLF = false;
      if (text.startsWith("\n")) {
        text = text.slice(1); // the second half of a CRLF split across two pieces
      }
    }
    this.#buffer += text;
    if (!this.#started && this.#buffer !== "") {
      this.#started = true;
      if (this.#buffer.startsWith("\uFEFF")) {
        this.#buffer = this.#buffer.slice(1);
      }
    }
    const events: ServerSentEvent[] = [];
    let start = 0;
    let cr = -2; // next CR / LF at or after `start` (-1: none left); found lazily, each scan once
    let lf = -2;
    for (;;) {
      if (cr !== -1 && cr < start) {
        cr = this.#buffer.indexOf("\r", start);
      }
      if (lf !== -1 && lf < start) {
        lf = this.#buffer.indexOf("\n", start);
      }
      if (cr === -1 && lf === -1) {
        break;
      }
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        end = cr;
        if (cr === this.#buffer.length - 1) {
          this.#skipLF = true; // a CR at the end: if the next piece starts with LF, it is a CRLF
          next = cr + 1;
        } else {
          next = this.#buffer[cr + 1] === "\n" ? cr + 2 : cr + 1;
        }
      } else {
        end = lf;
        next = lf + 1;
      }
      const event = this.#line(this.#buffer.slice(start, end));
      if (event !== undefined) {
        events.push(event);
      }
      start = next;
    }
    this.#buffer = this.#buffer.slice(start);
    return events;
  }

  /** The stream ended: an event without its closing blank line is dropped, as the standard says. */
  end(): void {
    this.#buffer = "";
    this.#skipLF = false;
    this.#type = "";
    this.#data = [];
    this.#retry = null;
  }

  #line(line: string): ServerSentEvent | undefined {
    if (line === "") {
      return this.#dispatch();
    }
    if (line.startsWith(":")) {
      return undefined; // a comment (often a keep-alive)
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    switch (field) {
      case "event":
        this.#type = value;
        break;
      case "data":
        this.#data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) {
          this.#lastId = value;
        }
        break;
      case "retry":
        if (/^\d+$/.test(value)) {
          this.#retry = Number(value);
        }
        break;
      default:
        break; // unknown fields are ignored
    }
    return undefined;
  }

  #dispatch(): ServerSentEvent | undefined {
    const type = this.#type;
    const data = this.#data;
    const retry = this.#retry;
    this.#type = "";
    this.#data = [];
    this.#retry = null;
    if (data.length === 0) {
      return undefined;
    }
    const id = this.#lastId === "" ? null : this.#lastId;
    return new Event(type === "" ? "message" : type, data.join("\n"), id, retry);
  }
}
