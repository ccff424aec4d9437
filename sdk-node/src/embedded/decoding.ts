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
  /** The output went past `limit`: decoding stopped there, what follows was never looked at. */
  readonly capped: boolean;
  /** The stream ended before the input did, within the last piece (what follows it was read
   * in the same call: a gzip trailer checked, bytes after a br stream refused). */
  readonly ended: boolean;
}

interface Codec {
  readonly make: () => zlib.Inflate | zlib.InflateRaw | zlib.BrotliDecompress;
  readonly flush: number;
  /** The server's piece for this codec. */
  readonly piece: number;
  readonly brotli: boolean;
  /** The one-call decoder, for a runtime without the engine's piecewise calls. */
  readonly whole: typeof zlib.inflateSync;
}

const RAW: Codec = {
  make: () => zlib.createInflateRaw(),
  flush: zlib.constants.Z_SYNC_FLUSH,
  piece: PIECE,
  brotli: false,
  whole: zlib.inflateRawSync,
};
const ZLIB: Codec = { ...RAW, make: () => zlib.createInflate(), whole: zlib.inflateSync };
const BROTLI: Codec = {
  make: () => zlib.createBrotliDecompress(),
  flush: zlib.constants.BROTLI_OPERATION_PROCESS,
  piece: BROTLI_PIECE,
  brotli: true,
  whole: zlib.brotliDecompressSync as unknown as typeof zlib.inflateSync,
};

/** What node:zlib's sync functions use inside: one call of the compression library, on our
 * buffers, its error reported to `onerror` at once; `_writeState` = [out left, in left]. */
interface Engine {
  readonly _handle?: {
    writeSync?: (
      flush: number,
      input: Uint8Array,
      inOff: number,
      inLen: number,
      out: Uint8Array,
      outOff: number,
      outLen: number,
    ) => void;
    onerror?: unknown;
  };
  readonly _writeState?: Uint32Array;
  close(): void;
}

/** Decode as the server does: piece by piece, stopping once it holds more than `limit` bytes;
 * an error in a piece loses that piece and the whole body. */
function bounded(codec: Codec, input: Uint8Array, limit: number): Run {
  const done = drive(codec, input, limit) ?? whole(codec, input, limit);
  if (codec.brotli && done.ended) {
    throw new DecodeError("corrupt br body"); // bytes after the end of the stream
  }
  return done;
}

function drive(codec: Codec, input: Uint8Array, limit: number): Run | null {
  const engine = codec.make() as unknown as Engine;
  const handle = engine._handle;
  const state = engine._writeState;
  if (handle === undefined || typeof handle.writeSync !== "function" || !(state instanceof Uint32Array)) {
    engine.close();
    return null;
  }
  let failed = false;
  handle.onerror = () => {
    failed = true;
  };
  const write = handle.writeSync.bind(handle);
  const pieces: Buffer[] = [];
  let total = 0;
  let offset = 0;
  /** One call of the library: [output bytes, input bytes] it took. */
  const step = (out: Buffer, filled: number): [number, number] => {
    const inLen = input.length - offset;
    write(codec.flush, input, offset, inLen, out, filled, out.length - filled);
    if (failed) {
      throw new DecodeError(`corrupt ${codec.brotli ? "br" : "deflate"} body`);
    }
    const took = inLen - (state[1] ?? 0);
    offset += took;
    return [out.length - filled - (state[0] ?? 0), took];
  };
  try {
    for (;;) {
      const out = Buffer.alloc(codec.piece);
      let filled = 0;
      for (;;) {
        const [made, took] = step(out, filled);
        filled += made;
        if (filled === out.length || offset === input.length || made + took === 0) {
          break;
        }
      }
      pieces.push(out.subarray(0, filled));
      total += filled;
      if (total > limit) {
        let ended = filled < out.length && offset < input.length;
        if (filled === out.length && offset < input.length) {
          ended = probe(() => step(Buffer.alloc(1), 0));
        }
        return { out: Buffer.concat(pieces), consumed: offset, capped: true, ended };
      }
      if (filled < out.length) {
        break; // the input is all taken, or the stream ended
      }
      if (offset === input.length && !codec.brotli) {
        // zlib's flush: what it still holds, without a bound (as the server's flush())
        for (let made = 1; made > 0; ) {
          const rest = Buffer.alloc(codec.piece);
          [made] = step(rest, 0);
          pieces.push(rest.subarray(0, made));
        }
        break;
      }
    }
  } finally {
    engine.close();
  }
  return { out: Buffer.concat(pieces), consumed: offset, capped: false, ended: offset < input.length };
}

/** Did the call that filled the last piece reach the end of the stream? (The library reads on
 * to the end while it needs no room for output.) Then one more call moves nothing. */
function probe(step: () => [number, number]): boolean {
  try {
    const [made, took] = step();
    return made + took === 0;
  } catch {
    return false; // a corruption past the piece: the server never looks there
  }
}

/** Without the engine's piecewise calls: one call bounded by `maxOutputLength`; when the output
 * is longer, the longest input prefix whose output fits. Exact for zlib (an input byte never
 * expands by a piece); for brotli the head may come out shorter than the server's. */
function whole(codec: Codec, input: Uint8Array, limit: number): Run {
  const cap = (Math.floor(limit / codec.piece) + 1) * codec.piece - 1;
  const options = { finishFlush: codec.brotli ? zlib.constants.BROTLI_OPERATION_FLUSH : codec.flush, chunkSize: codec.piece };
  const once = (part: Uint8Array): Run => {
    const result = codec.whole(part, { ...options, info: true, maxOutputLength: cap }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    const consumed = result.engine.bytesWritten;
    return { out: result.buffer, consumed, capped: false, ended: consumed < part.length };
  };
  const tooLarge = (error: unknown): boolean => (error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE";
  try {
    return once(input);
  } catch (error) {
    if (!tooLarge(error)) {
      throw new DecodeError("corrupt body");
    }
  }
  let low = 0;
  let high = input.length;
  let best: Run = { out: Buffer.alloc(0), consumed: 0, capped: true, ended: false };
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    try {
      best = once(input.subarray(0, middle));
      low = middle;
    } catch (error) {
      if (!tooLarge(error)) {
        throw new DecodeError("corrupt body");
      }
      high = middle;
    }
  }
  return { ...best, capped: true, ended: false };
}

function undo(name: string, body: Uint8Array, limit: number): Uint8Array {
  if (body.length === 0) {
    return body;
  }
  if (name === "br") {
    return bounded(BROTLI, body, limit).out;
  }
  if (name === "deflate") {
    // RFC 9110 means zlib-wrapped; some servers send raw deflate. Look once, as the server does.
    const b0 = body[0] ?? 0;
    const b1 = body[1] ?? 0;
    const wrapped = body.length >= 2 && (b0 & 0x0f) === 8 && ((b0 << 8) | b1) % 31 === 0;
    return bounded(wrapped ? ZLIB : RAW, body, limit).out;
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
  const done = bounded(RAW, body.subarray(header), limit);
  if (!done.ended) {
    return done.out; // cut short, or stopped before its end
  }
  const trailer = header + done.consumed;
  if (body.length >= trailer + 4) {
    // the deflate stream ended before the input did: its trailer follows, checked as far as
    // it goes (zlib checks the CRC-32 once its 4 bytes are there, then the length)
    const view = new DataView(body.buffer, body.byteOffset + trailer, Math.min(body.length - trailer, 8));
    if (view.getUint32(0, true) !== crc32(done.out)) {
      throw new DecodeError("corrupt gzip body: incorrect data check");
    }
    if (view.byteLength >= 8 && view.getUint32(4, true) !== done.out.length % 2 ** 32) {
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
