// `npm test`: node:test over every test file, listed explicitly (Node 18's --test takes paths,
// not globs). Needs `npm run build` first. POOLSWITCH_PYTHON names the Python that has the
// `poolswitch` server installed (default python3).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
for (const entry of ["dist/esm/index.js", "dist/cjs/index.js"]) {
  if (!existsSync(join(root, entry))) {
    console.error(`${entry} is missing: run \`npm run build\` first`);
    process.exit(1);
  }
}
const files = readdirSync(join(root, "test"))
  .filter((name) => /\.test\.(mjs|cjs)$/.test(name))
  .sort()
  .map((name) => join("test", name));
const [major, minor] = process.versions.node.split(".").map(Number);
const reporter = major > 18 || (major === 18 && minor >= 15) ? ["--test-reporter=spec"] : [];
const run = spawnSync(process.execPath, ["--test", ...reporter, ...files], { cwd: root, stdio: "inherit" });
process.exit(run.status ?? 1);
