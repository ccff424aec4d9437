// The status types against the server's own documents: docs/status.example.json (and the /health
// document of docs/protocol.md) must compile as `StatusDocument` / `HealthDocument` with
// `satisfies`, whose excess-property check fails on any key the types do not declare, at any
// depth. A control run injects an unknown key into each object of the documents, one file each,
// and expects tsc to name every one: the check really fails when a field is missing.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

import { REPO_ROOT, SDK_ROOT } from "./support/harness.mjs";

const run = promisify(execFile);
const TSC = join(SDK_ROOT, "node_modules", "typescript", "bin", "tsc");
const TYPES = join(SDK_ROOT, "dist", "esm", "index.js");

/** The documents and the type each must satisfy. */
const DOCUMENTS = {
  StatusDocument: JSON.parse(readFileSync(join(REPO_ROOT, "docs", "status.example.json"), "utf8")),
  HealthDocument: {
    status: "degraded",
    keys_available: 1,
    keys_total: 4,
    pools: [
      { name: "openai", status: "ok", keys_available: 1, keys_total: 2 },
      { name: "anthropic", status: "degraded", keys_available: 0, keys_total: 2 },
    ],
    storage: {
      backend: "redis",
      status: "degraded",
      reason: "redis at redis://127.0.0.1:6379: no answer in time",
      since: 1795491759.9,
      outages: 1,
    },
  },
};

let work;

/** Every object in `value` (itself included), as paths of keys from the root. */
function objectPaths(value, path = []) {
  if (Array.isArray(value)) {
    return value.flatMap((item, index) => objectPaths(item, [...path, index]));
  }
  if (typeof value === "object" && value !== null) {
    return [path, ...Object.entries(value).flatMap(([key, item]) => objectPaths(item, [...path, key]))];
  }
  return [];
}

/** Every key path in `value`, for the message. */
function keyCount(value) {
  if (Array.isArray(value)) return value.reduce((sum, item) => sum + keyCount(item), 0);
  if (typeof value === "object" && value !== null) {
    return Object.values(value).reduce((sum, item) => sum + 1 + keyCount(item), 0);
  }
  return 0;
}

/** A fixture module: `document` as a literal that must satisfy `type`. */
function fixture(file, type, document) {
  const from = relative(work, TYPES).replaceAll("\\", "/");
  const specifier = from.startsWith(".") ? from : `./${from}`;
  const source = `import type { ${type} } from "${specifier}";\n\nexport const document = ${JSON.stringify(document, null, 2)} satisfies ${type};\n`;
  writeFileSync(join(work, file), source);
  return file;
}

/** Run tsc over `files`; resolves to { code, output }. */
async function tsc(files) {
  const config = join(work, `tsconfig.${files.length}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2022"],
        module: "nodenext",
        moduleResolution: "nodenext",
        strict: true,
        noEmit: true,
        types: ["node"],
        typeRoots: [join(SDK_ROOT, "node_modules", "@types")],
      },
      files,
    }),
  );
  try {
    const { stdout, stderr } = await run(process.execPath, [TSC, "-p", config, "--pretty", "false"], { cwd: work, timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    return { code: error.code, output: `${error.stdout ?? ""}${error.stderr ?? ""}` };
  }
}

describe("status types", { timeout: 120_000 }, () => {
  before(() => {
    assert.ok(existsSync(TYPES), "run `npm run build` first");
    work = mkdtempSync(join(tmpdir(), "poolswitch-node-types-"));
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("docs/status.example.json and the /health document satisfy the types, every key declared", async () => {
    const files = Object.entries(DOCUMENTS).map(([type, document]) => fixture(`${type}.mts`, type, document));
    const { code, output } = await tsc(files);
    assert.equal(code, 0, `tsc found keys or values the types do not declare:\n${output}`);
    assert.ok(keyCount(DOCUMENTS.StatusDocument) >= 30, "the example is the whole document");
  });

  test("control: an unknown key in any object of the documents fails the check", async () => {
    const files = [];
    for (const [type, document] of Object.entries(DOCUMENTS)) {
      for (const [index, path] of objectPaths(document).entries()) {
        const copy = structuredClone(document);
        const target = path.reduce((node, key) => node[key], copy);
        target[`undeclared_${index}`] = null;
        files.push(fixture(`${type}.control-${index}.mts`, type, copy));
      }
    }
    const { code, output } = await tsc(files);
    assert.notEqual(code, 0);
    for (const file of files) {
      const index = /control-(\d+)/.exec(file)[1];
      assert.match(output, new RegExp(`${file.replace(".", "\\.")}.*undeclared_${index}`), `${file} must fail:\n${output}`);
    }
  });
});
