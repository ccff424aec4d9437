// SSEParser: the text/event-stream format, fed whole and split at every position.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { SSEParser } from "poolswitch-node";

/** Parse `text` in one piece and split at every index (in 2 and in 1-char pieces); all must agree. */
function parse(text) {
  const plain = (event) => {
    const fields = { event: event.event, data: event.data, id: event.id };
    return event.retry === null ? fields : { ...fields, retry: event.retry };
  };
  const whole = new SSEParser();
  const expected = whole.push(text).map(plain);
  whole.end();
  for (let cut = 0; cut <= text.length; cut += 1) {
    const parser = new SSEParser();
    const got = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))].map(plain);
    assert.deepEqual(got, expected, `split at ${cut}`);
  }
  const bytewise = new SSEParser();
  const got = [...text].flatMap((char) => bytewise.push(char)).map(plain);
  assert.deepEqual(got, expected, "one character at a time");
  return expected;
}

describe("SSEParser", () => {
  test("plain data events, default type message, no id", () => {
    assert.deepEqual(parse("data: hello\n\ndata: world\n\n"), [
      { event: "message", data: "hello", id: null },
      { event: "message", data: "world", id: null },
    ]);
  });

  test("multi-line data is joined with newlines", () => {
    assert.deepEqual(parse("data: line 1\ndata: line 2\ndata:\ndata:  indented\n\n"), [
      { event: "message", data: "line 1\nline 2\n\n indented", id: null },
    ]);
  });

  test("comments are skipped (keep-alives)", () => {
    assert.deepEqual(parse(": ping\n\n:\ndata: a\n: in between\ndata: b\n\n"), [
      { event: "message", data: "a\nb", id: null },
    ]);
  });

  test("CRLF, lone CR and LF line ends, mixed", () => {
    const expected = [
      { event: "message", data: "one\ntwo", id: null },
      { event: "update", data: "three", id: null },
      { event: "message", data: "four", id: null },
    ];
    assert.deepEqual(parse("data: one\r\ndata: two\r\n\r\nevent: update\rdata: three\r\rdata: four\n\n"), expected);
    assert.deepEqual(parse("data: one\rdata: two\r\revent: update\r\ndata: three\n\ndata: four\r\n\r\n"), expected);
  });

  test("event types reset after each event", () => {
    assert.deepEqual(parse("event: start\ndata: 1\n\ndata: 2\n\nevent: end\ndata: 3\n\n"), [
      { event: "start", data: "1", id: null },
      { event: "message", data: "2", id: null },
      { event: "end", data: "3", id: null },
    ]);
  });

  test("ids carry over to later events; an empty id resets; ids with NUL are ignored", () => {
    assert.deepEqual(parse("id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\nid\ndata: d\n\nid: x\0y\ndata: e\n\n"), [
      { event: "message", data: "a", id: "1" },
      { event: "message", data: "b", id: "1" },
      { event: "message", data: "c", id: "2" },
      { event: "message", data: "d", id: null },
      { event: "message", data: "e", id: null },
    ]);
  });

  test("no space after the colon, colons in the value, field without colon, unknown fields", () => {
    assert.deepEqual(parse('data:{"a":"b:c"}\nfoo: bar\ndata\n\n'), [
      { event: "message", data: '{"a":"b:c"}\n', id: null },
    ]);
  });

  test("retry: digits only, for its own event", () => {
    assert.deepEqual(parse("retry: 3000\ndata: a\n\ndata: b\n\nretry: 1.5\ndata: c\n\n"), [
      { event: "message", data: "a", id: null, retry: 3000 },
      { event: "message", data: "b", id: null },
      { event: "message", data: "c", id: null },
    ]);
  });

  test("events without data are not dispatched", () => {
    assert.deepEqual(parse("event: ping\n\nid: 7\n\n\n\ndata: x\n\n"), [{ event: "message", data: "x", id: "7" }]);
  });

  test("an unfinished event at the end is dropped; a BOM at the start is skipped", () => {
    assert.deepEqual(parse("\uFEFFdata: kept\n\ndata: dropped"), [{ event: "message", data: "kept", id: null }]);
  });

  test("a CR ending a piece ends the line at once (no wait for a possible LF)", () => {
    const parser = new SSEParser();
    assert.deepEqual(
      parser.push("data: a\r\r").map((e) => e.data),
      ["a"],
    );
    assert.deepEqual(
      parser.push("\ndata: b\r\n\r\n").map((e) => e.data),
      ["b"],
    );
  });

  test("json() parses data; [DONE] is an ordinary event", () => {
    const parser = new SSEParser();
    const [chunk, done] = parser.push('data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n');
    assert.equal(chunk.json().choices[0].delta.content, "Hi");
    assert.equal(done.data, "[DONE]");
    assert.throws(() => done.json(), SyntaxError);
  });

  test("end() forgets a half event so a reused parser starts clean", () => {
    const parser = new SSEParser();
    assert.deepEqual(parser.push("event: x\ndata: half"), []);
    parser.end();
    assert.deepEqual(
      parser.push("data: fresh\n\n").map((e) => [e.event, e.data]),
      [["message", "fresh"]],
    );
  });
});
