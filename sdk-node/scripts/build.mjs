// Build dist/esm (ES modules) and dist/cjs (CommonJS), each with its .d.ts files and a
// package.json marker that tells Node and TypeScript which module system the folder uses.
// First the provider rules are embedded (scripts/profiles.mjs).
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

const profiles = spawnSync(process.execPath, [join(root, "scripts", "profiles.mjs")], { stdio: "inherit" });
if (profiles.status !== 0) {
  process.exit(profiles.status ?? 1);
}
rmSync(join(root, "dist"), { recursive: true, force: true });
for (const [config, type] of [
  ["tsconfig.esm.json", "module"],
  ["tsconfig.cjs.json", "commonjs"],
]) {
  const run = spawnSync(process.execPath, [tsc, "-p", join(root, config)], {
    cwd: root,
    stdio: "inherit",
  });
  if (run.status !== 0) {
    process.exit(run.status ?? 1);
  }
  const out = join(root, "dist", type === "module" ? "esm" : "cjs");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "package.json"), `${JSON.stringify({ type }, null, 2)}\n`);
}
