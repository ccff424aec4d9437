/**
 * Content-Encoding undone within a bound: gzip (x-gzip), deflate (zlib-wrapped or raw) and br,
 * with node:zlib (the server's decoding.py `decode`). At most `limit` decoded bytes come back, so
 * a small compressed body cannot expand into a large one (a decompression bomb: the work done
 * is bounded too, never the whole expansion).
 *
 * Read as the server reads it, where Node's zlib would differ: the server decodes in pieces of
 * 64 KiB and stops once it holds more than `limit` bytes, so corruption past that point is never
 * seen; a truncated body gives what it holds (no error); bytes after the end of a stream are
 * ignored for gzip and deflate and are an error for br; a gzip body is one member (what follows
 * it is ignored), its header and trailer checked as zlib checks them.
 */

import * as zlib from "node:zlib";
import { strip } from "./pytext.js";

/** Codings `decode()` undoes (`identity` is no coding at all). */
export const SUPPORTED: readonly string[] = ["gzip", "x-gzip", "deflate", "br", "identity"];

/** The server decodes zlib data in pieces of 64 KiB and stops once it holds more than `limit`
 * bytes; its brotli binding hands out 96 KiB less 32 bytes at a time (the blocks of its output
 * buffer, whatever the piece asked for). What lies past the piece that crossed `limit` is never
 * looked at: a corruption there is not seen. */
export const PIECE = 64 * 1024;
export const BROTLI_PIECE = 32 * 1024 + (64 * 1024 - 32);

export class DecodeError extends Error {
  override name = "DecodeError";
}

/** The codings named by a Content-Encoding header, in the order applied; `identity` and empty
 * items dropped. Throws DecodeError for one this cannot undo. */
export function codings(contentEncoding: string | null | undefined): string[] {
  if (!contentEncoding) {
    return [];
  }
  const names = contentEncoding
    .split(",")
    .map((c) => strip(c).toLowerCase())
    .filter((c) => c && c !== "identity");
  for (const name of names) {
    if (!SUPPORTED.includes(name)) {
      throw new DecodeError(`unsupported content-encoding ${JSON.stringify(name)}`);
    }
  }
  return names;
}

export interface Decoded {
  readonly body: Uint8Array;
  /** False when the decoded body was longer than `limit` (it was cut there). */
  readonly complete: boolean;
}

/** Undo every coding of a whole body, at most `limit` bytes out. Throws DecodeError for a
 * corrupt body or an unknown coding. */
export function decode(body: Uint8Array, contentEncoding: string | null | undefined, limit: number): Decoded {
  let out = body;
  let complete = true;
  for (const name of codings(contentEncoding).reverse()) {
    const step = undo(name, out, limit);
    if (step.length > limit) {
      complete = false;
      out = step.subarray(0, limit);
    } else {
      out = step;
    }
  }
  return { body: out, complete };
}

interface Run {
  readonly out: Buffer;
  /** Input bytes the decoder consumed (it stops at the end of its stream). */
  readonly consumed: number;
}

interface Inflate {
  (input: Uint8Array, cap: number): Run;
  /** Output comes in pieces of this size (the server's). */
  readonly piece: number;
}

const SYNC = { finishFlush: zlib.constants.Z_SYNC_FLUSH, chunkSize: PIECE };
const BROTLI = { finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH, chunkSize: BROTLI_PIECE };

function run(fn: typeof zlib.inflateSync, options: { chunkSize: number }): Inflate {
  const inflate = (input: Uint8Array, cap: number): Run => {
    const result = fn(input, { ...options, info: true, maxOutputLength: cap }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    return { out: result.buffer, consumed: result.engine.bytesWritten };
  };
  return Object.assign(inflate, { piece: options.chunkSize });
}

const inflateRaw = run(zlib.inflateRawSync, SYNC);
const inflateZlib = run(zlib.inflateSync, SYNC);
const brotli = run(zlib.brotliDecompressSync as unknown as typeof zlib.inflateSync, BROTLI);

function tooLarge(error: unknown): boolean {
  return (error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE";
}

/** Decode with `inflate` as the server does with `limit`: piece by piece until it holds more
 * than `limit` bytes (`cap`: the end of that piece). When the whole output is longer, the longest
 * input prefix whose output fits (within a piece of `cap`: one input byte never expands that
 * far); `capped` says so, and then anything after was never looked at. Errors count before `cap`
 * only. */
function bounded(inflate: Inflate, input: Uint8Array, limit: number): Run & { capped: boolean } {
  const cap = (Math.floor(limit / inflate.piece) + 1) * inflate.piece;
  try {
    return { ...inflate(input, cap - 1), capped: false };
  } catch (error) {
    if (!tooLarge(error)) {
      throw new DecodeError("corrupt body");
    }
  }
  let low = 0; // a prefix that fits
  let high = input.length; // a prefix that does not
  let best: Run = { out: Buffer.alloc(0), consumed: 0 };
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    try {
      best = inflate(input.subarray(0, middle), cap - 1);
      low = middle;
    } catch (error) {
      if (!tooLarge(error)) {
        throw new DecodeError("corrupt body");
      }
      high = middle;
    }
  }
  return { ...best, capped: true };
}

function undo(name: string, body: Uint8Array, limit: number): Uint8Array {
  if (body.length === 0) {
    return body;
  }
  if (name === "br") {
    const done = bounded(brotli, body, limit);
    if (!done.capped && done.consumed < body.length) {
      throw new DecodeError("corrupt br body"); // bytes after the end of the stream
    }
    return done.out;
  }
  if (name === "deflate") {
    // RFC 9110 means zlib-wrapped; some servers send raw deflate. Look once, as the server does.
    const b0 = body[0] ?? 0;
    const b1 = body[1] ?? 0;
    const wrapped = body.length >= 2 && (b0 & 0x0f) === 8 && ((b0 << 8) | b1) % 31 === 0;
    return bounded(wrapped ? inflateZlib : inflateRaw, body, limit).out;
  }
  return gunzip(body, limit);
}

/** One gzip member, as zlib reads it: the header, the deflate data, the trailer's CRC-32 and
 * length checked when they are there (a body cut short is not an error). */
function gunzip(body: Uint8Array, limit: number): Uint8Array {
  const header = gzipHeader(body);
  if (header === null) {
    return new Uint8Array(0); // the header is not all there yet
  }
  const done = bounded(inflateRaw, body.subarray(header), limit);
  if (done.capped) {
    return done.out;
  }
  const trailer = header + done.consumed;
  if (body.length >= trailer + 8) {
    // the deflate stream ended before the input did: its trailer follows
    const view = new DataView(body.buffer, body.byteOffset + trailer, 8);
    if (view.getUint32(0, true) !== crc32(done.out)) {
      throw new DecodeError("corrupt gzip body: incorrect data check");
    }
    if (view.getUint32(4, true) !== done.out.length % 2 ** 32) {
      throw new DecodeError("corrupt gzip body: incorrect length check");
    }
  }
  return done.out;
}

/** The length of a gzip header, null when the body stops inside it; DecodeError when it is not
 * one (zlib's checks: magic, method 8, no reserved flag, the header CRC when flagged). */
function gzipHeader(body: Uint8Array): number | null {
  if (body.length < 2) {
    return null;
  }
  if (body[0] !== 0x1f || body[1] !== 0x8b) {
    throw new DecodeError("corrupt gzip body: incorrect header check");
  }
  if (body.length < 4) {
    return null;
  }
  const flags = body[3] ?? 0;
  if (body[2] !== 8) {
    return fail("unknown compression method");
  }
  if (flags & 0xe0) {
    return fail("unknown header flags set");
  }
  if (body.length < 10) {
    return null;
  }
  let pos = 10;
  if (flags & 0x04) {
    if (body.length < pos + 2) {
      return null;
    }
    pos += 2 + ((body[pos] ?? 0) | ((body[pos + 1] ?? 0) << 8));
  }
  for (const flag of [0x08, 0x10]) {
    if (flags & flag) {
      const end = body.indexOf(0, pos);
      if (end < 0) {
        return null;
      }
      pos = end + 1;
    }
  }
  if (flags & 0x02) {
    if (body.length < pos + 2) {
      return null;
    }
    const stated = (body[pos] ?? 0) | ((body[pos + 1] ?? 0) << 8);
    if (stated !== (crc32(body.subarray(0, pos)) & 0xffff)) {
      return fail("header crc mismatch");
    }
    pos += 2;
  }
  return pos > body.length ? null : pos;
}

function fail(problem: string): never {
  throw new DecodeError(`corrupt gzip body: ${problem}`);
}

let table: Uint32Array | null = null;

export function crc32(data: Uint8Array): number {
  if (table === null) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n += 1) {
      let c = n;
      for (let k = 0; k < 8; k += 1) {
        c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      }
      table[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of data) {
    crc = (table[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}
