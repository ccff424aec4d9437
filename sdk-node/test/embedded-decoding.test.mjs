// Bounded decoding of error bodies (src/embedded/decoding.ts): every coding, the bound on a
// decompression bomb (output and work), corrupt and truncated bodies read as the server reads
// them, and the classifier treating an undecodable body as empty.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as zlib from "node:zlib";

import { createClassifier } from "../dist/esm/embedded/classifier.js";
import { DecodeError, codings, crc32, decode } from "../dist/esm/embedded/decoding.js";

const LIMIT = 64 * 1024;
const TEXT = Buffer.from('{"error":{"code":"insufficient_quota","message":"You exceeded your current quota"}}');
const rawDeflate = (data) => zlib.deflateRawSync(data);
const text = (result) => Buffer.from(result.body).toString();

describe("codings", () => {
  test("in the order applied, identity and empty items dropped, case and spaces ignored", () => {
    assert.deepEqual(codings(" GZIP , identity,, br"), ["gzip", "br"]);
    assert.deepEqual(codings(""), []);
    assert.deepEqual(codings(null), []);
  });
  test("an unknown coding is a DecodeError", () => {
    assert.throws(() => codings("zstd"), DecodeError);
  });
});

describe("decode", () => {
  const cases = [
    ["gzip", zlib.gzipSync(TEXT)],
    ["x-gzip", zlib.gzipSync(TEXT)],
    ["deflate", zlib.deflateSync(TEXT)], // zlib-wrapped, as RFC 9110 means
    ["deflate", rawDeflate(TEXT)], // raw, as some servers send
    ["br", zlib.brotliCompressSync(TEXT)],
    ["gzip, br", zlib.brotliCompressSync(zlib.gzipSync(TEXT))],
    ["identity", TEXT],
  ];
  for (const [coding, body] of cases) {
    test(`${coding} (${body.length} bytes)`, () => {
      const result = decode(new Uint8Array(body), coding, LIMIT);
      assert.equal(text(result), TEXT.toString());
      assert.equal(result.complete, true);
    });
  }

  test("a decompression bomb stops at the limit: 64 KiB out of 100 MiB, quickly", () => {
    for (const [coding, body] of [
      ["gzip", zlib.gzipSync(Buffer.alloc(100 * 1024 * 1024, 0x20), { level: 9 })],
      ["deflate", zlib.deflateSync(Buffer.alloc(100 * 1024 * 1024, 0x20), { level: 9 })],
      ["br", zlib.brotliCompressSync(Buffer.alloc(100 * 1024 * 1024, 0x20))],
    ]) {
      const started = process.hrtime.bigint();
      const result = decode(new Uint8Array(body), coding, LIMIT);
      const millis = Number(process.hrtime.bigint() - started) / 1e6;
      assert.equal(result.body.length, LIMIT, coding);
      assert.equal(result.complete, false, coding);
      assert.ok(millis < 2000, `${coding} took ${millis} ms`);
    }
  });

  test("a bomb wrapped twice is bounded at each step", () => {
    const inner = zlib.gzipSync(Buffer.alloc(20 * 1024 * 1024, 0x61));
    const result = decode(new Uint8Array(zlib.gzipSync(inner)), "gzip, gzip", LIMIT);
    assert.equal(result.body.length, LIMIT);
    assert.equal(result.complete, false);
  });

  test("corrupt bodies are a DecodeError", () => {
    const corrupt = [
      ["gzip", Buffer.from("1f8b08000000000000 03ffffffff206e6f74206465666c617465".replace(/ /g, ""), "hex")],
      ["gzip", TEXT], // not gzip at all
      ["gzip", Buffer.concat([Buffer.from([0x1f, 0x8b, 0x07, 0x00]), zlib.gzipSync(TEXT).subarray(4)])], // method 7
      ["deflate", Buffer.from("\xff\xfe not deflate", "latin1")],
      ["br", Buffer.from([0xff, 0xff, 0xff, 0xff])],
      ["br", Buffer.concat([zlib.brotliCompressSync(TEXT), Buffer.from("zz")])], // bytes after the stream
    ];
    for (const [coding, body] of corrupt) {
      assert.throws(() => decode(new Uint8Array(body), coding, LIMIT), DecodeError, `${coding} ${body.toString("hex")}`);
    }
  });

  test("a gzip trailer that does not match is a DecodeError (CRC-32, then the length)", () => {
    const good = zlib.gzipSync(TEXT);
    const badCrc = Buffer.from(good);
    badCrc[good.length - 8] ^= 1;
    const badLength = Buffer.from(good);
    badLength[good.length - 1] ^= 1;
    assert.throws(() => decode(new Uint8Array(badCrc), "gzip", LIMIT), /incorrect data check/);
    assert.throws(() => decode(new Uint8Array(badLength), "gzip", LIMIT), /incorrect length check/);
    assert.equal(crc32(TEXT), good.readUInt32LE(good.length - 8));
  });

  test("a corruption past the piece that crossed the limit is never looked at", () => {
    const big = Buffer.concat([TEXT, Buffer.alloc(300 * 1024, 0x20)]);
    const body = zlib.gzipSync(big);
    body[body.length - 8] ^= 1; // a wrong CRC-32, after 300 KiB of output
    const result = decode(new Uint8Array(body), "gzip", LIMIT);
    assert.equal(result.body.length, LIMIT);
    assert.ok(text(result).startsWith(TEXT.toString()));
  });

  test("a truncated body gives what it holds", () => {
    const body = zlib.gzipSync(TEXT);
    assert.equal(text(decode(new Uint8Array(body.subarray(0, body.length - 4)), "gzip", LIMIT)), TEXT.toString());
    assert.ok(TEXT.toString().startsWith(text(decode(new Uint8Array(body.subarray(0, 30)), "gzip", LIMIT))));
    assert.equal(text(decode(new Uint8Array(body.subarray(0, 5)), "gzip", LIMIT)), "");
    const br = zlib.brotliCompressSync(TEXT);
    assert.ok(TEXT.toString().startsWith(text(decode(new Uint8Array(br.subarray(0, br.length - 3)), "br", LIMIT))));
  });

  test("gzip: one member, what follows it ignored (as zlib's gzip reader)", () => {
    const body = Buffer.concat([zlib.gzipSync(Buffer.from("first ")), zlib.gzipSync(Buffer.from("second"))]);
    assert.equal(text(decode(new Uint8Array(body), "gzip", LIMIT)), "first ");
    const garbage = Buffer.concat([zlib.gzipSync(Buffer.from("first ")), Buffer.from("garbage!")]);
    assert.equal(text(decode(new Uint8Array(garbage), "gzip", LIMIT)), "first ");
  });

  test("gzip headers with a name, a comment, extra data and a header CRC", () => {
    const plain = zlib.gzipSync(TEXT);
    const headerFields = Buffer.concat([
      Buffer.from([0x1f, 0x8b, 0x08, 0x1e, 0, 0, 0, 0, 0, 0x03]), // FEXTRA | FNAME | FCOMMENT | FHCRC
      Buffer.from([3, 0, 0x61, 0x62, 0x63]),
      Buffer.from("name.json\0comment\0", "latin1"),
    ]);
    const crc = crc32(headerFields) & 0xffff;
    const body = Buffer.concat([headerFields, Buffer.from([crc & 0xff, crc >> 8]), plain.subarray(10)]);
    assert.equal(text(decode(new Uint8Array(body), "gzip", LIMIT)), TEXT.toString());
    body[headerFields.length] ^= 1;
    assert.throws(() => decode(new Uint8Array(body), "gzip", LIMIT), /header crc mismatch/);
  });
});

describe("the classifier reads compressed bodies", () => {
  const classifier = createClassifier({ provider: "openai", upstreamBaseUrl: "", cooldownSeconds: 3600 });
  const quota = { outcome: "quota_exhausted", source: "cooldown_seconds" };
  const classify = (body, headers = {}) => {
    const v = classifier.classify(429, new Headers(headers), new Uint8Array(body), 0);
    return { outcome: v.outcome, source: v.source };
  };
  test("labelled, and gzip bytes unlabelled", () => {
    assert.deepEqual(classify(zlib.gzipSync(TEXT), { "content-encoding": "gzip" }), quota);
    assert.deepEqual(classify(zlib.gzipSync(TEXT)), quota);
    assert.deepEqual(classify(zlib.brotliCompressSync(TEXT), { "content-encoding": "br" }), quota);
  });
  test("a body that cannot be decoded is empty: the status alone decides", () => {
    const rate = { outcome: "rate_limited", source: "default" };
    assert.deepEqual(classify(TEXT, { "content-encoding": "zstd" }), rate);
    assert.deepEqual(classify(Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0xff]), { "content-encoding": "gzip" }), rate);
    assert.deepEqual(classify(Buffer.from([0xff, 0xff, 0xff]), { "content-encoding": "br" }), rate);
  });
  test("a bomb: the head is read", () => {
    const bomb = zlib.gzipSync(Buffer.concat([TEXT, Buffer.alloc(50 * 1024 * 1024, 0x20)]));
    assert.deepEqual(classify(bomb, { "content-encoding": "gzip" }), quota);
    const late = zlib.gzipSync(Buffer.concat([Buffer.alloc(70 * 1024, 0x20), TEXT, Buffer.alloc(1024 * 1024, 0x20)]));
    assert.deepEqual(classify(late, { "content-encoding": "gzip" }), { outcome: "rate_limited", source: "default" });
  });
});
