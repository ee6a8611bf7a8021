// `npm start` runs the built dist/. This builds first only when dist/ is missing or older than a
// source file (a fresh clone, or after an edit), so a start does not spend 20-35 s in tsc.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const built = "dist/src/cli.js";

function newest(dir) {
  let t = 0;
  if (!existsSync(dir)) return t;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

// An installed package has dist/ and no src/: nothing to build.
if (!existsSync("src")) process.exit(0);
const sources = Math.max(newest("src"), statSync("tsconfig.json").mtimeMs, statSync("package.json").mtimeMs);
if (existsSync(built) && statSync(built).mtimeMs >= sources) process.exit(0);
console.error(existsSync(built) ? "didgate: sources changed since the last build; building" : "didgate: not built yet; building (once)");
const r = spawnSync("npm", ["run", "build", "--silent"], { stdio: "inherit", shell: process.platform === "win32" });
process.exit(r.status ?? 1);
